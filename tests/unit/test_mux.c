/* SPDX-License-Identifier: Apache-2.0 */
/* Channel multiplexer (common/mux.c).
 *
 * Two muxes (host and guest) joined by a socketpair run in one process on one
 * evloop; "endpoints" are the far ends of the local sockets (the client on the
 * host side, the server the guest's accept hands out) and stream a
 * deterministic byte pattern that the receiver checks byte by byte. The raw
 * tests replace one mux by hand-written packets (a hostile peer). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "check_main.h"
#include "evloop.h"
#include "mux.h"
#include "util.h"
#include "wire.h"

#define GUEST_PORT 1024u /* the agent's port; any port works */
#define CHUNK (64u * 1024u)
#define MAX_EP 1200

/* ---- byte pattern: byte at offset i of stream `seed` ---- */

static uint64_t splitmix(uint64_t x)
{
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return x ^ (x >> 31);
}

static void pattern_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                uint64_t o = off + i;
                buf[i] = (uint8_t)(splitmix(seed * 0x100000001b3ull + (o >> 3)) >> (8 * (o & 7)));
        }
}

/* ---- world ---- */

typedef struct world world;

typedef struct endpoint {
        world *w;
        int fd;
        bool registered;
        uint32_t mask;
        /* sending */
        uint64_t tx_seed, tx_total, tx_done;
        bool tx_after_eof; /* send only once the other side's EOF was read */
        bool no_shut;        /* never shut the write side (a command that goes on running) */
        bool close_when_sent; /* close the socket (both directions) once tx_total is sent */
        bool shut_sent;
        int tx_err;
        /* receiving */
        bool reading;
        uint64_t rx_seed, rx_done;
        uint64_t rx_expect; /* raw tests: bytes the raw peer sent */
        bool rx_eof;
        bool rx_bad;
        int rx_err;
        /* host clients: connect result */
        int n_cb;
        int cb_err;
        uint32_t cb_port;
} endpoint;

struct world {
        smolvm_evloop *loop;
        smolvm_mux *host, *guest;
        int n_broken[2], broken_err[2]; /* [0] host, [1] guest */
        int n_hello[2];
        uint8_t hello[2][64];
        uint32_t hello_len[2];
        /* guest accept behaviour */
        int accept_err;           /* < 0: refuse */
        uint64_t server_tx_total;
        bool server_reading;
        bool server_tx_after_eof;
        bool server_no_shut;
        bool server_close_when_sent;
        uint32_t n_accepts;
        /* accept hands the mux one end of a SOCK_SEQPACKET pair and keeps the
         * other in seq_fd (closed by the test): each write a record */
        bool accept_seqpacket;
        int seq_fd;
        endpoint *ep[MAX_EP];
        int n_ep;
};

static bool ep_tx_pending(const endpoint *e)
{
        return e->tx_err == 0 && e->tx_done < e->tx_total && (!e->tx_after_eof || e->rx_eof);
}

static void ep_cb(void *userdata, int fd, uint32_t events);
static void ep_close(endpoint *e);

static void ep_update(endpoint *e)
{
        if (e->fd < 0)
                return;
        uint32_t m = 0;
        if (e->reading && !e->rx_eof && e->rx_err == 0)
                m |= EPOLLIN;
        if (ep_tx_pending(e))
                m |= EPOLLOUT;
        if (!e->registered) {
                ck_assert_int_eq(smolvm_evloop_add(e->w->loop, e->fd, m, ep_cb, e), 0);
                e->registered = true;
        } else if (m != e->mask) {
                ck_assert_int_eq(smolvm_evloop_mod(e->w->loop, e->fd, m), 0);
        }
        e->mask = m;
}

static void ep_io(endpoint *e)
{
        static uint8_t buf[CHUNK], want[CHUNK];
        for (int i = 0; i < 8 && e->reading && !e->rx_eof && e->rx_err == 0; i++) {
                ssize_t n = read(e->fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                e->rx_err = errno;
                        break;
                }
                if (n == 0) {
                        e->rx_eof = true;
                        break;
                }
                pattern_fill(e->rx_seed, e->rx_done, want, (size_t)n);
                if (memcmp(buf, want, (size_t)n) != 0)
                        e->rx_bad = true;
                e->rx_done += (uint64_t)n;
        }
        for (int i = 0; i < 8 && ep_tx_pending(e); i++) {
                size_t n = (size_t)MIN((uint64_t)CHUNK, e->tx_total - e->tx_done);
                pattern_fill(e->tx_seed, e->tx_done, buf, n);
                ssize_t w = send(e->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                e->tx_err = errno;
                        break;
                }
                e->tx_done += (uint64_t)w;
        }
        if (e->close_when_sent && e->tx_done == e->tx_total) {
                ep_close(e);
                return;
        }
        if (!e->shut_sent && !e->no_shut && e->tx_err == 0 && e->tx_done == e->tx_total &&
            (!e->tx_after_eof || e->rx_eof)) {
                (void)shutdown(e->fd, SHUT_WR);
                e->shut_sent = true;
        }
        ep_update(e);
}

