/* SPDX-License-Identifier: Apache-2.0 */
/* PID 1 relays the FUSE-over-vsock mounts itself (docs/internals.md, "Mounts
 * over FUSE over vsock"). A fuse_mount handler mounts /dev/fuse, answers the
 * host, and hands the /dev/fuse fd and its stream to PID 1 over a unix socket;
 * PID 1's event loop then moves requests and replies with fuse_stream.h's
 * event-driven relay. A request so crosses no guest process of its own: under
 * TCG each process hop cost ~120 us each way, a third of a round trip
 * (docs/benchmarks.md, "FUSE over vsock").
 *
 * Across a snapshot restore (fuseops.c's reattach, docs/protocol.md): when a
 * mount's stream ends because the channel was reset, /dev/fuse stays open (the
 * kernel's connection lives on, its requests wait), and the host's new server
 * comes as a fuse_mount "reattach" whose handler hands its stream here; the
 * requests the old server never answered are failed with EIO first. With no
 * server back within AGENT_FUSE_REATTACH_WAIT_MS the mount is aborted.
 *
 * The socket is root's only (SO_PEERCRED); messages are bounded, fds counted,
 * paths NUL-terminated; mounts and connections are bounded. PID 1 never
 * blocks here: every fd is non-blocking, and a handler that connects but does
 * not send is dropped at the next connection past the bound. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"
#include "fuse_stream.h"
#include "init.h"
#include "util.h"

#define RELAY_SOCK_NAME "smolvm-init-fuse-relay"
#define MAX_MOUNTS 64
#define MAX_CONNS 8
#define HANDOFF_TIMEOUT_MS 5000

typedef struct relay_msg {
        uint32_t kind; /* agent_fuse_handoff_kind */
        char path[AGENT_MAX_PATH + 1];
} relay_msg;

typedef struct relay_mount {
        char *path;        /* NULL: a free slot */
        int dev_fd, stream_fd;
        uint32_t dev_mask, stream_mask;
        smolvm_fuse_relay_ev *rl;
        smolvm_fuse_pending *pending;
        uint32_t gen;      /* the channel's generation when the stream came */
        uint64_t parked_until_ms; /* 0: relaying */
} relay_mount;

static struct {
        smolvm_evloop *loop;
        int listen_fd;
        relay_mount mounts[MAX_MOUNTS];
        int conns[MAX_CONNS];
} R = { .listen_fd = -1 };

static void relay_addr(struct sockaddr_un *sa, socklen_t *len)
{
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        memcpy(sa->sun_path + 1, RELAY_SOCK_NAME, strlen(RELAY_SOCK_NAME));
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(RELAY_SOCK_NAME));
}

/* ---- PID 1 ---- */

static void mount_free(relay_mount *m)
{
        if (m->stream_fd >= 0) {
                (void)smolvm_evloop_del(R.loop, m->stream_fd);
                m->stream_fd = safe_close(m->stream_fd);
        }
        /* Closing the last /dev/fuse fd aborts the connection: pending and later
         * accesses fail with ENOTCONN instead of hanging (fuseops.c says why the
         * mount is left in place). */
        if (m->dev_fd >= 0) {
                (void)smolvm_evloop_del(R.loop, m->dev_fd);
                m->dev_fd = safe_close(m->dev_fd);
        }
        smolvm_fuse_relay_ev_free(m->rl);
        free(m->pending);
        free(m->path);
        *m = (relay_mount){ .dev_fd = -1, .stream_fd = -1 };
}

static void set_mask(int fd, uint32_t *cur, uint32_t want)
{
        if (*cur != want && smolvm_evloop_mod(R.loop, fd, want) == 0)
                *cur = want;
}

static void update_watches(relay_mount *m)
{
        uint32_t dev_ev, stream_ev;
        smolvm_fuse_relay_ev_events(m->rl, &dev_ev, &stream_ev);
        /* EPOLLPRI, which /dev/fuse never raises, keeps the fd in the set so
         * that EPOLLERR (the mount went away) is still seen. */
        set_mask(m->dev_fd, &m->dev_mask, dev_ev ? dev_ev : EPOLLPRI);
        set_mask(m->stream_fd, &m->stream_mask, stream_ev);
}

static void park(relay_mount *m)
{
        (void)smolvm_evloop_del(R.loop, m->stream_fd);
        m->stream_fd = safe_close(m->stream_fd);
        set_mask(m->dev_fd, &m->dev_mask, EPOLLPRI);
        m->parked_until_ms = now_ms() + AGENT_FUSE_REATTACH_WAIT_MS;
}

