/* SPDX-License-Identifier: Apache-2.0 */
#include "wire.h"

#include <errno.h>

#include "util.h"

void smolvm_pkt_hdr_encode(const smolvm_pkt_hdr *h, uint8_t out[SMOLVM_PKT_HDR_SIZE])
{
        put_le64(out + 0, h->src_cid);
        put_le64(out + 8, h->dst_cid);
        put_le32(out + 16, h->src_port);
        put_le32(out + 20, h->dst_port);
        put_le32(out + 24, h->len);
        put_le16(out + 28, h->type);
        put_le16(out + 30, h->op);
        put_le32(out + 32, h->flags);
        put_le32(out + 36, h->buf_alloc);
        put_le32(out + 40, h->fwd_cnt);
}

int smolvm_pkt_hdr_decode(const uint8_t in[SMOLVM_PKT_HDR_SIZE], smolvm_pkt_hdr *ret)
{
        smolvm_pkt_hdr h = {
                .src_cid = get_le64(in + 0),
                .dst_cid = get_le64(in + 8),
                .src_port = get_le32(in + 16),
                .dst_port = get_le32(in + 20),
                .len = get_le32(in + 24),
                .type = get_le16(in + 28),
                .op = get_le16(in + 30),
                .flags = get_le32(in + 32),
                .buf_alloc = get_le32(in + 36),
                .fwd_cnt = get_le32(in + 40),
        };

        if (h.len > SMOLVM_PKT_MAX_PAYLOAD)
                return -EMSGSIZE;
        *ret = h;
        if (h.type == SMOLVM_PKT_TYPE_CHANNEL)
                return h.op >= SMOLVM_CHAN_OP_HELLO && h.op <= SMOLVM_CHAN_OP_IDENTITY_ACK ? 0 : -EPROTO;
        if (h.type != SMOLVM_PKT_TYPE_STREAM)
                return -EPROTO;
        if (h.op < SMOLVM_OP_REQUEST || h.op > SMOLVM_OP_CREDIT_REQUEST)
                return -EPROTO;
        return 0;
}

const char *smolvm_pkt_op_name(uint16_t op)
{
        static const char *const names[] = {
                [SMOLVM_OP_INVALID] = "INVALID",
                [SMOLVM_OP_REQUEST] = "REQUEST",
                [SMOLVM_OP_RESPONSE] = "RESPONSE",
                [SMOLVM_OP_RST] = "RST",
                [SMOLVM_OP_SHUTDOWN] = "SHUTDOWN",
                [SMOLVM_OP_RW] = "RW",
                [SMOLVM_OP_CREDIT_UPDATE] = "CREDIT_UPDATE",
                [SMOLVM_OP_CREDIT_REQUEST] = "CREDIT_REQUEST",
        };
        return op < ARRAY_SIZE(names) ? names[op] : "UNKNOWN";
}
