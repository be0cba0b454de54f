/* SPDX-License-Identifier: Apache-2.0 */
/* One stream of the channel multiplexer: creation, credit accounting and the
 * relay between its local fd and the channel. The channel side (output queue,
 * packet parsing and dispatch) is mux.c; the rules both follow are described
 * at the top of mux.c. */
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "list.h"
#include "mux_i.h"
#include "util.h"

/* ---- small helpers (of both halves of the mux) ---- */

bool mux_fd_is_socket(int fd)
{
        struct stat st;
        return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* writev that never raises SIGPIPE on sockets. */
ssize_t mux_writev_nosig(int fd, bool is_sock, struct iovec *iov, int n)
{
        if (is_sock) {
                struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
                return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        return writev(fd, iov, n);
}

static bool is_again(int e)
{
        return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static uint32_t stream_credit(const stream *s)
{
        /* A hostile peer may report fwd_cnt ahead of what we sent: the wrapped
         * difference is then huge and the credit is simply 0. */
        uint32_t in_flight = s->tx_cnt - s->peer_fwd_cnt;
        return in_flight >= s->peer_buf_alloc ? 0 : s->peer_buf_alloc - in_flight;
}

static size_t hash_idx(uint32_t local_port, uint32_t peer_port)
{
        uint32_t h = local_port * 0x9E3779B1u ^ (peer_port * 0x85EBCA77u + (peer_port >> 16));
        return (h ^ (h >> 15)) & (MUX_HASH_SIZE - 1);
}

stream *stream_lookup(const smolvm_mux *mux, uint32_t local_port, uint32_t peer_port)
{
        for (stream *s = mux->hash[hash_idx(local_port, peer_port)]; s; s = s->hnext)
                if (s->local_port == local_port && s->peer_port == peer_port)
                        return s;
        return NULL;
}

/* ---- streams ---- */

stream *stream_new(smolvm_mux *mux, uint32_t local_port, uint32_t peer_port, int fd,
                   enum stream_state state)
{
        stream *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->mux = mux;
        s->local_port = local_port;
        s->peer_port = peer_port;
        s->fd = fd;
        s->state = state;
        s->rx_window = mux->rx_window;
        size_t i = hash_idx(local_port, peer_port);
        s->hnext = mux->hash[i];
        mux->hash[i] = s;
        LIST_PREPEND(mux->streams, s);
        mux->n_streams++;
        return s;
}

/* Remove s for good: unhook, drop buffers, tell a pending connect (err), close
 * the fd. Freed at the outermost mux_leave(). Sends nothing. */
void stream_kill(stream *s, int err)
{
        smolvm_mux *mux = s->mux;
        if (s->dead)
                return;
        s->dead = true;

        stream **pp = &mux->hash[hash_idx(s->local_port, s->peer_port)];
        while (*pp && *pp != s)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = s->hnext;
        LIST_REMOVE(mux->streams, s);
        mux->n_streams--;

        if (mux->pend_stream == s) {
                mux->pend_stream = NULL;
                mux->pend_n = 0;
                mux->pend_bytes = 0;
        }
        if (s->watched)
                (void)smolvm_evloop_del(mux->loop, s->fd);
        s->watched = false;
        mux->rx_buffered -= s->rx_len;
        free(s->rx);
        free(s->first);
        s->first = NULL;
        s->rx = NULL;
        s->rx_len = 0;

        if (s->state == ST_CONNECTING && s->cb) {
                smolvm_mux_connect_cb cb = s->cb;
                s->cb = NULL;
                cb(s->cb_userdata, err, 0);
        }
        /* A reset shows as one on a TCP local end (the guest's egress proxy
         * relays a program's connection): an abortive close sends RST, not
         * FIN. Unix sockets ignore it. A clean end (err 0) closes as usual. */
        if (err < 0 && s->fd >= 0 && s->fd_is_sock) {
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        s->fd = safe_close(s->fd);

        s->next = mux->dead_streams;
        mux->dead_streams = s;
}

void stream_reset(stream *s, int err)
{
        stream_queue_ctl(s, SMOLVM_OP_RST, 0);
        stream_kill(s, err);
}

/* Both directions are done: we have sent SHUTDOWN(SEND) (or the peer said it
 * reads no more) and the peer has sent SHUTDOWN(SEND), flushed to the local fd
 * (or the local end is gone). We close without an RST: the peer reaches the
 * same state on its own, an extra RST would only race with a reuse of the port
 * pair, and any late packet for the pair (a CREDIT_UPDATE in flight) is dropped
 * without reply. */
void stream_maybe_finish(stream *s)
{
        if (!s->dead && s->state == ST_ESTABLISHED && s->rd_done && s->wr_done && s->peer_shut_send)
                stream_kill(s, 0);
}

void stream_shut_wr(stream *s)
{
        if (s->wr_done)
                return;
        s->wr_done = true;
        /* ENOTCONN when the local side is already gone: nothing to tell it. */
        if (s->fd_is_sock)
                (void)shutdown(s->fd, SHUT_WR);
}

/* Queue SHUTDOWN with flags added to those already sent (the flags of a
 * SHUTDOWN are cumulative, as in virtio-vsock); nothing if none is new. */
void stream_shut_send(stream *s, uint32_t flags)
{
        if (!(flags & ~s->shut_sent))
                return;
        s->shut_sent |= flags;
        stream_queue_ctl(s, SMOLVM_OP_SHUTDOWN, s->shut_sent);
}

/* Our local end is gone and we have relayed all it wrote: SHUTDOWN(RCV|SEND),
 * a close, not a half-close. The peer answers SHUTDOWN(SEND) (handle_stream_packet)
 * and we free the stream then; a peer that does not answer gets an RST after
 * MUX_LINGER_MS. Until then its RW is dropped (wr_done). */
static void stream_send_gone(stream *s)
{
        stream_shut_send(s, SMOLVM_SHUTDOWN_RCV | SMOLVM_SHUTDOWN_SEND);
        if (!s->peer_shut_send) {
                s->deadline_ms = now_ms() + MUX_LINGER_MS;
                mux_timer_arm(s->mux);
        }
        stream_maybe_finish(s);
}

/* The local end went away while we still had to write to it: it closed both
 * directions (EPOLLHUP/EPOLLERR on a socket we had not shut for writing) or a
 * write to it failed (EPIPE, ECONNRESET). On a Unix socket this is what tells
 * a dead client from one that did shutdown(SHUT_WR), and the peer must learn
 * it: an exec's command is killed when its client is gone (docs/protocol.md,
 * "The channel"). What we hold for the local end is dropped. SHUTDOWN(RCV)
 * goes out at once, so the peer's local end cannot write in vain even while
 * what ours wrote before it went still waits for credit; that data is still
 * read and relayed (stream_read_local), and its EOF becomes SHUTDOWN(RCV|SEND)
 * instead of SHUTDOWN(SEND). */
static void stream_local_gone(stream *s)
{
        if (s->dead || s->local_gone || s->state != ST_ESTABLISHED)
                return;
        s->local_gone = true;
        s->wr_done = true;
        s->mux->rx_buffered -= s->rx_len;
        free(s->rx);
        s->rx = NULL;
        s->rx_head = s->rx_len = 0;
        if (s->rd_done)
                stream_send_gone(s);
        else
                stream_shut_send(s, SMOLVM_SHUTDOWN_RCV);
}

/* A write to the local fd failed with err (not EAGAIN). */
static void stream_write_failed(stream *s, int err)
{
        if (s->fd_is_sock && (err == EPIPE || err == ECONNRESET))
                stream_local_gone(s);
        else
                stream_reset(s, -ECONNRESET);
}

/* A socket we have not shut for writing is watched even while we neither read
 * nor write it: EPOLLHUP/EPOLLERR there mean its peer is gone. */
static bool stream_watch_gone(const stream *s)
{
        return s->fd_is_sock && s->state == ST_ESTABLISHED && !s->wr_done;
}

static bool stream_can_read(const stream *s)
{
        return !s->dead && s->state == ST_ESTABLISHED && !s->rd_done && !s->mux->local_blocked &&
               !s->mux->broken && stream_credit(s) > 0;
}

void stream_update(stream *s)
{
        if (s->dead || !s->watched)
                return;
        uint32_t ev = 0;
        if (stream_can_read(s))
                ev |= EPOLLIN;
        if (s->rx_len > 0 && !s->wr_done)
                ev |= EPOLLOUT;
        if (ev == 0 && stream_watch_gone(s))
                ev = EPOLLHUP; /* in the set: only EPOLLHUP/EPOLLERR are reported */
        if (ev == s->ev_mask)
                return;
        int r = smolvm_evloop_mod(s->mux->loop, s->fd, ev);
        if (r < 0) {
                stream_reset(s, r);
                return;
        }
        s->ev_mask = ev;
}

/* The local fd took n bytes: advance fwd_cnt, re-grant credit when a quarter
 * of the buffer has been consumed since the last advertisement (a sender that
 * waits for half the window idles for a round trip whenever the receiver
 * drains faster than an update travels; the channel's round trip is
 * milliseconds under TCG). Once the peer has shut
 * its sending side it needs no credit (and a late update could hit a stream the
 * peer has already closed). */
static void stream_consumed(stream *s, size_t n)
{
        s->fwd_cnt += (uint32_t)n;
        if (!s->peer_shut_send && s->fwd_cnt - s->adv_fwd_cnt >= s->rx_window / 4)
                stream_queue_ctl(s, SMOLVM_OP_CREDIT_UPDATE, 0);
}

static ssize_t stream_write(stream *s, struct iovec *iov, int n)
{
        for (;;) {
                ssize_t w = mux_writev_nosig(s->fd, s->fd_is_sock, iov, n);
                if (w >= 0 || errno != EINTR)
                        return w;
        }
}

/* Write the ring to the local fd. */
static void stream_flush_rx(stream *s)
{
        const size_t cap = s->rx_window;
        while (s->rx_len > 0 && !s->wr_done) {
                struct iovec iov[2];
                int n = 1;
                size_t first = MIN(s->rx_len, cap - s->rx_head);
                iov[0] = (struct iovec){ s->rx + s->rx_head, first };
                if (first < s->rx_len) {
                        iov[1] = (struct iovec){ s->rx, s->rx_len - first };
                        n = 2;
                }
                ssize_t w = stream_write(s, iov, n);
                if (w < 0) {
                        if (is_again(errno))
                                break;
                        stream_write_failed(s, errno);
                        return;
                }
                s->rx_head = (s->rx_head + (size_t)w) % cap;
                s->rx_len -= (size_t)w;
                s->mux->rx_buffered -= (size_t)w;
                stream_consumed(s, (size_t)w);
        }
        if (s->rx_len == 0) {
                free(s->rx);
                s->rx = NULL;
                s->rx_head = 0;
                if (s->peer_shut_send)
                        stream_shut_wr(s);
                stream_maybe_finish(s);
        }
}

/* Append len bytes to the ring; the credit check keeps them within it.
 * Returns false when the stream had to be reset. */
static bool stream_ring_append(stream *s, const uint8_t *data, size_t len)
{
        const size_t cap = s->rx_window;
        if (!s->rx) {
                s->rx = malloc(cap);
                if (!s->rx) {
                        stream_reset(s, -ENOMEM);
                        return false;
                }
                s->rx_head = 0;
        }
        size_t tail = (s->rx_head + s->rx_len) % cap;
        size_t first = MIN(len, cap - tail);
        memcpy(s->rx + tail, data, first);
        memcpy(s->rx, data + first, len - first);
        s->rx_len += len;
        s->mux->rx_buffered += len;
        return true;
}

/* RW payloads from the peer, in order (credit already checked): written to the
 * local fd with one writev while nothing waits in the ring, what it does not
 * take is kept in the ring. iov is consumed. */
static void stream_deliver_iov(stream *s, struct iovec *iov, int n)
{
        if (s->rx_len == 0 && !s->wr_done) {
                ssize_t w = stream_write(s, iov, n);
                if (w < 0) {
                        if (!is_again(errno)) {
                                stream_write_failed(s, errno);
                                return;
                        }
                        w = 0;
                }
                stream_consumed(s, (size_t)w);
                for (size_t left = (size_t)w; left > 0 && n > 0;) {
                        size_t take = MIN(left, iov->iov_len);
                        iov->iov_base = (uint8_t *)iov->iov_base + take;
                        iov->iov_len -= take;
                        left -= take;
                        if (iov->iov_len == 0) {
                                iov++;
                                n--;
                        }
                }
        }
        if (s->wr_done) /* local side gone: data is discarded */
                return;
        for (; n > 0; iov++, n--)
                if (iov->iov_len > 0 && !stream_ring_append(s, iov->iov_base, iov->iov_len))
                        return;
}

static void stream_deliver(stream *s, const uint8_t *data, size_t len)
{
        struct iovec iov = { (void *)data, len };
        stream_deliver_iov(s, &iov, 1);
}

/* Write the pending RW payloads (they point into the mux's inbuf: mux.c calls
 * this before any other packet is handled and before inbuf moves). */
void stream_pend_flush(smolvm_mux *mux)
{
        stream *s = mux->pend_stream;
        if (!s)
                return;
        struct iovec iov[MUX_IOV_MAX];
        int n = mux->pend_n;
        memcpy(iov, mux->pend_iov, (size_t)n * sizeof(iov[0]));
        mux->pend_stream = NULL;
        mux->pend_n = 0;
        mux->pend_bytes = 0;
        stream_deliver_iov(s, iov, n);
        if (!s->dead)
                stream_update(s);
}

/* RW payload for s (credit checked): joins the pending writev when it can
 * (nothing of s waits in its ring, no other stream pending), else goes the
 * usual way. Order per stream is kept: s's pending bytes are always written
 * before its ring is touched. */
void stream_deliver_rw(stream *s, const uint8_t *payload, uint32_t len)
{
        smolvm_mux *mux = s->mux;
        if (len == 0)
                return;
        if (mux->pend_stream && (mux->pend_stream != s || mux->pend_n == MUX_IOV_MAX)) {
                stream_pend_flush(mux);
                if (s->dead)
                        return;
        }
        if (s->rx_len > 0 || s->wr_done) {
                stream_deliver(s, payload, len);
                return;
        }
        mux->pend_stream = s;
        mux->pend_iov[mux->pend_n++] = (struct iovec){ (void *)payload, len };
        mux->pend_bytes += len;
        if (mux->pend_bytes >= s->rx_window / 4)
                stream_pend_flush(mux);
}

/* Read the local fd into one RW packet. */
static void stream_read_local(stream *s)
{
        smolvm_mux *mux = s->mux;
        if (!stream_can_read(s))
                return;
        uint32_t want = MIN(stream_credit(s), MUX_READ_CHUNK);
        pkt *p = mux_pkt_new(want);
        if (!p)
                return; /* retried on the next wakeup */
        ssize_t r;
        do
                r = read(s->fd, p->data + SMOLVM_PKT_HDR_SIZE, want);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
                int e = errno;
                free(p);
                p = NULL;
                if (e == EAGAIN || e == EWOULDBLOCK)
                        return;
                if (!s->fd_is_sock || e != ECONNRESET) {
                        stream_reset(s, -e);
                        return;
                }
                /* A Unix socket whose peer closed with our data unread: what it
                 * wrote came before this error, so this is its EOF too. */
                stream_local_gone(s);
                r = 0;
        }
        if (r == 0) {
                free(p);
                s->rd_done = true;
                if (s->local_gone)
                        stream_send_gone(s);
                else
                        stream_shut_send(s, SMOLVM_SHUTDOWN_SEND);
                stream_maybe_finish(s);
                return;
        }
        if ((uint32_t)r + 4096u < want) {
                pkt *q = realloc(p, sizeof(pkt) + SMOLVM_PKT_HDR_SIZE + (size_t)r);
                if (q)
                        p = q;
        }
        p->size = SMOLVM_PKT_HDR_SIZE + (uint32_t)r;
        stream_hdr(s, SMOLVM_OP_RW, 0, (uint32_t)r, p->data);
        s->tx_cnt += (uint32_t)r;
        mux->stats.tx_bytes += (uint64_t)r;
        mux_outq_push(mux, p);
}

static void stream_io(void *userdata, int fd, uint32_t events)
{
        stream *s = userdata;
        smolvm_mux *mux = s->mux;
        mux_enter(mux);
        /* Both directions closed, and not by our SHUT_WR: not a half-close. */
        if ((events & (EPOLLHUP | EPOLLERR)) && stream_watch_gone(s))
                stream_local_gone(s);
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                if (s->rx_len > 0)
                        stream_flush_rx(s);
        }
        if (!s->dead && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                stream_read_local(s);
        if (!s->dead)
                stream_update(s);
        mux_leave(mux);
}

/* Start relaying s: make the fd non-blocking and watch it. */
void stream_start(stream *s)
{
        int r = fd_set_nonblock(s->fd, true);
        if (r >= 0) {
                s->fd_is_sock = mux_fd_is_socket(s->fd);
                r = smolvm_evloop_add(s->mux->loop, s->fd, 0, stream_io, s);
        }
        if (r < 0) {
                stream_reset(s, r);
                return;
        }
        s->watched = true;
        s->ev_mask = 0;
        stream_update(s);
}
