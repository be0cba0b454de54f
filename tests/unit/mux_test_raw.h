/* SPDX-License-Identifier: Apache-2.0 */
/* The raw peer of the mux suites: the test speaks the wire protocol by hand
 * (common/wire.h) in place of one of the two muxes of mux_test_world.h. */
#pragma once

#include <fcntl.h>

#include "mux_test_world.h"

typedef struct raw_peer {
        world *w;
        int fd;
        uint64_t our_cid, peer_cid;
        uint8_t *out;
        size_t out_len, out_off, out_cap;
        uint8_t in[2 * (SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD)];
        size_t in_len;
        bool reading;
        bool eof;
        smolvm_pkt_hdr rx[65536];
        size_t n_rx;
        uint64_t rx_payload;
} raw_peer;

MUX_TEST_FN void raw_cb(void *userdata, int fd, uint32_t events);

MUX_TEST_FN void raw_update(raw_peer *r)
{
        uint32_t m = 0;
        if (r->reading && !r->eof)
                m |= EPOLLIN;
        if (r->out_off < r->out_len)
                m |= EPOLLOUT;
        ck_assert_int_eq(smolvm_evloop_mod(r->w->loop, r->fd, m), 0);
}

MUX_TEST_FN void raw_cb(void *userdata, int fd, uint32_t events)
{
        raw_peer *r = userdata;
        while (r->out_off < r->out_len) {
                ssize_t n = send(r->fd, r->out + r->out_off, r->out_len - r->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n <= 0)
                        break;
                r->out_off += (size_t)n;
        }
        if (r->out_off == r->out_len)
                r->out_off = r->out_len = 0;
        while (r->reading && !r->eof) {
                ssize_t n = read(r->fd, r->in + r->in_len, sizeof(r->in) - r->in_len);
                if (n <= 0) {
                        if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                r->eof = true;
                        break;
                }
                r->in_len += (size_t)n;
                size_t off = 0;
                while (r->in_len - off >= SMOLVM_PKT_HDR_SIZE) {
                        smolvm_pkt_hdr h;
                        ck_assert_int_eq(smolvm_pkt_hdr_decode(r->in + off, &h), 0);
                        if (r->in_len - off - SMOLVM_PKT_HDR_SIZE < h.len)
                                break;
                        if (r->n_rx < ARRAY_SIZE(r->rx))
                                r->rx[r->n_rx++] = h;
                        r->rx_payload += h.len;
                        off += SMOLVM_PKT_HDR_SIZE + h.len;
                }
                memmove(r->in, r->in + off, r->in_len - off);
                r->in_len -= off;
        }
        raw_update(r);
}

MUX_TEST_FN raw_peer *raw_new(world *w, int fd, bool as_host)
{
        raw_peer *r = calloc(1, sizeof(*r));
        ck_assert_ptr_nonnull(r);
        r->w = w;
        r->fd = fd;
        r->reading = true;
        r->our_cid = as_host ? SMOLVM_CID_HOST : SMOLVM_CID_GUEST;
        r->peer_cid = as_host ? SMOLVM_CID_GUEST : SMOLVM_CID_HOST;
        ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        ck_assert_int_eq(smolvm_evloop_add(w->loop, fd, EPOLLIN, raw_cb, r), 0);
        return r;
}

MUX_TEST_FN void raw_free(raw_peer *r)
{
        if (r->fd >= 0) {
                smolvm_evloop_del(r->w->loop, r->fd);
                safe_close(r->fd);
        }
        free(r->out);
        free(r);
}

MUX_TEST_FN void raw_bytes(raw_peer *r, const void *data, size_t len)
{
        if (r->out_len + len > r->out_cap) {
                r->out_cap = MAX(r->out_cap * 2, r->out_len + len + 4096);
                r->out = realloc(r->out, r->out_cap);
                ck_assert_ptr_nonnull(r->out);
        }
        memcpy(r->out + r->out_len, data, len);
        r->out_len += len;
        raw_update(r);
}

MUX_TEST_FN void raw_pkt(raw_peer *r, const smolvm_pkt_hdr *h, const void *payload)
{
        uint8_t b[SMOLVM_PKT_HDR_SIZE];
        smolvm_pkt_hdr_encode(h, b);
        raw_bytes(r, b, sizeof(b));
        if (h->len)
                raw_bytes(r, payload, h->len);
}

