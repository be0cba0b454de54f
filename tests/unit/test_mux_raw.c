/* SPDX-License-Identifier: Apache-2.0 */
/* Channel multiplexer (common/mux.c) against a raw peer (mux_test_raw.h): the
 * test writes the packets by hand, as a hostile or broken guest would, and
 * checks that the mux stays bounded, drops or resets what is wrong, and times
 * out a peer that never answers. */
#include <sys/resource.h>

#include "mux_test_raw.h"

/* A burst of RW packets for one stream (16 x 4 KiB: a virtio-serial port hands
 * the guest 4 KiB per read) reaches the local fd in one write, in order. Under
 * TCG every write costs the guest a wake-up and a context switch of its reader.
 * A SOCK_SEQPACKET local end keeps each write a record: records count writes. */
START_TEST(test_raw_burst_one_write)
{
        enum { N = 16, K = 4096 }; /* N * K = MUX_PEND_FLUSH */
        static uint8_t burst[N * (SMOLVM_PKT_HDR_SIZE + K)], got[N * K + 1], want[K];
        raw_peer *r;
        world *w = world_raw_guest(&r);
        w->accept_seqpacket = true;
        w->seq_fd = -1;
        raw_send(r, SMOLVM_OP_REQUEST, 5000, GUEST_PORT, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 5000, 1));
        ck_assert_int_ge(w->seq_fd, 0);

        size_t len = 0;
        for (int i = 0; i < N; i++) {
                smolvm_pkt_hdr h = raw_hdr(r, SMOLVM_OP_RW, 5000, GUEST_PORT, K);
                smolvm_pkt_hdr_encode(&h, burst + len);
                pattern_fill(6000, (uint64_t)i * K, burst + len + SMOLVM_PKT_HDR_SIZE, K);
                len += SMOLVM_PKT_HDR_SIZE + K;
        }
        /* All of it before the mux runs again: its next wake finds the burst. */
        ck_assert_int_eq(send(r->fd, burst, len, MSG_NOSIGNAL), (ssize_t)len);

        size_t total = 0;
        int records = 0;
        for (uint64_t end = now_ms() + 5000; total < N * K && now_ms() < end;) {
                run_for(w, 10);
                for (;;) {
                        ssize_t n = recv(w->seq_fd, got + total, sizeof(got) - total, MSG_DONTWAIT);
                        if (n <= 0)
                                break;
                        total += (size_t)n;
                        records++;
                }
        }
        ck_assert_uint_eq(total, N * K);
        for (int i = 0; i < N; i++) {
                pattern_fill(6000, (uint64_t)i * K, want, K);
                ck_assert_mem_eq(got + (size_t)i * K, want, K);
        }
        ck_assert_msg(records == 1, "%d writes to the local fd for one burst of %d packets", records, N);
        safe_close(w->seq_fd);
        world_raw_free(w, r);
}
END_TEST

START_TEST(test_raw_truncated_header)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        endpoint *s = raw_open(r, 5000);
        uint8_t junk[20] = { 0 };
        raw_bytes(r, junk, sizeof(junk));
        run_for(w, 50);
        ck_assert(!smolvm_mux_is_broken(w->guest)); /* just waiting for more */
        ck_assert_int_eq(shutdown(r->fd, SHUT_WR), 0);
        ck_assert(run_until(w, guest_broken, NULL, 5000));
        ck_assert_int_eq(w->broken_err[1], -ECONNRESET);
        ck_assert(smolvm_mux_is_broken(w->guest));
        ck_assert(run_until(w, client_eof, s, 5000)); /* server's socket closed */
        run_for(w, 50);
        ck_assert_int_eq(w->n_broken[1], 1);
        world_raw_free(w, r);
}
END_TEST

START_TEST(test_raw_oversize)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        endpoint *s = raw_open(r, 5000);
        smolvm_pkt_hdr h = raw_hdr(r, SMOLVM_OP_RW, 5000, GUEST_PORT, SMOLVM_PKT_MAX_PAYLOAD + 1);
        uint8_t b[SMOLVM_PKT_HDR_SIZE];
        smolvm_pkt_hdr_encode(&h, b);
        raw_bytes(r, b, sizeof(b));
        ck_assert(run_until(w, guest_broken, NULL, 5000));
        ck_assert_int_eq(w->broken_err[1], -EMSGSIZE);
        ck_assert(run_until(w, client_eof, s, 5000));
        smolvm_mux_stats gs;
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_streams, 0);
        /* Sticky: more traffic changes nothing. */
        raw_send(r, SMOLVM_OP_REQUEST, 5001, GUEST_PORT, NULL, 0);
        run_for(w, 50);
        ck_assert_int_eq(w->n_broken[1], 1);
        ck_assert_uint_eq(w->n_accepts, 1);
        world_raw_free(w, r);
}
END_TEST

