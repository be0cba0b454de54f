/* SPDX-License-Identifier: Apache-2.0 */
/* The egress duty (egress.h): the host half of egress by name. */
#include "egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "dir.h"
#include "egress_policy.h"
#include "list.h"
#include "log.h"
#include "resolve.h"
#include "sup.h"
#include "util.h"
#include "vmdir.h"

#define CONN_MAX 256u              /* concurrent guest streams (DNS questions and connections) */
#define CONN_BUF (64u * 1024u)     /* per direction */
#define HDR_MAX 320u               /* "resolve NAME\n" / "connect ADDR PORT\n" */
#define HDR_TIMEOUT_MS 10000u
#define CONNECT_TIMEOUT_MS 10000u
#define RESOLVE_TIMEOUT_MS 10000u /* the host's lookup of a name */
#define RESOLVE_RETRY_MS 50u     /* a lookup waiting for a free slot tries again */
#define SYNTH_BASE 0xc6120100u /* 198.18.1.0: the synthetic addresses */
#define SYNTH_MAX 4096u
#define LOG_MAX_BYTES (1024u * 1024u)

/* C_RESOLVING: the host looks the name up (rfd, or -1 while waiting for a slot). */
enum conn_state { C_HDR, C_RESOLVING, C_CONNECTING, C_SPLICE };

typedef struct egress egress;

typedef struct conn {
        egress *e;
        struct conn *prev, *next;
        enum conn_state state;
        int gfd; /* our end of the socketpair the mux relays to the guest */
        int tfd; /* the target */
        int rfd; /* the host's lookup in flight (resolve.h); closing it cancels */
        uint32_t local_port, peer_port; /* the mux stream */
        uint64_t deadline_ms; /* 0: none */
        char name[EGRESS_NAME_MAX + 1];
        char addr[INET6_ADDRSTRLEN];
        uint16_t port;
        uint8_t g2t[CONN_BUF], t2g[CONN_BUF];
        size_t g2t_len, t2g_len;
        bool g_eof, t_eof, t_shut, g_shut;
        bool g_hup, t_hup; /* that side hung up (reported even with no events asked for) */
        bool g_off, t_off; /* taken out of the loop while hung up with nothing to wait for */
        uint64_t bytes_out, bytes_in;
} conn;

struct egress {
        sup *s;
        char *policy_path;
        struct stat policy_st;
        egress_policy policy;
        int log_fd;
        conn *conns;
        size_t n_conns;
        char *synth[SYNTH_MAX]; /* index -> name */
        size_t synth_next;
};

/* ---- the log: one JSON object a line ---- */

static void log_open(egress *e)
{
        _cleanup_free_ char *p = sup_dir_path(e->s, VMDIR_NET_LOG);
        e->log_fd = p ? open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
        if (e->log_fd < 0)
                sup_log("egress: %s/" VMDIR_NET_LOG ": %m (attempts are not logged)", e->s->vm_dir);
}

static void log_attempt(egress *e, const char *kind, const char *name, uint16_t port, bool allowed,
                        const char *reason, const conn *c)
{
        if (e->log_fd < 0)
                return;
        struct timespec ts;
        struct tm tm;
        char when[64];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "time", when, "kind", kind, "name", name, "port",
                              (json_int_t)port, "verdict", allowed ? "allowed" : "denied");
        if (!o)
                return;
        if (reason)
                json_object_set_new(o, "reason", json_string(reason));
        if (c && c->addr[0])
                json_object_set_new(o, "address", json_string(c->addr));
        if (c && allowed && !strcmp(kind, "connect")) {
                json_object_set_new(o, "bytes_out", json_integer((json_int_t)c->bytes_out));
                json_object_set_new(o, "bytes_in", json_integer((json_int_t)c->bytes_in));
        }
        _cleanup_free_ char *line = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!line)
                return;
        struct stat st;
        if (fstat(e->log_fd, &st) == 0 && st.st_size > (off_t)LOG_MAX_BYTES) {
                /* Keep the previous part as net.log.1: the log stays under 2 MiB. */
                _cleanup_free_ char *cur = sup_dir_path(e->s, VMDIR_NET_LOG);
                _cleanup_free_ char *old = sup_dir_path(e->s, VMDIR_NET_LOG_OLD);
                if (cur && old && rename(cur, old) == 0) {
                        safe_close(e->log_fd);
                        log_open(e);
                        if (e->log_fd < 0)
                                return;
                }
        }
        size_t n = strlen(line);
        line[n] = '\n';
        (void)!write(e->log_fd, line, n + 1); /* one write: O_APPEND keeps lines whole */
}

