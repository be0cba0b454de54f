/* SPDX-License-Identifier: Apache-2.0 */
/* Channel-control packets (wire.h SMOLVM_PKT_TYPE_CHANNEL): the HELLO a mux
 * sends when it starts and what its owner sends besides (the restore's
 * IDENTITY and its ACK, docs/protocol.md "The channel"). */
#include <errno.h>
#include <string.h>

#include "mux_i.h"

pkt *mux_control_pkt(smolvm_mux *mux, uint16_t op, const void *payload, uint32_t len)
{
        pkt *p = mux_pkt_new(len);
        if (!p)
                return NULL;
        p->ctl = true;
        smolvm_pkt_hdr h = {
                .src_cid = mux->our_cid,
                .dst_cid = mux->peer_cid,
                .len = len,
                .type = SMOLVM_PKT_TYPE_CHANNEL,
                .op = op,
        };
        smolvm_pkt_hdr_encode(&h, p->data);
        if (len)
                memcpy(p->data + SMOLVM_PKT_HDR_SIZE, payload, len);
        return p;
}

int mux_queue_control(smolvm_mux *mux, uint16_t op, const void *payload, uint32_t len)
{
        pkt *p = mux_control_pkt(mux, op, payload, len);
        if (!p)
                return -ENOMEM;
        mux_outq_push(mux, p);
        return 0;
}

int smolvm_mux_send_control(smolvm_mux *mux, uint16_t op, const void *payload, uint32_t len)
{
        if (!mux || len > SMOLVM_PKT_MAX_PAYLOAD || (len && !payload))
                return -EINVAL;
        if (mux->broken || mux->free_requested || mux->freeing)
                return -ECONNRESET;
        mux_enter(mux);
        int r = mux_queue_control(mux, op, payload, len);
        mux_leave(mux);
        return r;
}