START_TEST(test_raw_unknown_ops)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        uint8_t payload[100] = { 1, 2, 3 };
        smolvm_pkt_hdr h;
        size_t expect_drops = 0;

        h = raw_hdr(r, 0, 5000, GUEST_PORT, 10);
        raw_pkt(r, &h, payload), expect_drops++;
        h = raw_hdr(r, 8, 5000, GUEST_PORT, 100);
        raw_pkt(r, &h, payload), expect_drops++;
        h = raw_hdr(r, 0xffff, 5000, GUEST_PORT, 0);
        raw_pkt(r, &h, payload), expect_drops++;
        h = raw_hdr(r, SMOLVM_OP_RW, 5000, GUEST_PORT, 3);
        h.type = 7;
        raw_pkt(r, &h, payload), expect_drops++;
        h = raw_hdr(r, SMOLVM_CHAN_OP_LANE_ON + 1, 0, 0, 20); /* the first unknown channel op */
        h.type = SMOLVM_PKT_TYPE_CHANNEL;
        raw_pkt(r, &h, payload), expect_drops++;
        /* HELLO too short. */
        h = raw_hdr(r, SMOLVM_CHAN_OP_HELLO, 0, 0, 4);
        h.type = SMOLVM_PKT_TYPE_CHANNEL;
        raw_pkt(r, &h, payload), expect_drops++;
        /* Wrong destination CID: even a REQUEST is ignored. */
        h = raw_hdr(r, SMOLVM_OP_REQUEST, 5000, GUEST_PORT, 0);
        h.dst_cid = 42;
        raw_pkt(r, &h, NULL), expect_drops++;
        /* RW and SHUTDOWN for unknown streams: dropped and answered with RST;
         * an RST for an unknown stream is dropped without reply. */
        raw_send(r, SMOLVM_OP_RW, 6000, GUEST_PORT, payload, 5), expect_drops++;
        raw_send(r, SMOLVM_OP_SHUTDOWN, 6001, GUEST_PORT, NULL, 0), expect_drops++;
        raw_send(r, SMOLVM_OP_RST, 6002, GUEST_PORT, NULL, 0), expect_drops++;
        ck_assert(wait_pkt(r, SMOLVM_OP_RST, GUEST_PORT, 6001, 1));
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RST, GUEST_PORT, 6000), 1);
        run_for(w, 50);
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RST, GUEST_PORT, 6002), 0);
        ck_assert_uint_eq(w->n_accepts, 0);

        smolvm_mux_stats gs;
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_dropped, expect_drops);
        ck_assert(!smolvm_mux_is_broken(w->guest));

        /* A proper HELLO still arrives, and a stream still works. */
        uint8_t hello[8];
        put_le32(hello, SMOLVM_CHAN_VERSION);
        put_le32(hello + 4, 0);
        h = raw_hdr(r, SMOLVM_CHAN_OP_HELLO, 0, 0, 8);
        h.type = SMOLVM_PKT_TYPE_CHANNEL;
        raw_pkt(r, &h, hello);
        endpoint *s = raw_open(r, 5000);
        s->rx_expect = 100000;
        raw_send_data(r, 5000, 0, 100000);
        ck_assert(run_until(w, endpoint_got, s, 5000));
        ck_assert_uint_eq(s->rx_done, 100000);
        ck_assert(!s->rx_bad);
        ck_assert_int_eq(w->n_hello[1], 1);
        ck_assert_int_eq(w->n_broken[1], 0);
        world_raw_free(w, r);
}
END_TEST

/* A REQUEST for a pair in use: the old stream is reset, the new one refused. */
START_TEST(test_raw_reuse_pair)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        endpoint *s = raw_open(r, 5000);
        endpoint *other = raw_open(r, 5001);
        raw_send(r, SMOLVM_OP_REQUEST, 5000, GUEST_PORT, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RST, GUEST_PORT, 5000, 1));
        ck_assert(run_until(w, client_eof, s, 5000));
        ck_assert_uint_eq(w->n_accepts, 2);
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 5000), 1);
        smolvm_mux_stats gs;
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_streams, 1);
        /* The other stream is untouched. */
        other->rx_expect = 5000;
        raw_send_data(r, 5001, 0, 5000);
        ck_assert(run_until(w, endpoint_got, other, 5000));
        ck_assert(!other->rx_bad);
        /* The pair is free again afterwards. */
        raw_open(r, 5000);
        ck_assert_uint_eq(w->n_accepts, 3);
        world_raw_free(w, r);
}
END_TEST

