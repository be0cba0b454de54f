/* SPDX-License-Identifier: Apache-2.0 */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vmdir.h"

/* A guest can print forever (a loop in userspace, a kernel oops storm); the file
 * must stay bounded. When the cap is reached the file restarts with the tail we
 * hold in memory, so the newest output is always there. */
#define CONSOLE_LOG_CAP_BYTES (1024u * 1024u)

struct sup_console {
        smolvm_evloop *loop;
        int fd;     /* our end of the socketpair, -1 after EOF */
        int log_fd; /* console.log, -1 if it could not be written */
        size_t log_bytes;
        uint8_t ring[SUP_CONSOLE_TAIL_BYTES];
        size_t ring_head; /* next write position */
        bool mid_line;    /* the last byte saved was not a newline */
        bool ring_full;
        uint64_t first_byte_ms;
        /* sup_console_watch(): a needle looked for across reads, once. */
        char watch[64];
        size_t watch_len;
        char carry[64]; /* the last watch_len - 1 bytes seen */
        size_t carry_len;
        void (*watch_fn)(void *userdata);
        void *watch_userdata;
};

void sup_console_watch(sup_console *con, const char *needle, void (*fn)(void *userdata), void *userdata)
{
        size_t n = needle ? strlen(needle) : 0;
        if (!con || n >= sizeof(con->watch)) /* 0 or too long: the watch ends */
                n = 0;
        memcpy(con->watch, needle ? needle : "", n);
        con->watch_len = n;
        con->carry_len = 0;
        con->watch_fn = n ? fn : NULL;
        con->watch_userdata = userdata;
}

static void watch_scan(sup_console *con, const uint8_t *p, size_t n)
{
        if (!con->watch_fn)
                return;
        uint8_t buf[sizeof(con->carry) + 4096];
        size_t len = con->carry_len + n;
        memcpy(buf, con->carry, con->carry_len);
        memcpy(buf + con->carry_len, p, n);
        if (memmem(buf, len, con->watch, con->watch_len)) {
                void (*fn)(void *) = con->watch_fn;
                con->watch_fn = NULL; /* once */
                fn(con->watch_userdata);
                return;
        }
        con->carry_len = MIN(len, con->watch_len - 1);
        memcpy(con->carry, buf + len - con->carry_len, con->carry_len);
}

static void ring_append(sup_console *con, const uint8_t *p, size_t n)
{
        const size_t cap = sizeof(con->ring);

        if (n > cap) {
                p += n - cap;
                n = cap;
        }
        size_t first = MIN(n, cap - con->ring_head);
        memcpy(con->ring + con->ring_head, p, first);
        memcpy(con->ring, p + first, n - first);
        if (con->ring_head + n >= cap)
                con->ring_full = true;
        con->ring_head = (con->ring_head + n) % cap;
}

/* The ring as up to two contiguous pieces, oldest first. */
static void ring_pieces(const sup_console *con, const uint8_t **a, size_t *a_len, const uint8_t **b,
                        size_t *b_len)
{
        if (con->ring_full) {
                *a = con->ring + con->ring_head;
                *a_len = sizeof(con->ring) - con->ring_head;
                *b = con->ring;
                *b_len = con->ring_head;
        } else {
                *a = con->ring;
                *a_len = con->ring_head;
                *b = con->ring;
                *b_len = 0;
        }
}

static void log_write(sup_console *con, const uint8_t *p, size_t n)
{
        if (con->log_fd < 0)
                return;
        if (con->log_bytes + n > CONSOLE_LOG_CAP_BYTES) {
                static const char note[] = "[" VMDIR_CONSOLE_LOG " truncated: size cap reached; newest output follows]\n";
                const uint8_t *a, *b;
                size_t a_len, b_len;

                /* The chunk is already in the ring: rewrite the file as note + ring. */
                if (ftruncate(con->log_fd, 0) < 0 || lseek(con->log_fd, 0, SEEK_SET) < 0)
                        goto fail;
                ring_pieces(con, &a, &a_len, &b, &b_len);
                if (write_all(con->log_fd, note, sizeof(note) - 1) < 0 || write_all(con->log_fd, a, a_len) < 0 ||
                    write_all(con->log_fd, b, b_len) < 0)
                        goto fail;
                con->log_bytes = sizeof(note) - 1 + a_len + b_len;
                return;
        }
        if (write_all(con->log_fd, p, n) < 0)
                goto fail;
        con->log_bytes += n;
        return;
fail:
        sup_log(VMDIR_CONSOLE_LOG ": write failed: %m; console output is no longer saved to disk");
        con->log_fd = safe_close(con->log_fd);
}

