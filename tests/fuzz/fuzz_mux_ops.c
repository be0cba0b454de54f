/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_mux's input: the byte readers, packet headers and payloads built from
 * the input, and the op table (run_op; what each op does is listed at the top
 * of fuzz_mux.c). */
#include "fuzz_mux.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

static uint8_t scratch[FLOOD_MAX * (SMOLVM_PKT_HDR_SIZE + 64u) + SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD];

/* ---- input ---- */

uint8_t u8(input *in)
{
        if (in->n == 0)
                return 0;
        in->n--;
        return *in->p++;
}

uint16_t u16(input *in)
{
        uint16_t lo = u8(in);
        return (uint16_t)(lo | (u8(in) << 8));
}

uint32_t u32(input *in)
{
        uint32_t lo = u16(in);
        return lo | ((uint32_t)u16(in) << 16);
}

static void pattern(uint8_t *b, size_t n, uint32_t seed)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(seed + i * 131u);
}

static const uint32_t port_table[] = { SMOLVM_AGENT_PORT, MUX_PORT_FIRST, MUX_PORT_FIRST + 1, 5000, 0,
                                       UINT32_MAX, 2, 1023 };
static const uint32_t buf_table[] = { SMOLVM_MUX_STREAM_BUF, 0, 1, 4096, UINT32_MAX, 64u * 1024u, 0x80000000u };

/* A packet header from the input: op (bit 3: an unknown one), type, CIDs, a
 * port pair (mostly a known one), credit fields, flags, payload length. */
static void read_hdr(input *in, smolvm_pkt_hdr *h)
{
        uint8_t b0 = u8(in), b1 = u8(in), b2 = u8(in);
        uint16_t op = (b0 & 0x08u) ? (uint16_t)(8u + (b0 >> 4)) : b0 & 7u;
        unsigned t = (b0 >> 4) & 3u;
        uint16_t type = t == 2 ? SMOLVM_PKT_TYPE_CHANNEL : t == 3 && (b0 & 0x08u) ? u16(in) : SMOLVM_PKT_TYPE_STREAM;
        uint32_t peer_port, mux_port;
        if (b1 < 0xc0 && w.n_pairs) {
                pair *p = &w.pairs[b1 % w.n_pairs];
                peer_port = p->peer_port;
                mux_port = p->mux_port;
        } else if (b1 < 0xf0) {
                peer_port = port_table[b1 & 7u];
                mux_port = (b1 & 8u) ? port_table[(b1 >> 4) & 7u] : SMOLVM_AGENT_PORT;
        } else {
                peer_port = u32(in);
                mux_port = u32(in);
        }
        pair *p = pair_find(peer_port, mux_port);
        uint32_t buf_alloc = (b2 & 7u) < ARRAY_SIZE(buf_table) ? buf_table[b2 & 7u] : u32(in);
        /* fwd_cnt: honest (what the mux sent us), 0, ahead of what was sent, any. */
        uint32_t acked = p ? p->rx_bytes : 0, f = (b2 >> 3) & 3u;
        uint32_t fwd_cnt = f == 0 ? acked : f == 1 ? 0 : f == 2 ? acked + SMOLVM_MUX_STREAM_BUF : u32(in);
        uint32_t flags = (b2 >> 5) & 3u;
        if (b2 & 0x80u)
                flags = u32(in);
        *h = (smolvm_pkt_hdr){ .src_cid = w.peer_cid, .dst_cid = w.mux_cid, .src_port = peer_port,
                               .dst_port = mux_port, .type = type, .op = op, .flags = flags,
                               .buf_alloc = buf_alloc, .fwd_cnt = fwd_cnt };
        if ((b0 & 0xc0u) == 0xc0u) {
                /* Wrong CIDs: swapped, or arbitrary. */
                if (b1 & 1u) {
                        h->src_cid = w.mux_cid;
                        h->dst_cid = w.peer_cid;
                } else {
                        h->dst_cid = u8(in);
                }
        }
        if (op == SMOLVM_OP_RW || type == SMOLVM_PKT_TYPE_CHANNEL || (b0 & 0x08u)) {
                uint16_t l = u16(in);
                h->len = l == 0xffffu ? SMOLVM_PKT_MAX_PAYLOAD : l;
        }
        if (op == SMOLVM_OP_REQUEST && type == SMOLVM_PKT_TYPE_STREAM)
                pair_add(peer_port, mux_port);
}

