/* SPDX-License-Identifier: Apache-2.0 */
/* Channel multiplexer (common/mux.c): two muxes on a socketpair (the fixture
 * is mux_test_world.h). Hostile raw peers: test_mux_raw.c; a local end that
 * goes away: test_mux_gone.c. New mux tests go into a test_mux_<topic>.c. */
#include "mux_test_world.h"

/* ---- tests: two muxes ---- */

START_TEST(test_hello)
{
        world *w = world_pair();
        ck_assert(run_until(w, hellos, NULL, 5000));
        ck_assert_uint_eq(w->hello_len[0], 16);
        ck_assert_uint_eq(get_le32(w->hello[0]), SMOLVM_CHAN_VERSION);
        ck_assert_uint_eq(get_le32(w->hello[0] + 8), 111);
        ck_assert_uint_eq(get_le32(w->hello[0] + 12), 222);
        ck_assert_uint_eq(w->hello_len[1], 8);
        ck_assert_uint_eq(get_le32(w->hello[1]), SMOLVM_CHAN_VERSION);
        ck_assert(!smolvm_mux_is_broken(w->host));
        world_free(w);
}
END_TEST

START_TEST(test_roundtrip)
{
        world *w = world_pair();
        const uint64_t up = 5u << 20, down = 3u << 20;
        w->server_tx_total = down;
        endpoint *c = client_connect(w, GUEST_PORT, up);
        ck_assert(run_until(w, all_done, NULL, 60000));
        ck_assert_int_eq(c->n_cb, 1);
        ck_assert_int_eq(c->cb_err, 0);
        ck_assert_uint_eq(c->cb_port, 49152);
        endpoint *s = server_for(w, c->cb_port);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(w->n_accepts, 1);
        ck_assert_uint_eq(s->rx_done, up);
        ck_assert(!s->rx_bad);
        ck_assert_uint_eq(c->rx_done, down);
        ck_assert(!c->rx_bad);
        ck_assert_int_eq(c->rx_err, 0);
        ck_assert_int_eq(s->rx_err, 0);
        /* Both directions shut: both sides free the stream without an RST. */
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        smolvm_mux_stats hs, gs;
        smolvm_mux_get_stats(w->host, &hs);
        smolvm_mux_get_stats(w->guest, &gs);
        ck_assert_uint_eq(hs.tx_bytes, up);
        ck_assert_uint_eq(gs.rx_bytes, up);
        ck_assert_uint_eq(gs.tx_bytes, down);
        ck_assert_uint_eq(hs.rx_bytes, down);
        ck_assert_uint_eq(hs.n_credit_violations + gs.n_credit_violations, 0);
        /* At most the peer's last CREDIT_UPDATE, sent before it saw our
         * SHUTDOWN and arriving after we closed (see stream_maybe_finish). */
        ck_assert_uint_le(hs.n_dropped + gs.n_dropped, 2);
        ck_assert_uint_eq(hs.buffered_bytes + gs.buffered_bytes, 0);
        ck_assert_int_eq(w->n_broken[0] + w->n_broken[1], 0);
        /* A second connect gets the next port. */
        w->server_tx_total = 10;
        endpoint *c2 = client_connect(w, GUEST_PORT, 10);
        ck_assert(run_until(w, all_done, NULL, 5000));
        ck_assert_int_eq(c2->cb_err, 0);
        ck_assert_uint_eq(c2->cb_port, 49153);
        ck_assert_uint_eq(c2->rx_done, 10);
        world_free(w);
}
END_TEST

/* Client sends and shuts its write side; the server answers only after it saw
 * EOF (request/response over a half-closed stream). */