/* ---- the policy, re-read when net.json changes (`smolvm net allow/deny`) ---- */

static void policy_refresh(egress *e)
{
        struct stat st;
        if (stat(e->policy_path, &st) < 0) {
                sup_log("egress: %s: %m (keeping the policy loaded before)", e->policy_path);
                return;
        }
        if (st.st_ino == e->policy_st.st_ino && st.st_size == e->policy_st.st_size &&
            st.st_mtim.tv_sec == e->policy_st.st_mtim.tv_sec && st.st_mtim.tv_nsec == e->policy_st.st_mtim.tv_nsec)
                return;
        egress_policy p;
        char err[512];
        int r = egress_policy_load(e->policy_path, &p, err, sizeof(err));
        if (r < 0) {
                sup_log("egress: %s (keeping the policy loaded before)", err);
                e->policy_st = st; /* do not retry each time */
                return;
        }
        egress_policy_done(&e->policy);
        e->policy = p;
        e->policy_st = st;
        sup_log("egress: policy %s: %zu allowed, %zu denied, %zu pinned", p.open ? "open" : "allow-list",
                p.n_allow, p.n_deny, p.n_pins);
}

/* ---- synthetic addresses ---- */

static int synth_for(egress *e, const char *name, struct in_addr *ret)
{
        size_t idx = SYNTH_MAX;
        for (size_t i = 0; i < SYNTH_MAX && idx == SYNTH_MAX; i++)
                if (e->synth[i] && !strcmp(e->synth[i], name))
                        idx = i;
        if (idx == SYNTH_MAX) {
                /* Full: the oldest entry is reused; a guest still using it reaches
                 * the new name, which the policy allowed too. */
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                idx = e->synth_next;
                e->synth_next = (e->synth_next + 1) % SYNTH_MAX;
                free(e->synth[idx]);
                e->synth[idx] = copy;
        }
        ret->s_addr = htonl(SYNTH_BASE + (uint32_t)idx);
        return 0;
}

/* The name behind a synthetic address, or NULL. */
static const char *synth_name(const egress *e, const char *addr)
{
        struct in_addr a;
        if (inet_pton(AF_INET, addr, &a) != 1)
                return NULL;
        uint32_t v = ntohl(a.s_addr);
        if (v < SYNTH_BASE || v >= SYNTH_BASE + SYNTH_MAX)
                return NULL;
        return e->synth[v - SYNTH_BASE];
}

/* ---- connections ---- */

static void conn_free(conn *c)
{
        egress *e = c->e;
        if (c->gfd >= 0) {
                (void)smolvm_evloop_del(e->s->loop, c->gfd);
                safe_close(c->gfd);
        }
        if (c->tfd >= 0) {
                (void)smolvm_evloop_del(e->s->loop, c->tfd);
                safe_close(c->tfd);
        }
        if (c->rfd >= 0) {
                (void)smolvm_evloop_del(e->s->loop, c->rfd);
                safe_close(c->rfd);
        }
        LIST_REMOVE(e->conns, c);
        e->n_conns--;
        free(c);
}

/* A refusal or a failure reaches the guest's program as a reset, not as an
 * empty answer it could mistake for a server's. */
static void conn_reset(conn *c)
{
        if (c->e->s->mux)
                (void)smolvm_mux_reset(c->e->s->mux, c->local_port, c->peer_port);
        conn_free(c);
}

/* An allowed connection ended: log it with its byte counts. reason: NULL for
 * a clean end, else why it failed (the stream is reset). */
static void conn_end(conn *c, const char *reason)
{
        log_attempt(c->e, "connect", c->name, c->port, true, reason, c);
        if (reason)
                conn_reset(c);
        else
                conn_free(c);
}

static void conn_deny(conn *c, const char *kind, const char *reason)
{
        log_attempt(c->e, kind, c->name, c->port, false, reason, NULL);
        conn_reset(c);
}