static size_t put_pkt(uint8_t *out, const smolvm_pkt_hdr *h, uint32_t seed)
{
        smolvm_pkt_hdr_encode(h, out);
        pattern(out + SMOLVM_PKT_HDR_SIZE, h->len, seed);
        if (h->type == SMOLVM_PKT_TYPE_CHANNEL && h->len >= 8) {
                put_le32(out + SMOLVM_PKT_HDR_SIZE, SMOLVM_CHAN_VERSION);
                put_le32(out + SMOLVM_PKT_HDR_SIZE + 4, 0);
        }
        return SMOLVM_PKT_HDR_SIZE + h->len;
}

/* ---- ops ---- */

static void op_timeout(void)
{
        smolvm_mux *m = w.mux;
        if (!m || m->broken)
                return;
        /* Every deadline (a connect's, a closing stream's linger) is long past. */
        bool any = false;
        for (stream *s = m->streams; s; s = s->next)
                if (s->deadline_ms) {
                        s->deadline_ms = 1;
                        any = true;
                }
        if (!any)
                return;
        /* The mux's own timer fires now (its handler reads the clock only to
         * compare with those deadlines), before the loop looks: it is in the next
         * batch whatever else is ready. */
        struct itimerspec its = { .it_value = { .tv_nsec = 1 } };
        CHECK(timerfd_settime(m->timer_fd, 0, &its, NULL) == 0);
        m->timer_deadline_ms = 1;
        struct pollfd pfd = { .fd = m->timer_fd, .events = POLLIN };
        CHECK(poll(&pfd, 1, 5000) == 1);
        for (int i = 0; i < 64 && w.mux && w.mux->timer_deadline_ms == 1; i++) {
                CHECK(smolvm_evloop_run_once(w.loop, 100) >= 0);
                check();
        }
        CHECK(!w.mux || w.mux->timer_deadline_ms != 1);
        if (w.mux && !w.mux->broken)
                for (stream *s = w.mux->streams; s; s = s->next)
                        CHECK(s->deadline_ms != 1);
}

static ep *pick_ep(input *in)
{
        uint8_t k = u8(in);
        if (w.n_ep == 0)
                return NULL;
        ep *e = &w.eps[k % w.n_ep];
        return e->fd >= 0 ? e : NULL;
}

