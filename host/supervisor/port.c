/* SPDX-License-Identifier: Apache-2.0 */
/* Port forwarding duty (port.h). Per accepted TCP connection: a socketpair,
 * one end to the mux as a stream to the guest agent, the agent_client state
 * machine on the other sends {"op":"port_connect","port":N} and waits for the
 * RESULT; then the RESULT's stream and the TCP socket are relayed (common/
 * relay.h: bounded buffers, half-close passed through). An ERROR (nothing
 * listens on the guest port), a timeout or a refused stream closes the TCP
 * connection at once. */
#include "port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_client_loop.h"
#include "agent_proto.h"
#include "list.h"
#include "log.h"
#include "relay.h"
#include "sup.h"
#include "util.h"

/* The RESULT is a short object; anything bigger is not one. */
#define ANSWER_MAX 4096u

typedef struct port_fwd {
        struct sup_port *p;
        bool used;
        uint16_t guest_port, host_port;
        int listen_fd;
        char addr[INET6_ADDRSTRLEN];
} port_fwd;

typedef struct port_conn {
        struct sup_port *p;
        struct port_conn *prev, *next;
        uint16_t guest_port;
        int tcp_fd;
        int stream_fd; /* once the RESULT came: the agent stream, relayed */
        smolvm_agent_loop_call *call;
        smolvm_relay relay;
        bool relaying;
} port_conn;

typedef struct sup_port {
        sup *s;
        port_fwd fwd[SUP_PORT_MAX_FORWARDS];
        port_conn *conns;
        unsigned n_conns;
} sup_port;

static bool parse_u16(const char *s, size_t len, uint16_t *ret)
{
        uint32_t v = 0;
        if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (uint32_t)(s[i] - '0');
        }
        if (v > 65535)
                return false;
        *ret = (uint16_t)v;
        return true;
}

int sup_port_parse_line(const char *line, size_t len, uint16_t *ret_guest, uint16_t *ret_host, char *addr,
                        size_t addr_size)
{
        char buf[128];
        const char *w[4];
        size_t wl[4], n = 0;

        if (len == 0 || len >= sizeof(buf) || line[len - 1] != '\n' || memchr(line, '\0', len))
                return -EINVAL;
        memcpy(buf, line, len - 1);
        buf[len - 1] = '\0';
        for (char *q = buf; *q;) {
                if (n == 4)
                        return -EINVAL;
                char *sp = strchr(q, ' ');
                w[n] = q;
                wl[n] = sp ? (size_t)(sp - q) : strlen(q);
                n++;
                if (!sp)
                        break;
                q = sp + 1;
                if (!*q)
                        return -EINVAL; /* trailing space */
        }
        uint16_t g, h;
        if (n == 2 && wl[0] == 8 && (memcmp(w[0], "UNEXPOSE", 8) == 0 || memcmp(w[0], "PORTSTAT", 8) == 0)) {
                if (!parse_u16(w[1], wl[1], &g) || g == 0)
                        return -EINVAL;
                *ret_guest = g;
                return w[0][0] == 'U' ? 2 : 3;
        }
        if (n != 4 || wl[0] != 6 || memcmp(w[0], "EXPOSE", 6) != 0)
                return -EINVAL;
        if (!parse_u16(w[1], wl[1], &g) || g == 0 || !parse_u16(w[2], wl[2], &h) || wl[3] >= addr_size)
                return -EINVAL;
        struct in6_addr a6;
        char a[INET6_ADDRSTRLEN];
        if (wl[3] >= sizeof(a))
                return -EINVAL;
        memcpy(a, w[3], wl[3]);
        a[wl[3]] = '\0';
        if (inet_pton(AF_INET, a, &a6) != 1 && inet_pton(AF_INET6, a, &a6) != 1)
                return -EINVAL;
        memcpy(addr, a, wl[3] + 1);
        *ret_guest = g;
        *ret_host = h;
        return 1;
}

/* ---- connections ---- */

static void conn_free(port_conn *c)
{
        sup_port *p = c->p;
        smolvm_evloop *loop = p->s->loop;

        LIST_REMOVE(p->conns, c);
        p->n_conns--;
        smolvm_agent_loop_call_free(c->call);
        if (c->relaying) {
                (void)smolvm_evloop_del(loop, c->tcp_fd);
                (void)smolvm_evloop_del(loop, c->stream_fd);
        }
        smolvm_relay_done(&c->relay);
        safe_close(c->stream_fd);
        safe_close(c->tcp_fd);
        free(c);
}

static void relay_cb(void *userdata, int fd, uint32_t events)
{
        port_conn *c = userdata;
        int r = smolvm_relay_step(&c->relay);
        if (r != 0) {
                if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                        sup_log("port %u: relay: %s", c->guest_port, strerror(-r));
                conn_free(c);
                return;
        }
        for (int i = 0; i < 2; i++)
                (void)smolvm_evloop_mod(c->p->s->loop, c->relay.fd[i], smolvm_relay_events(&c->relay, i));
}