static void on_guest(void *userdata, int fd, uint32_t events);
static void on_target(void *userdata, int fd, uint32_t events);

/* Ask the loop for mask on one side. A hung-up fd is reported whatever we ask
 * for (level-triggered), so while it has nothing to wait for it leaves the loop. */
static void conn_watch(conn *c, bool guest_side, uint32_t mask)
{
        int fd = guest_side ? c->gfd : c->tfd;
        bool *off = guest_side ? &c->g_off : &c->t_off;
        if (mask == 0 && (guest_side ? c->g_hup : c->t_hup)) {
                if (!*off)
                        (void)smolvm_evloop_del(c->e->s->loop, fd);
                *off = true;
        } else if (*off) {
                *off = smolvm_evloop_add(c->e->s->loop, fd, mask, guest_side ? on_guest : on_target, c) < 0;
        } else {
                (void)smolvm_evloop_mod(c->e->s->loop, fd, mask);
        }
}

static void conn_events(conn *c)
{
        uint32_t g = 0, t = 0;
        if (c->state == C_HDR) {
                g = EPOLLIN;
        } else if (c->state == C_CONNECTING) {
                t = EPOLLOUT;
        } else {
                if (!c->g_eof && c->g2t_len < CONN_BUF)
                        g |= EPOLLIN;
                if (c->t2g_len > 0)
                        g |= EPOLLOUT;
                if (!c->t_eof && c->t2g_len < CONN_BUF)
                        t |= EPOLLIN;
                if (c->g2t_len > 0)
                        t |= EPOLLOUT;
        }
        conn_watch(c, true, g);
        if (c->tfd >= 0)
                conn_watch(c, false, t);
}

/* Move bytes from -> buf -> to. Returns 0, or -1 when the connection is over. */
static int pump_dir(int from, int to, uint8_t *buf, size_t *len, bool *eof, bool *shut, uint64_t *count)
{
        if (!*eof && *len < CONN_BUF) {
                ssize_t n = read(from, buf + *len, CONN_BUF - *len);
                if (n > 0)
                        *len += (size_t)n;
                else if (n == 0)
                        *eof = true;
                else if (errno != EAGAIN && errno != EINTR)
                        return -1; /* a reset: not to be passed on as a clean EOF */
        }
        if (*len > 0) {
                ssize_t n = send(to, buf, *len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return -1;
                if (n > 0) {
                        memmove(buf, buf + n, *len - (size_t)n);
                        *len -= (size_t)n;
                        *count += (uint64_t)n;
                }
        }
        if (*eof && *len == 0 && !*shut) {
                (void)shutdown(to, SHUT_WR); /* half-close passes through */
                *shut = true;
        }
        return 0;
}

/* Move what can be moved. Returns false if the connection ended (c is freed). */
static bool conn_splice(conn *c)
{
        if (pump_dir(c->gfd, c->tfd, c->g2t, &c->g2t_len, &c->g_eof, &c->t_shut, &c->bytes_out) < 0 ||
            pump_dir(c->tfd, c->gfd, c->t2g, &c->t2g_len, &c->t_eof, &c->g_shut, &c->bytes_in) < 0) {
                conn_end(c, "reset");
                return false;
        }
        if (c->t_shut && c->g_shut) {
                conn_end(c, NULL);
                return false;
        }
        conn_events(c);
        return true;
}

static void on_target(void *userdata, int fd, uint32_t events)
{
        conn *c = userdata;
        if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err == EINPROGRESS)
                        return;
                if (err) {
                        char why[128];
                        snprintf(why, sizeof(why), "connect %s: %s", c->addr, strerror(err));
                        conn_end(c, why);
                        return;
                }
                c->state = C_SPLICE;
                c->deadline_ms = 0;
        }
        if (events & EPOLLERR) {
                conn_end(c, "reset by the server");
                return;
        }
        if (events & EPOLLHUP) {
                /* TCP hangs up once both directions are shut: after our
                 * shutdown that is the server's FIN, before it a reset. */
                if (!c->t_shut) {
                        conn_end(c, "reset by the server");
                        return;
                }
                c->t_hup = true;
        }
        (void)conn_splice(c);
}

