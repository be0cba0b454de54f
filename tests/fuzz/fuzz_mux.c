/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the channel multiplexer (common/mux.c, mux_stream.c,
 * wire.c) facing a hostile peer, with local stream activity mixed in.
 *
 * Each input is a small program run against a fresh mux on one end of a
 * socketpair. The fuzzer plays the peer on the other end and owns the far ends
 * of the mux's local stream sockets. Byte 0 configures the run (host or guest
 * side, the supervisor's refuse-all accept, whether the peer reads what the mux
 * sends, how accept behaves, a free from inside a callback); then each op is
 * one byte plus its arguments:
 *
 *   raw bytes | a well-formed packet (any op, type, CID, port pair, credit
 *   fields, flags, payload length) | a flood of one packet (up to 6000 times,
 *   ports or fwd_cnt stepping: REQUEST storms, CREDIT_REQUEST floods; or up to
 *   64 full-size RW: data past the credit) | a header
 *   with len above the maximum | HELLO | local connect / write / read /
 *   shutdown / close | loop turns | drain the mux's output, or stop reading it
 *   (back-pressure) | answer the mux's REQUESTs | EOF or close from the peer |
 *   connect and linger timeouts (forced through the timerfd: no clock in the
 *   outcome) | a larger receive window for new streams (any value: only
 *   growing ones within SMOLVM_MUX_RX_WINDOW_MAX are taken).
 *
 * Checked after every op against the mux's private state (mux_i.h): the stream
 * table (count, hash, list), every receive ring within the credit we granted,
 * the output queue within the bounds mux.c documents (data: MUX_OUTQ_HIGH plus
 * one packet; control: MUX_CTL_MAX plus what one read of the channel can
 * answer; orphan RSTs: MUX_ORPHAN_RST_MAX), no partial packet beyond one frame
 * in the input buffer. Every packet the mux sends must be well-formed (HELLO
 * first). broken is reported once and is sticky: no streams, no queue, connect
 * refused. Connect callbacks run exactly once. A header with an oversized len
 * on an aligned stream, and EOF from the peer, must break the channel. No fd
 * and (LeakSanitizer) no memory survives an input.
 *
 *   fuzz_mux -max_len=4096 tests/fuzz/corpus/fuzz_mux */
#include "fuzz_mux.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

_Noreturn void check_failed(const char *file, int line, const char *what)
{
        fprintf(stderr, "fuzz_mux: invariant failed at %s:%d: %s\n", file, line, what);
        abort();
}

struct world w;

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                abort();
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n - 1; /* the directory's own fd */
}


/* Up to n loop turns, none waiting. Returns how many watches ran. */
int turn(int n)
{
        int total = 0;
        for (int i = 0; i < n; i++) {
                /* First: room in the channel is what a blocked mux waits for. */
                size_t drained = w.auto_drain ? peer_drain() : 0;
                int r = smolvm_evloop_run_once(w.loop, 0);
                CHECK(r >= 0);
                check();
                if (r == 0 && drained == 0)
                        break;
                total += r + (drained > 0);
        }
        return total;
}

/* ---- the peer's side of the channel ---- */

void pair_add(uint32_t peer_port, uint32_t mux_port)
{
        for (unsigned i = 0; i < w.n_pairs; i++)
                if (w.pairs[i].peer_port == peer_port && w.pairs[i].mux_port == mux_port) {
                        w.pairs[i].rx_bytes = 0;
                        return;
                }
        pair *p = &w.pairs[w.next_pair];
        w.next_pair = (w.next_pair + 1) % MAX_PAIRS;
        if (w.n_pairs < MAX_PAIRS)
                w.n_pairs++;
        *p = (pair){ peer_port, mux_port, 0 };
}

pair *pair_find(uint32_t peer_port, uint32_t mux_port)
{
        for (unsigned i = 0; i < w.n_pairs; i++)
                if (w.pairs[i].peer_port == peer_port && w.pairs[i].mux_port == mux_port)
                        return &w.pairs[i];
        return NULL;
}

