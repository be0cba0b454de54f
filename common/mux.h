/* SPDX-License-Identifier: Apache-2.0 */
/* The channel multiplexer: relays many byte streams over one channel fd using the
 * vsock-style packets of wire.h, with per-stream credit flow control (virtio
 * "Socket Device" rules), half-close (SHUTDOWN) and reset (RST).
 *
 * Each stream is relayed to a local fd (a socket: a hybrid-vsock client on the
 * host, one end of a socketpair handed to an operation handler in the guest).
 * The same code runs on both sides of the VM boundary.
 *
 * Guarantees, because the peer may be hostile:
 *  - every packet header is validated; a length above SMOLVM_PKT_MAX_PAYLOAD
 *    breaks the channel (ops->broken), unknown ops/types are dropped;
 *  - a stream's receive buffer never exceeds the buf_alloc we advertised; a peer
 *    that sends past its credit gets that stream reset, others are unaffected;
 *  - a local fd that does not read stalls only its own stream (we stop granting
 *    credit); we read a local fd only while the peer has granted credit;
 *  - streams are bounded (SMOLVM_MUX_MAX_STREAMS); beyond it, REQUESTs get RST;
 *  - queued output to the channel is bounded: control packets are few per stream,
 *    data is bounded by credit.
 *  - a REQUEST for a (port pair) already in use resets the old stream and is refused.
 *
 * Closing (docs/protocol.md, "The channel"): a local EOF (the local end did
 * shutdown(SHUT_WR)) is a half-close, SHUTDOWN(SEND). A local end that is gone
 * (closed both directions: EPOLLHUP/EPOLLERR on a socket we did not shut for
 * writing, or a write to it failed) is a close: SHUTDOWN(RCV) at once, what it
 * wrote is still relayed, then SHUTDOWN(RCV|SEND). The peer shuts its local
 * fd for reading (its writes fail), answers SHUTDOWN(SEND), and closes the fd
 * once it has written what it holds for it; both sides then free the stream
 * (we reset it if no answer comes within 10 s). So a dead host client reaches
 * the guest as a closed socket, never as a mere half-close.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "evloop.h"

#define SMOLVM_MUX_MAX_STREAMS 1024u
/* Receive buffer we advertise per stream (buf_alloc), unless
 * smolvm_mux_set_rx_window() set another. */
#define SMOLVM_MUX_STREAM_BUF (256u * 1024u)
#define SMOLVM_MUX_RX_WINDOW_MAX (4u << 20)

typedef struct smolvm_mux smolvm_mux;

typedef struct smolvm_mux_ops {
        /* The peer asks to connect to our port local_port. Return a connected fd
         * (ownership passes to the mux, which makes it non-blocking and relays it)
         * or a negative errno to refuse (the peer gets RST). May be NULL: refuse all. */
        int (*accept)(void *userdata, uint32_t local_port, uint32_t peer_port);
        /* The peer sent HELLO (for the host: the guest agent is ready). payload is the
         * HELLO payload (len >= 8 validated; version = le32 at 0). May be NULL. */
        void (*hello)(void *userdata, const uint8_t *payload, uint32_t len);
        /* The channel is unusable (EOF, I/O error, framing violation): every stream
         * has been reset and their fds closed. why is a short static description. */
        void (*broken)(void *userdata, int err, const char *why);
        /* The channel broke, called just before its streams are reset (so that
         * whoever holds a stream's other end can tell a reset from its peer
         * closing it: the guest's FUSE relays across a snapshot restore). May be
         * NULL. No mux call may be made from it. */
        void (*resetting)(void *userdata);
        /* A channel-control packet other than HELLO (wire.h: the restore's IDENTITY
         * and its ACK), op and payload as received, unvalidated beyond the header.
         * May be NULL: dropped. */
        void (*control)(void *userdata, uint16_t op, const uint8_t *payload, uint32_t len);
        /* Host: the guest asks for a lane (smolvm_mux_lane_request()); answer
         * with smolvm_mux_lane_start() or not at all. May be NULL. */
        void (*lane_req)(void *userdata, uint64_t epoch, uint32_t window);
} smolvm_mux_ops;

/* Create a mux on chan_fd (made non-blocking; ownership passes to the mux even on
 * failure). is_host selects our CID and the port range for outgoing streams.
 * Sends HELLO at once with hello_extra (may be NULL/0, at most 56 bytes) after
 * version and flags. Returns 0 or negative errno. */
int smolvm_mux_new(smolvm_evloop *loop, int chan_fd, bool is_host, const smolvm_mux_ops *ops,
                   void *userdata, const void *hello_extra, size_t hello_extra_len, smolvm_mux **ret);
/* Queue a channel-control packet (SMOLVM_PKT_TYPE_CHANNEL, op, len <=
 * SMOLVM_PKT_MAX_PAYLOAD bytes of payload, copied) after what is queued.
 * Returns 0, -EINVAL, -ECONNRESET (channel broken) or -ENOMEM. */
int smolvm_mux_send_control(smolvm_mux *mux, uint16_t op, const void *payload, uint32_t len);
/* Resets all streams (best effort), closes their fds and the channel fd. Accepts NULL.
 * Pending connects get their callback with -ECONNRESET (the "exactly once" rule).
 * May be called from any mux callback: the free is then deferred until the mux
 * returns to the loop, and no further callback runs. */
void smolvm_mux_free(smolvm_mux *mux);

