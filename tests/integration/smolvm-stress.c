/* SPDX-License-Identifier: Apache-2.0 */
/* Boots ONE VM through libsmolvm and runs 20 sequential and 8 concurrent
 * commands in it, checking each one's output and exit code. TAP on stdout;
 * a TAP skip when no image is built, exit 1 on any failure. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smolvm/smolvm.h"

#define N_SEQ 20
#define N_PAR 8

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int n_test;
static int n_fail;
static pthread_mutex_t tap_lock = PTHREAD_MUTEX_INITIALIZER;

static void tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(bool ok, const char *fmt, ...)
{
        va_list ap;
        pthread_mutex_lock(&tap_lock);
        n_test++;
        if (!ok)
                n_fail++;
        printf("%s %d - ", ok ? "ok" : "not ok", n_test);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        pthread_mutex_unlock(&tap_lock);
}

/* Run `sh -c 'echo out-N; echo err-N >&2; exit N%7'` (with stdin for odd N) and
 * check everything that comes back. */
static bool run_one(smolvm_vm *vm, int n, char *why, size_t why_len)
{
        char script[128], want_out[64], want_err[64];
        bool with_stdin = n % 2;
        if (with_stdin)
                snprintf(script, sizeof(script), "cat; echo out-%d; echo err-%d >&2; exit %d", n, n, n % 7);
        else
                snprintf(script, sizeof(script), "echo out-%d; echo err-%d >&2; exit %d", n, n, n % 7);
        snprintf(want_out, sizeof(want_out), "%sout-%d\n", with_stdin ? "in-data\n" : "", n);
        snprintf(want_err, sizeof(want_err), "err-%d\n", n);

        const char *argv[] = { "sh", "-c", script, NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.timeout_ms = 120000;
        if (with_stdin) {
                o.stdin_mode = SMOLVM_STDIN_BYTES;
                o.stdin_data = "in-data\n";
                o.stdin_len = 8;
        }
        smolvm_result res;
        int r = smolvm_run(vm, &o, &res);
        if (r < 0) {
                snprintf(why, why_len, "smolvm_run: %s", smolvm_last_error()->message);
                return false;
        }
        bool ok = res.status.exit_code == n % 7 && res.status.signal == 0 && !res.status.timed_out &&
                  res.stdout_len == strlen(want_out) && !memcmp(res.stdout_data, want_out, res.stdout_len) &&
                  res.stderr_len == strlen(want_err) && !memcmp(res.stderr_data, want_err, res.stderr_len);
        if (!ok)
                snprintf(why, why_len, "exit %d sig %d, stdout '%.40s', stderr '%.40s'", res.status.exit_code,
                         res.status.signal, res.stdout_data, res.stderr_data);
        smolvm_result_free(&res);
        return ok;
}

typedef struct worker {
        pthread_t t;
        smolvm_vm *vm;
        int n;
        bool ok;
        char why[256];
} worker;

static void *worker_main(void *p)
{
        worker *w = p;
        w->ok = run_one(w->vm, w->n, w->why, sizeof(w->why));
        return NULL;
}

/* Runs argv in the VM, returns stdout (caller frees) or NULL. */
static char *run_capture(smolvm_vm *vm, const char *const *argv, uint32_t timeout_ms, smolvm_exec_status *ret_status)
{
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.timeout_ms = timeout_ms;
        smolvm_result res;
        if (smolvm_run(vm, &o, &res) < 0)
                return NULL;
        *ret_status = res.status;
        char *out = strdup(res.stdout_data ? res.stdout_data : "");
        smolvm_result_free(&res);
        return out;
}

/* The guest kills the whole process group at the timeout: background children
 * included, so nothing of the command is left running afterwards. */
static void check_timeout_kills_group(smolvm_vm *vm)
{
        const char *argv[] = { "/bin/sh", "-c", "sleep 1000 & sleep 1000", NULL };
        smolvm_exec_status st = { 0 };
        uint64_t t0 = mono_ms();
        char *out = run_capture(vm, argv, 2000, &st);
        uint64_t took = mono_ms() - t0;
        tap(out && st.timed_out, "timeout: reported timed_out");
        tap(out && took < 10000, "timeout: returned within a few seconds (%llu ms)", (unsigned long long)took);
        free(out);
        const char *ps[] = { "ps", "-e", "-o", "comm=", NULL };
        out = run_capture(vm, ps, 10000, &st);
        tap(out && st.exit_code == 0 && strstr(out, "ps") && !strstr(out, "sleep"),
            "timeout: no process of the command left in the guest");
        if (out && strstr(out, "sleep"))
                printf("# ps: %s\n", out);
        free(out);
}

int main(void)
{
        smolvm_config cfg;
        smolvm_config_init(&cfg);
        cfg.ephemeral = true;
        const char *img = getenv("SMOLVM_STRESS_IMAGE");
        if (img && *img)
                cfg.image = img;
        smolvm_vm *vm = NULL;
        int r = smolvm_create(&cfg, &vm);
        if (r == SMOLVM_EIMAGE) {
                /* meson's TAP parser reads a skipped plan; it counts exit 77 as an error. */
                printf("1..0 # SKIP %s\n", smolvm_last_error()->message);
                return 0;
        }
        if (r < 0) {
                printf("Bail out! smolvm_create: %s\n", smolvm_last_error()->message);
                return 1;
        }
        r = smolvm_start(vm);
        tap(r == 0, "boot one VM%s%s", r < 0 ? ": " : "", r < 0 ? smolvm_last_error()->message : "");
        if (r < 0) {
                if (smolvm_last_error()->console_tail[0])
                        printf("# console:\n# %s\n", smolvm_last_error()->console_tail);
                smolvm_free(vm);
                printf("1..%d\n", n_test);
                return 1;
        }

        for (int i = 0; i < N_SEQ; i++) {
                char why[256] = "";
                bool ok = run_one(vm, i, why, sizeof(why));
                tap(ok, "sequential command %d%s%s", i, ok ? "" : ": ", why);
        }

        worker w[N_PAR];
        for (int i = 0; i < N_PAR; i++) {
                w[i] = (worker){ .vm = vm, .n = 100 + i };
                if (pthread_create(&w[i].t, NULL, worker_main, &w[i]) != 0) {
                        w[i].ok = false;
                        snprintf(w[i].why, sizeof(w[i].why), "pthread_create failed");
                        w[i].t = 0;
                }
        }
        for (int i = 0; i < N_PAR; i++) {
                if (w[i].t)
                        pthread_join(w[i].t, NULL);
                tap(w[i].ok, "concurrent command %d%s%s", w[i].n, w[i].ok ? "" : ": ", w[i].why);
        }

        check_timeout_kills_group(vm);

        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", smolvm_dir(vm));
        r = smolvm_destroy(vm);
        tap(r == 0, "destroy");
        FILE *f = fopen(dir, "r");
        tap(!f, "VM directory removed");
        if (f)
                fclose(f);
        smolvm_free(vm);
        printf("1..%d\n", n_test);
        return n_fail ? 1 : 0;
}
