/* SPDX-License-Identifier: Apache-2.0 */
/* The channel multiplexer. See mux.h for the contract (the channel's I/O is
 * in mux_chan.c); the protocol rules are the virtio 1.2 "Socket Device" ones
 * (docs/protocol.md).
 *
 * Data paths:
 *   channel -> stream: the channel is read until MUX_READ_BATCH bytes are
 *     buffered or it is drained (a virtio-serial port gives 4 KiB per read),
 *     then the packets are parsed in place; consecutive RW payloads of one
 *     stream are written straight to its local fd with one writev when its
 *     buffer is empty (under TCG every write costs the guest a wake-up and a
 *     context switch of the reader), otherwise copied into the stream's ring
 *     (<= its receive window, enforced by the credit check). fwd_cnt
 *     advances only when the local fd takes bytes.
 *   stream -> channel: a local fd is read (<= 64 KiB, <= peer credit) into one
 *     packet allocation (header + payload) appended to the output queue, which
 *     is flushed with writev when a callback returns or on EPOLLOUT.
 *
 * Bounds (the peer is hostile):
 *   - output data: local fds are not read while the queue holds >= MUX_OUTQ_HIGH
 *     bytes (peer credit can be arbitrarily large, so credit alone is no bound);
 *   - output control: every input packet causes at most one control packet;
 *     once MUX_CTL_MAX control packets are queued we stop reading the channel
 *     (after the batch in hand: at most MUX_INBUF_SIZE / SMOLVM_PKT_HDR_SIZE
 *     packets more) until half of them are written. Replies to packets for unknown streams are
 *     additionally capped at MUX_ORPHAN_RST_MAX queued (beyond: not sent).
 *
 * We never send CREDIT_REQUEST: a receiver following these rules (ours) sends
 * CREDIT_UPDATE on its own after consuming a quarter of its buffer, so a sender out of
 * credit just waits. We answer CREDIT_REQUEST from the peer.
 *
 * Re-entrancy: user callbacks (accept, hello, broken, connect callbacks) may call
 * smolvm_mux_connect() and smolvm_mux_free(). Every entry point brackets its work
 * with mux_enter()/mux_leave(); a free requested inside is deferred to the
 * outermost leave, and killed streams are freed there too, so no code path
 * touches freed memory after a callback. */
#include "mux_i.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>

#include "util.h"
#include "wire.h"

static void mux_destroy(smolvm_mux *mux);

/* ---- entry/leave ---- */

void mux_enter(smolvm_mux *mux)
{
        mux->depth++;
}

static void chan_update_events(smolvm_mux *mux)
{
        if (mux->broken || mux->chan_fd < 0)
                return;
        uint32_t ev = 0;
        if (!mux->chan_in_blocked)
                ev |= EPOLLIN;
        if (mux->outq_head && !(mux_lane_tx(mux) && mux->lane_tx_blocked)) /* lane: just a wake-up */
                ev |= EPOLLOUT;
        mux_lane_update_events(mux);
        if (ev == mux->chan_events)
                return;
        int r = smolvm_evloop_mod(mux->loop, mux->chan_fd, ev);
        if (r < 0) {
                chan_broken(mux, r, "cannot watch the channel");
                return;
        }
        mux->chan_events = ev;
}

void mux_leave(smolvm_mux *mux)
{
        if (mux->depth == 1 && !mux->free_requested && !mux->broken) {
                if (mux->outq_head && !(mux->chan_events & EPOLLOUT))
                        chan_flush(mux);
                if (!mux->broken) {
                        if (mux->outq_ctl >= MUX_CTL_MAX)
                                mux->chan_in_blocked = true;
                        else if (mux->chan_in_blocked && mux->outq_ctl < MUX_CTL_MAX / 2)
                                mux->chan_in_blocked = false;
                        if (mux->local_blocked && mux->outq_bytes < MUX_OUTQ_LOW) {
                                mux->local_blocked = false;
                                for (stream *s = mux->streams; s; s = s->next)
                                        stream_update(s);
                        }
                        chan_update_events(mux);
                }
        }
        if (--mux->depth > 0)
                return;
        while (mux->dead_streams) {
                stream *s = mux->dead_streams;
                mux->dead_streams = s->next;
                free(s);
        }
        if (mux->free_requested)
                mux_destroy(mux);
}

