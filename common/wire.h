/* SPDX-License-Identifier: Apache-2.0 */
/* The channel wire format: vsock-style packets carried over one byte stream
 * (a virtio-serial port under QEMU). The header mirrors struct virtio_vsock_hdr
 * from the virtio 1.2 "Socket Device" section, little-endian, 44 bytes, so the
 * semantics (ops, credit, shutdown flags) are the spec's. See docs/protocol.md. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The end of the console line guest-init prints when its channel port closed
 * under it and it reopens the port (after a restore, QEMU's side was not
 * connected at the load): a restoring supervisor connects when it sees it
 * (host/supervisor/boot.c). One definition for both sides, so the text cannot
 * drift. The guest's own say about its own channel: a lying guest gets at worst
 * the fallback's timing. */
#define SMOLVM_CHAN_REOPEN_MARK "; reopening the channel"

#define SMOLVM_CID_HOST  2u
#define SMOLVM_CID_GUEST 3u

#define SMOLVM_PKT_HDR_SIZE 44u
/* Largest payload one packet may carry. A header announcing more is a framing
 * violation: the channel is declared broken (framing cannot be recovered). */
#define SMOLVM_PKT_MAX_PAYLOAD (64u * 1024u)

enum smolvm_pkt_type {
        SMOLVM_PKT_TYPE_STREAM = 1,      /* VIRTIO_VSOCK_TYPE_STREAM */
        SMOLVM_PKT_TYPE_CHANNEL = 0xC001, /* ours: channel-level control, ports ignored */
};

enum smolvm_pkt_op {
        SMOLVM_OP_INVALID = 0,
        SMOLVM_OP_REQUEST = 1,
        SMOLVM_OP_RESPONSE = 2,
        SMOLVM_OP_RST = 3,
        SMOLVM_OP_SHUTDOWN = 4,
        SMOLVM_OP_RW = 5,
        SMOLVM_OP_CREDIT_UPDATE = 6,
        SMOLVM_OP_CREDIT_REQUEST = 7,
};

/* ops of SMOLVM_PKT_TYPE_CHANNEL */
enum smolvm_chan_op {
        /* payload: le32 version, le32 flags, and from the guest also le32 init_start_ms,
         * le32 ready_ms (guest CLOCK_BOOTTIME when init started / when the agent became
         * ready; boot-time split for benchmarks) and le32 features (SMOLVM_HELLO_F_*).
         * The guest's HELLO means "agent ready". */
        SMOLVM_CHAN_OP_HELLO = 1,
        /* host -> guest, on a restore, right after the guest's HELLO and before any
         * stream packet: the new VM's identity, exactly SMOLVM_CHAN_IDENTITY_LEN bytes:
         * le32 flags (0), le64 realtime_ns (host CLOCK_REALTIME, 0: keep the clock),
         * 64 bytes of entropy, 16 bytes machine-id (all zero: keep it), hostname
         * (NUL-padded to SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX, [a-z0-9-], at least one).
         * PID 1 applies it in-process, then answers IDENTITY_ACK. */
        SMOLVM_CHAN_OP_IDENTITY = 2,
        /* guest -> host: le32 status (0 or a positive errno), then at most
         * SMOLVM_CHAN_ACK_MSG_MAX bytes of text saying what failed (untrusted). */
        SMOLVM_CHAN_OP_IDENTITY_ACK = 3,
        /* The lane (common/lane.h, docs/protocol.md "The lane"). From the guest:
         * le64 epoch, le32 window: its lane device is up, please send on it. From
         * the host: le64 epoch: the last bytes on the port; what follows comes on
         * the lane. */
        SMOLVM_CHAN_OP_LANE_REQ = 4,
        SMOLVM_CHAN_OP_LANE_ON = 5,
};
#define SMOLVM_CHAN_VERSION 1u
/* The guest HELLO's features (le32 at 16) */
#define SMOLVM_HELLO_F_IDENTITY 1u /* the guest takes SMOLVM_CHAN_OP_IDENTITY */
/* What this build's init advertises; the image builder records it in image.json
 * ("initramfs": "init_features") so the host knows, without a boot, whether an
 * image's init can be restored (host/lib/template.c). */
#define SMOLVM_HELLO_FEATURES SMOLVM_HELLO_F_IDENTITY

#define SMOLVM_CHAN_IDENTITY_ENTROPY 64u
#define SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX 64u
#define SMOLVM_CHAN_IDENTITY_LEN (4u + 8u + SMOLVM_CHAN_IDENTITY_ENTROPY + 16u + SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX)
#define SMOLVM_CHAN_ACK_MSG_MAX 200u

/* SHUTDOWN flags */
#define SMOLVM_SHUTDOWN_RCV  1u /* sender will receive no more */
#define SMOLVM_SHUTDOWN_SEND 2u /* sender will send no more */

typedef struct smolvm_pkt_hdr {
        uint64_t src_cid;
        uint64_t dst_cid;
        uint32_t src_port;
        uint32_t dst_port;
        uint32_t len;
        uint16_t type;
        uint16_t op;
        uint32_t flags;
        uint32_t buf_alloc;
        uint32_t fwd_cnt;
} smolvm_pkt_hdr;

/* Serialise hdr into exactly SMOLVM_PKT_HDR_SIZE bytes at out. */
void smolvm_pkt_hdr_encode(const smolvm_pkt_hdr *hdr, uint8_t out[SMOLVM_PKT_HDR_SIZE]);

/* Parse a header from in (at least SMOLVM_PKT_HDR_SIZE bytes) and validate what
 * can be validated without connection state: len bound, known type, known op.
 * Returns 0, -EMSGSIZE (len > SMOLVM_PKT_MAX_PAYLOAD: framing broken),
 * -EPROTO (unknown type or op: packet may be skipped, framing intact).
 * *ret is filled in every case where the length is sane, so a caller can skip
 * len payload bytes on -EPROTO. */
int smolvm_pkt_hdr_decode(const uint8_t in[SMOLVM_PKT_HDR_SIZE], smolvm_pkt_hdr *ret);

const char *smolvm_pkt_op_name(uint16_t op);
