/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_mux's two halves share this: fuzz_mux.c (the world, the peer's side of
 * the channel, the mux callbacks, the invariants, one input) and fuzz_mux_ops.c
 * (reading the input, building packets, the op table). */
#pragma once

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

_Noreturn void check_failed(const char *file, int line, const char *what);
#define CHECK(c) ((c) ? (void)0 : check_failed(__FILE__, __LINE__, #c))

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

struct world {
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
};
extern struct world w;

/* fuzz_mux.c */
void check(void);
int turn(int n);
void pair_add(uint32_t peer_port, uint32_t mux_port);
pair *pair_find(uint32_t peer_port, uint32_t mux_port);
size_t peer_drain(void);
bool peer_write(const uint8_t *b, size_t len);
void peer_send(const uint8_t *b, size_t len, bool whole_packets);
int do_connect(uint32_t port);

/* fuzz_mux_ops.c */
uint8_t u8(input *in);
uint16_t u16(input *in);
uint32_t u32(input *in);
/* Run one op from the input, then check the invariants. */
void run_op(input *in);