MUX_TEST_FN smolvm_pkt_hdr raw_hdr(raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len)
{
        return (smolvm_pkt_hdr){
                .src_cid = r->our_cid,
                .dst_cid = r->peer_cid,
                .src_port = src_port,
                .dst_port = dst_port,
                .len = len,
                .type = SMOLVM_PKT_TYPE_STREAM,
                .op = op,
                .buf_alloc = SMOLVM_MUX_STREAM_BUF,
                .fwd_cnt = 0,
        };
}

MUX_TEST_FN void raw_send(raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port, const void *payload,
                     uint32_t len)
{
        smolvm_pkt_hdr h = raw_hdr(r, op, src_port, dst_port, len);
        raw_pkt(r, &h, payload);
}

#define ANY_FLAGS UINT32_MAX

/* Received packets of op from src_port to dst_port (with exactly flags, unless
 * ANY_FLAGS): how many, and their payload bytes in *ret_bytes (may be NULL). */
MUX_TEST_FN size_t raw_match(const raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t flags,
                        uint64_t *ret_bytes)
{
        size_t n = 0;
        uint64_t bytes = 0;
        for (size_t i = 0; i < r->n_rx; i++)
                if (r->rx[i].type == SMOLVM_PKT_TYPE_STREAM && r->rx[i].op == op && r->rx[i].src_port == src_port &&
                    r->rx[i].dst_port == dst_port && (flags == ANY_FLAGS || r->rx[i].flags == flags)) {
                        n++;
                        bytes += r->rx[i].len;
                }
        if (ret_bytes)
                *ret_bytes = bytes;
        return n;
}

MUX_TEST_FN size_t raw_count(const raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port)
{
        return raw_match(r, op, src_port, dst_port, ANY_FLAGS, NULL);
}

typedef struct count_arg {
        raw_peer *r;
        uint16_t op;
        uint32_t src, dst;
        size_t want;
} count_arg;

MUX_TEST_FN bool raw_has(world *w, void *arg)
{
        count_arg *a = arg;
        return raw_count(a->r, a->op, a->src, a->dst) >= a->want;
}

MUX_TEST_FN bool wait_pkt(raw_peer *r, uint16_t op, uint32_t src, uint32_t dst, size_t want)
{
        count_arg a = { r, op, src, dst, want };
        return run_until(r->w, raw_has, &a, 5000);
}

/* One mux under test (the host's if host, else the guest's), the raw peer
 * playing the other side. */
MUX_TEST_FN world *world_raw(bool host, raw_peer **ret)
{
        world *w = world_new();
        int c[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
        ck_assert_int_eq(smolvm_mux_new(w->loop, c[0], host, host ? &host_ops : &guest_ops, w, NULL, 0,
                                        host ? &w->host : &w->guest),
                         0);
        *ret = raw_new(w, c[1], !host);
        return w;
}

MUX_TEST_FN world *world_raw_guest(raw_peer **ret)
{
        return world_raw(false, ret);
}

MUX_TEST_FN void world_raw_free(world *w, raw_peer *r)
{
        raw_free(r);
        world_free(w);
}

MUX_TEST_FN endpoint *find_server(world *w, uint32_t peer_port)
{
        for (int i = w->n_ep - 1; i >= 0; i--)
                if (w->ep[i]->cb_port == peer_port)
                        return w->ep[i];
        return NULL;
}

/* Opens a stream from raw host port hport to the guest's GUEST_PORT. */
MUX_TEST_FN endpoint *raw_open(raw_peer *r, uint32_t hport)
{
        size_t before = raw_count(r, SMOLVM_OP_RESPONSE, GUEST_PORT, hport);
        raw_send(r, SMOLVM_OP_REQUEST, hport, GUEST_PORT, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RESPONSE, GUEST_PORT, hport, before + 1));
        endpoint *s = find_server(r->w, hport);
        ck_assert_ptr_nonnull(s);
        return s;
}

/* Send n pattern bytes of stream hport as RW packets. */
MUX_TEST_FN void raw_send_data(raw_peer *r, uint32_t hport, uint64_t off, size_t n)
{
        static uint8_t buf[CHUNK];
        while (n > 0) {
                size_t k = MIN(n, (size_t)CHUNK);
                pattern_fill(1000 + hport, off, buf, k);
                raw_send(r, SMOLVM_OP_RW, hport, GUEST_PORT, buf, (uint32_t)k);
                off += k;
                n -= k;
        }
}