static int relay_start(port_conn *c)
{
        smolvm_evloop *loop = c->p->s->loop;
        int r = smolvm_relay_init(&c->relay, c->tcp_fd, c->stream_fd);
        if (r < 0)
                return r;
        r = smolvm_evloop_add(loop, c->tcp_fd, smolvm_relay_events(&c->relay, 0), relay_cb, c);
        if (r < 0)
                return r;
        r = smolvm_evloop_add(loop, c->stream_fd, smolvm_relay_events(&c->relay, 1), relay_cb, c);
        if (r < 0) {
                (void)smolvm_evloop_del(loop, c->tcp_fd);
                return r;
        }
        c->relaying = true;
        return 0;
}

static void on_event(void *userdata, const smolvm_agent_event *ev)
{
        port_conn *c = userdata;
        if (ev->kind != SMOLVM_AGENT_EV_RESULT)
                return;
        /* The guest's bytes follow the RESULT at once: they stay in the socket. */
        c->stream_fd = smolvm_agent_loop_call_take_fd(c->call);
}

static void on_done(void *userdata, int err, const char *why)
{
        port_conn *c = userdata;
        int r;

        if (err == 0 && c->stream_fd >= 0) {
                smolvm_agent_loop_call_free(c->call);
                c->call = NULL;
                r = fd_set_nonblock(c->stream_fd, true);
                if (r >= 0)
                        r = relay_start(c);
                if (r >= 0)
                        return;
                sup_log("port %u: %s", c->guest_port, strerror(-r));
        } else if (err == -ECONNRESET) {
                sup_log("port %u: the guest agent closed the stream (the VM is stopping, or its agent has no "
                        "port_connect)", c->guest_port);
        } else if (err == -ETIMEDOUT) {
                sup_log("port %u: the guest agent did not connect within %u s", c->guest_port,
                        SUP_PORT_CONNECT_TIMEOUT_MS / 1000);
        } else {
                /* The agent's ERROR: nothing listens on the guest port, typically. */
                sup_log("port %u: %s", c->guest_port, why);
        }
        /* Closing the TCP connection is how its client learns: at once, no hang. */
        conn_free(c);
}

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        /* Nothing to do: on failure the mux closes its end and the call sees EOF. */
}

static int conn_new(sup_port *p, int tcp_fd, uint16_t guest_port)
{
        static const smolvm_agent_loop_ops ops = { .event = on_event, .done = on_done };
        char req[64];
        int sp[2], r;

        int n = snprintf(req, sizeof(req), "{\"op\":\"port_connect\",\"port\":%u}", (unsigned)guest_port);
        port_conn *c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(tcp_fd);
                return -ENOMEM;
        }
        c->p = p;
        c->guest_port = guest_port;
        c->tcp_fd = tcp_fd;
        c->stream_fd = -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = negative_errno();
                safe_close(tcp_fd);
                free(c);
                return r;
        }
        r = smolvm_agent_loop_call_start(p->s->loop, sp[1], SMOLVM_AGENT_REPLY_ANSWER, ANSWER_MAX, req, (size_t)n,
                                         SUP_PORT_CONNECT_TIMEOUT_MS, &ops, c, &c->call);
        if (r < 0) {
                safe_close(sp[0]);
                safe_close(tcp_fd);
                free(c);
                return r;
        }
        LIST_PREPEND(p->conns, c);
        p->n_conns++;
        /* Last: the mux owns sp[0] from here on, and closes it if it refuses. */
        r = smolvm_mux_connect(p->s->mux, SMOLVM_AGENT_PORT, sp[0], connect_cb, NULL);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        return 0;
}

static void listen_cb(void *userdata, int lfd, uint32_t events)
{
        port_fwd *f = userdata;
        sup_port *p = f->p;

        /* Bounded per wakeup so a connect storm cannot starve the loop. */
        for (int i = 0; i < 16; i++) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                sup_log("port %u: accept on %s:%u: %m", f->guest_port, f->addr, f->host_port);
                        return;
                }
                if (p->n_conns >= SUP_PORT_MAX_CONNS) {
                        sup_log("port %u: %u connections are relayed already (the limit), closing a new one",
                                f->guest_port, p->n_conns);
                        safe_close(fd);
                        continue;
                }
                if (!p->s->mux || smolvm_mux_is_broken(p->s->mux)) {
                        safe_close(fd);
                        continue;
                }
                int one = 1;
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                int r = conn_new(p, fd, f->guest_port);
                if (r < 0)
                        sup_log("port %u: opening a stream to the guest: %s", f->guest_port, strerror(-r));
        }
}

/* ---- forwards ---- */

static port_fwd *fwd_find(sup_port *p, uint16_t guest_port)
{
        for (size_t i = 0; i < SUP_PORT_MAX_FORWARDS; i++)
                if (p->fwd[i].used && p->fwd[i].guest_port == guest_port)
                        return &p->fwd[i];
        return NULL;
}

static void fwd_close(sup_port *p, port_fwd *f)
{
        (void)smolvm_evloop_del(p->s->loop, f->listen_fd);
        safe_close(f->listen_fd);
        *f = (port_fwd){ .listen_fd = -1 };
}

