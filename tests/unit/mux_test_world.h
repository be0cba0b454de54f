/* SPDX-License-Identifier: Apache-2.0 */
/* Test fixture for the channel multiplexer suites (common/mux.c; test_mux*.c).
 *
 * Two muxes (host and guest) joined by a socketpair run in one process on one
 * evloop; "endpoints" are the far ends of the local sockets (the client on the
 * host side, the server the guest's accept hands out) and stream a
 * deterministic byte pattern that the receiver checks byte by byte.
 * mux_test_raw.h replaces one mux by hand-written packets (a hostile peer). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "check_main.h"
#include "evloop.h"
#include "mux.h"
#include "util.h"
#include "wire.h"

/* The helpers here are plain static functions, as they were in one file: each
 * suite uses only some of them. (static inline changes gcc's inlining enough
 * for -Wnonnull to misfire on raw_pkt's NULL payload of length 0.) */
#define MUX_TEST_FN static __attribute__((unused))

#define GUEST_PORT 1024u /* the agent's port; any port works */
#define CHUNK (64u * 1024u)
#define MAX_EP 1200

/* ---- byte pattern: byte at offset i of stream `seed` ---- */

MUX_TEST_FN uint64_t splitmix(uint64_t x)
{
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return x ^ (x >> 31);
}

MUX_TEST_FN void pattern_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
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

MUX_TEST_FN bool ep_tx_pending(const endpoint *e)
{
        return e->tx_err == 0 && e->tx_done < e->tx_total && (!e->tx_after_eof || e->rx_eof);
}

MUX_TEST_FN void ep_cb(void *userdata, int fd, uint32_t events);
MUX_TEST_FN void ep_close(endpoint *e);

MUX_TEST_FN void ep_update(endpoint *e)
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

MUX_TEST_FN void ep_io(endpoint *e)
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

MUX_TEST_FN void ep_cb(void *userdata, int fd, uint32_t events)
{
        ep_io(userdata);
}

MUX_TEST_FN endpoint *ep_new(world *w, int fd)
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

MUX_TEST_FN bool ep_done(const endpoint *e)
{
        return e->shut_sent && e->rx_eof;
}

MUX_TEST_FN void ep_close(endpoint *e)
{
        if (e->registered)
                ck_assert_int_eq(smolvm_evloop_del(e->w->loop, e->fd), 0);
        e->registered = false;
        e->fd = safe_close(e->fd);
}

/* Seeds: client->server data of the stream with host port p is pattern 1000+p,
 * server->client 2000+p, so both ends know what to expect. */
MUX_TEST_FN int on_accept(void *userdata, uint32_t local_port, uint32_t peer_port)
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

MUX_TEST_FN void on_hello_host(void *userdata, const uint8_t *payload, uint32_t len)
{
        world *w = userdata;
        w->n_hello[0]++;
        w->hello_len[0] = len;
        memcpy(w->hello[0], payload, MIN(len, 64u));
}

MUX_TEST_FN void on_hello_guest(void *userdata, const uint8_t *payload, uint32_t len)
{
        world *w = userdata;
        w->n_hello[1]++;
        w->hello_len[1] = len;
        memcpy(w->hello[1], payload, MIN(len, 64u));
}

MUX_TEST_FN void on_broken_host(void *userdata, int err, const char *why)
{
        world *w = userdata;
        ck_assert_ptr_nonnull(why);
        w->n_broken[0]++;
        w->broken_err[0] = err;
}

MUX_TEST_FN void on_broken_guest(void *userdata, int err, const char *why)
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

MUX_TEST_FN world *world_new(void)
{
        world *w = calloc(1, sizeof(*w));
        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(smolvm_evloop_new(&w->loop), 0);
        w->server_reading = true;
        return w;
}

/* Host and guest muxes on a socketpair. */
MUX_TEST_FN world *world_pair(void)
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

MUX_TEST_FN void world_free(world *w)
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

MUX_TEST_FN bool run_until(world *w, pred_fn pred, void *arg, unsigned timeout_ms)
{
        uint64_t end = now_ms() + timeout_ms;
        while (!pred(w, arg)) {
                if (now_ms() >= end)
                        return false;
                ck_assert_int_ge(smolvm_evloop_run_once(w->loop, 20), 0);
        }
        return true;
}

MUX_TEST_FN bool never(world *w, void *arg)
{
        return false;
}

MUX_TEST_FN void run_for(world *w, unsigned ms)
{
        (void)run_until(w, never, NULL, ms);
}

MUX_TEST_FN void connect_cb(void *userdata, int err, uint32_t local_port)
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
MUX_TEST_FN endpoint *client_connect(world *w, uint32_t port, uint64_t tx_total)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        endpoint *e = ep_new(w, sv[0]);
        e->tx_total = tx_total;
        ck_assert_int_eq(smolvm_mux_connect(w->host, port, sv[1], connect_cb, e), 0);
        return e;
}

MUX_TEST_FN bool all_done(world *w, void *arg)
{
        for (int i = 0; i < w->n_ep; i++)
                if (!ep_done(w->ep[i]))
                        return false;
        return true;
}

MUX_TEST_FN bool streams_zero(world *w, void *arg)
{
        smolvm_mux_stats hs, gs;
        smolvm_mux_get_stats(w->host, &hs);
        smolvm_mux_get_stats(w->guest, &gs);
        return hs.n_streams == 0 && gs.n_streams == 0;
}

MUX_TEST_FN bool hellos(world *w, void *arg)
{
        return w->n_hello[0] == 1 && w->n_hello[1] == 1;
}

MUX_TEST_FN endpoint *server_for(world *w, uint32_t host_port)
{
        for (int i = 0; i < w->n_ep; i++)
                if (w->ep[i]->rx_seed == 1000 + host_port && w->ep[i]->tx_seed == 2000 + host_port &&
                    w->ep[i]->n_cb == 0)
                        return w->ep[i];
        return NULL;
}

/* ---- predicates for run_until ---- */

MUX_TEST_FN bool client_cb_called(world *w, void *arg)
{
        return ((endpoint *)arg)->n_cb > 0;
}

MUX_TEST_FN bool client_eof(world *w, void *arg)
{
        endpoint *e = arg;
        return e->rx_eof || e->rx_err != 0;
}

MUX_TEST_FN bool endpoint_done(world *w, void *arg)
{
        return ep_done(arg);
}

MUX_TEST_FN bool guest_broken(world *w, void *arg)
{
        return w->n_broken[1] > 0;
}

MUX_TEST_FN bool host_broken(world *w, void *arg)
{
        return w->n_broken[0] > 0;
}

MUX_TEST_FN bool endpoint_got(world *w, void *arg)
{
        endpoint *e = arg;
        return e->rx_done >= e->rx_expect;
}