/* ---- output queue ---- */

pkt *mux_pkt_new(uint32_t payload_len)
{
        pkt *p = malloc(sizeof(pkt) + SMOLVM_PKT_HDR_SIZE + payload_len);
        if (!p)
                return NULL;
        p->next = NULL;
        p->size = SMOLVM_PKT_HDR_SIZE + payload_len;
        p->ctl = false;
        p->orphan = false;
        p->lane_on = false;
        return p;
}

void mux_outq_push(smolvm_mux *mux, pkt *p)
{
        if (mux->outq_tail)
                mux->outq_tail->next = p;
        else
                mux->outq_head = p;
        mux->outq_tail = p;
        mux->outq_bytes += p->size;
        if (p->ctl)
                mux->outq_ctl++;
        if (p->orphan)
                mux->n_orphan_rst++;
        if (mux->outq_bytes >= MUX_OUTQ_HIGH)
                mux->local_blocked = true;
}

/* Header for stream s; records the fwd_cnt we advertise. */
void stream_hdr(stream *s, uint16_t op, uint32_t flags, uint32_t len, uint8_t *out)
{
        smolvm_mux *mux = s->mux;
        smolvm_pkt_hdr h = {
                .src_cid = mux->our_cid,
                .dst_cid = mux->peer_cid,
                .src_port = s->local_port,
                .dst_port = s->peer_port,
                .len = len,
                .type = SMOLVM_PKT_TYPE_STREAM,
                .op = op,
                .flags = flags,
                .buf_alloc = s->rx_window,
                .fwd_cnt = s->fwd_cnt,
        };
        s->adv_fwd_cnt = s->fwd_cnt;
        smolvm_pkt_hdr_encode(&h, out);
}

/* Queue a payload-less packet for s. Allocation failure drops it: the only
 * packets that matter for correctness (REQUEST/RESPONSE/SHUTDOWN/RST) are
 * followed by the peer's timeout or by later traffic; nothing here can abort. */
void stream_queue_ctl(stream *s, uint16_t op, uint32_t flags)
{
        smolvm_mux *mux = s->mux;
        if (mux->broken)
                return;
        pkt *p = mux_pkt_new(0);
        if (!p)
                return;
        p->ctl = true;
        stream_hdr(s, op, flags, 0, p->data);
        mux_outq_push(mux, p);
}

/* RST for a packet that matches no stream of ours (its src/dst swapped). */
static void queue_orphan_rst(smolvm_mux *mux, const smolvm_pkt_hdr *in)
{
        if (mux->broken || mux->n_orphan_rst >= MUX_ORPHAN_RST_MAX)
                return;
        pkt *p = mux_pkt_new(0);
        if (!p)
                return;
        p->ctl = true;
        p->orphan = true;
        smolvm_pkt_hdr h = {
                .src_cid = mux->our_cid,
                .dst_cid = mux->peer_cid,
                .src_port = in->dst_port,
                .dst_port = in->src_port,
                .type = SMOLVM_PKT_TYPE_STREAM,
                .op = SMOLVM_OP_RST,
        };
        smolvm_pkt_hdr_encode(&h, p->data);
        mux_outq_push(mux, p);
}

/* ---- deadlines: connects, and streams lingering for the peer's answer ---- */

void mux_timer_arm(smolvm_mux *mux)
{
        uint64_t next = 0;
        for (stream *s = mux->streams; s; s = s->next)
                if (s->deadline_ms && (next == 0 || s->deadline_ms < next))
                        next = s->deadline_ms;
        if (next == mux->timer_deadline_ms)
                return;
        struct itimerspec its = { 0 };
        if (next) {
                uint64_t now = now_ms();
                uint64_t d = next > now ? next - now : 1;
                its.it_value.tv_sec = (time_t)(d / 1000);
                its.it_value.tv_nsec = (long)(d % 1000) * 1000000L;
        }
        if (timerfd_settime(mux->timer_fd, 0, &its, NULL) == 0)
                mux->timer_deadline_ms = next;
}