/* Listen on addr:host_port (0: any free port). Returns 0 with the bound port
 * in *ret_port, or a negative errno (-EADDRINUSE: the port is taken). */
static int listen_on(const char *addr, uint16_t host_port, int *ret_fd, uint16_t *ret_port)
{
        struct sockaddr_storage ss = { 0 };
        socklen_t len;
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;

        if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
                v4->sin_family = AF_INET;
                v4->sin_port = htons(host_port);
                len = sizeof(*v4);
        } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
                v6->sin6_family = AF_INET6;
                v6->sin6_port = htons(host_port);
                len = sizeof(*v6);
        } else {
                return -EINVAL;
        }
        _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        int one = 1;
        /* Rebinding after a restart must not wait for old connections' TIME_WAIT;
         * a port another socket listens on is still refused (EADDRINUSE). */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0)
                return negative_errno();
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return negative_errno();
        *ret_port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int expose(sup_port *p, uint16_t guest_port, uint16_t host_port, const char *addr, uint16_t *ret_port)
{
        port_fwd *f = fwd_find(p, guest_port);
        if (f) {
                /* Asked again (a start re-applying the record): the same forward is fine. */
                if ((host_port == 0 || host_port == f->host_port) && strcmp(addr, f->addr) == 0) {
                        *ret_port = f->host_port;
                        return 0;
                }
                return -EEXIST;
        }
        for (size_t i = 0; i < SUP_PORT_MAX_FORWARDS && !f; i++)
                if (!p->fwd[i].used)
                        f = &p->fwd[i];
        if (!f)
                return -ENOSPC;
        int fd;
        uint16_t bound;
        int r = listen_on(addr, host_port, &fd, &bound);
        if (r < 0)
                return r;
        *f = (port_fwd){ .p = p, .used = true, .guest_port = guest_port, .host_port = bound, .listen_fd = fd };
        snprintf(f->addr, sizeof(f->addr), "%s", addr);
        r = smolvm_evloop_add(p->s->loop, fd, EPOLLIN, listen_cb, f);
        if (r < 0) {
                safe_close(f->listen_fd);
                *f = (port_fwd){ .listen_fd = -1 };
                return r;
        }
        sup_log("port %u: listening on %s:%u", guest_port, addr, bound);
        *ret_port = bound;
        return 0;
}

static bool control_cb(void *userdata, const char *line, size_t len, char *answer, size_t answer_size)
{
        sup_port *p = userdata;
        uint16_t guest = 0, host = 0, bound = 0;
        char addr[INET6_ADDRSTRLEN];
        int r = sup_port_parse_line(line, len, &guest, &host, addr, sizeof(addr));
        if (r < 0 && strncmp(line, "EXPOSE ", 7) != 0 && strncmp(line, "UNEXPOSE ", 9) != 0 &&
            strncmp(line, "PORTSTAT ", 9) != 0)
                return false; /* not one of ours: another duty's line, or nobody's */

        if (r == 1) {
                r = expose(p, guest, host, addr, &bound);
                if (r < 0)
                        sup_log("port %u: EXPOSE on %s:%u: %s", guest, addr, host, strerror(-r));
        } else if (r == 3) {
                /* The connections this forward relays (or is setting up). */
                r = fwd_find(p, guest) ? 0 : -ENOENT;
                for (port_conn *c = p->conns; r == 0 && c; c = c->next)
                        bound += c->guest_port == guest;
        } else if (r == 2) {
                port_fwd *f = fwd_find(p, guest);
                if (f) {
                        sup_log("port %u: closed %s:%u", guest, f->addr, f->host_port);
                        fwd_close(p, f);
                        r = 0;
                } else {
                        r = -ENOENT;
                }
        } else {
                sup_log("hvsock: malformed control line (%zu bytes), refused", len);
        }
        if (r < 0)
                snprintf(answer, answer_size, "ERR %d\n", -r);
        else
                snprintf(answer, answer_size, "OK %u\n", (unsigned)bound);
        return true;
}

/* ---- the duty ---- */

static int port_create(sup *s, void **ret)
{
        sup_port *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->s = s;
        for (size_t i = 0; i < SUP_PORT_MAX_FORWARDS; i++)
                p->fwd[i].listen_fd = -1;
        *ret = p;
        return 0;
}

static int port_prepare(void *self, sup_vm_extra *x)
{
        sup_port *p = self;
        return sup_hvsock_add_control(p->s->hv, control_cb, p);
}

static void port_detach(void *self)
{
        sup_port *p = self;
        if (p->s->hv)
                sup_hvsock_remove_control(p->s->hv, p);
        while (p->conns)
                conn_free(p->conns);
        for (size_t i = 0; i < SUP_PORT_MAX_FORWARDS; i++)
                if (p->fwd[i].used)
                        fwd_close(p, &p->fwd[i]);
}

static void port_destroy(void *self)
{
        sup_port *p = self;
        if (!p)
                return;
        port_detach(p);
        free(p);
}

const sup_duty_ops sup_port_duty = {
        .name = "port",
        .create = port_create,
        .prepare = port_prepare,
        .detach = port_detach,
        .destroy = port_destroy,
};
