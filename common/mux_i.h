/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the channel multiplexer, shared by its parts:
 *   mux.c        the channel: output queue, packet encoding, packet dispatch,
 *                connect timeouts, HELLO, the public API;
 *   mux_chan.c   the channel's I/O: writing the output queue, reading and
 *                parsing the channel, breaking it;
 *   mux_stream.c one stream's life: creation, credit, relay between its local
 *                fd and the channel;
 *   mux_lane.c   the switch of the host -> guest direction to the lane.
 * Not for users: mux.h is the public contract; the data paths, bounds and
 * re-entrancy rules are described at the top of mux.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mux.h"
#include "wire.h"

#define MUX_READ_CHUNK (64u * 1024u)
/* The channel is read until this much is buffered (or it is drained) before
 * the packets are parsed: a virtio-serial port returns one 4 KiB buffer per
 * read, and a parsed batch lets many RW packets of one stream leave in one
 * writev (mux.c, chan_read). */
#define MUX_READ_BATCH (256u * 1024u)
#define MUX_INBUF_SIZE (SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD + MUX_READ_BATCH)
/* A stream's pending payload is written once it reaches a quarter of its
 * receive window (mux_stream.c): data waiting in our batch is data the peer's
 * credit cannot see consumed, and a batch as large as the window stalls the
 * sender for a round trip (measured: 0.42x of slirp instead of 0.75x with a
 * 256 KiB batch for a 256 KiB window). */
#define MUX_OUTQ_HIGH (1024u * 1024u)
#define MUX_OUTQ_LOW (256u * 1024u)
#define MUX_CTL_MAX (4u * SMOLVM_MUX_MAX_STREAMS + 1024u)
#define MUX_ORPHAN_RST_MAX 256u
#define MUX_CONNECT_TIMEOUT_MS 10000u
/* After we sent SHUTDOWN(RCV|SEND) for a local end that is gone, how long we
 * wait for the peer's SHUTDOWN(SEND) (or RST) before we reset the stream. */
#define MUX_LINGER_MS 10000u
#define MUX_HASH_SIZE 2048u /* power of two, > 2 * SMOLVM_MUX_MAX_STREAMS */
#define MUX_PORT_FIRST 49152u
#define MUX_IOV_MAX 64
#define MUX_CHAN_READS_PER_WAKE 128 /* 512 KiB from a virtio-serial port */
#define MUX_CHAN_BYTES_PER_WAKE (512u * 1024u)
#define MUX_HELLO_EXTRA_MAX 56u

/* One queued output packet; allocated by mux_pkt_new(), owned by the output
 * queue once mux_outq_push()ed (freed when written or on outq_clear). */
typedef struct pkt {
        struct pkt *next;
        uint32_t size; /* header + payload bytes */
        bool ctl;
        bool orphan;
        bool lane_on; /* LANE_ON: what follows it goes through the lane */
        uint8_t data[]; /* SMOLVM_PKT_HDR_SIZE header, then payload */
} pkt;

enum stream_state {
        ST_CONNECTING, /* we sent REQUEST, waiting for RESPONSE */
        ST_ESTABLISHED,
};

/* Created and freed only by mux_stream.c (stream_new, stream_kill; the memory
 * itself is released at the outermost mux_leave() or in mux_destroy()). */
typedef struct stream {
        smolvm_mux *mux;
        struct stream *hnext;       /* hash chain */
        struct stream *prev, *next; /* all streams; next also links mux->dead_streams */
        uint32_t local_port, peer_port;
        int fd;
        bool fd_is_sock;
        bool watched;
        bool dead;
        enum stream_state state; /* CONNECTING -> ESTABLISHED only in handle_response() */
        uint32_t ev_mask; /* registered with the loop */

        /* pending connect: set by smolvm_mux_connect(), consumed (and cleared) by
         * handle_response() or stream_kill() */
        smolvm_mux_connect_cb cb;
        void *cb_userdata;
        /* smolvm_mux_connect_first(): bytes sent to the peer before any of fd's
         * (at most SMOLVM_MUX_FIRST_MAX; freed by handle_response() or stream_kill()) */
        uint8_t *first;
        uint32_t first_len;
        /* read by the timer (0 = none): the connect deadline while CONNECTING,
         * the linger deadline (stream_send_gone) once ESTABLISHED */
        uint64_t deadline_ms;

        /* channel -> local fd */
        uint32_t rx_window; /* buf_alloc we grant (the mux's rx_window at creation): the ring's size */
        uint8_t *rx; /* ring of rx_window bytes, allocated while non-empty */
        size_t rx_head, rx_len;
        uint32_t rx_cnt;      /* payload bytes accepted from the peer (mod 2^32); advanced by
                               * handle_stream_packet() after its credit check */
        uint32_t fwd_cnt;     /* bytes written to the local fd */
        uint32_t adv_fwd_cnt; /* fwd_cnt last put on the wire: the peer's credit is based on it;
                               * updated by stream_hdr() */
        bool peer_shut_send;  /* peer sent SHUTDOWN(SEND) */
        bool wr_done;         /* local fd shut for writing after the flush, or gone */
        bool local_gone;      /* the local end closed both directions (or a write to it
                               * failed) while we still had to write to it: see
                               * stream_local_gone() */

        /* local fd -> channel */
        uint32_t tx_cnt;
        uint32_t peer_buf_alloc, peer_fwd_cnt; /* from the peer's latest header
                                                * (handle_request/handle_stream_packet) */
        bool rd_done; /* local EOF (SHUTDOWN(SEND) queued) or peer SHUTDOWN(RCV) */
        uint32_t shut_sent; /* SMOLVM_SHUTDOWN_* flags we queued (stream_shut_send) */
} stream;