static void ep_cb(void *userdata, int fd, uint32_t events)
{
        ep_io(userdata);
}

static endpoint *ep_new(world *w, int fd)
{
        ck_assert_int_lt(w->n_ep, MAX_EP);
        endpoint *e = calloc(1, sizeof(*e));
        ck_assert_ptr_nonnull(e);
        e->w = w;
        e->fd = fd;
        e->reading = true;
        w->ep[w->n_ep++] = e;
        return e;
}

static bool ep_done(const endpoint *e)
{
        return e->shut_sent && e->rx_eof;
}

static void ep_close(endpoint *e)
{
        if (e->registered)
                ck_assert_int_eq(smolvm_evloop_del(e->w->loop, e->fd), 0);
        e->registered = false;
        e->fd = safe_close(e->fd);
}

/* Seeds: client->server data of the stream with host port p is pattern 1000+p,
 * server->client 2000+p, so both ends know what to expect. */
static int on_accept(void *userdata, uint32_t local_port, uint32_t peer_port)
{
        world *w = userdata;
        w->n_accepts++;
        if (w->accept_err < 0)
                return w->accept_err;
        int sv[2];
        if (w->accept_seqpacket) {
                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
                w->seq_fd = sv[0];
                return sv[1];
        }
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        endpoint *e = ep_new(w, sv[0]);
        e->rx_seed = 1000 + peer_port;
        e->tx_seed = 2000 + peer_port;
        e->tx_total = w->server_tx_total;
        e->tx_after_eof = w->server_tx_after_eof;
        e->no_shut = w->server_no_shut;
        e->close_when_sent = w->server_close_when_sent;
        e->reading = w->server_reading;
        e->cb_port = peer_port;
        ep_update(e);
        return sv[1];
}

static void on_hello_host(void *userdata, const uint8_t *payload, uint32_t len)
{
        world *w = userdata;
        w->n_hello[0]++;
        w->hello_len[0] = len;
        memcpy(w->hello[0], payload, MIN(len, 64u));
}

static void on_hello_guest(void *userdata, const uint8_t *payload, uint32_t len)
{
        world *w = userdata;
        w->n_hello[1]++;
        w->hello_len[1] = len;
        memcpy(w->hello[1], payload, MIN(len, 64u));
}

static void on_broken_host(void *userdata, int err, const char *why)
{
        world *w = userdata;
        ck_assert_ptr_nonnull(why);
        w->n_broken[0]++;
        w->broken_err[0] = err;
}

static void on_broken_guest(void *userdata, int err, const char *why)
{
        world *w = userdata;
        ck_assert_ptr_nonnull(why);
        w->n_broken[1]++;
        w->broken_err[1] = err;
}

static const smolvm_mux_ops host_ops = {
        .hello = on_hello_host,
        .broken = on_broken_host,
};
static const smolvm_mux_ops guest_ops = {
        .accept = on_accept,
        .hello = on_hello_guest,
        .broken = on_broken_guest,
};

static world *world_new(void)
{
        world *w = calloc(1, sizeof(*w));
        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(smolvm_evloop_new(&w->loop), 0);
        w->server_reading = true;
        return w;
}

/* Host and guest muxes on a socketpair. */
static world *world_pair(void)
{
        world *w = world_new();
        int c[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
        ck_assert_int_eq(smolvm_mux_new(w->loop, c[0], true, &host_ops, w, NULL, 0, &w->host), 0);
        uint8_t extra[8];
        put_le32(extra, 111);
        put_le32(extra + 4, 222);
        ck_assert_int_eq(smolvm_mux_new(w->loop, c[1], false, &guest_ops, w, extra, sizeof(extra), &w->guest), 0);
        return w;
}

static void world_free(world *w)
{
        smolvm_mux_free(w->host);
        smolvm_mux_free(w->guest);
        for (int i = 0; i < w->n_ep; i++) {
                ep_close(w->ep[i]);
                free(w->ep[i]);
        }
        smolvm_evloop_free(w->loop);
        free(w);
}

typedef bool (*pred_fn)(world *w, void *arg);

static bool run_until(world *w, pred_fn pred, void *arg, unsigned timeout_ms)
{
        uint64_t end = now_ms() + timeout_ms;
        while (!pred(w, arg)) {
                if (now_ms() >= end)
                        return false;
                ck_assert_int_ge(smolvm_evloop_run_once(w->loop, 20), 0);
        }
        return true;
}

static bool never(world *w, void *arg)
{
        return false;
}

static void run_for(world *w, unsigned ms)
{
        (void)run_until(w, never, NULL, ms);
}

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        endpoint *e = userdata;
        e->n_cb++;
        e->cb_err = err;
        e->cb_port = local_port;
        if (err == 0) {
                e->tx_seed = 1000 + local_port;
                e->rx_seed = 2000 + local_port;
                ep_update(e);
        }
}

