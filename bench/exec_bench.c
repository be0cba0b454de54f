/* SPDX-License-Identifier: Apache-2.0 */
/* Boots one VM through libsmolvm and measures, in that one run:
 *  - the boot split reported by the supervisor;
 *  - warm exec round trip of `true` (p50/p99 over N runs), against its peer: the
 *    cost of spawning `true` inside the guest itself (a shell loop, timed in the guest);
 *  - guest->host stream throughput of `head -c SIZE /dev/zero`, against its peer:
 *    the same bytes piped inside the guest (`head | cat >/dev/null`, timed in the guest);
 *  - the supervisor's RSS.
 * Prints one JSON object. Usage: exec_bench [N_RUNS] [STREAM_MIB] */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int count_bytes(void *ud, const void *data, size_t len)
{
        (void)data;
        *(uint64_t *)ud += len;
        return 0;
}

static int die(const char *what, int r)
{
        const smolvm_error *e = smolvm_last_error();
        fprintf(stderr, "exec_bench: %s: %s\n", what, e && e->message ? e->message : smolvm_strerror(r));
        return 1;
}

/* Run a shell snippet in the guest, return its stdout parsed as an integer. */
static int guest_number(smolvm_vm *vm, const char *script, long long *ret)
{
        const char *argv[] = { "/bin/sh", "-c", script, NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        smolvm_result res;
        int r = smolvm_run(vm, &o, &res);
        if (r < 0)
                return r;
        r = res.status.exit_code == 0 ? 0 : -EIO;
        *ret = atoll(res.stdout_data ? res.stdout_data : "0");
        smolvm_result_free(&res);
        return r;
}

int main(int argc, char **argv)
{
        int n_runs = argc > 1 ? atoi(argv[1]) : 200;
        int stream_mib = argc > 2 ? atoi(argv[2]) : 256;
        if (n_runs < 2 || stream_mib < 1)
                return fprintf(stderr, "usage: exec_bench [N_RUNS>=2] [STREAM_MIB>=1]\n"), 2;

        smolvm_config cfg;
        smolvm_config_init(&cfg);
        cfg.ephemeral = true;
        smolvm_vm *vm = NULL;
        int r = smolvm_create(&cfg, &vm);
        if (r < 0)
                return die("create", r);
        r = smolvm_start(vm);
        if (r < 0) {
                smolvm_free(vm);
                return die("start", r);
        }
        smolvm_boot_info bi;
        smolvm_boot_info_get(vm, &bi);

        /* Warm exec round trips. */
        uint64_t *lat = calloc((size_t)n_runs, sizeof(*lat));
        const char *true_argv[] = { "true", NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = true_argv;
        for (int i = 0; i < n_runs && r >= 0; i++) {
                smolvm_result res;
                uint64_t t0 = now_us();
                r = smolvm_run(vm, &o, &res);
                lat[i] = now_us() - t0;
                if (r >= 0)
                        smolvm_result_free(&res);
        }
        if (r < 0)
                goto fail;
        qsort(lat, (size_t)n_runs, sizeof(*lat), cmp_u64);
        uint64_t p50 = lat[n_runs / 2], p99 = lat[(n_runs * 99) / 100 >= n_runs ? n_runs - 1 : (n_runs * 99) / 100];

        /* Peer: spawning `true` inside the guest, per spawn, in microseconds. */
        long long guest_spawn_total_ns = 0;
        char script[512];
        snprintf(script, sizeof(script),
                 "s=$(date +%%s%%N); i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; "
                 "e=$(date +%%s%%N); echo $((e-s))", n_runs);
        r = guest_number(vm, script, &guest_spawn_total_ns);
        if (r < 0)
                goto fail;
        double guest_spawn_us = (double)guest_spawn_total_ns / 1000.0 / n_runs;

        /* Throughput guest->host. */
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "head -c %dM /dev/zero", stream_mib);
        const char *tp_argv[] = { "/bin/sh", "-c", cmd, NULL };
        uint64_t got = 0;
        smolvm_exec_opts to;
        smolvm_exec_opts_init(&to);
        to.argv = tp_argv;
        smolvm_exec_callbacks cb = { .on_stdout = count_bytes, .userdata = &got };
        smolvm_exec_status st;
        uint64_t t0 = now_us();
        r = smolvm_exec(vm, &to, &cb, &st);
        uint64_t tp_us = now_us() - t0;
        if (r < 0)
                goto fail;
        if (got != (uint64_t)stream_mib << 20) {
                fprintf(stderr, "exec_bench: stream delivered %" PRIu64 " bytes, expected %d MiB\n", got, stream_mib);
                r = -EIO;
                goto fail;
        }
        long long guest_pipe_ns = 0;
        snprintf(script, sizeof(script),
                 "s=$(date +%%s%%N); head -c %dM /dev/zero | cat >/dev/null; e=$(date +%%s%%N); echo $((e-s))",
                 stream_mib);
        r = guest_number(vm, script, &guest_pipe_ns);
        if (r < 0)
                goto fail;

        /* Supervisor RSS. */
        long rss_kib = -1;
        char path[4096];
        snprintf(path, sizeof(path), "%s/supervisor.pid", smolvm_dir(vm));
        FILE *f = fopen(path, "re");
        int spid = 0;
        if (f) {
                if (fscanf(f, "%d", &spid) != 1)
                        spid = 0;
                fclose(f);
        }
        if (spid > 0) {
                snprintf(path, sizeof(path), "/proc/%d/status", spid);
                f = fopen(path, "re");
                char line[256];
                while (f && fgets(line, sizeof(line), f))
                        if (sscanf(line, "VmRSS: %ld kB", &rss_kib) == 1)
                                break;
                if (f)
                        fclose(f);
        }

        double mib_s = (double)stream_mib / ((double)tp_us / 1e6);
        double guest_mib_s = (double)stream_mib / ((double)guest_pipe_ns / 1e9);
        printf("{\"accel\":\"%s\",\"boot_ms\":%" PRIu64 ",\"host_boot_ms\":%" PRIu64
               ",\"t_vmm_ms\":%" PRIu64 ",\"t_kernel_ms\":%" PRIu64 ",\"t_init_ms\":%" PRIu64
               ",\"t_agent_ms\":%" PRIu64 ",\"runs\":%d,\"exec_p50_us\":%" PRIu64 ",\"exec_p99_us\":%" PRIu64
               ",\"guest_spawn_us\":%.0f,\"exec_p50_vs_guest_spawn\":%.2f"
               ",\"stream_mib\":%d,\"stream_mib_s\":%.1f,\"guest_pipe_mib_s\":%.1f,\"stream_vs_guest_pipe\":%.2f"
               ",\"supervisor_rss_kib\":%ld}\n",
               bi.accel, bi.boot_ms, bi.host_boot_ms, bi.t_vmm_ms, bi.t_kernel_ms, bi.t_init_ms, bi.t_agent_ms,
               n_runs, p50, p99, guest_spawn_us, (double)p50 / guest_spawn_us, stream_mib, mib_s, guest_mib_s,
               mib_s / guest_mib_s, rss_kib);
        free(lat);
        smolvm_destroy(vm);
        smolvm_free(vm);
        return 0;
fail:
        free(lat);
        smolvm_destroy(vm);
        smolvm_free(vm);
        return die("exec", r);
}
