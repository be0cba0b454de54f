/* SPDX-License-Identifier: Apache-2.0 */
/* Channel multiplexer (common/mux.c): the local end of a stream goes away
 * (closed, not half-closed), between two muxes (mux_test_world.h) and against
 * a raw peer (mux_test_raw.h). */
#include <poll.h>

#include "mux_test_raw.h"

/* The socket was closed by the mux in both directions (POLLHUP), not just shut
 * for writing (a half-close shows POLLIN|POLLRDHUP only). */
static bool fd_hup(world *w, void *arg)
{
        endpoint *e = arg;
        struct pollfd p = { .fd = e->fd, .events = 0 };
        return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

static bool server_there(world *w, void *arg)
{
        return server_for(w, ((endpoint *)arg)->cb_port) != NULL;
}

/* A client that closes its socket (or dies) while its stream is idle: the
 * server in the guest must learn that nobody is there any more (its socket is
 * closed, POLLHUP), not just see a half-close, and both muxes free the stream. */
START_TEST(test_client_gone)
{
        world *w = world_pair();
        w->server_no_shut = true; /* a command that runs on and prints nothing */
        endpoint *c = client_connect(w, GUEST_PORT, 0);
        c->no_shut = true;
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert_int_eq(c->cb_err, 0);
        ck_assert(run_until(w, server_there, c, 5000));
        endpoint *s = server_for(w, c->cb_port);
        run_for(w, 50);
        ck_assert(!fd_hup(w, s));
        ep_close(c);
        ck_assert(run_until(w, fd_hup, s, 5000));
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        ck_assert_int_eq(w->n_broken[0] + w->n_broken[1], 0);
        world_free(w);
}
END_TEST

/* A half-close stays a half-close (the server can still answer, long after
 * the client's EOF); the client dying later is still noticed. */
START_TEST(test_half_close_then_gone)
{
        world *w = world_pair();
        w->server_no_shut = true;
        w->server_tx_after_eof = true;
        w->server_tx_total = 100000;
        endpoint *c = client_connect(w, GUEST_PORT, 0); /* sends nothing, shuts at once */
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ep_io(c);
        ck_assert(run_until(w, server_there, c, 5000));
        endpoint *s = server_for(w, c->cb_port);
        ck_assert(run_until(w, client_eof, s, 5000) || s->rx_eof);
        ck_assert(s->rx_eof);
        ck_assert_int_eq(s->rx_err, 0);
        c->rx_expect = 100000;
        ck_assert(run_until(w, endpoint_got, c, 5000));
        ck_assert(!c->rx_bad);
        run_for(w, 300);
        ck_assert(!fd_hup(w, s)); /* still open for writing */
        ck_assert_int_eq(s->tx_err, 0);
        ck_assert(!c->rx_eof);
        ep_close(c);
        ck_assert(run_until(w, fd_hup, s, 5000));
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

/* What a client wrote before closing still reaches the server, then the close. */
START_TEST(test_client_gone_data_first)
{
        world *w = world_pair();
        w->server_no_shut = true;
        endpoint *c = client_connect(w, GUEST_PORT, 1u << 20);
        c->close_when_sent = true;
        c->reading = false;
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert(run_until(w, server_there, c, 5000));
        endpoint *s = server_for(w, c->cb_port);
        s->rx_expect = 1u << 20;
        ck_assert(run_until(w, endpoint_got, s, 10000));
        ck_assert_uint_eq(s->rx_done, 1u << 20);
        ck_assert(!s->rx_bad);
        ck_assert(run_until(w, fd_hup, s, 5000));
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

static bool server_tx_failed(world *w, void *arg)
{
        return ((endpoint *)arg)->tx_err != 0;
}

/* The client goes while the server does not read (an exec whose command ignores
 * its stdin): the mux cannot close the server's socket before the server took
 * what the mux holds for it, but the server's writes fail at once (EPIPE), so it
 * learns as soon as it has something to say. */
START_TEST(test_client_gone_reader_stuck)
{
        world *w = world_pair();
        w->server_no_shut = true;
        w->server_reading = false;
        endpoint *c = client_connect(w, GUEST_PORT, 1u << 20);
        c->no_shut = true;
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert(run_until(w, server_there, c, 5000));
        endpoint *s = server_for(w, c->cb_port);
        run_for(w, 300);
        ck_assert_uint_lt(c->tx_done, 1u << 20); /* stuck on the server */
        ep_close(c);
        run_for(w, 200);
        s->tx_total = 1u << 20;
        ep_update(s);
        ck_assert(run_until(w, server_tx_failed, s, 5000));
        ck_assert_int_eq(s->tx_err, EPIPE);
        /* Once it reads, it gets what was in flight, then the close. */
        s->reading = true;
        ep_update(s);
        ck_assert(run_until(w, fd_hup, s, 5000));
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

static bool server_closed(world *w, void *arg)
{
        endpoint *s = server_for(w, ((endpoint *)arg)->cb_port);
        return s && s->fd < 0;
}

/* The other direction (same code): the server writes its answer and closes
 * while the client is slow and has sent bytes the server never read. The
 * client still gets every byte (nothing is reset under it), then EOF. */
START_TEST(test_server_gone_slow_client)
{
        world *w = world_pair();
        const uint64_t down = 400000;
        w->server_reading = false;
        w->server_tx_total = down;
        w->server_close_when_sent = true;
        endpoint *c = client_connect(w, GUEST_PORT, 1000);
        c->no_shut = true;
        c->reading = false;
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert(run_until(w, server_closed, c, 10000));
        run_for(w, 300);
        c->reading = true;
        ep_update(c);
        ck_assert(run_until(w, client_eof, c, 10000));
        ck_assert_int_eq(c->rx_err, 0);
        ck_assert_uint_eq(c->rx_done, down);
        ck_assert(!c->rx_bad);
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

static size_t raw_count_flags(const raw_peer *r, uint16_t op, uint32_t src, uint32_t dst, uint32_t flags)
{
        return raw_match(r, op, src, dst, flags, NULL);
}

typedef struct flags_arg {
        raw_peer *r;
        uint32_t src, dst, flags;
} flags_arg;

static bool raw_has_flags(world *w, void *arg)
{
        flags_arg *a = arg;
        return raw_count_flags(a->r, SMOLVM_OP_SHUTDOWN, a->src, a->dst, a->flags) > 0;
}

/* SHUTDOWN with flags from raw host port hport to the guest's GUEST_PORT. */
static void raw_shutdown(raw_peer *r, uint32_t hport, uint32_t flags)
{
        smolvm_pkt_hdr h = raw_hdr(r, SMOLVM_OP_SHUTDOWN, hport, GUEST_PORT, 0);
        h.flags = flags;
        raw_pkt(r, &h, NULL);
}

/* The guest mux freed the stream of hport without resetting it; then free all. */
static void raw_end_closed(world *w, raw_peer *r, uint32_t hport)
{
        smolvm_mux_stats gs;
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(gs.n_streams, 0);
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RST, GUEST_PORT, hport), 0);
        world_raw_free(w, r);
}

/* The host's client is gone: SHUTDOWN with both flags. The guest mux closes
 * the server's socket (after what it holds for it) and answers SHUTDOWN(SEND),
 * so the host can free its side. */
START_TEST(test_raw_peer_gone)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        w->server_no_shut = true;
        endpoint *s = raw_open(r, 5000);
        s->rx_expect = 3000;
        raw_send_data(r, 5000, 0, 3000);
        raw_shutdown(r, 5000, SMOLVM_SHUTDOWN_RCV | SMOLVM_SHUTDOWN_SEND);
        ck_assert(run_until(w, endpoint_got, s, 5000));
        ck_assert(!s->rx_bad);
        ck_assert(run_until(w, fd_hup, s, 5000));
        ck_assert(wait_pkt(r, SMOLVM_OP_SHUTDOWN, GUEST_PORT, 5000, 1));
        ck_assert_uint_eq(raw_count_flags(r, SMOLVM_OP_SHUTDOWN, GUEST_PORT, 5000, SMOLVM_SHUTDOWN_SEND), 1);
        raw_end_closed(w, r, 5000);
}
END_TEST

static uint64_t raw_rw_bytes(const raw_peer *r, uint32_t src, uint32_t dst)
{
        uint64_t bytes;
        (void)raw_match(r, SMOLVM_OP_RW, src, dst, ANY_FLAGS, &bytes);
        return bytes;
}

/* The local end (the agent's handler) writes its answer and closes without
 * reading what the peer sent: its socket reports ECONNRESET after the data.
 * The peer gets all the data, then SHUTDOWN(RCV|SEND), not an RST (which
 * would drop what the peer's side still buffers for its slow reader). */
START_TEST(test_raw_local_closed_unread)
{
        raw_peer *r;
        world *w = world_raw_guest(&r);
        w->server_reading = false;
        endpoint *s = raw_open(r, 5000);
        raw_send_data(r, 5000, 0, 1000);
        run_for(w, 100); /* in the server's socket, unread */
        s->tx_total = 100000;
        s->close_when_sent = true;
        ep_update(s);
        flags_arg fa = { r, GUEST_PORT, 5000, SMOLVM_SHUTDOWN_RCV | SMOLVM_SHUTDOWN_SEND };
        ck_assert(run_until(w, raw_has_flags, &fa, 5000));
        ck_assert_uint_eq(raw_rw_bytes(r, GUEST_PORT, 5000), 100000);
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_RST, GUEST_PORT, 5000), 0);
        ck_assert_uint_eq(raw_count_flags(r, SMOLVM_OP_SHUTDOWN, GUEST_PORT, 5000,
                                          SMOLVM_SHUTDOWN_RCV | SMOLVM_SHUTDOWN_SEND), 1);
        /* RW still in flight from the peer is dropped quietly; the peer's
         * SHUTDOWN(SEND) ends the stream. */
        raw_send_data(r, 5000, 1000, 500);
        raw_shutdown(r, 5000, SMOLVM_SHUTDOWN_SEND);
        run_for(w, 100);
        raw_end_closed(w, r, 5000);
}
END_TEST