static void timer_io(void *userdata, int fd, uint32_t events)
{
        smolvm_mux *mux = userdata;
        uint64_t ticks;
        mux_enter(mux);
        (void)!read(fd, &ticks, sizeof(ticks));
        mux->timer_deadline_ms = 0;
        uint64_t now = now_ms();
        stream *next;
        for (stream *s = mux->streams; s && !mux->free_requested; s = next) {
                next = s->next;
                if (s->deadline_ms && s->deadline_ms <= now)
                        stream_reset(s, -ETIMEDOUT);
        }
        if (!mux->free_requested)
                mux_timer_arm(mux);
        mux_leave(mux);
}

/* ---- incoming packets ---- */

static void handle_request(smolvm_mux *mux, const smolvm_pkt_hdr *h, stream *old)
{
        if (old) {
                /* Same pair reused: the old stream is gone and the new one refused.
                 * One RST on the wire covers both (same identity). */
                stream_kill(old, -ECONNRESET);
                queue_orphan_rst(mux, h);
                return;
        }
        if (mux->n_streams >= SMOLVM_MUX_MAX_STREAMS || !mux->ops.accept) {
                queue_orphan_rst(mux, h);
                return;
        }
        int fd = mux->ops.accept(mux->userdata, h->dst_port, h->src_port);
        if (mux->free_requested || mux->broken) {
                safe_close(fd);
                return;
        }
        if (fd < 0) {
                queue_orphan_rst(mux, h);
                return;
        }
        /* The callback may have opened streams meanwhile. */
        if (mux->n_streams >= SMOLVM_MUX_MAX_STREAMS || stream_lookup(mux, h->dst_port, h->src_port)) {
                safe_close(fd);
                queue_orphan_rst(mux, h);
                return;
        }
        stream *s = stream_new(mux, h->dst_port, h->src_port, fd, ST_ESTABLISHED);
        if (!s) {
                safe_close(fd);
                queue_orphan_rst(mux, h);
                return;
        }
        s->peer_buf_alloc = h->buf_alloc;
        s->peer_fwd_cnt = h->fwd_cnt;
        stream_queue_ctl(s, SMOLVM_OP_RESPONSE, 0);
        stream_start(s);
}

static void handle_response(stream *s)
{
        smolvm_mux *mux = s->mux;
        if (s->state != ST_CONNECTING) {
                stream_reset(s, -ECONNRESET);
                return;
        }
        s->state = ST_ESTABLISHED;
        s->deadline_ms = 0;
        smolvm_mux_connect_cb cb = s->cb;
        s->cb = NULL;
        /* Before any byte is relayed: the callback may write a preamble to fd. */
        if (cb)
                cb(s->cb_userdata, 0, s->local_port);
        if (mux->free_requested || mux->broken || s->dead)
                return;
        if (s->first) {
                /* The peer's RESPONSE granted buf_alloc bytes; a peer granting
                 * less than our header cannot take this stream. */
                uint32_t n = s->first_len;
                pkt *p = n <= s->peer_buf_alloc ? mux_pkt_new(n) : NULL;
                if (!p) {
                        stream_reset(s, n <= s->peer_buf_alloc ? -ENOMEM : -EPROTO);
                        return;
                }
                memcpy(p->data + SMOLVM_PKT_HDR_SIZE, s->first, n);
                stream_hdr(s, SMOLVM_OP_RW, 0, n, p->data);
                s->tx_cnt += n;
                mux->stats.tx_bytes += n;
                mux_outq_push(mux, p);
                free(s->first);
                s->first = NULL;
                s->first_len = 0;
        }
        stream_start(s);
}