/* The relay ended with r (smolvm_fuse_relay_ev_step). */
static void relay_ended(relay_mount *m, int r)
{
        bool dev_gone = smolvm_fuse_relay_ev_dev_gone(m->rl);
        /* The generation moves before the mux resets the streams (its
         * "resetting" op), so it has moved by the time we see our EOF. */
        if (!dev_gone && (r == 0 || r == -ECONNRESET || r == -EPIPE) && agent_channel_generation() != m->gen) {
                park(m);
                return;
        }
        if (r < 0 && r != -ECONNRESET && r != -EPIPE)
                init_log("fuse_mount %s: relay: %s", m->path, strerror(-r));
        mount_free(m);
}

static void on_mount_fd(void *userdata, int fd, uint32_t events)
{
        relay_mount *m = userdata;
        if (m->parked_until_ms) {
                if (fd == m->dev_fd && (events & (EPOLLERR | EPOLLHUP))) {
                        init_log("fuse_mount %s: the mount went away while waiting for its server", m->path);
                        mount_free(m);
                }
                return;
        }
        int r = fd == m->dev_fd ? smolvm_fuse_relay_ev_step(m->rl, events, 0)
                                : smolvm_fuse_relay_ev_step(m->rl, 0, events);
        if (r > 0)
                update_watches(m);
        else
                relay_ended(m, r);
}

static relay_mount *find_waiting(const char *path)
{
        uint32_t gen = agent_channel_generation();
        for (size_t i = 0; i < MAX_MOUNTS; i++) {
                relay_mount *m = &R.mounts[i];
                /* A stream from before the last channel reset is as good as
                 * ended, even if its EOF is still in the loop's queue. */
                if (m->path && strcmp(m->path, path) == 0 && (m->parked_until_ms || m->gen != gen))
                        return m;
        }
        return NULL;
}

static int adopt(const char *path, int dev_fd, int stream_fd)
{
        relay_mount *m = NULL;
        for (size_t i = 0; i < MAX_MOUNTS && !m; i++)
                if (!R.mounts[i].path)
                        m = &R.mounts[i];
        if (!m)
                return -EMFILE;
        *m = (relay_mount){ .dev_fd = -1, .stream_fd = -1 };
        m->path = strdup(path);
        m->pending = calloc(1, sizeof(*m->pending));
        int r = m->path && m->pending ? 0 : -ENOMEM;
        if (r == 0)
                r = smolvm_fuse_relay_ev_new(dev_fd, stream_fd, m->pending, &m->rl);
        if (r < 0) {
                mount_free(m);
                return r;
        }
        m->dev_fd = dev_fd;
        m->stream_fd = stream_fd;
        m->gen = agent_channel_generation();
        smolvm_fuse_relay_ev_events(m->rl, &m->dev_mask, &m->stream_mask);
        r = smolvm_evloop_add(R.loop, dev_fd, m->dev_mask, on_mount_fd, m);
        if (r == 0) {
                r = smolvm_evloop_add(R.loop, stream_fd, m->stream_mask, on_mount_fd, m);
                if (r < 0)
                        (void)smolvm_evloop_del(R.loop, dev_fd);
        }
        if (r < 0) {
                /* The fds stay the caller's: it falls back to its own relay. */
                m->dev_fd = m->stream_fd = -1;
                mount_free(m);
        }
        return r;
}

static int reattach(const char *path, int stream_fd)
{
        relay_mount *m = find_waiting(path);
        if (!m)
                return -ENOENT;
        if (!m->parked_until_ms)
                park(m);
        int r = smolvm_fuse_relay_ev_set_stream(m->rl, stream_fd);
        if (r < 0)
                return r;
        r = smolvm_evloop_add(R.loop, stream_fd, 0, on_mount_fd, m);
        if (r < 0)
                return r;
        m->stream_fd = stream_fd;
        m->stream_mask = 0;
        m->parked_until_ms = 0;
        m->gen = agent_channel_generation();
        /* The requests the old server never answered: the kernel must not wait
         * for ever (docs/internals.md). */
        unsigned failed = smolvm_fuse_pending_fail(m->pending, m->dev_fd, -EIO);
        update_watches(m);
        init_log("fuse_mount %s: reattached to a new server%s", path,
                 failed ? " (requests in flight at the snapshot failed with EIO)" : "");
        return 0;
}

