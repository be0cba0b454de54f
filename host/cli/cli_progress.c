/* SPDX-License-Identifier: Apache-2.0 */
/* Bytes so far of a long transfer, on stderr when it is a terminal: one line
 * redrawn at most every PROGRESS_INTERVAL_MS, erased at the end. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

#define PROGRESS_INTERVAL_MS 200u
#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cli_progress_init(cli_progress *p, const char *label, bool compressed)
{
        *p = (cli_progress){ .label = label, .on = isatty(STDERR_FILENO) == 1, .compressed = compressed,
                             .start_ms = mono_ms() };
}

void cli_progress_cb(void *userdata, uint64_t tar_bytes, uint64_t file_bytes)
{
        cli_progress *p = userdata;
        if (!p->on)
                return;
        uint64_t now = mono_ms();
        /* Not for a transfer that is over before anyone could read it. */
        if (now - p->start_ms < PROGRESS_INTERVAL_MS || now - p->last_ms < PROGRESS_INTERVAL_MS)
                return;
        p->last_ms = now;
        p->shown = true;
        if (p->compressed)
                fprintf(stderr, "\r%s: %.1f MiB (%.1f MiB compressed)\033[K", p->label, MIB(tar_bytes),
                        MIB(file_bytes));
        else
                fprintf(stderr, "\r%s: %.1f MiB\033[K", p->label, MIB(tar_bytes));
        fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
        if (p->shown)
                fputs("\r\033[K", stderr);
        p->shown = false;
}

int cli_transfer(const char *command, bool json, bool compressed, smolvm_archive_opts *o, cli_transfer_fn fn,
                 void *userdata)
{
        sigset_t old;
        _cleanup_close_ int sfd = cli_setup_signals(&old);
        if (sfd < 0)
                return cli_failf(command, json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        cli_progress prog;
        cli_progress_init(&prog, command, compressed);
        o->cancel_fd = sfd;
        o->progress = cli_progress_cb;
        o->userdata = &prog;
        int r = fn(userdata, o);
        cli_progress_end(&prog);
        o->progress = NULL;
        o->userdata = NULL;
        o->cancel_fd = -1;
        if (r == -ECANCELED) {
                int sig = cli_pending_signal(sfd);
                return cli_fail_exit(command, json, r, 128 + (sig ? sig : SIGINT));
        }
        if (r == -EPIPE)
                return cli_fail_exit(command, json, r, 141);
        return r < 0 ? cli_fail(command, json, r) : 0;
}

typedef struct vm_transfer {
        const char *vm_name;
        cli_vm_transfer_fn fn;
        void *userdata;
} vm_transfer;

static int vm_transfer_fn(void *userdata, smolvm_archive_opts *o)
{
        vm_transfer *t = userdata;
        smolvm_vm *vm = NULL;
        int r = smolvm_open(t->vm_name, &vm);
        if (r < 0)
                return r;
        r = t->fn(vm, t->userdata, o);
        smolvm_free(vm);
        return r;
}

int cli_transfer_vm(const char *command, bool json, bool compressed, const char *vm_name, smolvm_archive_opts *o,
                    cli_vm_transfer_fn fn, void *userdata)
{
        vm_transfer t = { .vm_name = vm_name, .fn = fn, .userdata = userdata };
        return cli_transfer(command, json, compressed, o, vm_transfer_fn, &t);
}