void run_op(input *in)
{
        uint8_t op = u8(in);
        smolvm_pkt_hdr h;
        switch (op % 21) {
        case 0: { /* raw bytes */
                uint8_t n = u8(in);
                size_t k = MIN((size_t)n, in->n);
                peer_send(in->p, k, false);
                in->p += k;
                in->n -= k;
                break;
        }
        case 1:
        case 2:
        case 3: /* one packet */
                read_hdr(in, &h);
                peer_send(scratch, put_pkt(scratch, &h, op), true);
                break;
        case 4: { /* flood of one packet, ports and/or fwd_cnt stepping; with bit 3
                   * full-size payloads (data past any credit), fewer of them */
                read_hdr(in, &h);
                uint8_t how = u8(in);
                unsigned count = 1u + u16(in) % FLOOD_MAX;
                if (how & 8u)
                        count = MIN(count, 64u);
                else
                        h.len = MIN(h.len, 64u);
                size_t off = 0;
                smolvm_pkt_hdr hi = h;
                for (unsigned i = 0; i < count; i++) {
                        if (how & 1u)
                                hi.src_port = h.src_port + i;
                        if (how & 2u)
                                hi.dst_port = h.dst_port + i;
                        if (how & 4u)
                                hi.fwd_cnt = h.fwd_cnt + i * 4096u;
                        off += put_pkt(scratch + off, &hi, i);
                        if (off > sizeof(scratch) - SMOLVM_PKT_HDR_SIZE - SMOLVM_PKT_MAX_PAYLOAD) {
                                peer_send(scratch, off, true);
                                off = 0;
                        }
                }
                if ((how & 3u) && h.op == SMOLVM_OP_REQUEST)
                        pair_add(hi.src_port, hi.dst_port);
                peer_send(scratch, off, true);
                break;
        }
        case 5: { /* a header whose len is above the maximum: framing is lost */
                read_hdr(in, &h);
                uint16_t x = u16(in);
                h.len = x == 0xffffu ? UINT32_MAX : SMOLVM_PKT_MAX_PAYLOAD + 1u + x;
                smolvm_pkt_hdr_encode(&h, scratch);
                bool was_aligned = w.aligned;
                bool all = peer_write(scratch, SMOLVM_PKT_HDR_SIZE);
                if (was_aligned && all)
                        w.oversize_aligned = true;
                w.aligned = false;
                break;
        }
        case 6: { /* HELLO, any length */
                h = (smolvm_pkt_hdr){ .src_cid = w.peer_cid, .dst_cid = w.mux_cid, .type = SMOLVM_PKT_TYPE_CHANNEL,
                                      .op = SMOLVM_CHAN_OP_HELLO, .len = u8(in) };
                peer_send(scratch, put_pkt(scratch, &h, 7), true);
                break;
        }
        case 7: { /* local connect */
                uint8_t b = u8(in);
                uint32_t port = b < 0x80 && w.n_pairs ? w.pairs[b % w.n_pairs].peer_port : port_table[b & 7u];
                (void)do_connect(port);
                break;
        }
        case 8: { /* local write */
                ep *e = pick_ep(in);
                uint16_t n = u16(in);
                if (e) {
                        pattern(scratch, n, n);
                        (void)!send(e->fd, scratch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                }
                break;
        }
        case 9: { /* local read, all there is */
                ep *e = pick_ep(in);
                for (int i = 0; e && i < 64; i++)
                        if (read(e->fd, scratch, 65536) <= 0)
                                break;
                break;
        }
        case 10:
        case 11: { /* local shutdown (SHUT_RD, SHUT_WR, SHUT_RDWR) or close */
                ep *e = pick_ep(in);
                uint8_t how = u8(in) % 4u;
                if (e && how == 3)
                        e->fd = safe_close(e->fd);
                else if (e)
                        (void)shutdown(e->fd, how);
                break;
        }
        case 12:
        case 13: /* loop turns */
                turn(1 + u8(in) % 32);
                break;
        case 14: /* read what the mux sent; or stop reading it */
                peer_drain();
                w.auto_drain = u8(in) & 1u;
                break;
        case 15: { /* answer the mux's REQUESTs (any that are pending) */
                uint8_t how = u8(in);
                for (unsigned i = 0; i < w.n_pairs; i++) {
                        if (!(how & (1u << (i % 8))))
                                continue;
                        h = (smolvm_pkt_hdr){ .src_cid = w.peer_cid, .dst_cid = w.mux_cid,
                                              .src_port = w.pairs[i].peer_port, .dst_port = w.pairs[i].mux_port,
                                              .type = SMOLVM_PKT_TYPE_STREAM,
                                              .op = (how & 0x80u) ? SMOLVM_OP_RST : SMOLVM_OP_RESPONSE,
                                              .buf_alloc = SMOLVM_MUX_STREAM_BUF };
                        peer_send(scratch, put_pkt(scratch, &h, 0), true);
                }
                break;
        }
        case 16: /* EOF from the peer, or a full close */
                if (w.peer < 0)
                        break;
                if (u8(in) & 1u) {
                        w.peer = safe_close(w.peer);
                        w.peer_closed = true;
                } else {
                        (void)shutdown(w.peer, SHUT_WR);
                }
                w.peer_shut = true;
                break;
        case 17:
                op_timeout();
                break;
        case 18:
                w.accept_mode = u8(in) % 5u;
                break;
        case 20: { /* a larger receive window for new streams (the guest's, with the lane) */
                static const uint32_t wins[] = { SMOLVM_MUX_STREAM_BUF, 1u << 20, SMOLVM_MUX_RX_WINDOW_MAX,
                                                 SMOLVM_MUX_STREAM_BUF - 1, SMOLVM_MUX_RX_WINDOW_MAX + 1, 0 };
                uint32_t win = wins[u8(in) % ARRAY_SIZE(wins)];
                if (!w.mux)
                        break;
                uint32_t before = w.mux->rx_window;
                int r = smolvm_mux_set_rx_window(w.mux, win);
                CHECK(r == ((win >= before && win <= SMOLVM_MUX_RX_WINDOW_MAX) ? 0 : -EINVAL));
                CHECK(w.mux->rx_window == (r == 0 ? win : before));
                break;
        }
        case 19: /* flood of CREDIT_REQUESTs on a known pair (or the default one) */
        default: {
                unsigned count = 1u + u16(in) % FLOOD_MAX;
                pair *p = w.n_pairs ? &w.pairs[count % w.n_pairs] : NULL;
                h = (smolvm_pkt_hdr){ .src_cid = w.peer_cid, .dst_cid = w.mux_cid,
                                      .src_port = p ? p->peer_port : 5000,
                                      .dst_port = p ? p->mux_port : SMOLVM_AGENT_PORT,
                                      .type = SMOLVM_PKT_TYPE_STREAM, .op = SMOLVM_OP_CREDIT_REQUEST,
                                      .buf_alloc = SMOLVM_MUX_STREAM_BUF };
                size_t off = 0;
                for (unsigned i = 0; i < count; i++)
                        off += put_pkt(scratch + off, &h, 0);
                peer_send(scratch, off, true);
                break;
        }
        }
        check();
}
