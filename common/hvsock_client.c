/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock client handshake (hvsock_client.h). */
#include "hvsock_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "unixsock.h"
#include "util.h"
#include "vmdir.h"

/* A listener whose backlog is full refuses a non-blocking connect with EAGAIN
 * and nothing tells when it has room again: try again after this long. */
#define BACKLOG_RETRY_MS 10u

static int fail(smolvm_hvsock_conn *c, int err, const char *why)
{
        if (!c->error) {
                c->error = err < 0 ? err : -EIO;
                c->why = why;
        }
        return c->error;
}

int smolvm_hvsock_conn_start(smolvm_hvsock_conn *c, const char *vm_dir, uint32_t port, uint64_t deadline_ms)
{
        *c = (smolvm_hvsock_conn){ .step = SMOLVM_HVSOCK_STEP_CONNECT, .why = "", .port = port, .fd = -1,
                                   .dir_fd = -1, .deadline_ms = deadline_ms };
        /* A deep $SMOLVM_HOME goes through /proc/self/fd (dir_fd open until connected). */
        int r = unix_sockaddr_at(vm_dir, VMDIR_VSOCK, &c->sa, &c->dir_fd);
        if (r < 0)
                return fail(c, r, "open");
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->fd < 0)
                return fail(c, negative_errno(), "socket");
        c->line_len = (size_t)snprintf(c->line, sizeof(c->line), "CONNECT %u\n", port);
        return 0;
}

static int step_connect(smolvm_hvsock_conn *c)
{
        if (c->retry_ms && now_ms() < c->retry_ms)
                return 0;
        c->retry_ms = 0;
        for (;;) {
                if (connect(c->fd, (struct sockaddr *)&c->sa, sizeof(c->sa)) == 0 || errno == EISCONN)
                        break;
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN) {
                        c->retry_ms = now_ms() + BACKLOG_RETRY_MS;
                        return 0;
                }
                if (errno == EINPROGRESS || errno == EALREADY)
                        return 0; /* not for AF_UNIX today; POLLOUT, then connect() says EISCONN */
                return fail(c, negative_errno(), "connect");
        }
        c->dir_fd = safe_close(c->dir_fd);
        c->step = SMOLVM_HVSOCK_STEP_SEND;
        c->line_off = 0;
        return 1;
}

static int step_send(smolvm_hvsock_conn *c)
{
        while (c->line_off < c->line_len) {
                ssize_t n = send(c->fd, c->line + c->line_off, c->line_len - c->line_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return fail(c, negative_errno(), "send CONNECT");
                c->line_off += (size_t)n;
        }
        c->step = SMOLVM_HVSOCK_STEP_REPLY;
        c->line_len = 0;
        return 1;
}

/* prefix ("OK ", "ERR ") and 1-10 digits that fit a uint32. */
static bool parse_reply(const char *s, size_t len, const char *prefix, uint32_t *ret)
{
        size_t plen = strlen(prefix);
        if (len < plen + 1 || len > plen + 10 || memcmp(s, prefix, plen) != 0)
                return false;
        uint64_t v = 0;
        for (size_t i = plen; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v > UINT32_MAX)
                return false;
        *ret = (uint32_t)v;
        return true;
}

/* Peek, then take exactly up to the '\n': the bytes after it belong to the stream. */
static int step_reply(smolvm_hvsock_conn *c)
{
        for (;;) {
                char peek[SMOLVM_HVSOCK_REPLY_MAX];
                size_t room = SMOLVM_HVSOCK_REPLY_MAX - c->line_len;
                ssize_t n = recv(c->fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0 && errno != ECONNRESET)
                        return fail(c, negative_errno(), "recv the reply to CONNECT");
                if (n <= 0)
                        return fail(c, -ECONNREFUSED, "the connection was closed before the OK line");
                const char *nl = memchr(peek, '\n', (size_t)n);
                size_t take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
                ssize_t k;
                do
                        k = recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT);
                while (k < 0 && errno == EINTR);
                if (k != (ssize_t)take) /* we are the only reader: what was peeked is there */
                        return fail(c, k < 0 ? negative_errno() : -EIO, "recv the reply to CONNECT");
                c->line_len += take;
                if (nl)
                        break;
                if (c->line_len == SMOLVM_HVSOCK_REPLY_MAX)
                        return fail(c, -EPROTO, "the reply to CONNECT is too long");
        }
        uint32_t err;
        if (parse_reply(c->line, c->line_len - 1, "ERR ", &err) &&
            err > 0 && err < 4096)
                return fail(c, -(int)err, "the supervisor refused");
        if (!parse_reply(c->line, c->line_len - 1, "OK ", &c->local_port))
                return fail(c, -EPROTO, "the reply to CONNECT is not \"OK <port>\"");
        c->step = SMOLVM_HVSOCK_STEP_DONE;
        return 1;
}