static void target_set(conn *c, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Decide where an allowed (name, port) goes without a lookup. Returns NULL with
 * *ret filled (ss_family AF_UNSPEC: the host must look the name up), or a
 * reason for refusing it. */
static const char *pick_address(egress *e, conn *c, bool literal, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        const egress_pin *pin = egress_pin_find(&e->policy, c->name);
        memset(ret, 0, sizeof(*ret));
        if (pin) {
                memcpy(ret, &pin->addr, sizeof(*ret));
        } else if (!strcmp(c->name, "host.smolvm.internal")) {
                struct sockaddr_in *in = (struct sockaddr_in *)ret;
                in->sin_family = AF_INET;
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (literal) {
                struct sockaddr_in *in = (struct sockaddr_in *)ret;
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;
                if (inet_pton(AF_INET, c->name, &in->sin_addr) == 1)
                        in->sin_family = AF_INET;
                else if (inet_pton(AF_INET6, c->name, &in6->sin6_addr) == 1)
                        in6->sin6_family = AF_INET6;
                else
                        return "not an address";
                /* An address allowed by name is reachable whatever it is; one
                 * allowed only by open mode must be public. */
                if (!egress_explicit(&e->policy, c->name, c->port) && !egress_addr_public((struct sockaddr *)ret))
                        return "address is not public (allow it explicitly)";
        } else {
                return NULL; /* the host looks the name up: ss_family stays AF_UNSPEC */
        }
        target_set(c, ret, ret_len);
        return NULL;
}

/* Set the port of *ret (an address of c's target) and note the address in c. */
static void target_set(conn *c, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        if (ret->ss_family == AF_INET) {
                ((struct sockaddr_in *)ret)->sin_port = htons(c->port);
                inet_ntop(AF_INET, &((struct sockaddr_in *)ret)->sin_addr, c->addr, sizeof(c->addr));
                *ret_len = sizeof(struct sockaddr_in);
        } else {
                ((struct sockaddr_in6 *)ret)->sin6_port = htons(c->port);
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ret)->sin6_addr, c->addr, sizeof(c->addr));
                *ret_len = sizeof(struct sockaddr_in6);
        }
}

static void handle_resolve(conn *c, const char *name)
{
        egress *e = c->e;
        char reply[64];
        snprintf(c->name, sizeof(c->name), "%s", name);
        c->port = 0;
        struct in_addr a;
        bool allowed = egress_name_valid(name) && egress_allowed(&e->policy, name, 0) && synth_for(e, name, &a) == 0;
        if (allowed) {
                char s[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &a, s, sizeof(s));
                snprintf(reply, sizeof(reply), "A %s\n", s);
        } else {
                snprintf(reply, sizeof(reply), "NXDOMAIN\n");
        }
        (void)send(c->gfd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
        log_attempt(e, "dns", name, 0, allowed, allowed ? NULL : "not allowed (answered NXDOMAIN)", NULL);
        conn_free(c);
}

static void connect_to(conn *c, const struct sockaddr_storage *to, socklen_t to_len);

/* The host's answer for c->name: connect to its first public address. */
static void on_resolved(void *userdata, int fd, uint32_t events)
{
        conn *c = userdata;
        sup_resolve_result res;
        (void)events;
        int r = sup_resolve_read(fd, &res);
        if (r == -EAGAIN)
                return;
        (void)smolvm_evloop_del(c->e->s->loop, c->rfd);
        c->rfd = safe_close(c->rfd);
        if (r < 0 || res.status != 0) {
                conn_deny(c, "connect", r == 0 && (res.status == EAI_NONAME || res.status == EAI_NODATA)
                                                ? "host cannot resolve the name"
                                                : "host resolution failed");
                return;
        }
        struct sockaddr_storage to;
        socklen_t to_len = 0;
        unsigned i = 0;
        while (i < res.n && !egress_addr_public((struct sockaddr *)&res.addrs[i]))
                i++;
        if (i == res.n) {
                conn_deny(c, "connect",
                          "resolves only to loopback, private, link-local or host addresses (pin it with --add-host)");
                return;
        }
        to = res.addrs[i];
        target_set(c, &to, &to_len);
        connect_to(c, &to, to_len);
}

/* Start the host's lookup of c->name (C_RESOLVING). With every slot taken it
 * waits (rfd -1) and egress_step tries again; the lookup's deadline runs. */
static void resolve_begin(conn *c)
{
        int fd = sup_resolve_start(c->name);
        if (fd == -EAGAIN)
                return;
        if (fd < 0) {
                conn_deny(c, "connect", "host resolution failed");
                return;
        }
        c->rfd = fd;
        if (smolvm_evloop_add(c->e->s->loop, fd, EPOLLIN, on_resolved, c) < 0) {
                c->rfd = safe_close(c->rfd);
                conn_deny(c, "connect", "host resolution failed");
        }
}

static void handle_connect(conn *c, const char *addr, uint16_t port)
{
        egress *e = c->e;
        const char *name = synth_name(e, addr);
        bool literal = !name;
        snprintf(c->name, sizeof(c->name), "%s", name ? name : addr);
        c->port = port;
        if (!egress_allowed(&e->policy, c->name, port)) {
                conn_deny(c, "connect", literal ? "address not allowed (connect by an allowed name)" : "not allowed");
                return;
        }
        struct sockaddr_storage to;
        socklen_t to_len = 0;
        const char *why = pick_address(e, c, literal, &to, &to_len);
        if (why) {
                conn_deny(c, "connect", why);
                return;
        }
        if (to.ss_family == AF_UNSPEC) {
                c->state = C_RESOLVING;
                c->deadline_ms = now_ms() + RESOLVE_TIMEOUT_MS;
                resolve_begin(c);
                return;
        }
        connect_to(c, &to, to_len);
}

/* Connect to the target at to. */
static void connect_to(conn *c, const struct sockaddr_storage *to, socklen_t to_len)
{
        egress *e = c->e;
        c->tfd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->tfd < 0 || smolvm_evloop_add(e->s->loop, c->tfd, 0, on_target, c) < 0) {
                conn_end(c, "no socket");
                return;
        }
        if (connect(c->tfd, (const struct sockaddr *)to, to_len) < 0 && errno != EINPROGRESS) {
                char r[128];
                snprintf(r, sizeof(r), "connect %s: %s", c->addr, strerror(errno));
                conn_end(c, r);
                return;
        }
        c->state = C_CONNECTING;
        c->deadline_ms = now_ms() + CONNECT_TIMEOUT_MS;
        conn_events(c);
}