struct smolvm_mux {
        smolvm_evloop *loop;
        int chan_fd;
        int timer_fd;
        bool chan_is_sock;
        uint64_t our_cid, peer_cid;
        smolvm_mux_ops ops;
        void *userdata;

        bool broken;
        bool freeing;
        bool free_requested;
        unsigned depth; /* mux_enter()/mux_leave() nesting */

        uint8_t *inbuf;
        size_t in_len;
        /* RW payloads of the batch being parsed, all for pend_stream, pointing
         * into inbuf: written with one writev by stream_pend_flush() (mux_stream.c) before
         * any other packet is handled and before inbuf moves; dropped by
         * stream_kill(). */
        stream *pend_stream;
        struct iovec pend_iov[MUX_IOV_MAX];
        int pend_n;
        size_t pend_bytes;

        /* output queue: mux.c; mux_stream.c only appends via mux_outq_push() */
        pkt *outq_head, *outq_tail;
        size_t outq_off; /* bytes of the head packet already written */
        size_t outq_bytes;
        size_t outq_ctl;
        size_t n_orphan_rst;
        uint32_t chan_events;
        bool local_blocked; /* outq too large: local fds are not read; set by
                             * mux_outq_push(), cleared by mux_leave() */
        bool chan_in_blocked;

        /* stream table: maintained by stream_new()/stream_kill() in mux_stream.c */
        stream *hash[MUX_HASH_SIZE];
        stream *streams;
        stream *dead_streams; /* killed, freed at the outermost mux_leave() */
        uint32_t n_streams;
        size_t rx_buffered; /* sum of the streams' rx_len (mux_stream.c) */
        uint32_t next_port;
        uint64_t timer_deadline_ms; /* 0 = disarmed */

        smolvm_mux_stats stats;
        uint32_t rx_window; /* for new streams (smolvm_mux_set_rx_window) */

        /* the lane (mux_lane.c): asked for (guest) / started (host) with
         * lane_epoch; active once LANE_ON was written (host) or read (guest) */
        smolvm_mux_lane lane;
        bool lane_set, lane_active;
        bool lane_tx_blocked; /* host: send said -EAGAIN; until smolvm_mux_lane_kick() */
        uint64_t lane_epoch;
        uint32_t lane_events; /* guest: registered for lane.fd */
};

/* ---- mux.c ---- */

bool mux_fd_is_socket(int fd);
ssize_t mux_writev_nosig(int fd, bool is_sock, struct iovec *iov, int n);

void mux_enter(smolvm_mux *mux);
void mux_leave(smolvm_mux *mux);

pkt *mux_pkt_new(uint32_t payload_len);
void mux_outq_push(smolvm_mux *mux, pkt *p);
/* mux_control.c: queue a channel-control packet (HELLO, IDENTITY, ...), sent
 * from the loop (EPOLLOUT) or when the outermost mux call returns. */
/* A channel-control packet, built but not queued (the caller may mark it). */
pkt *mux_control_pkt(smolvm_mux *mux, uint16_t op, const void *payload, uint32_t len);
int mux_queue_control(smolvm_mux *mux, uint16_t op, const void *payload, uint32_t len);
void stream_hdr(stream *s, uint16_t op, uint32_t flags, uint32_t len, uint8_t *out);
void stream_queue_ctl(stream *s, uint16_t op, uint32_t flags);
void mux_timer_arm(smolvm_mux *mux);
/* One complete, decoded packet from the channel (or the lane). */
void mux_handle_packet(smolvm_mux *mux, const smolvm_pkt_hdr *h, const uint8_t *payload);

/* ---- mux_chan.c ---- */

void mux_outq_clear(smolvm_mux *mux);
void chan_broken(smolvm_mux *mux, int err, const char *why);
void chan_read(smolvm_mux *mux, bool force);
void chan_flush(smolvm_mux *mux);
/* The channel fd's loop callback. */
void mux_chan_io(void *userdata, int fd, uint32_t events);

/* ---- mux_lane.c ---- */

/* The lane carries the host's bytes: the host writes them there, the guest
 * reads them there; the other direction never moves. */
static inline bool mux_lane_tx(const smolvm_mux *mux)
{
        return mux->lane_active && mux->our_cid == SMOLVM_CID_HOST;
}
static inline bool mux_lane_rx(const smolvm_mux *mux)
{
        return mux->lane_active && mux->our_cid == SMOLVM_CID_GUEST;
}

void mux_lane_packet(smolvm_mux *mux, const smolvm_pkt_hdr *h, const uint8_t *payload);
ssize_t mux_lane_writev(smolvm_mux *mux, struct iovec *iov, int n);
ssize_t mux_lane_read(smolvm_mux *mux, uint8_t *buf, size_t cap);
void mux_lane_chan_idle(smolvm_mux *mux);
void mux_lane_update_events(smolvm_mux *mux);
void mux_lane_free(smolvm_mux *mux);

/* ---- mux_stream.c ---- */

stream *stream_lookup(const smolvm_mux *mux, uint32_t local_port, uint32_t peer_port);
stream *stream_new(smolvm_mux *mux, uint32_t local_port, uint32_t peer_port, int fd,
                   enum stream_state state);
void stream_kill(stream *s, int err);
void stream_reset(stream *s, int err);
void stream_maybe_finish(stream *s);
void stream_shut_wr(stream *s);
void stream_shut_send(stream *s, uint32_t flags);
void stream_update(stream *s);
void stream_deliver_rw(stream *s, const uint8_t *payload, uint32_t len);
void stream_pend_flush(smolvm_mux *mux);
void stream_start(stream *s);