static void handle_stream_packet(smolvm_mux *mux, const smolvm_pkt_hdr *h, const uint8_t *payload)
{
        stream *s = stream_lookup(mux, h->dst_port, h->src_port);

        if (h->op == SMOLVM_OP_REQUEST) {
                handle_request(mux, h, s);
                return;
        }
        if (!s) {
                mux->stats.n_dropped++;
                /* vsock answers RST to anything for an unknown socket, except an
                 * RST. We also stay quiet on CREDIT_UPDATE: after a clean close the
                 * peer may still have one in flight (see stream_maybe_finish). */
                if (h->op != SMOLVM_OP_RST && h->op != SMOLVM_OP_CREDIT_UPDATE)
                        queue_orphan_rst(mux, h);
                return;
        }

        s->peer_buf_alloc = h->buf_alloc;
        s->peer_fwd_cnt = h->fwd_cnt;

        switch (h->op) {
        case SMOLVM_OP_RESPONSE:
                handle_response(s);
                return;
        case SMOLVM_OP_RST:
                stream_kill(s, -ECONNREFUSED);
                return;
        case SMOLVM_OP_SHUTDOWN:
                if (s->state != ST_ESTABLISHED) {
                        stream_reset(s, -ECONNRESET);
                        return;
                }
                if (h->flags & SMOLVM_SHUTDOWN_RCV) {
                        /* Nobody reads there any more (the peer's local end is
                         * gone): we stop reading ours, make its writes fail at
                         * once (EPIPE: it may learn before it takes what we still
                         * hold for it), and say so, which lets the peer free its
                         * side (it waits for our SEND). */
                        s->rd_done = true;
                        if (s->fd_is_sock && !s->local_gone)
                                (void)shutdown(s->fd, SHUT_RD);
                        stream_shut_send(s, SMOLVM_SHUTDOWN_SEND);
                }
                if (h->flags & SMOLVM_SHUTDOWN_SEND) {
                        s->peer_shut_send = true;
                        if (s->rx_len == 0)
                                stream_shut_wr(s);
                }
                stream_maybe_finish(s);
                break;
        case SMOLVM_OP_RW:
                if (s->state != ST_ESTABLISHED || s->peer_shut_send) {
                        stream_reset(s, -ECONNRESET);
                        return;
                }
                /* The peer may have at most buf_alloc - (rx_cnt - fwd_cnt as we last
                 * told it) bytes in flight; since adv_fwd_cnt <= fwd_cnt this also
                 * bounds the ring. */
                if ((uint64_t)(uint32_t)(s->rx_cnt - s->adv_fwd_cnt) + h->len > s->rx_window) {
                        mux->stats.n_credit_violations++;
                        stream_reset(s, -ECONNRESET);
                        return;
                }
                s->rx_cnt += h->len;
                mux->stats.rx_bytes += h->len;
                stream_deliver_rw(s, payload, h->len);
                break;
        case SMOLVM_OP_CREDIT_UPDATE:
                break;
        case SMOLVM_OP_CREDIT_REQUEST:
                if (s->state == ST_ESTABLISHED && !s->peer_shut_send)
                        stream_queue_ctl(s, SMOLVM_OP_CREDIT_UPDATE, 0);
                break;
        default:
                mux->stats.n_dropped++;
                break;
        }
        if (!s->dead)
                stream_update(s);
}

void mux_handle_packet(smolvm_mux *mux, const smolvm_pkt_hdr *h, const uint8_t *payload)
{
        if (h->dst_cid != mux->our_cid || h->src_cid != mux->peer_cid) {
                mux->stats.n_dropped++;
                return;
        }
        if (h->type == SMOLVM_PKT_TYPE_CHANNEL &&
            (h->op == SMOLVM_CHAN_OP_LANE_REQ || h->op == SMOLVM_CHAN_OP_LANE_ON)) {
                mux_lane_packet(mux, h, payload);
                return;
        }
        if (h->type == SMOLVM_PKT_TYPE_CHANNEL) {
                /* decode() only lets the ops of wire.h through for this type. */
                if (h->op != SMOLVM_CHAN_OP_HELLO) {
                        if (mux->ops.control)
                                mux->ops.control(mux->userdata, h->op, payload, h->len);
                        else
                                mux->stats.n_dropped++;
                        return;
                }
                if (h->len < 8) {
                        mux->stats.n_dropped++;
                        return;
                }
                if (mux->ops.hello)
                        mux->ops.hello(mux->userdata, payload, h->len);
                return;
        }
        handle_stream_packet(mux, h, payload);
}

