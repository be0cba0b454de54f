/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

/* The log is for humans debugging one VM; a guest that makes us log in a loop
 * must not fill the disk. Past the cap, start over (the newest lines matter most). */
#define LOG_CAP_BYTES (256u * 1024u)

static int log_fd = -1;
static size_t log_bytes;
static uint64_t log_t0_ms;

int sup_log_open(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0600);
        if (fd < 0)
                return negative_errno();
        safe_close(log_fd);
        log_fd = fd;
        log_bytes = 0;
        log_t0_ms = now_ms();
        return 0;
}

void sup_log_close(void)
{
        log_fd = safe_close(log_fd);
}

bool sup_log_is_open(void)
{
        return log_fd >= 0;
}

void sup_log(const char *fmt, ...)
{
        char line[1024];
        int saved = errno;
        int n, m;
        va_list ap;

        if (log_t0_ms == 0)
                log_t0_ms = now_ms();
        n = snprintf(line, sizeof(line), "[%6llu ms] ", (unsigned long long)(now_ms() - log_t0_ms));
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                m = 0;
        n += MIN(m, (int)sizeof(line) - n - 2);
        line[n++] = '\n';

        if (log_fd < 0) {
                (void)write_all(STDERR_FILENO, line, (size_t)n);
        } else {
                if (log_bytes + (size_t)n > LOG_CAP_BYTES && ftruncate(log_fd, 0) == 0) {
                        static const char note[] = "[log truncated: size cap reached]\n";
                        log_bytes = 0;
                        if (write_all(log_fd, note, sizeof(note) - 1) == 0)
                                log_bytes += sizeof(note) - 1;
                }
                if (write_all(log_fd, line, (size_t)n) == 0)
                        log_bytes += (size_t)n;
        }
        errno = saved;
}
