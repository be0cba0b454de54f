/* SPDX-License-Identifier: Apache-2.0 */
#include "hvsock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "unixsock.h"
#include "util.h"

typedef struct hv_client {
        struct sup_hvsock *hv;
        struct hv_client *prev, *next;
        int fd;
        int timer_fd;
        size_t len;
        char line[SUP_HVSOCK_LINE_MAX];
} hv_client;

struct sup_hvsock {
        smolvm_evloop *loop;
        int listen_fd;
        smolvm_mux *mux;
        hv_client *pending;
        unsigned n_pending;
        struct {
                sup_hvsock_control_cb cb;
                void *userdata;
        } control[SUP_HVSOCK_MAX_CONTROL];
};

/* Carried through smolvm_mux_connect to its callback. */
typedef struct hv_connect {
        int fd; /* owned by the mux; we only write the "OK" preamble */
        uint32_t peer_port;
} hv_connect;

int sup_hvsock_parse_connect(const char *line, size_t len, uint32_t *ret_port)
{
        static const char prefix[] = "CONNECT ";
        const size_t plen = sizeof(prefix) - 1;
        uint64_t v = 0;
        size_t n_digits;

        if (len < plen + 2 || memcmp(line, prefix, plen) != 0 || line[len - 1] != '\n')
                return -EINVAL;
        n_digits = len - plen - 1;
        if (n_digits > 10 || (n_digits > 1 && line[plen] == '0'))
                return -EINVAL;
        for (size_t i = plen; i < len - 1; i++) {
                if (line[i] < '0' || line[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(line[i] - '0');
        }
        if (v > UINT32_MAX)
                return -EINVAL;
        *ret_port = (uint32_t)v;
        return 0;
}

/* Unlink from the pending list and stop watching. Closes fd only if close_fd. */
static void client_free(hv_client *c, bool close_fd)
{
        sup_hvsock *hv = c->hv;

        LIST_REMOVE(hv->pending, c);
        hv->n_pending--;
        (void)smolvm_evloop_del(hv->loop, c->fd);
        (void)smolvm_evloop_del(hv->loop, c->timer_fd);
        safe_close(c->timer_fd);
        if (close_fd)
                safe_close(c->fd);
        free(c);
}

static void connect_done(void *userdata, int err, uint32_t local_port)
{
        hv_connect *hc = userdata;

        if (err == 0) {
                char ok[32];
                int n = snprintf(ok, sizeof(ok), "OK %u\n", local_port);
                /* A fresh socket's send buffer always has room for a dozen bytes; a short
                 * write would mean the client is gone, which the mux notices on its own. */
                if (send(hc->fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
                        sup_log("hvsock: writing OK for port %u: %m", hc->peer_port);
        } else {
                sup_log("hvsock: CONNECT %u failed: %s", hc->peer_port, strerror(-err));
        }
        free(hc);
}

static void client_line_done(hv_client *c)
{
        sup_hvsock *hv = c->hv;
        uint32_t port;
        hv_connect *hc;
        int fd = c->fd, r;

        if (c->len > 0 && strncmp(c->line, "CONNECT ", 8) != 0) {
                char answer[SUP_HVSOCK_LINE_MAX] = "";
                bool taken = false;
                for (size_t i = 0; i < SUP_HVSOCK_MAX_CONTROL && !taken; i++)
                        taken = hv->control[i].cb &&
                                hv->control[i].cb(hv->control[i].userdata, c->line, c->len, answer, sizeof(answer));
                if (!taken) {
                        sup_log("hvsock: malformed control line (%zu bytes), refused", c->len);
                        client_free(c, true);
                        return;
                }
                /* A fresh socket has room for one short line; a client gone meanwhile
                 * just misses its answer. */
                (void)send(fd, answer, strlen(answer), MSG_NOSIGNAL | MSG_DONTWAIT);
                client_free(c, true);
                return;
        }
        if (sup_hvsock_parse_connect(c->line, c->len, &port) < 0) {
                sup_log("hvsock: malformed CONNECT line (%zu bytes), closing", c->len);
                client_free(c, true);
                return;
        }
        if (!hv->mux || smolvm_mux_is_broken(hv->mux)) {
                sup_log("hvsock: CONNECT %u refused: guest not ready", port);
                client_free(c, true);
                return;
        }
        hc = malloc(sizeof(*hc));
        if (!hc) {
                client_free(c, true);
                return;
        }
        hc->fd = fd;
        hc->peer_port = port;
        client_free(c, false);
        r = smolvm_mux_connect(hv->mux, port, fd, connect_done, hc);
        if (r < 0) {
                /* The mux has closed fd and will not call back. */
                sup_log("hvsock: CONNECT %u: %s", port, strerror(-r));
                free(hc);
        }
}

static void client_cb(void *userdata, int fd, uint32_t events)
{
        hv_client *c = userdata;
        char peek[SUP_HVSOCK_LINE_MAX];
        size_t room = sizeof(c->line) - c->len, take;
        const char *nl;
        ssize_t n;

        /* Peek first: bytes after the '\n' belong to the stream, and must stay in the
         * socket for the mux to relay. Everything before a '\n' is line. */
        n = recv(fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                client_free(c, true);
                return;
        }
        nl = memchr(peek, '\n', (size_t)n);
        take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
        n = recv(fd, c->line + c->len, take, MSG_DONTWAIT);
        if (n != (ssize_t)take) {
                client_free(c, true);
                return;
        }
        c->len += take;
        if (nl)
                client_line_done(c);
        else if (c->len == sizeof(c->line)) {
                sup_log("hvsock: CONNECT line longer than %u bytes, closing", SUP_HVSOCK_LINE_MAX);
                client_free(c, true);
        }
}

static void client_timeout_cb(void *userdata, int fd, uint32_t events)
{
        sup_log("hvsock: client sent no CONNECT line within %u ms, closing", SUP_HVSOCK_LINE_TIMEOUT_MS);
        client_free(userdata, true);
}

static int client_new(sup_hvsock *hv, int fd)
{
        struct itimerspec its = { .it_value = { .tv_sec = SUP_HVSOCK_LINE_TIMEOUT_MS / 1000,
                                                .tv_nsec = (SUP_HVSOCK_LINE_TIMEOUT_MS % 1000) * 1000000L } };
        hv_client *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->hv = hv;
        c->fd = fd;
        c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (c->timer_fd < 0 || timerfd_settime(c->timer_fd, 0, &its, NULL) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = smolvm_evloop_add(hv->loop, c->timer_fd, EPOLLIN, client_timeout_cb, c);
        if (r < 0)
                goto fail;
        r = smolvm_evloop_add(hv->loop, fd, EPOLLIN, client_cb, c);
        if (r < 0) {
                (void)smolvm_evloop_del(hv->loop, c->timer_fd);
                goto fail;
        }
        LIST_PREPEND(hv->pending, c);
        hv->n_pending++;
        return 0;
fail:
        safe_close(c->timer_fd);
        free(c);
        return r;
}

static void listen_cb(void *userdata, int lfd, uint32_t events)
{
        sup_hvsock *hv = userdata;

        /* Bounded per wakeup so a connect storm cannot starve the loop. */
        for (int i = 0; i < 16; i++) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                sup_log("hvsock: accept: %m");
                        return;
                }
                if (hv->n_pending >= SUP_HVSOCK_MAX_PENDING) {
                        sup_log("hvsock: %u clients still owe a CONNECT line, refusing another", hv->n_pending);
                        safe_close(fd);
                        continue;
                }
                int r = client_new(hv, fd);
                if (r < 0) {
                        sup_log("hvsock: %s", strerror(-r));
                        safe_close(fd);
                }
        }
}

int sup_hvsock_new(smolvm_evloop *loop, const char *path, sup_hvsock **ret)
{
        _cleanup_free_ sup_hvsock *hv = calloc(1, sizeof(*hv));
        if (!hv)
                return -ENOMEM;
        _cleanup_close_ int fd = unix_listen(path, 64, SOCK_NONBLOCK);
        if (fd < 0)
                return fd;
        int r = smolvm_evloop_add(loop, fd, EPOLLIN, listen_cb, hv);
        if (r < 0)
                return r;
        hv->loop = loop;
        hv->listen_fd = TAKE_FD(fd);
        *ret = TAKE_PTR(hv);
        return 0;
}

void sup_hvsock_set_mux(sup_hvsock *hv, smolvm_mux *mux)
{
        hv->mux = mux;
}

int sup_hvsock_add_control(sup_hvsock *hv, sup_hvsock_control_cb cb, void *userdata)
{
        for (size_t i = 0; i < SUP_HVSOCK_MAX_CONTROL; i++)
                if (!hv->control[i].cb) {
                        hv->control[i].cb = cb;
                        hv->control[i].userdata = userdata;
                        return 0;
                }
        return -ENOSPC;
}

void sup_hvsock_remove_control(sup_hvsock *hv, void *userdata)
{
        for (size_t i = 0; i < SUP_HVSOCK_MAX_CONTROL; i++)
                if (hv->control[i].cb && hv->control[i].userdata == userdata)
                        hv->control[i].cb = NULL;
}

void sup_hvsock_free(sup_hvsock *hv)
{
        if (!hv)
                return;
        while (hv->pending)
                client_free(hv->pending, true);
        (void)smolvm_evloop_del(hv->loop, hv->listen_fd);
        safe_close(hv->listen_fd);
        free(hv);
}
