/* SPDX-License-Identifier: Apache-2.0 */
/* Bytes so far of a long transfer, on stderr when it is a terminal: one line
 * redrawn at most every PROGRESS_INTERVAL_MS, erased at the end. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

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