START_TEST(test_half_close)
{
        world *w = world_pair();
        w->server_tx_total = 300000;
        w->server_tx_after_eof = true;
        endpoint *c = client_connect(w, GUEST_PORT, 1000);
        ck_assert(run_until(w, all_done, NULL, 10000));
        endpoint *s = server_for(w, c->cb_port);
        ck_assert_ptr_nonnull(s);
        ck_assert(s->rx_eof);
        ck_assert_uint_eq(s->rx_done, 1000);
        ck_assert_uint_eq(c->rx_done, 300000);
        ck_assert(!c->rx_bad && !s->rx_bad);
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

START_TEST(test_refused)
{
        world *w = world_pair();
        w->accept_err = -ECONNREFUSED;
        endpoint *c = client_connect(w, 999, 100);
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert_int_eq(c->cb_err, -ECONNREFUSED);
        ck_assert_uint_eq(w->n_accepts, 1);
        /* The mux closed its end: ours reads EOF. */
        c->reading = true;
        ep_update(c);
        ck_assert(run_until(w, client_eof, c, 5000));
        ck_assert_uint_eq(c->rx_done, 0);
        run_for(w, 50);
        ck_assert_int_eq(c->n_cb, 1);
        ck_assert(streams_zero(w, NULL));
        ck_assert_int_eq(w->n_broken[0] + w->n_broken[1], 0);
        world_free(w);
}
END_TEST

/* The guest has no accept op at all: everything is refused. */
START_TEST(test_refused_no_accept)
{
        world *w = world_new();
        int ch[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch), 0);
        ck_assert_int_eq(smolvm_mux_new(w->loop, ch[0], true, &host_ops, w, NULL, 0, &w->host), 0);
        smolvm_mux_ops ops = { .broken = on_broken_guest };
        ck_assert_int_eq(smolvm_mux_new(w->loop, ch[1], false, &ops, w, NULL, 0, &w->guest), 0);
        endpoint *c = client_connect(w, GUEST_PORT, 100);
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert_int_eq(c->cb_err, -ECONNREFUSED);
        world_free(w);
}
END_TEST

START_TEST(test_many_streams)
{
        world *w = world_pair();
        enum { N = 50 };
        const uint64_t up = 300000, down = 200000;
        w->server_tx_total = down;
        endpoint *c[N];
        for (int i = 0; i < N; i++)
                c[i] = client_connect(w, GUEST_PORT, up + (uint64_t)i);
        ck_assert(run_until(w, all_done, NULL, 60000));
        ck_assert_uint_eq(w->n_accepts, N);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(c[i]->cb_err, 0);
                ck_assert_uint_eq(c[i]->rx_done, down);
                ck_assert(!c[i]->rx_bad);
                endpoint *s = server_for(w, c[i]->cb_port);
                ck_assert_ptr_nonnull(s);
                ck_assert_uint_eq(s->rx_done, up + (uint64_t)i);
                ck_assert(!s->rx_bad);
        }
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

/* A stream from the host to a guest server that does not read (nor send):
 * connected, then the loop runs for ms while the client pushes total bytes. */
static endpoint *stalled_stream(world *w, uint64_t total, unsigned ms)
{
        w->server_reading = false;
        w->server_tx_total = 0;
        endpoint *c = client_connect(w, GUEST_PORT, total);
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert_int_eq(c->cb_err, 0);
        run_for(w, ms);
        return c;
}

/* The server of client c has read nothing: it starts reading, all of the
 * total bytes arrive intact, every stream ends; frees w. */
static void resume_stalled(world *w, endpoint *c, uint64_t total)
{
        endpoint *ss = server_for(w, c->cb_port);
        ck_assert_ptr_nonnull(ss);
        ck_assert_uint_eq(ss->rx_done, 0);
        ss->reading = true;
        ep_update(ss);
        ck_assert(run_until(w, all_done, NULL, 60000));
        ck_assert_uint_eq(ss->rx_done, total);
        ck_assert(!ss->rx_bad);
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}

/* One server never reads: its stream stalls, the other stream completes, and
 * the muxes buffer no more than one stream window (+ queue slack). Then the
 * slow reader starts and its stream completes too. */
START_TEST(test_stalled_reader)
{
        world *w = world_pair();
        endpoint *slow = stalled_stream(w, 8u << 20, 300);

        w->server_reading = true;
        w->server_tx_total = 2u << 20;
        endpoint *fast = client_connect(w, GUEST_PORT, 3u << 20);
        ck_assert(run_until(w, endpoint_done, fast, 30000));
        ck_assert_uint_eq(fast->rx_done, 2u << 20);
        ck_assert(!fast->rx_bad);
        endpoint *fs = server_for(w, fast->cb_port);
        ck_assert_ptr_nonnull(fs);
        ck_assert(run_until(w, endpoint_done, fs, 5000));
        ck_assert_uint_eq(fs->rx_done, 3u << 20);

        /* The slow stream is stuck well short of its total... */
        run_for(w, 200);
        ck_assert_uint_lt(slow->tx_done, 8u << 20);
        smolvm_mux_stats hs, gs;
        smolvm_mux_get_stats(w->host, &hs);
        smolvm_mux_get_stats(w->guest, &gs);
        /* ...and what the muxes hold for it is bounded by one window. */
        ck_assert_uint_le(gs.buffered_bytes, SMOLVM_MUX_STREAM_BUF);
        ck_assert_uint_le(hs.buffered_bytes, SMOLVM_MUX_STREAM_BUF + 4096);
        ck_assert_uint_eq(hs.n_credit_violations + gs.n_credit_violations, 0);
        ck_assert_uint_eq(gs.n_streams, 1);

        resume_stalled(w, slow, 8u << 20);
}
END_TEST