/* Stream A's reader never reads and the peer ignores our credit: A is reset,
 * the violation counted, stream B keeps working, memory stays bounded. */
START_TEST(test_raw_beyond_credit)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        w->server_reading = false;
        endpoint *a = raw_open(r, 5000);
        w->server_reading = true;
        endpoint *b = raw_open(r, 5001);
        raw_send_data(r, 5000, 0, 4u << 20);
        ck_assert(wait_pkt(r, SMOLVM_OP_RST, GUEST_PORT, 5000, 1));
        smolvm_mux_stats gs;
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_credit_violations, 1);
        ck_assert_uint_le(gs.buffered_bytes, SMOLVM_MUX_STREAM_BUF);
        ck_assert_uint_eq(gs.n_streams, 1);
        a->reading = true;
        ep_update(a);
        ck_assert(run_until(w, client_eof, a, 5000));
        ck_assert(!a->rx_bad);
        ck_assert_uint_lt(a->rx_done, 4u << 20);

        b->rx_expect = 200000;
        raw_send_data(r, 5001, 0, 200000);
        ck_assert(run_until(w, endpoint_got, b, 5000));
        ck_assert_uint_eq(b->rx_done, 200000);
        ck_assert(!b->rx_bad);
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_credit_violations, 1);
        ck_assert_int_eq(w->n_broken[1], 0);
        world_raw_free(w, r);
}
END_TEST

/* Opens n streams from raw host ports base.. with a huge advertised buffer. */
static void raw_open_many(raw_peer *r, uint32_t base, uint32_t n)
{
        for (uint32_t i = 0; i < n; i++) {
                smolvm_pkt_hdr h = raw_hdr(r, SMOLVM_OP_REQUEST, base + i, GUEST_PORT, 0);
                h.buf_alloc = 0xffffffffu;
                raw_pkt(r, &h, NULL);
        }
        ck_assert(wait_pkt(r, SMOLVM_OP_RESPONSE, GUEST_PORT, base + n - 1, 1));
}

static uint64_t max_buffered_over(world *w, smolvm_mux *mux, unsigned ms)
{
        uint64_t max_buf = 0;
        for (unsigned t = 0; t < ms; t += 25) {
                run_for(w, 25);
                smolvm_mux_stats st;
                smolvm_mux_get_stats(mux, &st);
                max_buf = MAX(max_buf, st.buffered_bytes);
        }
        return max_buf;
}

/* The peer grants huge credit and never reads the channel while our servers
 * push data: the output queue stays bounded and the servers are just stuck. */
START_TEST(test_raw_never_reads)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        w->server_tx_total = 16u << 20;
        raw_open_many(r, 7000, 8);
        r->reading = false;
        raw_update(r);
        uint64_t max_buf = max_buffered_over(w, w->guest, 1000);
        /* 1 MiB high-water + one 64 KiB read + a few control packets. */
        ck_assert_uint_le(max_buf, (1u << 20) + 65536 + 100 * SMOLVM_PKT_HDR_SIZE);
        ck_assert_uint_ge(max_buf, 1u << 20); /* it did fill up to the mark */
        ck_assert_int_eq(w->n_broken[1], 0);
        for (int i = 0; i < w->n_ep; i++) {
                ck_assert_int_eq(w->ep[i]->tx_err, 0);
                ck_assert_uint_lt(w->ep[i]->tx_done, 16u << 20);
        }
        world_raw_free(w, r);
}
END_TEST

/* The peer floods CREDIT_REQUESTs (each asks for a reply) and never reads: we
 * stop reading the channel once enough replies are queued. */
