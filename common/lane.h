/* SPDX-License-Identifier: Apache-2.0 */
/* The lane: a bulk path for the host -> guest direction of the channel
 * (docs/benchmarks.md, "The channel's ceiling"; docs/protocol.md, "The lane").
 *
 * A virtio-net device on `-netdev stream` (QEMU 7.2 can migrate it, unlike
 * vhost-user-vsock) whose guest interface carries no IP, only lane frames:
 * Ethernet (ethertype SMOLVM_LANE_ETHERTYPE) + a 24-byte lane header + payload.
 * A frame carries up to SMOLVM_LANE_MAX_PAYLOAD bytes of the host's channel byte
 * stream, so the guest pays one recv() per ~64 KiB instead of one read() per
 * 4 KiB virtio-serial buffer.
 *
 * The guest drops frames when its packet socket is full, so the host keeps at
 * most `window` bytes unacknowledged; the guest acknowledges what it took (ACK
 * frames, the other way over the same device). Each lane has an epoch the guest
 * chose: frames of another epoch (in flight in the device's ring at a
 * snapshot, delivered after a restore) are discarded, never taken as data.
 *
 * This file is I/O-free: framing, the sender's window and the receiver's
 * sequence check. Everything from the guest is validated here.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMOLVM_LANE_ETHERTYPE 0x88b5u /* IEEE 802 "local experimental" */
#define SMOLVM_LANE_ETH_HDR 14u
#define SMOLVM_LANE_HDR 24u
#define SMOLVM_LANE_FRAME_HDR (SMOLVM_LANE_ETH_HDR + SMOLVM_LANE_HDR)
/* The device's MTU (host_mtu=): the lane header and payload, not the Ethernet
 * header. QEMU's stream backend takes frames up to 69632 bytes. */
#define SMOLVM_LANE_MTU 65000u
#define SMOLVM_LANE_MAX_PAYLOAD (SMOLVM_LANE_MTU - SMOLVM_LANE_HDR)
/* The largest window a guest may ask for; it must fit the guest's socket
 * buffer (each ~64 KiB frame costs ~68 KiB of it in 4 KiB pages). */
#define SMOLVM_LANE_WINDOW_MAX (4u << 20)
#define SMOLVM_LANE_WINDOW_MIN SMOLVM_LANE_MAX_PAYLOAD

enum smolvm_lane_kind {
        SMOLVM_LANE_DATA = 'D', /* host -> guest: off = stream offset of the payload */
        SMOLVM_LANE_ACK = 'A',  /* guest -> host: off = bytes taken, len 0 */
};

typedef struct smolvm_lane_hdr {
        uint8_t kind;
        uint32_t len; /* payload bytes after the header */
        uint64_t epoch;
        uint64_t off;
} smolvm_lane_hdr;

/* The two ends' MAC addresses: the guest's device has SMOLVM_LANE_GUEST_MAC
 * (-device ...,mac=), the host signs as SMOLVM_LANE_HOST_MAC. */
extern const uint8_t smolvm_lane_guest_mac[6];
extern const uint8_t smolvm_lane_host_mac[6];
#define SMOLVM_LANE_GUEST_MAC_STR "52:54:00:5c:4c:01"

/* Write an Ethernet + lane header (SMOLVM_LANE_FRAME_HDR bytes); to_guest picks
 * the addresses. */
void smolvm_lane_hdr_encode(const smolvm_lane_hdr *h, bool to_guest, uint8_t out[SMOLVM_LANE_FRAME_HDR]);
/* Parse a whole frame (Ethernet header included) of frame_len bytes. Returns 0,
 * or -EPROTO: not a lane frame, unknown kind, a length that does not match
 * frame_len or exceeds SMOLVM_LANE_MAX_PAYLOAD, an ACK with a payload. */
int smolvm_lane_hdr_decode(const uint8_t *frame, size_t frame_len, smolvm_lane_hdr *ret);

/* ---- the host's sender ---- */
typedef struct smolvm_lane_tx {
        bool up;
        uint64_t epoch;
        uint64_t sent;  /* payload bytes framed so far */
        uint64_t acked; /* the guest's latest valid ACK */
        uint32_t window;
} smolvm_lane_tx;

/* Start (or restart) a lane with the guest's epoch and asked-for window
 * (clamped to [SMOLVM_LANE_WINDOW_MIN, SMOLVM_LANE_WINDOW_MAX]). */
void smolvm_lane_tx_start(smolvm_lane_tx *tx, uint64_t epoch, uint32_t window);
/* Bytes the next frame may carry now (0: the window is full, or no lane). */
size_t smolvm_lane_tx_room(const smolvm_lane_tx *tx);
/* Header of the next DATA frame of len (1..smolvm_lane_tx_room()) bytes; the
 * bytes count as sent. */
void smolvm_lane_tx_frame(smolvm_lane_tx *tx, uint32_t len, uint8_t out[SMOLVM_LANE_FRAME_HDR]);
/* A frame from the guest. Returns 1 when it opened the window (a new ACK of
 * this epoch), 0 when it changed nothing (another epoch: a stale frame, or a
 * repeated ACK), -EPROTO for a malformed frame or an ACK beyond what was sent
 * or behind an earlier one (a lying guest: the caller drops the lane). */
int smolvm_lane_tx_on_frame(smolvm_lane_tx *tx, const uint8_t *frame, size_t frame_len);

/* ---- the guest's receiver ---- */
typedef struct smolvm_lane_rx {
        uint64_t epoch;
        uint64_t next;  /* stream offset expected next */
        uint64_t acked; /* last offset acknowledged */
        uint32_t ack_every;
} smolvm_lane_rx;

/* A new lane of the given epoch and window (acknowledged every quarter). */
void smolvm_lane_rx_init(smolvm_lane_rx *rx, uint64_t epoch, uint32_t window);
/* A frame from the host. Returns 1 with *ret_payload and *ret_len set (the data
 * follows in order), 0 for a frame to ignore (another epoch: in flight across
 * a restore), -EPROTO for a malformed frame or a gap (a lost frame: the lane,
 * and with it the channel, cannot go on). */
int smolvm_lane_rx_on_frame(smolvm_lane_rx *rx, const uint8_t *frame, size_t frame_len,
                            const uint8_t **ret_payload, size_t *ret_len);
/* The same for a frame whose header (SMOLVM_LANE_FRAME_HDR bytes) was read
 * apart from its payload: frame_len is the whole frame's length. Returns 1 with
 * *ret_len, 0 or -EPROTO as smolvm_lane_rx_on_frame(). */
int smolvm_lane_rx_on_hdr(smolvm_lane_rx *rx, const uint8_t hdr[SMOLVM_LANE_FRAME_HDR], size_t frame_len,
                          size_t *ret_len);
/* True when an ACK is due (a quarter window taken since the last one, or
 * force and anything unacknowledged): then out holds it (a whole frame of
 * SMOLVM_LANE_FRAME_HDR bytes) and it counts as sent. */
bool smolvm_lane_rx_ack(smolvm_lane_rx *rx, bool force, uint8_t out[SMOLVM_LANE_FRAME_HDR]);
