/* SPDX-License-Identifier: Apache-2.0 */
/* The mux's side of the lane (mux.h, docs/protocol.md "The lane"): the switch
 * of the host -> guest direction from the channel fd to the lane.
 *
 * The switch keeps order: the host queues LANE_ON behind everything it has
 * queued; chan_flush() (mux.c) writes up to and including LANE_ON on the
 * channel fd and, once it is out, everything after it through lane.send. The
 * guest reads the channel fd up to LANE_ON and from then on only the lane: a
 * byte on the channel fd after LANE_ON is a protocol violation. */
#include "mux_i.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void lane_io(void *userdata, int fd, uint32_t events)
{
        (void)fd;
        (void)events;
        smolvm_mux *mux = userdata;
        mux_enter(mux);
        chan_read(mux, false);
        mux_leave(mux);
}

static int queue_chan_op(smolvm_mux *mux, uint16_t op, uint64_t epoch, uint32_t window, bool lane_on)
{
        uint8_t payload[12];
        uint32_t len = op == SMOLVM_CHAN_OP_LANE_REQ ? 12 : 8;
        put_le64(payload, epoch);
        put_le32(payload + 8, window);
        pkt *p = mux_control_pkt(mux, op, payload, len);
        if (!p)
                return -ENOMEM;
        p->lane_on = lane_on;
        mux_outq_push(mux, p);
        return 0;
}

static int lane_set(smolvm_mux *mux, uint64_t epoch, const smolvm_mux_lane *lane, uint16_t op, uint32_t window)
{
        if (!mux || !lane || (mux->our_cid == SMOLVM_CID_HOST ? !lane->send : !lane->recv || lane->fd < 0))
                return -EINVAL;
        if (mux->broken || mux->freeing || mux->free_requested)
                return -ECONNRESET;
        if (mux->lane_set)
                return -EALREADY;
        mux_enter(mux);
        int r = queue_chan_op(mux, op, epoch, window, op == SMOLVM_CHAN_OP_LANE_ON);
        if (r == 0) {
                mux->lane = *lane;
                mux->lane_set = true;
                mux->lane_epoch = epoch;
        }
        mux_leave(mux);
        return r;
}

int smolvm_mux_lane_request(smolvm_mux *mux, uint64_t epoch, uint32_t window, const smolvm_mux_lane *lane)
{
        if (mux && mux->our_cid != SMOLVM_CID_GUEST)
                return -EINVAL;
        return lane_set(mux, epoch, lane, SMOLVM_CHAN_OP_LANE_REQ, window);
}

int smolvm_mux_lane_start(smolvm_mux *mux, uint64_t epoch, const smolvm_mux_lane *lane)
{
        if (mux && mux->our_cid != SMOLVM_CID_HOST)
                return -EINVAL;
        return lane_set(mux, epoch, lane, SMOLVM_CHAN_OP_LANE_ON, 0);
}

void smolvm_mux_lane_kick(smolvm_mux *mux)
{
        if (!mux || !mux->lane_active || mux->broken || mux->free_requested)
                return;
        mux_enter(mux);
        mux->lane_tx_blocked = false;
        if (mux->our_cid == SMOLVM_CID_HOST)
                chan_flush(mux);
        else
                chan_read(mux, false);
        mux_leave(mux);
}

bool smolvm_mux_lane_active(const smolvm_mux *mux)
{
        return mux->lane_active;
}

/* A LANE_REQ (host) or LANE_ON (guest) from the peer; anything else of the
 * channel type was refused by decode(). */
void mux_lane_packet(smolvm_mux *mux, const smolvm_pkt_hdr *h, const uint8_t *payload)
{
        bool host = mux->our_cid == SMOLVM_CID_HOST;
        if (h->op == SMOLVM_CHAN_OP_LANE_REQ && host && h->len >= 12) {
                if (mux->ops.lane_req && !mux->lane_set)
                        mux->ops.lane_req(mux->userdata, get_le64(payload), get_le32(payload + 8));
                return;
        }
        if (h->op == SMOLVM_CHAN_OP_LANE_ON && !host && h->len >= 8) {
                if (!mux->lane_set || mux->lane_active || get_le64(payload) != mux->lane_epoch) {
                        chan_broken(mux, -EPROTO, "LANE_ON for a lane we did not ask for");
                        return;
                }
                int r = smolvm_evloop_add(mux->loop, mux->lane.fd, EPOLLIN, lane_io, mux);
                if (r < 0) {
                        chan_broken(mux, r, "cannot watch the lane");
                        return;
                }
                mux->lane_events = EPOLLIN;
                mux->lane_active = true;
                return;
        }
        mux->stats.n_dropped++;
}

ssize_t mux_lane_writev(smolvm_mux *mux, struct iovec *iov, int n)
{
        ssize_t w = mux->lane.send(mux->lane.userdata, iov, n);
        if (w == -EAGAIN)
                mux->lane_tx_blocked = true;
        if (w < 0) {
                errno = (int)-w;
                return -1;
        }
        if (w == 0) { /* a send that takes nothing must say -EAGAIN */
                errno = EIO;
                return -1;
        }
        return w;
}

ssize_t mux_lane_read(smolvm_mux *mux, uint8_t *buf, size_t cap)
{
        if (cap < SMOLVM_PKT_HDR_SIZE + SMOLVM_PKT_MAX_PAYLOAD) {
                /* chan_read() reads only while less than a batch is buffered */
                errno = EAGAIN;
                return -1;
        }
        ssize_t r = mux->lane.recv(mux->lane.userdata, buf, cap);
        if (r <= 0) {
                errno = r == 0 ? EIO : (int)-r;
                return -1;
        }
        return r;
}

/* Guest, lane active: the channel fd is still watched, for its end only. */
void mux_lane_chan_idle(smolvm_mux *mux)
{
        uint8_t b;
        ssize_t r = read(mux->chan_fd, &b, 1);
        if (r > 0)
                chan_broken(mux, -EPROTO, "bytes on the channel after LANE_ON");
        else if (r == 0)
                chan_broken(mux, -ECONNRESET, "channel closed");
        else if (errno != EAGAIN && errno != EINTR)
                chan_broken(mux, negative_errno(), "channel read failed");
}

void mux_lane_update_events(smolvm_mux *mux)
{
        if (!mux->lane_active || mux->our_cid != SMOLVM_CID_GUEST)
                return;
        uint32_t ev = mux->chan_in_blocked ? 0 : EPOLLIN;
        if (ev == mux->lane_events)
                return;
        int r = smolvm_evloop_mod(mux->loop, mux->lane.fd, ev);
        if (r < 0) {
                chan_broken(mux, r, "cannot watch the lane");
                return;
        }
        mux->lane_events = ev;
}

void mux_lane_free(smolvm_mux *mux)
{
        if (mux->lane_active && mux->our_cid == SMOLVM_CID_GUEST && mux->lane.fd >= 0)
                (void)smolvm_evloop_del(mux->loop, mux->lane.fd);
        mux->lane_active = false;
        mux->lane_events = 0;
}