/* ---- public API ---- */

int smolvm_mux_new(smolvm_evloop *loop, int chan_fd, bool is_host, const smolvm_mux_ops *ops,
                   void *userdata, const void *hello_extra, size_t hello_extra_len, smolvm_mux **ret)
{
        _cleanup_close_ int cfd = chan_fd;
        if (!loop || chan_fd < 0 || !ret || hello_extra_len > MUX_HELLO_EXTRA_MAX ||
            (hello_extra_len && !hello_extra))
                return -EINVAL;
        int r = fd_set_nonblock(cfd, true);
        if (r < 0)
                return r;

        smolvm_mux *mux = calloc(1, sizeof(*mux));
        if (!mux)
                return -ENOMEM;
        mux->loop = loop;
        mux->chan_fd = -1;
        mux->timer_fd = -1;
        mux->our_cid = is_host ? SMOLVM_CID_HOST : SMOLVM_CID_GUEST;
        mux->peer_cid = is_host ? SMOLVM_CID_GUEST : SMOLVM_CID_HOST;
        if (ops)
                mux->ops = *ops;
        mux->userdata = userdata;
        mux->next_port = MUX_PORT_FIRST;
        mux->rx_window = SMOLVM_MUX_STREAM_BUF;
        mux->inbuf = malloc(MUX_INBUF_SIZE);
        if (!mux->inbuf) {
                r = -ENOMEM;
                goto fail;
        }
        mux->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (mux->timer_fd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = smolvm_evloop_add(loop, mux->timer_fd, EPOLLIN, timer_io, mux);
        if (r < 0) {
                mux->timer_fd = safe_close(mux->timer_fd);
                goto fail;
        }
        mux->chan_is_sock = mux_fd_is_socket(cfd);
        /* EPOLLOUT at once: the HELLO below goes out from the loop, so no
         * callback (broken) can run before the caller holds the mux. */
        r = smolvm_evloop_add(loop, cfd, EPOLLIN | EPOLLOUT, mux_chan_io, mux);
        if (r < 0)
                goto fail;
        mux->chan_fd = TAKE_FD(cfd);
        mux->chan_events = EPOLLIN | EPOLLOUT;

        uint8_t hello[8 + MUX_HELLO_EXTRA_MAX];
        put_le32(hello, SMOLVM_CHAN_VERSION);
        put_le32(hello + 4, 0);
        if (hello_extra_len)
                memcpy(hello + 8, hello_extra, hello_extra_len);
        r = mux_queue_control(mux, SMOLVM_CHAN_OP_HELLO, hello, 8 + (uint32_t)hello_extra_len);
        if (r < 0)
                goto fail;

        *ret = mux;
        return 0;

fail:
        mux->freeing = true;
        mux_destroy(mux);
        return r;
}

static void mux_destroy(smolvm_mux *mux)
{
        mux->freeing = true;
        mux->depth++; /* connect callbacks below must not re-enter destroy */
        if (!mux->broken) {
                /* Best effort: tell the peer, one non-blocking write. */
                stream *next;
                for (stream *s = mux->streams; s; s = next) {
                        next = s->next;
                        stream_reset(s, -ECONNRESET);
                }
                if (mux->chan_fd >= 0)
                        chan_flush(mux);
        }
        while (mux->streams)
                stream_kill(mux->streams, -ECONNRESET);
        mux->depth--;
        while (mux->dead_streams) {
                stream *s = mux->dead_streams;
                mux->dead_streams = s->next;
                free(s);
        }
        mux_outq_clear(mux);
        mux_lane_free(mux);
        if (mux->chan_fd >= 0) {
                if (!mux->broken)
                        (void)smolvm_evloop_del(mux->loop, mux->chan_fd);
                safe_close(mux->chan_fd);
        }
        if (mux->timer_fd >= 0) {
                (void)smolvm_evloop_del(mux->loop, mux->timer_fd);
                safe_close(mux->timer_fd);
        }
        free(mux->inbuf);
        free(mux);
}

void smolvm_mux_free(smolvm_mux *mux)
{
        if (!mux || mux->freeing || mux->free_requested)
                return;
        if (mux->depth > 0) {
                mux->free_requested = true;
                return;
        }
        mux_destroy(mux);
}

int smolvm_mux_connect(smolvm_mux *mux, uint32_t peer_port, int fd, smolvm_mux_connect_cb cb, void *userdata)
{
        return smolvm_mux_connect_first(mux, peer_port, fd, NULL, 0, cb, userdata);
}

int smolvm_mux_connect_first(smolvm_mux *mux, uint32_t peer_port, int fd, const void *first, size_t first_len,
                             smolvm_mux_connect_cb cb, void *userdata)
{
        _cleanup_close_ int cfd = fd;
        if (!mux || fd < 0 || !cb || first_len > SMOLVM_MUX_FIRST_MAX || (first_len > 0 && !first))
                return -EINVAL;
        if (mux->broken || mux->freeing || mux->free_requested)
                return -ECONNRESET;
        if (mux->n_streams >= SMOLVM_MUX_MAX_STREAMS)
                return -EMFILE;

        /* Rotate through the range rather than reuse the lowest free port, so a
         * late packet for a closed pair does not hit its successor. At most
         * SMOLVM_MUX_MAX_STREAMS pairs are in use, so this ends quickly. */
        uint32_t port;
        do {
                port = mux->next_port;
                mux->next_port = mux->next_port == UINT32_MAX ? MUX_PORT_FIRST : mux->next_port + 1;
        } while (stream_lookup(mux, port, peer_port));

        _cleanup_free_ uint8_t *copy = NULL;
        if (first_len > 0) {
                copy = malloc(first_len);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, first, first_len);
        }
        stream *s = stream_new(mux, port, peer_port, cfd, ST_CONNECTING);
        if (!s)
                return -ENOMEM;
        TAKE_FD(cfd);
        s->first = TAKE_PTR(copy);
        s->first_len = (uint32_t)first_len;
        s->cb = cb;
        s->cb_userdata = userdata;
        s->deadline_ms = now_ms() + MUX_CONNECT_TIMEOUT_MS;
        stream_queue_ctl(s, SMOLVM_OP_REQUEST, 0);
        if (mux->timer_deadline_ms == 0 || s->deadline_ms < mux->timer_deadline_ms)
                mux_timer_arm(mux);
        /* No write from here: the REQUEST leaves from the loop (or the enclosing
         * callback's flush), so the callback never runs before we return. */
        if (mux->depth == 0)
                chan_update_events(mux);
        return 0;
}

int smolvm_mux_reset(smolvm_mux *mux, uint32_t local_port, uint32_t peer_port)
{
        stream *s = mux ? stream_lookup(mux, local_port, peer_port) : NULL;
        if (!s || s->dead)
                return -ENOENT;
        mux_enter(mux);
        stream_reset(s, -ECONNRESET);
        mux_leave(mux);
        return 0;
}

int smolvm_mux_set_rx_window(smolvm_mux *mux, uint32_t bytes)
{
        if (!mux || bytes < mux->rx_window || bytes > SMOLVM_MUX_RX_WINDOW_MAX)
                return -EINVAL;
        mux->rx_window = bytes;
        return 0;
}

void smolvm_mux_get_stats(const smolvm_mux *mux, smolvm_mux_stats *ret)
{
        *ret = mux->stats;
        ret->n_streams = mux->n_streams;
        ret->buffered_bytes = mux->rx_buffered + mux->outq_bytes;
}

bool smolvm_mux_is_broken(const smolvm_mux *mux)
{
        return mux->broken;
}
