/* SPDX-License-Identifier: Apache-2.0 */
/* The channel multiplexer's channel I/O (split from mux.c; the data paths,
 * bounds and re-entrancy rules are described at the top of mux.c):
 *   - writing the output queue (chan_flush: one writev per MUX_IOV_MAX packets,
 *     to the channel fd, or to the lane once LANE_ON left);
 *   - reading and parsing the channel (chan_read, chan_parse: batched reads up
 *     to MUX_READ_BATCH, complete packets handed to mux_handle_packet);
 *   - the channel fd's loop callback (mux_chan_io) and breaking the channel
 *     (chan_broken). */
#include "mux_i.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"
#include "wire.h"

static void outq_pop(smolvm_mux *mux)
{
        pkt *p = mux->outq_head;
        mux->outq_head = p->next;
        if (!mux->outq_head)
                mux->outq_tail = NULL;
        mux->outq_bytes -= p->size;
        if (p->ctl)
                mux->outq_ctl--;
        if (p->orphan)
                mux->n_orphan_rst--;
        if (p->lane_on)
                mux->lane_active = true;
        mux->outq_off = 0;
        free(p);
}

void mux_outq_clear(smolvm_mux *mux)
{
        while (mux->outq_head)
                outq_pop(mux);
}

void chan_flush(smolvm_mux *mux)
{
        while (mux->outq_head && !mux->broken) {
                struct iovec iov[MUX_IOV_MAX];
                int n = 0;
                size_t off = mux->outq_off;
                for (pkt *p = mux->outq_head; p && n < MUX_IOV_MAX; p = p->next) {
                        iov[n].iov_base = p->data + off;
                        iov[n].iov_len = p->size - off;
                        off = 0;
                        n++;
                        if (p->lane_on) /* the last bytes on the channel fd */
                                break;
                }
                ssize_t w = mux_lane_tx(mux) ? mux_lane_writev(mux, iov, n)
                                             : mux_writev_nosig(mux->chan_fd, mux->chan_is_sock, iov, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return;
                        chan_broken(mux, negative_errno(), "channel write failed");
                        return;
                }
                size_t left = (size_t)w;
                while (left > 0 && mux->outq_head) {
                        size_t rem = mux->outq_head->size - mux->outq_off;
                        if (left >= rem) {
                                left -= rem;
                                outq_pop(mux);
                        } else {
                                mux->outq_off += left;
                                left = 0;
                        }
                }
        }
}

/* Handle the complete packets in inbuf and keep the rest (less than one
 * packet) at its start. Returns false when the mux broke or is being freed. */
static bool chan_parse(smolvm_mux *mux)
{
        size_t off = 0;
        while (mux->in_len - off >= SMOLVM_PKT_HDR_SIZE) {
                smolvm_pkt_hdr h;
                int d = smolvm_pkt_hdr_decode(mux->inbuf + off, &h);
                if (d == -EMSGSIZE) {
                        chan_broken(mux, -EMSGSIZE, "packet length above the maximum");
                        return false;
                }
                if (mux->in_len - off - SMOLVM_PKT_HDR_SIZE < h.len)
                        break;
                const uint8_t *payload = mux->inbuf + off + SMOLVM_PKT_HDR_SIZE;
                off += SMOLVM_PKT_HDR_SIZE + h.len;
                if (d < 0) {
                        mux->stats.n_dropped++;
                        continue;
                }
                /* Anything but data may look at (or end) a stream: what is
                 * pending goes first. */
                if (h.type != SMOLVM_PKT_TYPE_STREAM || h.op != SMOLVM_OP_RW)
                        stream_pend_flush(mux);
                bool lane_was_active = mux->lane_active;
                mux_handle_packet(mux, &h, payload);
                if (mux->broken || mux->free_requested)
                        return false;
                /* Only a LANE_ON that switched us (a dropped one switches nothing). */
                if (!lane_was_active && mux->lane_active && off < mux->in_len) {
                        chan_broken(mux, -EPROTO, "bytes on the channel after LANE_ON");
                        return false;
                }
        }
        stream_pend_flush(mux);
        if (mux->broken || mux->free_requested)
                return false;
        /* What is left is less than one packet (< header + max payload), so at
         * least MUX_READ_BATCH bytes of space remain for the next reads. */
        memmove(mux->inbuf, mux->inbuf + off, mux->in_len - off);
        mux->in_len -= off;
        return true;
}

void chan_read(smolvm_mux *mux, bool force)
{
        int reads = 0;
        size_t got = 0;
        for (;;) {
                if (mux->outq_ctl >= MUX_CTL_MAX)
                        mux->chan_in_blocked = true;
                if (mux->broken || mux->free_requested || (mux->chan_in_blocked && !force))
                        return;
                bool drained = false, eof = false;
                while (mux->in_len < MUX_READ_BATCH && reads < MUX_CHAN_READS_PER_WAKE) {
                        ssize_t r = mux_lane_rx(mux) ? mux_lane_read(mux, mux->inbuf + mux->in_len, MUX_INBUF_SIZE - mux->in_len)
                                                     : read(mux->chan_fd, mux->inbuf + mux->in_len, MUX_INBUF_SIZE - mux->in_len);
                        if (r < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                                        drained = true;
                                        break;
                                }
                                chan_broken(mux, negative_errno(), "channel read failed");
                                return;
                        }
                        if (r == 0) {
                                eof = true;
                                break;
                        }
                        reads++;
                        got += (size_t)r;
                        mux->in_len += (size_t)r;
                }
                /* Packets that came before an EOF are still handled. */
                if (!chan_parse(mux))
                        return;
                if (eof) {
                        chan_broken(mux, -ECONNRESET,
                                    mux->in_len ? "channel closed inside a packet" : "channel closed");
                        return;
                }
                /* Others get the loop too: a socket fills the batch in one read. */
                if (drained || reads >= MUX_CHAN_READS_PER_WAKE || got >= MUX_CHAN_BYTES_PER_WAKE)
                        return;
        }
}

void mux_chan_io(void *userdata, int fd, uint32_t events)
{
        smolvm_mux *mux = userdata;
        mux_enter(mux);
        if (events & EPOLLOUT)
                chan_flush(mux);
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (mux_lane_rx(mux))
                        mux_lane_chan_idle(mux); /* the guest's port carries nothing more */
                else
                        chan_read(mux, (events & (EPOLLHUP | EPOLLERR)) != 0);
        }
        mux_leave(mux);
}

void chan_broken(smolvm_mux *mux, int err, const char *why)
{
        if (mux->broken)
                return;
        mux->broken = true;
        mux_lane_free(mux);
        if (mux->chan_fd >= 0)
                (void)smolvm_evloop_del(mux->loop, mux->chan_fd);
        mux->chan_events = 0;
        mux_outq_clear(mux);
        mux->in_len = 0;
        if (mux->ops.resetting && !mux->freeing)
                mux->ops.resetting(mux->userdata);
        while (mux->streams)
                stream_kill(mux->streams, -ECONNRESET);
        mux_timer_arm(mux);
        if (mux->ops.broken && !mux->freeing)
                mux->ops.broken(mux->userdata, err, why);
}
