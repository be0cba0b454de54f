/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int write_all(int fd, const void *buf, size_t len)
{
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int read_all(int fd, void *buf, size_t len)
{
        uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = read(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EPIPE;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int read_line_file(const char *path, char *buf, size_t size)
{
        if (size < 2)
                return -EINVAL;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        ssize_t n;
        do
                n = read(fd, buf, size - 1);
        while (n < 0 && errno == EINTR);
        int r = n < 0 ? negative_errno() : 0;
        safe_close(fd);
        if (r < 0)
                return r;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return buf[0] ? (int)strlen(buf) : -ENODATA;
}

int fd_set_nonblock(int fd, bool on)
{
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return negative_errno();
        int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
        if (want != fl && fcntl(fd, F_SETFL, want) < 0)
                return negative_errno();
        return 0;
}

int qsort_strcmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

bool plain_name_valid(const char *name, size_t max_len)
{
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > max_len || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

void sanitize_text(char *s)
{
        for (unsigned char *p = (unsigned char *)s; *p; p++)
                if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
                        *p = '?';
}

uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int fd_wait(int fd, short events, uint64_t deadline_ms, int cancel_fd)
{
        for (;;) {
                int timeout = -1;
                if (deadline_ms) {
                        uint64_t now = now_ms();
                        if (now >= deadline_ms)
                                return -ETIMEDOUT;
                        timeout = (int)MIN(deadline_ms - now, (uint64_t)INT_MAX);
                }
                struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = cancel_fd, .events = POLLIN } };
                int k = poll(p, 2, timeout);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        continue; /* the deadline check above decides */
                if (p[1].revents)
                        return -ECANCELED;
                if (p[0].revents)
                        return p[0].revents;
        }
}

int errbuf_fail(int code, char *buf, size_t buf_len, const char *fmt, ...)
{
        if (buf && buf_len > 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(buf, buf_len, fmt, ap);
                va_end(ap);
        }
        return code;
}

int thread_start_detached(void *(*fn)(void *), void *arg)
{
        pthread_attr_t attr;
        int r = pthread_attr_init(&attr);
        if (r != 0)
                return -r;
        (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        r = pthread_create(&t, &attr, fn, arg);
        pthread_attr_destroy(&attr);
        return -r;
}