/* One packet the mux sent: it must be well-formed. */
static void peer_saw(const smolvm_pkt_hdr *h, int decoded)
{
        CHECK(decoded == 0);
        CHECK(h->src_cid == w.mux_cid && h->dst_cid == w.peer_cid);
        if (w.n_pkts_seen++ == 0)
                CHECK(h->type == SMOLVM_PKT_TYPE_CHANNEL && h->op == SMOLVM_CHAN_OP_HELLO);
        if (h->type == SMOLVM_PKT_TYPE_CHANNEL) {
                CHECK(h->len >= 8 && h->len <= 8 + MUX_HELLO_EXTRA_MAX);
                return;
        }
        CHECK(h->type == SMOLVM_PKT_TYPE_STREAM);
        if (h->op == SMOLVM_OP_RW)
                CHECK(h->len > 0 && h->len <= MUX_READ_CHUNK);
        else
                CHECK(h->len == 0);
        if (h->op == SMOLVM_OP_REQUEST)
                pair_add(h->dst_port, h->src_port);
        pair *p = pair_find(h->dst_port, h->src_port);
        if (p && h->op == SMOLVM_OP_RW)
                p->rx_bytes += h->len;
}

/* Read and check what the mux sent. Returns the bytes read. */
size_t peer_drain(void)
{
        size_t total = 0;
        for (int iter = 0; w.peer >= 0 && iter < 64; iter++) {
                ssize_t n = read(w.peer, w.pin + w.pin_len, sizeof(w.pin) - w.pin_len);
                if (n <= 0)
                        break;
                total += (size_t)n;
                w.pin_len += (size_t)n;
                size_t off = 0;
                while (w.pin_len - off >= SMOLVM_PKT_HDR_SIZE) {
                        smolvm_pkt_hdr h;
                        int d = smolvm_pkt_hdr_decode(w.pin + off, &h);
                        CHECK(d != -EMSGSIZE);
                        if (w.pin_len - off - SMOLVM_PKT_HDR_SIZE < h.len)
                                break;
                        peer_saw(&h, d);
                        off += SMOLVM_PKT_HDR_SIZE + h.len;
                }
                memmove(w.pin, w.pin + off, w.pin_len - off);
                w.pin_len -= off;
        }
        return total;
}

/* Write to the mux, turning the loop while the socket is full; what the mux
 * does not take (it stopped reading: back-pressure) is dropped. Returns whether
 * everything went out. */
bool peer_write(const uint8_t *b, size_t len)
{
        if (w.peer < 0 || w.peer_shut)
                return false;
        bool whole = len <= w.budget;
        len = MIN(len, w.budget);
        size_t off = 0;
        int stuck = 0;
        for (int tries = 0; off < len && tries < 4096; tries++) {
                ssize_t n = send(w.peer, b + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                        off += (size_t)n;
                        stuck = 0;
                        continue;
                }
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        break;
                if (turn(8) == 0 && ++stuck > 2)
                        break;
        }
        w.budget -= off;
        return whole && off == len;
}

void peer_send(const uint8_t *b, size_t len, bool whole_packets)
{
        bool all = peer_write(b, len);
        if (!all || !whole_packets)
                w.aligned = false;
}

/* ---- mux callbacks ---- */

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        ep *e = &w.eps[(uintptr_t)userdata];
        CHECK(e->connecting);
        e->n_cb++;
        CHECK(e->n_cb == 1);
        CHECK(err <= 0);
        CHECK(err < 0 || local_port >= MUX_PORT_FIRST);
}

static int new_ep(int fd)
{
        if (w.n_ep >= MAX_EP)
                return -1;
        w.eps[w.n_ep] = (ep){ .fd = fd };
        return (int)w.n_ep++;
}

static void mux_free_now(void)
{
        smolvm_mux *m = w.mux;
        w.mux = NULL;
        smolvm_mux_free(m);
}

int do_connect(uint32_t port)
{
        if (!w.mux)
                return -ECONNRESET;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                return -errno;
        int i = new_ep(sv[0]);
        if (i < 0) {
                safe_close(sv[0]);
                safe_close(sv[1]);
                return -ENOSPC;
        }
        bool broken = smolvm_mux_is_broken(w.mux);
        int r = smolvm_mux_connect(w.mux, port, sv[1], connect_cb, (void *)(uintptr_t)i);
        if (r == 0)
                w.eps[i].connecting = true;
        else
                CHECK(r == -ECONNRESET || r == -EMFILE || r == -ENOMEM);
        if (broken)
                CHECK(r == -ECONNRESET); /* sticky */
        return r;
}