/* The guest's first line: "resolve NAME" or "connect ADDR PORT". */
static void on_guest(void *userdata, int fd, uint32_t events)
{
        conn *c = userdata;
        if (c->state == C_RESOLVING || c->state == C_CONNECTING) {
                /* The guest gave up before the target answered. */
                if (events & (EPOLLHUP | EPOLLERR))
                        conn_end(c, "closed by the guest");
                return;
        }
        if (c->state == C_SPLICE) {
                /* Our end hangs up once both directions are shut: after our
                 * shutdown that is the guest's EOF; before it, the guest's
                 * program is gone: pass on what it sent, then end. */
                if ((events & EPOLLERR) || ((events & EPOLLHUP) && !c->g_shut)) {
                        if (conn_splice(c))
                                conn_end(c, "closed by the guest");
                        return;
                }
                if (events & EPOLLHUP)
                        c->g_hup = true;
                (void)conn_splice(c);
                return;
        }
        /* Read no further than the header: what follows is the connection's. */
        size_t room = HDR_MAX - c->g2t_len;
        ssize_t n = recv(fd, c->g2t + c->g2t_len, room, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                conn_free(c);
                return;
        }
        uint8_t *nl = memchr(c->g2t + c->g2t_len, '\n', (size_t)n);
        size_t take = nl ? (size_t)(nl - (c->g2t + c->g2t_len)) + 1 : (size_t)n;
        (void)!read(fd, c->g2t + c->g2t_len, take);
        c->g2t_len += take;
        if (!nl) {
                if (c->g2t_len >= HDR_MAX) {
                        sup_log("egress: the guest sent a malformed stream header");
                        conn_free(c);
                }
                return;
        }
        char hdr[HDR_MAX + 1];
        memcpy(hdr, c->g2t, c->g2t_len - 1);
        hdr[c->g2t_len - 1] = '\0';
        c->g2t_len = 0;
        policy_refresh(c->e);
        char a[EGRESS_NAME_MAX + 1], b[16], extra;
        unsigned port;
        if (sscanf(hdr, "resolve %253s %c", a, &extra) == 1) {
                handle_resolve(c, a);
        } else if (sscanf(hdr, "connect %45s %5u %c", a, &port, &extra) == 2 && port > 0 && port <= 65535 &&
                   (inet_pton(AF_INET, a, b) == 1 || inet_pton(AF_INET6, a, (char[16]){ 0 }) == 1)) {
                handle_connect(c, a, (uint16_t)port);
        } else {
                sup_log("egress: the guest sent a malformed stream header");
                conn_free(c);
        }
}