/* The host's client closes: the guest gets SHUTDOWN(RCV|SEND) at once (nothing
 * was left to relay). A guest that never answers cannot pin the stream: RST
 * after the linger time. */
START_TEST(test_gone_linger_timeout)
{
        raw_peer *r;
        world *w = world_raw(true, &r);
        endpoint *e = client_connect(w, GUEST_PORT, 0);
        e->no_shut = true;
        ck_assert(wait_pkt(r, SMOLVM_OP_REQUEST, 49152, GUEST_PORT, 1));
        raw_send(r, SMOLVM_OP_RESPONSE, GUEST_PORT, 49152, NULL, 0);
        ck_assert(run_until(w, client_cb_called, e, 5000));
        ck_assert_int_eq(e->cb_err, 0);
        run_for(w, 50);
        ck_assert_uint_eq(raw_count(r, SMOLVM_OP_SHUTDOWN, 49152, GUEST_PORT), 0);
        uint64_t t0 = now_ms();
        ep_close(e);
        flags_arg fa = { r, 49152, GUEST_PORT, SMOLVM_SHUTDOWN_RCV | SMOLVM_SHUTDOWN_SEND };
        ck_assert(run_until(w, raw_has_flags, &fa, 5000));
        ck_assert_uint_lt(now_ms() - t0, 1000);
        ck_assert_uint_eq(raw_count_flags(r, SMOLVM_OP_SHUTDOWN, 49152, GUEST_PORT,
                                          SMOLVM_SHUTDOWN_RCV | SMOLVM_SHUTDOWN_SEND), 1);
        smolvm_mux_stats hs;
        smolvm_mux_get_stats(w->host, &hs);
        ck_assert_uint_eq(hs.n_streams, 1); /* waiting for the guest's answer */
        count_arg a = { r, SMOLVM_OP_RST, 49152, GUEST_PORT, 1 };
        ck_assert(run_until(w, raw_has, &a, 15000));
        uint64_t dt = now_ms() - t0;
        ck_assert_uint_ge(dt, 9900);
        ck_assert_uint_le(dt, 12000);
        smolvm_mux_get_stats(w->host, &hs);
        ck_assert_uint_eq(hs.n_streams, 0);
        world_raw_free(w, r);
}
END_TEST

static Suite *mux_gone_suite(void)
{
        Suite *s = suite_create("mux_gone");
        TCase *tc = tcase_create("pair");
        tcase_add_test(tc, test_client_gone);
        tcase_add_test(tc, test_half_close_then_gone);
        tcase_add_test(tc, test_client_gone_data_first);
        tcase_add_test(tc, test_server_gone_slow_client);
        tcase_add_test(tc, test_client_gone_reader_stuck);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("raw");
        tcase_add_test(tc, test_raw_peer_gone);
        tcase_add_test(tc, test_raw_local_closed_unread);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("timeout");
        tcase_add_test(tc, test_gone_linger_timeout);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(mux_gone_suite());
}
