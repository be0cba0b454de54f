/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every part of smolvm: cleanup attributes, ownership
 * hand-off, little-endian access, safe syscalls. Header-only on purpose. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(freep)

/* Never retry close() on EINTR (Linux has already released the fd); keep errno. */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd) { safe_close(*fd); }
#define _cleanup_close_ _cleanup_(closep)

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

/* Negative errno of the last failed call, never 0 (guards against errno left at 0). */
static inline int negative_errno(void) { return errno > 0 ? -errno : -EIO; }

static inline uint16_t get_le16(const void *p)
{
        const uint8_t *b = p;
        return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t get_le32(const void *p)
{
        const uint8_t *b = p;
        return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}
static inline uint64_t get_le64(const void *p)
{
        return (uint64_t)get_le32(p) | ((uint64_t)get_le32((const uint8_t *)p + 4) << 32);
}
static inline void put_le16(void *p, uint16_t v)
{
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(void *p, uint32_t v)
{
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)(v >> 16);
        b[3] = (uint8_t)(v >> 24);
}
static inline void put_le64(void *p, uint64_t v)
{
        put_le32(p, (uint32_t)v);
        put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* 64-bit FNV-1a of n bytes (a damage check or a short name: not for hostile keys). */
#define FNV1A64_INIT 0xcbf29ce484222325ull
static inline uint64_t fnv1a64(uint64_t h, const void *p, size_t n)
{
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * 0x100000001b3ull;
        return h;
}

/* Write all of buf to a blocking fd. Returns 0 or negative errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes from a blocking fd. Returns 0, -EPIPE on early EOF, or negative errno. */
int read_all(int fd, void *buf, size_t len);
/* Read a small text file (sysfs, procfs) with one read into buf, NUL-terminated
 * and cut at its first newline. Returns the length (>= 1), -ENODATA when it is
 * empty, or negative errno. */
int read_line_file(const char *path, char *buf, size_t size);
/* Replace bytes a terminal could interpret (control characters other than \n and
 * \t, DEL) with '?', in place. For anything a guest wrote that a user or a log
 * will see; UTF-8 is kept. */
void sanitize_text(char *s);
/* name is 1..max_len of [A-Za-z0-9._-], not starting with '.': one entry of a
 * directory that is never "..", hidden, or a path (image names, archive entries). */
bool plain_name_valid(const char *name, size_t max_len);
/* For functions that report into a caller's error buffer: format the message
 * into buf (nothing if buf is NULL or buf_len 0) and return code, as in
 * return errbuf_fail(-EINVAL, err, err_len, "bad name %s", name); */
int errbuf_fail(int code, char *buf, size_t buf_len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Run fn(arg) in a new detached thread (nobody joins it; it inherits the
 * caller's signal mask). Returns 0 or a negative errno. */
int thread_start_detached(void *(*fn)(void *), void *arg);
/* Set (on) or clear O_NONBLOCK on fd. Returns 0 or negative errno. */
int fd_set_nonblock(int fd, bool on);
/* qsort() comparator for an array of C strings (char *), by strcmp. */
int qsort_strcmp(const void *a, const void *b);
/* Monotonic clock in milliseconds. */
uint64_t now_ms(void);
/* Wait until fd (-1: none) has one of events (poll(2) bits), cancel_fd (-1:
 * none) is readable, or deadline_ms (now_ms() time, 0: none) passes. Returns
 * fd's revents (> 0), -ECANCELED (checked before fd), -ETIMEDOUT, or poll's
 * negative errno; EINTR is retried. */
int fd_wait(int fd, short events, uint64_t deadline_ms, int cancel_fd);