/* ---- the duty ---- */

static int egress_accept(void *self, uint32_t local_port, uint32_t peer_port)
{
        egress *e = self;
        (void)peer_port;
        if (local_port != SMOLVM_EGRESS_PORT)
                return -ECONNREFUSED;
        if (e->n_conns >= CONN_MAX)
                return -EMFILE; /* the guest gets RST */
        conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
                int r = negative_errno();
                free(c);
                return r;
        }
        c->e = e;
        c->local_port = local_port;
        c->peer_port = peer_port;
        c->gfd = sv[1];
        c->tfd = -1;
        c->rfd = -1;
        c->deadline_ms = now_ms() + HDR_TIMEOUT_MS;
        int r = smolvm_evloop_add(e->s->loop, c->gfd, EPOLLIN, on_guest, c);
        if (r < 0) {
                safe_close(sv[0]);
                safe_close(sv[1]);
                free(c);
                return r;
        }
        LIST_PREPEND(e->conns, c);
        e->n_conns++;
        return sv[0];
}

static int egress_create(sup *s, void **ret)
{
        *ret = NULL;
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_NET_POLICY);
        if (!path)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return 0; /* no network for this VM */
        egress *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->s = s;
        e->policy_path = TAKE_PTR(path);
        e->log_fd = -1;
        char err[512];
        int r = egress_policy_load(e->policy_path, &e->policy, err, sizeof(err));
        if (r < 0 || stat(e->policy_path, &e->policy_st) < 0) {
                sup_fail(s, false, NULL, "egress: %s", r < 0 ? err : strerror(errno));
                free(e->policy_path);
                free(e);
                return r < 0 ? r : -EIO;
        }
        log_open(e);
        *ret = e;
        return 0;
}

static int egress_prepare(void *self, sup_vm_extra *x)
{
        (void)self;
        return sup_vm_extra_arg(x, "smolvm.net=1");
}

static int egress_step(void *self, uint64_t now)
{
        egress *e = self;
        for (conn *c = e->conns, *next; c; c = next) {
                next = c->next;
                if (c->deadline_ms && now >= c->deadline_ms) {
                        if (c->state == C_HDR)
                                conn_free(c);
                        else if (c->state == C_RESOLVING)
                                conn_deny(c, "connect", "host resolution timed out");
                        else
                                conn_end(c, "connect timed out");
                } else if (c->state == C_RESOLVING && c->rfd < 0) {
                        resolve_begin(c);
                }
        }
        return 0;
}

static uint64_t egress_deadline(const void *self)
{
        const egress *e = self;
        uint64_t until = UINT64_MAX;
        for (const conn *c = e->conns; c; c = c->next) {
                if (c->deadline_ms && c->deadline_ms < until)
                        until = c->deadline_ms;
                if (c->state == C_RESOLVING && c->rfd < 0 && now_ms() + RESOLVE_RETRY_MS < until)
                        until = now_ms() + RESOLVE_RETRY_MS;
        }
        return until;
}

static void egress_detach(void *self)
{
        egress *e = self;
        while (e->conns) {
                if (e->conns->state == C_HDR)
                        conn_free(e->conns);
                else
                        conn_end(e->conns, "the VM stopped");
        }
}

static void egress_destroy(void *self)
{
        egress *e = self;
        if (!e)
                return;
        egress_detach(e);
        egress_policy_done(&e->policy);
        for (size_t i = 0; i < SYNTH_MAX; i++)
                free(e->synth[i]);
        safe_close(e->log_fd);
        free(e->policy_path);
        free(e);
}

const sup_duty_ops sup_egress_duty = {
        .name = "egress",
        .create = egress_create,
        .prepare = egress_prepare,
        .step = egress_step,
        .deadline = egress_deadline,
        .accept = egress_accept,
        .detach = egress_detach,
        .destroy = egress_destroy,
};
