/* SPDX-License-Identifier: Apache-2.0 */
/* The lane's ends over fds (lane_io.h). */
#include "lane_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define PREFIX 4u
#define HOST_FRAME_MAX (PREFIX + SMOLVM_LANE_FRAME_HDR + SMOLVM_LANE_MAX_PAYLOAD)
/* Frames from the guest are ACKs (a header, padded to 60 bytes at most): a
 * longer frame is none, and is discarded as it comes, never buffered. */
#define HOST_IN_FRAME_MAX 64u
#define HOST_IN_BUF 4096u

struct smolvm_lane_host {
        int fd;
        smolvm_lane_tx tx;
        uint8_t *out; /* one frame: prefix, headers, payload */
        size_t out_len, out_off;
        uint8_t in[HOST_IN_BUF];
        size_t in_len;
        uint64_t skip;      /* bytes of a dropped frame still to discard */
        uint64_t n_dropped; /* frames from the guest that were no ACK */
};

int smolvm_lane_host_new(int fd, smolvm_lane_host **ret)
{
        if (fd < 0 || !ret)
                return -EINVAL;
        smolvm_lane_host *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->out = malloc(HOST_FRAME_MAX);
        if (!h->out) {
                free(h);
                return -ENOMEM;
        }
        h->fd = fd;
        *ret = h;
        return 0;
}

void smolvm_lane_host_free(smolvm_lane_host *h)
{
        if (!h)
                return;
        free(h->out);
        free(h);
}

void smolvm_lane_host_start(smolvm_lane_host *h, uint64_t epoch, uint32_t window)
{
        smolvm_lane_tx_start(&h->tx, epoch, window);
}

uint64_t smolvm_lane_host_sent(const smolvm_lane_host *h)
{
        return h->tx.sent;
}

bool smolvm_lane_host_blocked(const smolvm_lane_host *h)
{
        return h->out_off < h->out_len;
}

static int out_flush(smolvm_lane_host *h)
{
        while (h->out_off < h->out_len) {
                ssize_t w = send(h->fd, h->out + h->out_off, h->out_len - h->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                h->out_off += (size_t)w;
        }
        return 0;
}

ssize_t smolvm_lane_host_send(void *userdata, const struct iovec *iov, int n)
{
        smolvm_lane_host *h = userdata;
        int r = out_flush(h);
        if (r < 0)
                return r == -EWOULDBLOCK ? -EAGAIN : r;
        size_t room = smolvm_lane_tx_room(&h->tx);
        if (room == 0)
                return -EAGAIN;
        /* One copy on the host (cheap there): the guest's side is the costly one. */
        uint8_t *payload = h->out + PREFIX + SMOLVM_LANE_FRAME_HDR;
        size_t len = 0;
        for (int i = 0; i < n && len < room; i++) {
                size_t k = iov[i].iov_len < room - len ? iov[i].iov_len : room - len;
                memcpy(payload + len, iov[i].iov_base, k);
                len += k;
        }
        if (len == 0)
                return -EAGAIN;
        smolvm_lane_tx_frame(&h->tx, (uint32_t)len, h->out + PREFIX);
        uint32_t flen = SMOLVM_LANE_FRAME_HDR + (uint32_t)len;
        h->out[0] = (uint8_t)(flen >> 24);
        h->out[1] = (uint8_t)(flen >> 16);
        h->out[2] = (uint8_t)(flen >> 8);
        h->out[3] = (uint8_t)flen;
        h->out_len = PREFIX + flen;
        h->out_off = 0;
        r = out_flush(h);
        if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK)
                return r;
        return (ssize_t)len; /* taken: the rest of the frame goes on EPOLLOUT */
}

int smolvm_lane_host_on_writable(smolvm_lane_host *h)
{
        bool was = smolvm_lane_host_blocked(h);
        int r = out_flush(h);
        if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK)
                return r;
        return was && !smolvm_lane_host_blocked(h);
}

int smolvm_lane_host_on_readable(smolvm_lane_host *h)
{
        int opened = 0;
        /* Bounded per call: a guest sending frames without end gets the loop
         * back every HOST_IN_BUF bytes. */
        ssize_t r = recv(h->fd, h->in + h->in_len, sizeof(h->in) - h->in_len, MSG_DONTWAIT);
        if (r == 0)
                return -ECONNRESET;
        if (r < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : negative_errno();
        h->in_len += (size_t)r;
        size_t off = 0;
        for (;;) {
                /* The rest of a frame too large to be an ACK: discarded as it comes. */
                size_t k = MIN(h->skip, h->in_len - off);
                off += k;
                h->skip -= k;
                if (h->skip || h->in_len - off < PREFIX)
                        break;
                const uint8_t *p = h->in + off;
                uint32_t flen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
                if (flen > HOST_IN_FRAME_MAX) {
                        h->n_dropped++;
                        off += PREFIX;
                        h->skip = flen;
                        continue;
                }
                if (h->in_len - off - PREFIX < flen)
                        break;
                off += PREFIX + flen;
                /* Not an ACK (the guest's kernel, or junk): dropped. An ACK
                 * that lies about what was sent breaks the lane. */
                smolvm_lane_hdr hdr;
                if (smolvm_lane_hdr_decode(p + PREFIX, flen, &hdr) < 0 || hdr.kind != SMOLVM_LANE_ACK) {
                        h->n_dropped++;
                        continue;
                }
                int a = smolvm_lane_tx_on_frame(&h->tx, p + PREFIX, flen);
                if (a < 0)
                        return a;
                opened |= a;
        }
        memmove(h->in, h->in + off, h->in_len - off);
        h->in_len -= off;
        return opened;
}

uint64_t smolvm_lane_host_dropped(const smolvm_lane_host *h)
{
        return h->n_dropped;
}

/* An ACK when due. One the device did not take is due again with the next
 * frame or when the socket is drained (a lost last ACK would stall a full
 * window). */
static void guest_ack(smolvm_lane_guest *g)
{
        uint8_t ack[SMOLVM_LANE_FRAME_HDR];
        uint64_t acked = g->rx.acked;
        if (smolvm_lane_rx_ack(&g->rx, false, ack) &&
            send(g->fd, ack, sizeof(ack), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(ack))
                g->rx.acked = acked;
}

ssize_t smolvm_lane_guest_recv(void *userdata, uint8_t *buf, size_t cap)
{
        smolvm_lane_guest *g = userdata;
        if (cap < SMOLVM_LANE_MAX_PAYLOAD)
                return -EMSGSIZE;
        for (;;) {
                uint8_t hdr[SMOLVM_LANE_FRAME_HDR];
                struct iovec iov[2] = { { hdr, sizeof(hdr) }, { buf, SMOLVM_LANE_MAX_PAYLOAD } };
                struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
                /* MSG_TRUNC: the frame's real length, so an oversize frame
                 * is seen as one (decode refuses it), not cut to fit. */
                ssize_t r = recvmsg(g->fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EWOULDBLOCK)
                                return negative_errno();
                        /* Drained: an ACK the device did not take earlier
                         * goes now (with the window full, no next frame
                         * would carry it). */
                        guest_ack(g);
                        return -EAGAIN;
                }
                size_t len = 0;
                int a = smolvm_lane_rx_on_hdr(&g->rx, hdr, (size_t)r, &len);
                if (a < 0)
                        return a;
                if (a == 0) {
                        g->n_stale++;
                        continue;
                }
                guest_ack(g);
                return (ssize_t)len;
        }
}