static int on_accept(void *userdata, uint32_t local_port, uint32_t peer_port)
{
        CHECK(w.mux && !smolvm_mux_is_broken(w.mux));
        if (w.accept_mode == 1)
                return -ECONNREFUSED;
        if (w.n_ep >= EP_ACCEPT_MAX && w.accept_mode != 4) {
                /* A REQUEST storm on its way to the 1024-stream limit: dups of one
                 * socket cost a syscall where a socketpair each would dominate the
                 * run. Nothing drives them locally. */
                if (w.sink[0] < 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, w.sink) < 0)
                        return -errno;
                int fd = fcntl(w.sink[1], F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? -errno : fd;
        }
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                return -errno;
        switch (w.accept_mode) {
        case 2: /* the local side is gone at once: writes to it fail */
                safe_close(sv[0]);
                break;
        case 3: /* re-entrant: open a stream from inside accept */
                if (new_ep(sv[0]) < 0)
                        safe_close(sv[0]);
                (void)do_connect(peer_port);
                break;
        case 4: /* free the mux from inside accept: the fd we return must be closed */
                if (new_ep(sv[0]) < 0)
                        safe_close(sv[0]);
                w.freed_in_cb = true;
                mux_free_now();
                break;
        default:
                if (new_ep(sv[0]) < 0)
                        safe_close(sv[0]);
                break;
        }
        return sv[1];
}

static void on_hello(void *userdata, const uint8_t *payload, uint32_t len)
{
        CHECK(len >= 8 && len <= SMOLVM_PKT_MAX_PAYLOAD);
        volatile uint8_t sum = 0;
        for (uint32_t i = 0; i < len; i++)
                sum += payload[i]; /* the whole payload must be readable */
        (void)sum;
}

static void on_broken(void *userdata, int err, const char *why)
{
        CHECK(why && *why);
        CHECK(err < 0);
        w.n_broken++;
        CHECK(w.n_broken == 1);
        w.broken_err = err;
        if (w.free_in_broken && w.mux) {
                w.freed_in_cb = true;
                mux_free_now();
        }
}

static const smolvm_mux_ops ops_accept = { .accept = on_accept, .hello = on_hello, .broken = on_broken };
static const smolvm_mux_ops ops_refuse = { .accept = NULL, .hello = on_hello, .broken = on_broken };

/* ---- invariants ---- */

void check(void)
{
        for (unsigned i = 0; i < w.n_ep; i++)
                CHECK(w.eps[i].n_cb <= 1);
        smolvm_mux *m = w.mux;
        if (!m)
                return;
        CHECK(m->depth == 0 && !m->dead_streams && !m->free_requested);
        if (w.n_broken)
                CHECK(m->broken && smolvm_mux_is_broken(m));
        CHECK(m->n_streams <= SMOLVM_MUX_MAX_STREAMS);
        uint32_t n = 0;
        size_t rx = 0;
        for (stream *s = m->streams; s; s = s->next) {
                n++;
                CHECK(n <= m->n_streams);
                CHECK(!s->dead && s->mux == m);
                CHECK(stream_lookup(m, s->local_port, s->peer_port) == s);
                CHECK(!s->next || s->next->prev == s);
                CHECK(s->rx_window >= SMOLVM_MUX_STREAM_BUF && s->rx_window <= m->rx_window);
                CHECK(s->rx_len <= s->rx_window && (s->rx_len == 0 || s->rx));
                CHECK((uint32_t)(s->rx_cnt - s->adv_fwd_cnt) <= s->rx_window);
                CHECK(s->state == ST_ESTABLISHED || (s->cb && !s->watched));
                CHECK(s->fd >= 0);
                rx += s->rx_len;
        }
        CHECK(n == m->n_streams);
        CHECK(rx == m->rx_buffered);

        size_t bytes = 0, ctl = 0, ctl_bytes = 0, orphans = 0;
        for (pkt *p = m->outq_head; p; p = p->next) {
                CHECK(p->size >= SMOLVM_PKT_HDR_SIZE && p->size <= SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD);
                bytes += p->size;
                if (p->ctl) {
                        ctl++;
                        ctl_bytes += p->size;
                }
                orphans += p->orphan;
                CHECK(p->next || p == m->outq_tail);
        }
        CHECK(bytes == m->outq_bytes && ctl == m->outq_ctl && orphans == m->n_orphan_rst);
        CHECK(m->n_orphan_rst <= MUX_ORPHAN_RST_MAX);
        CHECK(m->outq_ctl <= (w.peer_closed ? CTL_BOUND_HUP : CTL_BOUND_OPEN));
        CHECK(bytes - ctl_bytes <= DATA_BOUND);
        CHECK(m->in_len < SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD);

        smolvm_mux_stats st;
        smolvm_mux_get_stats(m, &st);
        CHECK(st.n_streams == m->n_streams);
        CHECK(st.buffered_bytes == rx + bytes);

        if (m->broken) {
                CHECK(m->n_streams == 0 && !m->outq_head && m->in_len == 0 && m->rx_buffered == 0);
                CHECK(w.n_broken == 1 || !m->ops.broken);
        }
}

