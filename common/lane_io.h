/* SPDX-License-Identifier: Apache-2.0 */
/* The lane's two ends over real fds (lane.h for the rules), each usable as a
 * smolvm_mux_lane (mux.h):
 *   host:  a stream socket to QEMU's `-netdev stream` (each frame preceded by
 *          its length, 4 bytes big-endian); DATA frames out, ACKs in;
 *   guest: a datagram socket on the lane's interface (AF_PACKET, or any
 *          datagram socket in tests); DATA in, ACKs out. Open an AF_PACKET
 *          socket with protocol 0 and give the ethertype to bind(): opened
 *          with it, bind() waits for synchronize_rcu() (once > 9 minutes in
 *          our TCG guest, bench/lane_spike.sh).
 * Non-blocking fds; the owner watches them and calls back (below). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "lane.h"

typedef struct smolvm_lane_host smolvm_lane_host;

/* fd (not owned) must be a connected, non-blocking stream socket. */
int smolvm_lane_host_new(int fd, smolvm_lane_host **ret);
void smolvm_lane_host_free(smolvm_lane_host *h);
/* The guest asked for a lane (LANE_REQ): start it (frames of this epoch). */
void smolvm_lane_host_start(smolvm_lane_host *h, uint64_t epoch, uint32_t window);
/* smolvm_mux_lane.send: frames what the window allows of iov. */
ssize_t smolvm_lane_host_send(void *h, const struct iovec *iov, int n);
/* The fd is readable: take the guest's frames (at most 4 KiB per call).
 * Frames that are no lane ACK (the guest kernel's own, junk, any length) are
 * dropped and counted. Returns 1 when the window opened (kick the mux), 0, or
 * negative errno: -ECONNRESET (EOF: QEMU went away), -EPROTO (an ACK of this
 * epoch for bytes never sent or behind an earlier one: drop the lane and the
 * channel), another (the socket failed). */
int smolvm_lane_host_on_readable(smolvm_lane_host *h);
/* The fd is writable: finish a frame left half-written. Returns 1 when it
 * went out (kick the mux), 0, or negative errno. */
int smolvm_lane_host_on_writable(smolvm_lane_host *h);
/* Frames from the guest dropped as no ACK. */
uint64_t smolvm_lane_host_dropped(const smolvm_lane_host *h);
/* Payload bytes framed since the last smolvm_lane_host_start(). */
uint64_t smolvm_lane_host_sent(const smolvm_lane_host *h);
/* Whether a frame waits for the fd to be writable (watch EPOLLOUT). */
bool smolvm_lane_host_blocked(const smolvm_lane_host *h);

typedef struct smolvm_lane_guest {
        int fd; /* not owned */
        smolvm_lane_rx rx;
        uint64_t n_stale; /* frames of another epoch dropped */
} smolvm_lane_guest;

/* smolvm_mux_lane.recv: the next DATA frame of our epoch, its payload into
 * buf; ACKs as due. Returns bytes, -EAGAIN, or -EPROTO (a gap or a bad frame),
 * -EMSGSIZE (cap too small), another negative errno. */
ssize_t smolvm_lane_guest_recv(void *g, uint8_t *buf, size_t cap);
