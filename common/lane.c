/* SPDX-License-Identifier: Apache-2.0 */
/* The lane's framing, window and sequence rules (lane.h). */
#include "lane.h"

#include <errno.h>
#include <string.h>

#include "util.h"

const uint8_t smolvm_lane_guest_mac[6] = { 0x52, 0x54, 0x00, 0x5c, 0x4c, 0x01 };
const uint8_t smolvm_lane_host_mac[6] = { 0x52, 0x54, 0x00, 0x5c, 0x4c, 0x02 };

/* Lane header after Ethernet: u8 kind, u8 version, le16 reserved, le32 len,
 * le64 epoch, le64 off. */
#define LANE_VERSION 1u

void smolvm_lane_hdr_encode(const smolvm_lane_hdr *h, bool to_guest, uint8_t out[SMOLVM_LANE_FRAME_HDR])
{
        memcpy(out, to_guest ? smolvm_lane_guest_mac : smolvm_lane_host_mac, 6);
        memcpy(out + 6, to_guest ? smolvm_lane_host_mac : smolvm_lane_guest_mac, 6);
        out[12] = (uint8_t)(SMOLVM_LANE_ETHERTYPE >> 8);
        out[13] = (uint8_t)SMOLVM_LANE_ETHERTYPE;
        uint8_t *l = out + SMOLVM_LANE_ETH_HDR;
        l[0] = h->kind;
        l[1] = LANE_VERSION;
        put_le16(l + 2, 0);
        put_le32(l + 4, h->len);
        put_le64(l + 8, h->epoch);
        put_le64(l + 16, h->off);
}

int smolvm_lane_hdr_decode(const uint8_t *frame, size_t frame_len, smolvm_lane_hdr *ret)
{
        if (frame_len < SMOLVM_LANE_FRAME_HDR || frame[12] != (uint8_t)(SMOLVM_LANE_ETHERTYPE >> 8) ||
            frame[13] != (uint8_t)SMOLVM_LANE_ETHERTYPE)
                return -EPROTO;
        const uint8_t *l = frame + SMOLVM_LANE_ETH_HDR;
        smolvm_lane_hdr h = {
                .kind = l[0],
                .len = get_le32(l + 4),
                .epoch = get_le64(l + 8),
                .off = get_le64(l + 16),
        };
        if (l[1] != LANE_VERSION || (h.kind != SMOLVM_LANE_DATA && h.kind != SMOLVM_LANE_ACK))
                return -EPROTO;
        /* Ethernet pads short frames to 60 bytes: a frame may be longer than its
         * header says only up to that minimum. */
        size_t want = SMOLVM_LANE_FRAME_HDR + (size_t)h.len;
        if (h.len > SMOLVM_LANE_MAX_PAYLOAD || frame_len < want || (frame_len > want && frame_len > 60))
                return -EPROTO;
        if (h.kind == SMOLVM_LANE_ACK && h.len != 0)
                return -EPROTO;
        *ret = h;
        return 0;
}

void smolvm_lane_tx_start(smolvm_lane_tx *tx, uint64_t epoch, uint32_t window)
{
        if (window < SMOLVM_LANE_WINDOW_MIN)
                window = SMOLVM_LANE_WINDOW_MIN;
        if (window > SMOLVM_LANE_WINDOW_MAX)
                window = SMOLVM_LANE_WINDOW_MAX;
        *tx = (smolvm_lane_tx){ .up = true, .epoch = epoch, .window = window };
}

size_t smolvm_lane_tx_room(const smolvm_lane_tx *tx)
{
        if (!tx->up)
                return 0;
        uint64_t inflight = tx->sent - tx->acked;
        if (inflight >= tx->window)
                return 0;
        uint64_t room = tx->window - inflight;
        return room < SMOLVM_LANE_MAX_PAYLOAD ? (size_t)room : SMOLVM_LANE_MAX_PAYLOAD;
}

void smolvm_lane_tx_frame(smolvm_lane_tx *tx, uint32_t len, uint8_t out[SMOLVM_LANE_FRAME_HDR])
{
        smolvm_lane_hdr h = { .kind = SMOLVM_LANE_DATA, .len = len, .epoch = tx->epoch, .off = tx->sent };
        smolvm_lane_hdr_encode(&h, true, out);
        tx->sent += len;
}

int smolvm_lane_tx_on_frame(smolvm_lane_tx *tx, const uint8_t *frame, size_t frame_len)
{
        smolvm_lane_hdr h;
        if (smolvm_lane_hdr_decode(frame, frame_len, &h) < 0 || h.kind != SMOLVM_LANE_ACK)
                return -EPROTO;
        if (!tx->up || h.epoch != tx->epoch)
                return 0;
        if (h.off > tx->sent || h.off < tx->acked)
                return -EPROTO;
        if (h.off == tx->acked)
                return 0;
        tx->acked = h.off;
        return 1;
}

void smolvm_lane_rx_init(smolvm_lane_rx *rx, uint64_t epoch, uint32_t window)
{
        uint32_t every = window / 4;
        *rx = (smolvm_lane_rx){ .epoch = epoch, .ack_every = every ? every : 1 };
}

int smolvm_lane_rx_on_hdr(smolvm_lane_rx *rx, const uint8_t hdr[SMOLVM_LANE_FRAME_HDR], size_t frame_len,
                          size_t *ret_len)
{
        smolvm_lane_hdr h;
        if (smolvm_lane_hdr_decode(hdr, frame_len, &h) < 0 || h.kind != SMOLVM_LANE_DATA)
                return -EPROTO;
        if (h.epoch != rx->epoch)
                return 0;
        if (h.off != rx->next || h.len == 0)
                return -EPROTO;
        rx->next += h.len;
        *ret_len = h.len;
        return 1;
}

int smolvm_lane_rx_on_frame(smolvm_lane_rx *rx, const uint8_t *frame, size_t frame_len,
                            const uint8_t **ret_payload, size_t *ret_len)
{
        int r = smolvm_lane_rx_on_hdr(rx, frame, frame_len, ret_len);
        if (r == 1)
                *ret_payload = frame + SMOLVM_LANE_FRAME_HDR;
        return r;
}

bool smolvm_lane_rx_ack(smolvm_lane_rx *rx, bool force, uint8_t out[SMOLVM_LANE_FRAME_HDR])
{
        uint64_t pending = rx->next - rx->acked;
        if (pending == 0 || (!force && pending < rx->ack_every))
                return false;
        smolvm_lane_hdr h = { .kind = SMOLVM_LANE_ACK, .epoch = rx->epoch, .off = rx->next };
        smolvm_lane_hdr_encode(&h, false, out);
        rx->acked = rx->next;
        return true;
}