/* Called once when a smolvm_mux_connect() completes. err is 0 (local_port is the
 * port we allocated) or negative errno: -ECONNREFUSED (peer RST), -ETIMEDOUT,
 * -ECONNRESET (channel broke, protocol violation, or smolvm_mux_free()). Never
 * called from inside smolvm_mux_connect() itself. On success the callback
 * runs before any byte is relayed to fd, so it may write a preamble to fd
 * ("OK <port>\n"). On failure the mux closes fd right after the callback. */
typedef void (*smolvm_mux_connect_cb)(void *userdata, int err, uint32_t local_port);

/* Open a stream to the peer's port peer_port and relay fd over it once the peer
 * accepts. Ownership of fd passes to the mux. Returns 0 (cb will be called
 * later, exactly once) or negative errno (cb not called, fd closed): -EMFILE
 * (SMOLVM_MUX_MAX_STREAMS in use), -ECONNRESET (channel broken), -EINVAL,
 * -ENOMEM. The fd is not read before the callback; it is made non-blocking
 * after a successful callback returns. */
int smolvm_mux_connect(smolvm_mux *mux, uint32_t peer_port, int fd, smolvm_mux_connect_cb cb, void *userdata);

/* Like smolvm_mux_connect(), but once the peer accepts, first_len bytes of first
 * (copied; 1..SMOLVM_MUX_FIRST_MAX) are sent on the stream before anything read
 * from fd: a header the accepting side reads before the relayed bytes (the
 * guest's egress proxy names the destination this way, docs/protocol.md).
 * -EINVAL for a bad length; otherwise as smolvm_mux_connect(). */
#define SMOLVM_MUX_FIRST_MAX 1024u
int smolvm_mux_connect_first(smolvm_mux *mux, uint32_t peer_port, int fd, const void *first, size_t first_len,
                             smolvm_mux_connect_cb cb, void *userdata);

/* Reset the stream (local_port, peer_port) at once: the peer gets RST (its
 * local end is closed without the usual half-close, e.g. a refused egress
 * connection shows its program a reset, not an empty answer), our fd is
 * closed. Returns 0 or -ENOENT (no such stream). */
int smolvm_mux_reset(smolvm_mux *mux, uint32_t local_port, uint32_t peer_port);

/* Counters for tests, diagnostics and benchmarks. */
typedef struct smolvm_mux_stats {
        uint32_t n_streams;
        uint64_t rx_bytes;        /* payload bytes received from the channel */
        uint64_t tx_bytes;        /* payload bytes sent on the channel */
        uint64_t n_dropped;       /* packets dropped: unknown op/type, no such stream */
        uint64_t n_credit_violations;
        uint64_t buffered_bytes;  /* all stream receive buffers + channel output queue */
} smolvm_mux_stats;
/* The receive window (buf_alloc) granted to streams created from now on:
 * SMOLVM_MUX_STREAM_BUF .. SMOLVM_MUX_RX_WINDOW_MAX bytes, never smaller than
 * before (-EINVAL). Each such stream may hold up to that much for a local fd
 * that does not read. The guest grants more once the host's bytes ride the
 * lane (guest-init/lane.c): the sender then waits less for credit, and the
 * receiver writes its local fd in larger pieces (a quarter of the window). */
int smolvm_mux_set_rx_window(smolvm_mux *mux, uint32_t bytes);
void smolvm_mux_get_stats(const smolvm_mux *mux, smolvm_mux_stats *ret);
bool smolvm_mux_is_broken(const smolvm_mux *mux);

/* The lane (common/lane.h, docs/protocol.md "The lane"): once switched, every
 * byte the host sends to the guest goes over a second device, in order, and
 * nothing more on the channel fd; the guest's bytes stay on the channel. */
typedef struct smolvm_mux_lane {
        /* Host: take what can go now of iov[0..n): bytes taken (> 0), -EAGAIN when
         * nothing can (then call smolvm_mux_lane_kick() once it can), or another
         * negative errno (the channel breaks). */
        ssize_t (*send)(void *userdata, const struct iovec *iov, int n);
        /* Guest: channel bytes from the lane into buf (cap is at least
         * SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD): bytes, -EAGAIN, or another
         * negative errno (the channel breaks). */
        ssize_t (*recv)(void *userdata, uint8_t *buf, size_t cap);
        int fd; /* guest: watched for EPOLLIN by the mux (not owned); host: -1 */
        void *userdata;
} smolvm_mux_lane;

/* Guest: ask the host for a lane of this epoch and window (LANE_REQ). On the
 * host's LANE_ON for this epoch the mux reads the lane instead of the channel
 * fd; a LANE_ON for another epoch, or bytes on the channel fd after it, break
 * the channel. lane is copied and must stay usable until the mux is freed.
 * Returns 0, -EALREADY (asked before), -ECONNRESET (broken), -ENOMEM. */
int smolvm_mux_lane_request(smolvm_mux *mux, uint64_t epoch, uint32_t window, const smolvm_mux_lane *lane);
/* Host: queue LANE_ON(epoch) on the channel fd; everything queued after it goes
 * through lane->send. Returns 0, -EALREADY, -ECONNRESET, -ENOMEM. */
int smolvm_mux_lane_start(smolvm_mux *mux, uint64_t epoch, const smolvm_mux_lane *lane);
/* The lane can move bytes again (host: its window opened; guest: frames came):
 * flush or read now. */
void smolvm_mux_lane_kick(smolvm_mux *mux);
/* Whether our bytes (host) or the peer's (guest) ride the lane now. */
bool smolvm_mux_lane_active(const smolvm_mux *mux);
