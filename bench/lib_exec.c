/* SPDX-License-Identifier: Apache-2.0 */
/* Exec round trip through the library on an existing VM: smolvm_open(ID), then
 * N runs of `true`; prints p50/p99 in microseconds as JSON. The CLI peer is
 * `smolvm exec ID -- true` timed by hyperfine in bench/sdk.sh, same VM, same run.
 * usage: lib_exec ID [N] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <smolvm/smolvm.h>

static uint64_t now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return fprintf(stderr, "usage: lib_exec ID [N]\n"), 2;
        int n = argc > 2 ? atoi(argv[2]) : 100;
        if (n < 2)
                return fprintf(stderr, "lib_exec: N must be >= 2\n"), 2;
        smolvm_vm *vm = NULL;
        if (smolvm_open(argv[1], &vm) < 0)
                return fprintf(stderr, "lib_exec: %s\n", smolvm_last_error()->message), 1;
        uint64_t *lat = calloc((size_t)n, sizeof(*lat));
        const char *true_argv[] = { "true", NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = true_argv;
        for (int i = 0; i < n; i++) {
                smolvm_result res;
                uint64_t t0 = now_us();
                if (smolvm_run(vm, &o, &res) < 0) {
                        fprintf(stderr, "lib_exec: %s\n", smolvm_last_error()->message);
                        return 1;
                }
                lat[i] = now_us() - t0;
                smolvm_result_free(&res);
        }
        qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
        printf("{\"runs\":%d,\"lib_exec_p50_us\":%" PRIu64 ",\"lib_exec_p99_us\":%" PRIu64 "}\n", n, lat[n / 2],
               lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
        free(lat);
        smolvm_free(vm);
        return 0;
}