START_TEST(test_raw_ctl_flood)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        raw_open_many(r, 7000, 8);
        r->reading = false;
        raw_update(r);
        for (uint32_t k = 0; k < 50000; k++)
                raw_send(r, SMOLVM_OP_CREDIT_REQUEST, 7000 + k % 8, GUEST_PORT, NULL, 0);
        uint64_t max_buf = max_buffered_over(w, w->guest, 1000);
        /* The control cap (5120 packets) + what one input buffer (128 KiB / 44)
         * can still generate; the flood itself is 2.2 MB of replies. */
        ck_assert_uint_le(max_buf, (5120 + 3000) * SMOLVM_PKT_HDR_SIZE);
        ck_assert_uint_ge(max_buf, 5120 * SMOLVM_PKT_HDR_SIZE);
        ck_assert_int_eq(w->n_broken[1], 0);
        /* Once the peer reads again, everything drains and the mux carries on. */
        r->reading = true;
        raw_update(r);
        ck_assert(wait_pkt(r, SMOLVM_OP_CREDIT_UPDATE, GUEST_PORT, 7007, 50000 / 8));
        world_raw_free(w, r);
}
END_TEST

/* REQUESTs beyond SMOLVM_MUX_MAX_STREAMS are refused with RST. */
START_TEST(test_raw_max_streams)
{
        struct rlimit rl;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < 2 * SMOLVM_MUX_MAX_STREAMS + 100) {
                rl.rlim_cur = MIN(rl.rlim_max, (rlim_t)(2 * SMOLVM_MUX_MAX_STREAMS + 200));
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur < 2 * SMOLVM_MUX_MAX_STREAMS + 100)
                return; /* not enough fds here to test this */
        raw_peer *r;
        world *w = world_raw_guest(&r);
        for (uint32_t i = 0; i < SMOLVM_MUX_MAX_STREAMS + 3; i++)
                raw_send(r, SMOLVM_OP_REQUEST, 10000 + i, GUEST_PORT, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RST, GUEST_PORT, 10000 + SMOLVM_MUX_MAX_STREAMS + 2, 1));
        ck_assert(wait_pkt(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 10000 + SMOLVM_MUX_MAX_STREAMS - 1, 1));
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RST, GUEST_PORT, 10000 + SMOLVM_MUX_MAX_STREAMS), 1);
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 10000 + SMOLVM_MUX_MAX_STREAMS), 0);
        ck_assert_uint_eq(w->n_accepts, SMOLVM_MUX_MAX_STREAMS);
        smolvm_mux_stats gs;
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_streams, SMOLVM_MUX_MAX_STREAMS);
        /* One closes (RST from the peer): room for one more. */
        raw_send(r, SMOLVM_OP_RST, 10000, GUEST_PORT, NULL, 0);
        raw_send(r, SMOLVM_OP_REQUEST, 20000, GUEST_PORT, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 20000, 1));
        world_raw_free(w, r);
}
END_TEST

/* A guest that never answers a REQUEST: the connect times out after 10 s. */
START_TEST(test_connect_timeout)
{
        raw_peer *r;
        world *w = world_raw(true, &r);
        uint64_t t0 = now_ms();
        endpoint *e = client_connect(w, GUEST_PORT, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_REQUEST, 49152, GUEST_PORT, 1));
        ck_assert(run_until(w, client_cb_called, e, 15000));
        uint64_t dt = now_ms() - t0;
        ck_assert_int_eq(e->cb_err, -ETIMEDOUT);
        ck_assert_uint_ge(dt, 9900);
        ck_assert_uint_le(dt, 12000);
        /* We told the peer, and a late RESPONSE is answered with RST, not a crash. */
        ck_assert(wait_pkt(r, SMOLVM_OP_RST, 49152, GUEST_PORT, 1));
        raw_send(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 49152, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RST, 49152, GUEST_PORT, 2));
        ck_assert_int_eq(e->n_cb, 1);
        world_raw_free(w, r);
}
END_TEST

static Suite *mux_raw_suite(void)
{
        Suite *s = suite_create("mux_raw");
        TCase *tc = tcase_create("raw");
        tcase_add_test(tc, test_raw_truncated_header);
        tcase_add_test(tc, test_raw_oversize);
        tcase_add_test(tc, test_raw_unknown_ops);
        tcase_add_test(tc, test_raw_reuse_pair);
        tcase_add_test(tc, test_raw_beyond_credit);
        tcase_add_test(tc, test_raw_never_reads);
        tcase_add_test(tc, test_raw_ctl_flood);
        tcase_add_test(tc, test_raw_max_streams);
        tcase_add_test(tc, test_raw_burst_one_write);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("timeout");
        tcase_add_test(tc, test_connect_timeout);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(mux_raw_suite());
}