static void console_close(sup_console *con)
{
        if (con->fd < 0)
                return;
        (void)smolvm_evloop_del(con->loop, con->fd);
        con->fd = safe_close(con->fd);
}

/* Read until EAGAIN or EOF, at most a bounded amount per call so a chatty guest
 * cannot starve the rest of the loop. */
static void console_read(sup_console *con, size_t budget)
{
        uint8_t buf[4096];

        while (con->fd >= 0 && budget > 0) {
                ssize_t n = read(con->fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN) {
                                sup_log("console: read: %m");
                                console_close(con);
                        }
                        return;
                }
                if (n == 0) {
                        console_close(con);
                        return;
                }
                if (con->first_byte_ms == 0)
                        con->first_byte_ms = now_ms();
                ring_append(con, buf, (size_t)n);
                log_write(con, buf, (size_t)n);
                watch_scan(con, buf, (size_t)n);
                con->mid_line = buf[n - 1] != '\n';
                budget -= MIN(budget, (size_t)n);
        }
}

static void console_cb(void *userdata, int fd, uint32_t events)
{
        console_read(userdata, 64u * 1024u);
}

int sup_console_new(smolvm_evloop *loop, const char *log_path, sup_console **ret, int *ret_vmm_fd)
{
        _cleanup_free_ sup_console *con = calloc(1, sizeof(*con));
        int sv[2];
        int r = 0;

        if (!con)
                return -ENOMEM;
        con->loop = loop;
        con->log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (con->log_fd < 0)
                return negative_errno();
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                r = negative_errno();
                safe_close(con->log_fd);
                return r;
        }
        /* Only our end is non-blocking: QEMU's chardev manages its own end. */
        if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
            (r = smolvm_evloop_add(loop, sv[0], EPOLLIN, console_cb, con)) < 0) {
                r = r < 0 ? r : negative_errno();
                safe_close(sv[0]);
                safe_close(sv[1]);
                safe_close(con->log_fd);
                return r;
        }
        con->fd = sv[0];
        *ret_vmm_fd = sv[1];
        *ret = TAKE_PTR(con);
        return 0;
}

void sup_console_free(sup_console *con)
{
        if (!con)
                return;
        console_close(con);
        safe_close(con->log_fd);
        free(con);
}

void sup_console_drain(sup_console *con)
{
        /* Bounded too: after the VMM exited only its last writes remain. */
        console_read(con, 4u * CONSOLE_LOG_CAP_BYTES);
}

size_t sup_console_tail(const sup_console *con, char *buf, size_t buf_len)
{
        const uint8_t *piece[2];
        size_t piece_len[2], out = 0;
        bool skip_to_line = con->ring_full;

        if (buf_len == 0)
                return 0;
        ring_pieces(con, &piece[0], &piece_len[0], &piece[1], &piece_len[1]);
        for (size_t k = 0; k < 2; k++) {
                for (size_t i = 0; i < piece_len[k] && out + 1 < buf_len; i++) {
                        uint8_t c = piece[k][i];
                        if (skip_to_line) {
                                if (c == '\n')
                                        skip_to_line = false;
                                continue;
                        }
                        if (c == '\r')
                                continue;
                        if (c != '\n' && c != '\t' && (c < 0x20 || c >= 0x7f))
                                c = '?';
                        buf[out++] = (char)c;
                }
        }
        buf[out] = '\0';
        return out;
}

void sup_console_note(sup_console *con, const char *text)
{
        char line[1024];

        if (!con)
                return;
        /* What the guest printed so far goes first. */
        console_read(con, 64u * 1024u);
        int n = snprintf(line, sizeof(line), "%s[smolvm-supervisor] %s\n", con->mid_line ? "\n" : "", text);
        if (n < 0)
                return;
        size_t len = MIN((size_t)n, sizeof(line) - 1);
        line[len - 1] = '\n'; /* also when the text was cut */
        ring_append(con, (const uint8_t *)line, len);
        log_write(con, (const uint8_t *)line, len);
        con->mid_line = false;
}

uint64_t sup_console_first_byte_ms(const sup_console *con)
{
        return con->first_byte_ms;
}