/* A host-side client that connects to the guest's port and sends tx_total bytes. */
static endpoint *client_connect(world *w, uint32_t port, uint64_t tx_total)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        endpoint *e = ep_new(w, sv[0]);
        e->tx_total = tx_total;
        ck_assert_int_eq(smolvm_mux_connect(w->host, port, sv[1], connect_cb, e), 0);
        return e;
}

static bool all_done(world *w, void *arg)
{
        for (int i = 0; i < w->n_ep; i++)
                if (!ep_done(w->ep[i]))
                        return false;
        return true;
}

static bool streams_zero(world *w, void *arg)
{
        smolvm_mux_stats hs, gs;
        smolvm_mux_get_stats(w->host, &hs);
        smolvm_mux_get_stats(w->guest, &gs);
        return hs.n_streams == 0 && gs.n_streams == 0;
}

static bool hellos(world *w, void *arg)
{
        return w->n_hello[0] == 1 && w->n_hello[1] == 1;
}

static endpoint *server_for(world *w, uint32_t host_port)
{
        for (int i = 0; i < w->n_ep; i++)
                if (w->ep[i]->rx_seed == 1000 + host_port && w->ep[i]->tx_seed == 2000 + host_port &&
                    w->ep[i]->n_cb == 0)
                        return w->ep[i];
        return NULL;
}

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

static bool client_cb_called(world *w, void *arg)
{
        return ((endpoint *)arg)->n_cb > 0;
}

static bool client_eof(world *w, void *arg)
{
        endpoint *e = arg;
        return e->rx_eof || e->rx_err != 0;
}

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

static bool endpoint_done(world *w, void *arg)
{
        return ep_done(arg);
}

/* One server never reads: its stream stalls, the other stream completes, and
 * the muxes buffer no more than one stream window (+ queue slack). Then the
 * slow reader starts and its stream completes too. */
START_TEST(test_stalled_reader)
{
        world *w = world_pair();
        w->server_reading = false;
        w->server_tx_total = 0;
        endpoint *slow = client_connect(w, GUEST_PORT, 8u << 20);
        ck_assert(run_until(w, client_cb_called, slow, 5000));
        ck_assert_int_eq(slow->cb_err, 0);
        run_for(w, 300);

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

        endpoint *ss = server_for(w, slow->cb_port);
        ck_assert_ptr_nonnull(ss);
        ck_assert_uint_eq(ss->rx_done, 0);
        ss->reading = true;
        ep_update(ss);
        ck_assert(run_until(w, all_done, NULL, 60000));
        ck_assert_uint_eq(ss->rx_done, 8u << 20);
        ck_assert(!ss->rx_bad);
        ck_assert(run_until(w, streams_zero, NULL, 5000));
        world_free(w);
}
END_TEST

static bool guest_broken(world *w, void *arg)
{
        return w->n_broken[1] > 0;
}

static bool host_broken(world *w, void *arg)
{
        return w->n_broken[0] > 0;
}

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

/* ---- raw peer: the test speaks the wire protocol by hand ---- */

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

static void raw_cb(void *userdata, int fd, uint32_t events);

static void raw_update(raw_peer *r)
{
        uint32_t m = 0;
        if (r->reading && !r->eof)
                m |= EPOLLIN;
        if (r->out_off < r->out_len)
                m |= EPOLLOUT;
        ck_assert_int_eq(smolvm_evloop_mod(r->w->loop, r->fd, m), 0);
}

static void raw_cb(void *userdata, int fd, uint32_t events)
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

static raw_peer *raw_new(world *w, int fd, bool as_host)
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

static void raw_free(raw_peer *r)
{
        if (r->fd >= 0) {
                smolvm_evloop_del(r->w->loop, r->fd);
                safe_close(r->fd);
        }
        free(r->out);
        free(r);
}

static void raw_bytes(raw_peer *r, const void *data, size_t len)
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