/* ---- one input ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        /* A REQUEST storm opens up to 1024 streams, an fd each. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        int fd_baseline = count_fds(); /* per input: libFuzzer's own fds come and go */
        input in = { data, size };
        uint8_t cfg = u8(&in);
        memset(&w, 0, sizeof(w));
        w.peer = -1;
        w.sink[0] = w.sink[1] = -1;
        w.is_host = cfg & 1u;
        w.mux_cid = w.is_host ? SMOLVM_CID_HOST : SMOLVM_CID_GUEST;
        w.peer_cid = w.is_host ? SMOLVM_CID_GUEST : SMOLVM_CID_HOST;
        w.auto_drain = !(cfg & 4u);
        w.accept_mode = (cfg >> 3) % 5u;
        w.free_in_broken = cfg & 0x80u;
        w.aligned = true;
        w.budget = PEER_BUDGET;
        /* The supervisor (host side) refuses every stream the guest opens. */
        const smolvm_mux_ops *ops = w.is_host && (cfg & 2u) ? &ops_refuse : &ops_accept;

        int c[2];
        CHECK(smolvm_evloop_new(&w.loop) == 0);
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c) == 0);
        w.peer = c[0];
        CHECK(fcntl(w.peer, F_SETFL, O_NONBLOCK) == 0);
        uint8_t extra[16] = { 0 };
        size_t extra_len = (cfg & 0x40u) ? sizeof(extra) : 0;
        CHECK(smolvm_mux_new(w.loop, c[1], w.is_host, ops, NULL, extra, extra_len, &w.mux) == 0);
        check();

        while (in.n > 0)
                run_op(&in);

        /* Settle: the peer reads again, the loop runs until quiet. */
        w.auto_drain = true;
        for (int i = 0; i < 64 && turn(16) > 0; i++)
                ;
        if (w.mux && !w.freed_in_cb) {
                if (w.oversize_aligned || w.peer_shut)
                        CHECK(smolvm_mux_is_broken(w.mux));
                /* Earlier: the peer went away, or an unasked LANE_ON (a guest's mux only). */
                if (w.n_broken && w.oversize_aligned && w.broken_err != -EMSGSIZE)
                        CHECK(w.broken_err == -ECONNRESET || w.broken_err == -EPIPE ||
                              (!w.is_host && w.broken_err == -EPROTO));
        }
        if (w.mux)
                mux_free_now();
        for (unsigned i = 0; i < w.n_ep; i++) {
                CHECK(!w.eps[i].connecting || w.eps[i].n_cb == 1);
                safe_close(w.eps[i].fd);
        }
        safe_close(w.peer);
        safe_close(w.sink[0]);
        safe_close(w.sink[1]);
        smolvm_evloop_free(w.loop);
        CHECK(count_fds() == fd_baseline);
        return 0;
}