/* A guest that grants a larger receive window (as with the lane): the host
 * keeps that much in flight for a stream whose reader stalls, no more, and
 * the bytes arrive intact once it reads. The window only grows. */
START_TEST(test_rx_window)
{
        world *w = world_pair();
        const uint32_t win = 1u << 20;
        ck_assert_int_eq(smolvm_mux_set_rx_window(w->guest, SMOLVM_MUX_STREAM_BUF / 2), -EINVAL);
        ck_assert_int_eq(smolvm_mux_set_rx_window(w->guest, SMOLVM_MUX_RX_WINDOW_MAX + 1), -EINVAL);
        ck_assert_int_eq(smolvm_mux_set_rx_window(w->guest, win), 0);
        ck_assert_int_eq(smolvm_mux_set_rx_window(w->guest, win / 2), -EINVAL);
        endpoint *c = stalled_stream(w, 8u << 20, 500);
        smolvm_mux_stats hs, gs;
        smolvm_mux_get_stats(w->host, &hs);
        smolvm_mux_get_stats(w->guest, &gs);
        /* The guest's ring holds what its stalled socket did not take: more
         * than the default window allows, within the granted one. */
        ck_assert_uint_gt(gs.buffered_bytes, SMOLVM_MUX_STREAM_BUF);
        ck_assert_uint_le(gs.buffered_bytes, win);
        ck_assert_uint_eq(hs.n_credit_violations + gs.n_credit_violations, 0);
        resume_stalled(w, c, 8u << 20);
}
END_TEST

/* The guest mux goes away: the host reports broken once, resets its streams
 * (client reads EOF/reset), and refuses new connects. */