static void raw_pkt(raw_peer *r, const smolvm_pkt_hdr *h, const void *payload)
{
        uint8_t b[SMOLVM_PKT_HDR_SIZE];
        smolvm_pkt_hdr_encode(h, b);
        raw_bytes(r, b, sizeof(b));
        if (h->len)
                raw_bytes(r, payload, h->len);
}

static smolvm_pkt_hdr raw_hdr(raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len)
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

static void raw_send(raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port, const void *payload,
                     uint32_t len)
{
        smolvm_pkt_hdr h = raw_hdr(r, op, src_port, dst_port, len);
        raw_pkt(r, &h, payload);
}

#define ANY_FLAGS UINT32_MAX

/* Received packets of op from src_port to dst_port (with exactly flags, unless
 * ANY_FLAGS): how many, and their payload bytes in *ret_bytes (may be NULL). */
static size_t raw_match(const raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t flags,
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

static size_t raw_count(const raw_peer *r, uint16_t op, uint32_t src_port, uint32_t dst_port)
{
        return raw_match(r, op, src_port, dst_port, ANY_FLAGS, NULL);
}

typedef struct count_arg {
        raw_peer *r;
        uint16_t op;
        uint32_t src, dst;
        size_t want;
} count_arg;

static bool raw_has(world *w, void *arg)
{
        count_arg *a = arg;
        return raw_count(a->r, a->op, a->src, a->dst) >= a->want;
}

static bool wait_pkt(raw_peer *r, uint16_t op, uint32_t src, uint32_t dst, size_t want)
{
        count_arg a = { r, op, src, dst, want };
        return run_until(r->w, raw_has, &a, 5000);
}

/* One mux under test (the host's if host, else the guest's), the raw peer
 * playing the other side. */
static world *world_raw(bool host, raw_peer **ret)
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

static world *world_raw_guest(raw_peer **ret)
{
        return world_raw(false, ret);
}

static void world_raw_free(world *w, raw_peer *r)
{
        raw_free(r);
        world_free(w);
}

static endpoint *find_server(world *w, uint32_t peer_port)
{
        for (int i = w->n_ep - 1; i >= 0; i--)
                if (w->ep[i]->cb_port == peer_port)
                        return w->ep[i];
        return NULL;
}

/* Opens a stream from raw host port hport to the guest's GUEST_PORT. */
static endpoint *raw_open(raw_peer *r, uint32_t hport)
{
        size_t before = raw_count(r, SMOLVM_OP_RESPONSE, GUEST_PORT, hport);
        raw_send(r, SMOLVM_OP_REQUEST, hport, GUEST_PORT, NULL, 0);
        ck_assert(wait_pkt(r, SMOLVM_OP_RESPONSE, GUEST_PORT, hport, before + 1));
        endpoint *s = find_server(r->w, hport);
        ck_assert_ptr_nonnull(s);
        return s;
}

static bool endpoint_got(world *w, void *arg)
{
        endpoint *e = arg;
        return e->rx_done >= e->rx_expect;
}

/* Send n pattern bytes of stream hport as RW packets. */
static void raw_send_data(raw_peer *r, uint32_t hport, uint64_t off, size_t n)
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
        h = raw_hdr(r, 5, 0, 0, 20);
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


/* ---- the local end of a stream goes away (closed, not half-closed) ---- */


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
        tcase_add_test(tc, test_broken_on_channel_eof);
        tcase_add_test(tc, test_client_gone);
        tcase_add_test(tc, test_half_close_then_gone);
        tcase_add_test(tc, test_client_gone_data_first);
        tcase_add_test(tc, test_server_gone_slow_client);
        tcase_add_test(tc, test_client_gone_reader_stuck);
        tcase_add_test(tc, test_connect_first);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("raw");
        tcase_add_test(tc, test_raw_truncated_header);
        tcase_add_test(tc, test_raw_oversize);
        tcase_add_test(tc, test_raw_unknown_ops);
        tcase_add_test(tc, test_raw_reuse_pair);
        tcase_add_test(tc, test_raw_beyond_credit);
        tcase_add_test(tc, test_raw_never_reads);
        tcase_add_test(tc, test_raw_ctl_flood);
        tcase_add_test(tc, test_raw_max_streams);
        tcase_add_test(tc, test_raw_peer_gone);
        tcase_add_test(tc, test_raw_local_closed_unread);
        tcase_add_test(tc, test_raw_burst_one_write);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("timeout");
        tcase_add_test(tc, test_connect_timeout);
        tcase_add_test(tc, test_gone_linger_timeout);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(mux_suite());
}