static const char *timeout_why(smolvm_hvsock_step step)
{
        switch (step) {
        case SMOLVM_HVSOCK_STEP_CONNECT:
                return "the supervisor did not accept the connection";
        case SMOLVM_HVSOCK_STEP_SEND:
                return "the supervisor took no request";
        case SMOLVM_HVSOCK_STEP_REPLY:
        case SMOLVM_HVSOCK_STEP_DONE:
        default:
                return "the guest did not answer";
        }
}

int smolvm_hvsock_conn_step(smolvm_hvsock_conn *c)
{
        if (c->error)
                return c->error;
        for (;;) {
                if (c->step == SMOLVM_HVSOCK_STEP_DONE)
                        return 1;
                if (c->deadline_ms && now_ms() >= c->deadline_ms)
                        return fail(c, -ETIMEDOUT, timeout_why(c->step));
                int r;
                switch (c->step) {
                case SMOLVM_HVSOCK_STEP_CONNECT:
                        r = step_connect(c);
                        break;
                case SMOLVM_HVSOCK_STEP_SEND:
                        r = step_send(c);
                        break;
                case SMOLVM_HVSOCK_STEP_REPLY:
                default:
                        r = step_reply(c);
                        break;
                }
                if (r <= 0)
                        return r;
        }
}

short smolvm_hvsock_conn_events(const smolvm_hvsock_conn *c)
{
        if (c->error || c->fd < 0)
                return 0;
        switch (c->step) {
        case SMOLVM_HVSOCK_STEP_CONNECT:
                return c->retry_ms ? 0 : POLLOUT;
        case SMOLVM_HVSOCK_STEP_SEND:
                return POLLOUT;
        case SMOLVM_HVSOCK_STEP_REPLY:
                return POLLIN;
        case SMOLVM_HVSOCK_STEP_DONE:
        default:
                return 0;
        }
}

int smolvm_hvsock_conn_fd(const smolvm_hvsock_conn *c)
{
        return c->fd;
}

int smolvm_hvsock_conn_timeout_ms(const smolvm_hvsock_conn *c)
{
        if (c->error || c->step == SMOLVM_HVSOCK_STEP_DONE)
                return -1;
        uint64_t until = c->deadline_ms;
        if (c->retry_ms && (!until || c->retry_ms < until))
                until = c->retry_ms;
        if (!until)
                return -1;
        uint64_t now = now_ms();
        return now >= until ? 0 : (int)MIN(until - now, (uint64_t)INT32_MAX);
}

int smolvm_hvsock_conn_take_fd(smolvm_hvsock_conn *c)
{
        if (c->error || c->step != SMOLVM_HVSOCK_STEP_DONE)
                return -1;
        return TAKE_FD(c->fd);
}

void smolvm_hvsock_conn_done(smolvm_hvsock_conn *c)
{
        if (!c)
                return;
        c->fd = safe_close(c->fd);
        c->dir_fd = safe_close(c->dir_fd);
}

/* Drive c to the end, blocking. Returns 1 when connected or a negative errno. */
static int drive(smolvm_hvsock_conn *c, int cancel_fd)
{
        for (;;) {
                int r = smolvm_hvsock_conn_step(c);
                if (r != 0)
                        return r;
                int t = smolvm_hvsock_conn_timeout_ms(c);
                short events = smolvm_hvsock_conn_events(c);
                int rev = fd_wait(events ? c->fd : -1, events, t < 0 ? 0 : now_ms() + (uint64_t)t, cancel_fd);
                if (rev == -ECANCELED)
                        return fail(c, -ECANCELED, "cancelled");
                if (rev < 0 && rev != -ETIMEDOUT)
                        return fail(c, rev, "poll");
        }
}

int smolvm_hvsock_connect(smolvm_hvsock_conn *c, const char *vm_dir, uint32_t port, uint64_t deadline_ms,
                          int cancel_fd)
{
        int r = smolvm_hvsock_conn_start(c, vm_dir, port, deadline_ms);
        if (r == 0)
                r = drive(c, cancel_fd);
        int fd = r == 1 ? smolvm_hvsock_conn_take_fd(c) : r;
        smolvm_hvsock_conn_done(c);
        return fd;
}

int smolvm_hvsock_control(smolvm_hvsock_conn *c, const char *vm_dir, const char *line, uint64_t deadline_ms,
                          uint32_t *ret_n)
{
        size_t len = strlen(line);
        if (len < 2 || len > SMOLVM_HVSOCK_LINE_MAX || line[len - 1] != '\n' || memchr(line, '\n', len - 1)) {
                *c = (smolvm_hvsock_conn){ .why = "", .fd = -1, .dir_fd = -1 };
                return fail(c, -EINVAL, "bad control line");
        }
        int r = smolvm_hvsock_conn_start(c, vm_dir, 0, deadline_ms);
        if (r == 0) {
                memcpy(c->line, line, len);
                c->line_len = len;
                r = drive(c, -1);
        }
        smolvm_hvsock_conn_done(c);
        if (r < 0)
                return r;
        *ret_n = c->local_port;
        return 0;
}
