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
 *   outcome).
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent_proto.h"
#include "evloop.h"
#include "mux_i.h"
#include "util.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Noreturn void check_failed(int line, const char *what)
{
        fprintf(stderr, "fuzz_mux: invariant failed at line %d: %s\n", line, what);
        abort();
}
#define CHECK(c) ((c) ? (void)0 : check_failed(__LINE__, #c))

#define MAX_EP 128u      /* far ends of local streams we drive */
#define EP_ACCEPT_MAX 96u /* accepted streams beyond this share one socket */
#define MAX_PAIRS 32u
#define PEER_BUDGET (4u << 20)                /* bytes the peer writes per input, at most */
#define FLOOD_MAX 6000u
#define PIN_SIZE (2u * (SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD))

/* Control packets queued: MUX_CTL_MAX stops reading the channel, but a read
 * already under way finishes its buffer (each input packet answers at most one
 * control packet); a forced read (EPOLLHUP) does up to MUX_CHAN_READS_PER_WAKE.
 * Local events add a few per stream: SHUTDOWN at EOF, an RST, CREDIT_UPDATEs as
 * the local side drains what the ring (one buffer per stream) holds. */
#define CTL_SLACK_STREAMS (4u * SMOLVM_MUX_MAX_STREAMS + 1u)
#define CTL_BOUND_OPEN (MUX_CTL_MAX + MUX_INBUF_SIZE / SMOLVM_PKT_HDR_SIZE + CTL_SLACK_STREAMS)
#define CTL_BOUND_HUP (MUX_CTL_MAX + MUX_CHAN_READS_PER_WAKE * (MUX_INBUF_SIZE / SMOLVM_PKT_HDR_SIZE) + \
                       CTL_SLACK_STREAMS)
/* Data packets: local fds are not read once MUX_OUTQ_HIGH bytes are queued. */
#define DATA_BOUND (MUX_OUTQ_HIGH + SMOLVM_PKT_HDR_SIZE + MUX_READ_CHUNK)

typedef struct ep {
        int fd;          /* our (far) end; -1 once closed */
        bool connecting; /* smolvm_mux_connect() returned 0: its callback is owed */
        int n_cb;
} ep;

typedef struct pair {
        uint32_t peer_port, mux_port;
        uint32_t rx_bytes; /* RW payload the mux sent on this pair (our honest fwd_cnt) */
} pair;

typedef struct input {
        const uint8_t *p;
        size_t n;
} input;

static struct world {
        smolvm_evloop *loop;
        smolvm_mux *mux; /* NULL once freed (from a callback or at the end) */
        int peer;
        bool is_host;
        uint64_t peer_cid, mux_cid;
        bool auto_drain;
        unsigned accept_mode;
        bool free_in_broken;
        bool freed_in_cb;
        int n_broken, broken_err;
        bool peer_shut, peer_closed;
        bool aligned;          /* everything the peer wrote was whole packets */
        bool oversize_aligned; /* ... and then an oversized header went out whole */
        size_t budget;
        ep eps[MAX_EP];
        int sink[2]; /* the socket streams beyond EP_ACCEPT_MAX get dups of */
        unsigned n_ep;
        pair pairs[MAX_PAIRS];
        unsigned n_pairs, next_pair;
        uint8_t pin[PIN_SIZE]; /* what the mux sent, not yet parsed */
        size_t pin_len;
        uint64_t n_pkts_seen;
} w;

static uint8_t scratch[FLOOD_MAX * (SMOLVM_PKT_HDR_SIZE + 64u) + SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD];

/* ---- input ---- */

static uint8_t u8(input *in)
{
        if (in->n == 0)
                return 0;
        in->n--;
        return *in->p++;
}

static uint16_t u16(input *in)
{
        uint16_t lo = u8(in);
        return (uint16_t)(lo | (u8(in) << 8));
}

static uint32_t u32(input *in)
{
        uint32_t lo = u16(in);
        return lo | ((uint32_t)u16(in) << 16);
}

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

static void pattern(uint8_t *b, size_t n, uint32_t seed)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(seed + i * 131u);
}

static void check(void);
static size_t peer_drain(void);

/* Up to n loop turns, none waiting. Returns how many watches ran. */
static int turn(int n)
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

static void pair_add(uint32_t peer_port, uint32_t mux_port)
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

static pair *pair_find(uint32_t peer_port, uint32_t mux_port)
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
static size_t peer_drain(void)
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
static bool peer_write(const uint8_t *b, size_t len)
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

static void peer_send(const uint8_t *b, size_t len, bool whole_packets)
{
        bool all = peer_write(b, len);
        if (!all || !whole_packets)
                w.aligned = false;
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

static int do_connect(uint32_t port)
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

static void check(void)
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
                CHECK(s->rx_len <= SMOLVM_MUX_STREAM_BUF && (s->rx_len == 0 || s->rx));
                CHECK((uint32_t)(s->rx_cnt - s->adv_fwd_cnt) <= SMOLVM_MUX_STREAM_BUF);
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

static void run_op(input *in)
{
        uint8_t op = u8(in);
        smolvm_pkt_hdr h;
        switch (op % 20) {
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