START_TEST(test_broken_on_channel_eof)
{
        world *w = world_pair();
        w->server_tx_total = 0;
        w->server_reading = false;
        endpoint *c = client_connect(w, GUEST_PORT, 1u << 20);
        ck_assert(run_until(w, client_cb_called, c, 5000));
        ck_assert_int_eq(c->cb_err, 0);
        endpoint *pending = client_connect(w, GUEST_PORT + 1, 0);
        w->accept_err = 0;
        smolvm_mux_free(w->guest);
        w->guest = NULL;
        ck_assert(run_until(w, host_broken, NULL, 5000));
        ck_assert_int_eq(w->n_broken[0], 1);
        ck_assert(smolvm_mux_is_broken(w->host));
        ck_assert(run_until(w, client_eof, c, 5000));
        /* The pending connect (if the guest had not answered yet) or the
         * established one: each callback exactly once. */
        ck_assert_int_eq(pending->n_cb, 1);
        ck_assert_int_eq(pending->cb_err, -ECONNRESET);
        ck_assert_int_eq(c->n_cb, 1);
        smolvm_mux_stats hs;
        smolvm_mux_get_stats(w->host, &hs);
        ck_assert_uint_eq(hs.n_streams, 0);
        ck_assert_uint_eq(hs.buffered_bytes, 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(smolvm_mux_connect(w->host, GUEST_PORT, sv[1], connect_cb, NULL), -ECONNRESET);
        /* sv[1] was closed by the mux. */
        char ch;
        ck_assert_int_eq(read(sv[0], &ch, 1), 0);
        safe_close(sv[0]);
        run_for(w, 50);
        ck_assert_int_eq(w->n_broken[0], 1);
        world_free(w);
}
END_TEST

/* ---- a first header (smolvm_mux_connect_first) and smolvm_mux_reset ---- */

typedef struct first_world {
        smolvm_evloop *loop;
        smolvm_mux *a, *b;
        int kept; /* our end of what b's accept returned */
        int n_cb, cb_err;
        uint32_t cb_port;
} first_world;

static int first_accept(void *userdata, uint32_t local_port, uint32_t peer_port)
{
        first_world *f = userdata;
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        f->kept = sv[0];
        return sv[1];
}

static void first_cb(void *userdata, int err, uint32_t local_port)
{
        first_world *f = userdata;
        f->n_cb++;
        f->cb_err = err;
        f->cb_port = local_port;
}

static void first_turn(first_world *f, unsigned ms)
{
        uint64_t end = now_ms() + ms;
        while (now_ms() < end)
                ck_assert_int_ge(smolvm_evloop_run_once(f->loop, 10), 0);
}

/* Read fd (non-blocking) until EOF or an error, turning the loop. */
static size_t first_read_all(first_world *f, int fd, char *buf, size_t cap, int *ret_err)
{
        size_t n = 0;
        *ret_err = 0;
        (void)fd_set_nonblock(fd, true);
        uint64_t end = now_ms() + 5000;
        while (now_ms() < end) {
                ssize_t r = read(fd, buf + n, cap - n);
                if (r == 0)
                        return n;
                if (r < 0 && errno != EAGAIN) {
                        *ret_err = errno;
                        return n;
                }
                if (r > 0)
                        n += (size_t)r;
                ck_assert_int_ge(smolvm_evloop_run_once(f->loop, 10), 0);
        }
        ck_abort_msg("no EOF within 5 s");
        return n;
}

START_TEST(test_connect_first)
{
        first_world f = { .kept = -1 };
        ck_assert_int_eq(smolvm_evloop_new(&f.loop), 0);
        int ch[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch), 0);
        smolvm_mux_ops aops = { 0 }, bops = { .accept = first_accept };
        ck_assert_int_eq(smolvm_mux_new(f.loop, ch[0], false, &aops, &f, NULL, 0, &f.a), 0);
        ck_assert_int_eq(smolvm_mux_new(f.loop, ch[1], true, &bops, &f, NULL, 0, &f.b), 0);

        /* Too long a header is refused; a good one arrives before the fd's bytes. */
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        static char big[SMOLVM_MUX_FIRST_MAX + 1];
        ck_assert_int_eq(smolvm_mux_connect_first(f.a, 1025, dup(sv[1]), big, sizeof(big), first_cb, &f), -EINVAL);
        ck_assert_int_eq(write(sv[0], "body", 4), 4);
        ck_assert_int_eq(shutdown(sv[0], SHUT_WR), 0);
        ck_assert_int_eq(smolvm_mux_connect_first(f.a, 1025, sv[1], "connect 1.2.3.4 80\n", 19, first_cb, &f), 0);
        first_turn(&f, 200);
        ck_assert_int_eq(f.n_cb, 1);
        ck_assert_int_eq(f.cb_err, 0);
        ck_assert_int_ge(f.kept, 0);
        char buf[128];
        int err;
        size_t n = first_read_all(&f, f.kept, buf, sizeof(buf), &err);
        ck_assert_int_eq(err, 0);
        ck_assert_uint_eq(n, 23);
        ck_assert(!memcmp(buf, "connect 1.2.3.4 80\nbody", 23));
        safe_close(f.kept);
        safe_close(sv[0]);

        /* smolvm_mux_reset: the peer's local end is closed at once, with no
         * half-close first; an unknown pair is -ENOENT. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(smolvm_mux_connect_first(f.a, 1025, sv[1], "x\n", 2, first_cb, &f), 0);
        first_turn(&f, 200);
        ck_assert_int_eq(f.n_cb, 2);
        ck_assert_int_eq(f.cb_err, 0);
        ck_assert_int_eq(smolvm_mux_reset(f.b, 1026, f.cb_port), -ENOENT);
        ck_assert_int_eq(smolvm_mux_reset(f.b, 1025, f.cb_port), 0);
        n = first_read_all(&f, sv[0], buf, sizeof(buf), &err);
        ck_assert_uint_eq(n, 0);
        smolvm_mux_stats as, bs;
        smolvm_mux_get_stats(f.a, &as);
        smolvm_mux_get_stats(f.b, &bs);
        ck_assert_uint_eq(as.n_streams + bs.n_streams, 0);
        safe_close(f.kept);
        safe_close(sv[0]);
        smolvm_mux_free(f.a);
        smolvm_mux_free(f.b);
        smolvm_evloop_free(f.loop);
}
END_TEST

static Suite *mux_suite(void)
{
        Suite *s = suite_create("mux");
        TCase *tc = tcase_create("pair");
        tcase_add_test(tc, test_hello);
        tcase_add_test(tc, test_roundtrip);
        tcase_add_test(tc, test_half_close);
        tcase_add_test(tc, test_refused);
        tcase_add_test(tc, test_refused_no_accept);
        tcase_add_test(tc, test_many_streams);
        tcase_add_test(tc, test_stalled_reader);
        tcase_add_test(tc, test_rx_window);
        tcase_add_test(tc, test_broken_on_channel_eof);
        tcase_add_test(tc, test_connect_first);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(mux_suite());
}