/* One message from a handler: act on it, answer, close the connection. */
static void on_conn(void *userdata, int fd, uint32_t events)
{
        int *slot = userdata;
        _cleanup_free_ relay_msg *msg = malloc(sizeof(*msg));
        int fds[2] = { -1, -1 };
        size_t n_fds = 0;
        int32_t answer = -ENOMEM;

        if (msg) {
                /* At most 2 fds (ADOPT's); more, or a truncated message, and
                 * every fd is closed (-EBADMSG, -EMSGSIZE): answered -EPROTO. */
                ssize_t n = fdpass_recv(fd, msg, sizeof(*msg), fds, 2, &n_fds, MSG_DONTWAIT);
                if (n == -EAGAIN)
                        return; /* not yet: wait for it */
                answer = -EPROTO;
                if (n >= (ssize_t)sizeof(msg->kind) &&
                    memchr(msg->path, '\0', (size_t)n - offsetof(relay_msg, path)) && msg->path[0] == '/') {
                        if (msg->kind == AGENT_FUSE_ADOPT && n_fds == 2)
                                answer = adopt(msg->path, fds[0], fds[1]);
                        else if (msg->kind == AGENT_FUSE_REATTACH && n_fds == 1)
                                answer = reattach(msg->path, fds[0]);
                        else if (msg->kind == AGENT_FUSE_WAITING && n_fds == 0)
                                answer = find_waiting(msg->path) ? 0 : -ENOENT;
                        if (answer == 0)
                                n_fds = 0; /* taken */
                }
        }
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        (void)send(fd, &answer, sizeof(answer), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)smolvm_evloop_del(R.loop, fd);
        *slot = safe_close(fd);
}

static void on_listen(void *userdata, int fd, uint32_t events)
{
        for (int i = 0; i < MAX_CONNS; i++) {
                int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0)
                        return;
                struct ucred cred;
                socklen_t cl = sizeof(cred);
                if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0) {
                        safe_close(c);
                        continue;
                }
                int *slot = NULL;
                for (size_t k = 0; k < MAX_CONNS && !slot; k++)
                        if (R.conns[k] < 0)
                                slot = &R.conns[k];
                if (!slot) {
                        /* Full of handlers that never sent: drop the oldest. */
                        slot = &R.conns[0];
                        (void)smolvm_evloop_del(R.loop, *slot);
                        safe_close(*slot);
                }
                *slot = c;
                if (smolvm_evloop_add(R.loop, c, EPOLLIN, on_conn, slot) < 0)
                        *slot = safe_close(c);
        }
}

int agent_fuse_relays_start(smolvm_evloop *loop)
{
        R.loop = loop;
        for (size_t i = 0; i < MAX_MOUNTS; i++)
                R.mounts[i] = (relay_mount){ .dev_fd = -1, .stream_fd = -1 };
        for (size_t i = 0; i < MAX_CONNS; i++)
                R.conns[i] = -1;
        struct sockaddr_un sa;
        socklen_t len;
        relay_addr(&sa, &len);
        _cleanup_close_ int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, len) < 0 || listen(s, MAX_CONNS) < 0)
                return negative_errno();
        int r = smolvm_evloop_add(loop, s, EPOLLIN, on_listen, NULL);
        if (r < 0)
                return r;
        R.listen_fd = TAKE_FD(s);
        return 0;
}

int agent_fuse_relays_tick(void)
{
        uint64_t now = now_ms(), next = 0;
        for (size_t i = 0; i < MAX_MOUNTS; i++) {
                relay_mount *m = &R.mounts[i];
                if (!m->path || !m->parked_until_ms)
                        continue;
                if (now >= m->parked_until_ms) {
                        init_log("fuse_mount %s: no server came back within %d s after the channel reset: "
                                 "aborting the mount", m->path, AGENT_FUSE_REATTACH_WAIT_MS / 1000);
                        mount_free(m);
                } else if (!next || m->parked_until_ms < next) {
                        next = m->parked_until_ms;
                }
        }
        return next ? (int)(next - now) : -1;
}

/* ---- a handler ---- */

int agent_fuse_handoff(agent_fuse_handoff_kind kind, const char *path, int dev_fd, int stream_fd)
{
        struct sockaddr_un sa;
        socklen_t len;
        relay_addr(&sa, &len);
        size_t plen = strlen(path);
        if (plen > AGENT_MAX_PATH)
                return -ENAMETOOLONG;
        _cleanup_free_ relay_msg *msg = calloc(1, sizeof(*msg));
        if (!msg)
                return -ENOMEM;
        msg->kind = kind;
        memcpy(msg->path, path, plen + 1);
        _cleanup_close_ int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, len) < 0)
                return negative_errno();
        int fds[2] = { dev_fd, stream_fd };
        size_t n_fds = kind == AGENT_FUSE_ADOPT ? 2 : kind == AGENT_FUSE_REATTACH ? 1 : 0;
        const int *send_fds = kind == AGENT_FUSE_ADOPT ? fds : fds + 1;
        /* A seqpacket socket takes the whole record or nothing. */
        ssize_t sent = fdpass_send(s, msg, offsetof(relay_msg, path) + plen + 1, send_fds, n_fds, 0);
        if (sent < 0)
                return (int)sent;
        int r = fd_wait(s, POLLIN, now_ms() + HANDOFF_TIMEOUT_MS, -1);
        if (r < 0)
                return r;
        int32_t answer;
        ssize_t n = recv(s, &answer, sizeof(answer), 0);
        if (n < 0)
                return negative_errno();
        if (n != (ssize_t)sizeof(answer) || answer > 0)
                return -EPROTO;
        return answer;
}
