/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE messages over a byte stream: the serving end and the /dev/fuse relay
 * (fuse_stream.h). Both sides may be hostile (a guest kernel or a guest agent):
 * every length is checked against the header size and SMOLVM_FUSE_STREAM_MAX
 * before it is trusted, and memory is two fixed buffers per direction. */
#include "fuse_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define IN_HDR ((uint32_t)sizeof(struct fuse_in_header))
#define OUT_HDR ((uint32_t)sizeof(struct fuse_out_header))

/* FUSE headers are in the byte order of the kernel that speaks them; both ends
 * of our streams are little-endian x86-64/arm64 guests and hosts, so the struct
 * layout is read as is (copied out first: the buffer is not aligned). */
static uint32_t msg_len(const uint8_t *p)
{
        uint32_t len;
        memcpy(&len, p, sizeof(len)); /* len is the first field of both headers */
        return len;
}

/* Write everything to a stream without SIGPIPE; waits on EAGAIN (the fd may be
 * non-blocking). Returns 0 or negative errno. */
static int stream_write_all(int fd, const uint8_t *p, size_t len)
{
        bool is_sock = true;
        while (len > 0) {
                ssize_t n = is_sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
                if (n < 0 && errno == ENOTSOCK && is_sock) {
                        is_sock = false;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd pf = { .fd = fd, .events = POLLOUT };
                        if (poll(&pf, 1, -1) < 0 && errno != EINTR)
                                return negative_errno();
                        continue;
                }
                if (n < 0)
                        return negative_errno();
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int smolvm_fs_serve_stream(smolvm_fs *fs, int fd)
{
        _cleanup_free_ uint8_t *in = malloc(SMOLVM_FUSE_STREAM_MAX);
        _cleanup_free_ uint8_t *out = malloc(SMOLVM_FUSE_STREAM_MAX);
        if (!in || !out)
                return -ENOMEM;
        size_t start = 0, end = 0; /* unconsumed bytes: in[start, end) */

        for (;;) {
                /* Answer every complete request already buffered. */
                while (end - start >= IN_HDR) {
                        uint32_t len = msg_len(in + start);
                        if (len < IN_HDR || len > SMOLVM_FUSE_STREAM_MAX)
                                return -EPROTO;
                        if (end - start < len)
                                break;
                        struct iovec iv = { in + start, len }, ov = { out, SMOLVM_FUSE_STREAM_MAX };
                        ssize_t n = smolvm_fs_handle(fs, &iv, 1, &ov, 1);
                        if (n < 0)
                                return -EPROTO;
                        if (n > 0) {
                                if ((size_t)n < OUT_HDR || (size_t)n > SMOLVM_FUSE_STREAM_MAX)
                                        return -EPROTO; /* a server bug; never put it on the wire */
                                int r = stream_write_all(fd, out, (size_t)n);
                                if (r < 0)
                                        return r;
                        }
                        start += len;
                }
                /* Keep the partial message at the front: it fits, as len <= the buffer. */
                if (start > 0) {
                        memmove(in, in + start, end - start);
                        end -= start;
                        start = 0;
                }
                ssize_t k = read(fd, in + end, SMOLVM_FUSE_STREAM_MAX - end);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pf = { .fd = fd, .events = POLLIN };
                                if (poll(&pf, 1, -1) < 0 && errno != EINTR)
                                        return negative_errno();
                                continue;
                        }
                        return negative_errno();
                }
                if (k == 0)
                        return end == 0 ? 0 : -EPIPE;
                end += (size_t)k;
        }
}

/* ---- the relay ---------------------------------------------------------------- */

struct smolvm_fuse_relay_ev {
        int dev_fd, stream_fd;
        uint8_t *req;          /* one request from /dev/fuse, being sent */
        size_t req_len, req_sent;
        uint8_t *rep;          /* replies from the stream, being reassembled */
        size_t rep_len;
        bool have_init;        /* an INIT request went out: clamp its reply */
        uint64_t init_unique;
        bool dev_gone;         /* the relay ended because the file system did */
        smolvm_fuse_pending *pending; /* may be NULL */
};
typedef struct smolvm_fuse_relay_ev relay;

static void pending_add(smolvm_fuse_pending *p, const struct fuse_in_header *ih)
{
        if (!p || ih->opcode == FUSE_FORGET || ih->opcode == FUSE_BATCH_FORGET || ih->opcode == FUSE_INTERRUPT ||
            ih->opcode == FUSE_NOTIFY_REPLY)
                return;
        if (p->n < SMOLVM_FUSE_PENDING_MAX)
                p->unique[p->n++] = ih->unique;
        else
                p->n_untracked++;
}

static void pending_done(smolvm_fuse_pending *p, uint64_t unique)
{
        for (uint32_t i = 0; p && i < p->n; i++)
                if (p->unique[i] == unique) {
                        p->unique[i] = p->unique[--p->n];
                        return;
                }
}

unsigned smolvm_fuse_pending_fail(smolvm_fuse_pending *p, int dev_fuse_fd, int err)
{
        unsigned n = 0;
        for (uint32_t i = 0; i < p->n; i++) {
                struct fuse_out_header oh = { .len = OUT_HDR, .error = err, .unique = p->unique[i] };
                /* ENOENT: interrupted meanwhile, no longer waited for. */
                if (write(dev_fuse_fd, &oh, sizeof(oh)) == (ssize_t)sizeof(oh))
                        n++;
        }
        p->n = 0;
        return n;
}

/* Our stream carries at most SMOLVM_FUSE_STREAM_MAX per message. The kernel
 * sizes WRITE requests by max_write and READ replies by max_pages, both from the
 * server's INIT reply, so a server (possibly hostile, possibly raised by a
 * sysctl on a newer kernel) must not negotiate more than the stream can carry. */
static void clamp_init_reply(uint8_t *msg, uint32_t len)
{
        struct fuse_out_header oh;
        memcpy(&oh, msg, sizeof(oh));
        if (oh.error != 0)
                return;
        uint8_t *body = msg + OUT_HDR;
        uint32_t body_len = len - OUT_HDR;
        size_t off_mw = offsetof(struct fuse_init_out, max_write);
        if (body_len >= off_mw + sizeof(uint32_t)) {
                uint32_t mw;
                memcpy(&mw, body + off_mw, sizeof(mw));
                if (mw > SMOLVM_FUSE_STREAM_MAX_WRITE) {
                        mw = SMOLVM_FUSE_STREAM_MAX_WRITE;
                        memcpy(body + off_mw, &mw, sizeof(mw));
                }
        }
        size_t off_mp = offsetof(struct fuse_init_out, max_pages);
        if (body_len >= off_mp + sizeof(uint16_t)) {
                uint16_t mp;
                memcpy(&mp, body + off_mp, sizeof(mp));
                if (mp > SMOLVM_FUSE_STREAM_MAX_WRITE / 4096u) {
                        mp = (uint16_t)(SMOLVM_FUSE_STREAM_MAX_WRITE / 4096u);
                        memcpy(body + off_mp, &mp, sizeof(mp));
                }
        }
}

/* Read one request from /dev/fuse. Returns 1 when one is ready to send, 0 when
 * there was nothing (or it vanished), 2 when the file system is gone, negative
 * errno. */
static int relay_read_dev(relay *rl)
{
        ssize_t n = read(rl->dev_fd, rl->req, SMOLVM_FUSE_STREAM_MAX);
        if (n < 0) {
                /* ENOENT: the request was interrupted/aborted between poll and read. */
                if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
                        return 0;
                if (errno == ENODEV)
                        return 2; /* unmounted, or the connection was aborted */
                return negative_errno();
        }
        if ((size_t)n < IN_HDR || msg_len(rl->req) != (uint32_t)n)
                return -EPROTO; /* the kernel hands out one whole request per read */
        struct fuse_in_header ih;
        memcpy(&ih, rl->req, sizeof(ih));
        if (ih.opcode == FUSE_INIT) {
                rl->have_init = true;
                rl->init_unique = ih.unique;
        }
        pending_add(rl->pending, &ih);
        rl->req_len = (size_t)n;
        rl->req_sent = 0;
        return 1;
}

/* Send what we can of the pending request. Returns 0 or negative errno. */
static int relay_send(relay *rl)
{
        while (rl->req_sent < rl->req_len) {
                ssize_t n = send(rl->stream_fd, rl->req + rl->req_sent, rl->req_len - rl->req_sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == ENOTSOCK)
                        n = write(rl->stream_fd, rl->req + rl->req_sent, rl->req_len - rl->req_sent);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return negative_errno();
                }
                rl->req_sent += (size_t)n;
        }
        rl->req_len = rl->req_sent = 0;
        return 0;
}

/* Read what the stream has and hand every complete reply to the kernel.
 * Returns 1 to go on, 0 on a clean EOF, negative errno. */
static int relay_recv(relay *rl)
{
        ssize_t n = read(rl->stream_fd, rl->rep + rl->rep_len, SMOLVM_FUSE_STREAM_MAX - rl->rep_len);
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 1;
                return negative_errno();
        }
        if (n == 0)
                return rl->rep_len == 0 ? 0 : -EPIPE;
        rl->rep_len += (size_t)n;

        size_t start = 0;
        while (rl->rep_len - start >= OUT_HDR) {
                uint8_t *m = rl->rep + start;
                uint32_t len = msg_len(m);
                if (len < OUT_HDR || len > SMOLVM_FUSE_STREAM_MAX)
                        return -EPROTO;
                if (rl->rep_len - start < len)
                        break;
                struct fuse_out_header oh;
                memcpy(&oh, m, sizeof(oh));
                pending_done(rl->pending, oh.unique);
                if (rl->have_init && oh.unique == rl->init_unique) {
                        clamp_init_reply(m, len);
                        rl->have_init = false;
                }
                /* One write per reply: /dev/fuse takes a message per write and never
                 * blocks. ENOENT: the request was interrupted and is no longer
                 * waited for. Anything else is a reply the kernel rejected: the
                 * peer is broken or hostile. */
                if (write(rl->dev_fd, m, len) < 0 && errno != ENOENT) {
                        if (errno == ENODEV) {
                                rl->dev_gone = true;
                                return 0;
                        }
                        return negative_errno();
                }
                start += len;
        }
        if (start > 0) {
                memmove(rl->rep, rl->rep + start, rl->rep_len - start);
                rl->rep_len -= start;
        }
        return 1;
}

int smolvm_fuse_relay_ev_new(int dev_fuse_fd, int stream_fd, smolvm_fuse_pending *pending, smolvm_fuse_relay_ev **ret)
{
        /* Non-blocking /dev/fuse: a request can vanish (interrupted) between poll
         * and read, and a blocking read would then stall the relay. */
        int r = fd_set_nonblock(dev_fuse_fd, true);
        if (r < 0)
                return r;
        r = fd_set_nonblock(stream_fd, true);
        if (r < 0)
                return r;
        relay *rl = calloc(1, sizeof(*rl));
        if (!rl)
                return -ENOMEM;
        rl->req = malloc(SMOLVM_FUSE_STREAM_MAX);
        rl->rep = malloc(SMOLVM_FUSE_STREAM_MAX);
        if (!rl->req || !rl->rep) {
                smolvm_fuse_relay_ev_free(rl);
                return -ENOMEM;
        }
        rl->dev_fd = dev_fuse_fd;
        rl->stream_fd = stream_fd;
        rl->pending = pending;
        *ret = rl;
        return 0;
}

void smolvm_fuse_relay_ev_free(smolvm_fuse_relay_ev *rl)
{
        if (!rl)
                return;
        free(rl->req);
        free(rl->rep);
        free(rl);
}

int smolvm_fuse_relay_ev_set_stream(smolvm_fuse_relay_ev *rl, int stream_fd)
{
        int r = fd_set_nonblock(stream_fd, true);
        if (r < 0)
                return r;
        /* What was half sent or half received belonged to the old stream; the
         * request half sent is among the pending ones the caller fails. */
        rl->stream_fd = stream_fd;
        rl->req_len = rl->req_sent = 0;
        rl->rep_len = 0;
        rl->have_init = false;
        rl->dev_gone = false;
        return 0;
}

void smolvm_fuse_relay_ev_events(const smolvm_fuse_relay_ev *rl, uint32_t *ret_dev, uint32_t *ret_stream)
{
        /* Take the next request only when the previous one is on its way: the
         * kernel queues the rest. The stream is always read, so the peer's
         * replies never back up behind our requests. */
        bool sending = rl->req_len > 0;
        *ret_dev = sending ? 0 : POLLIN;
        *ret_stream = POLLIN | (sending ? POLLOUT : 0);
}

bool smolvm_fuse_relay_ev_dev_gone(const smolvm_fuse_relay_ev *rl)
{
        return rl->dev_gone;
}

/* Requests taken from /dev/fuse in one step at most: the kernel may have many
 * queued (readahead, parallel lookups); a bound keeps an event loop fair. */
#define RELAY_BATCH 32

int smolvm_fuse_relay_ev_step(smolvm_fuse_relay_ev *rl, uint32_t dev_revents, uint32_t stream_revents)
{
        int r;
        if (stream_revents & (POLLIN | POLLHUP | POLLERR)) {
                r = relay_recv(rl);
                if (r <= 0)
                        return r;
        }
        if (rl->req_len > 0) {
                r = relay_send(rl);
                if (r == -EPIPE || r == -ECONNRESET)
                        return 0; /* the peer is gone; its EOF would tell the same */
                if (r < 0)
                        return r;
        }
        if (rl->req_len > 0 || !(dev_revents & (POLLIN | POLLERR | POLLHUP)))
                return 1;
        if (!(dev_revents & POLLIN)) {
                rl->dev_gone = true;
                return 0; /* connection aborted / unmounted */
        }
        /* Everything the kernel has queued, as long as the stream takes it: each
         * request goes out as soon as it is read, never behind a reply. */
        for (int i = 0; i < RELAY_BATCH && rl->req_len == 0; i++) {
                r = relay_read_dev(rl);
                if (r < 0)
                        return r;
                if (r == 2) {
                        rl->dev_gone = true;
                        return 0;
                }
                if (r == 0)
                        break;
                r = relay_send(rl);
                if (r == -EPIPE || r == -ECONNRESET)
                        return 0;
                if (r < 0)
                        return r;
        }
        return 1;
}

int smolvm_fuse_relay_cancellable(int dev_fuse_fd, int stream_fd, int cancel_fd)
{
        return smolvm_fuse_relay_tracked(dev_fuse_fd, stream_fd, cancel_fd, NULL);
}

int smolvm_fuse_relay_tracked(int dev_fuse_fd, int stream_fd, int cancel_fd, smolvm_fuse_pending *pending)
{
        smolvm_fuse_relay_ev *rl = NULL;
        int r = smolvm_fuse_relay_ev_new(dev_fuse_fd, stream_fd, pending, &rl);
        if (r < 0)
                return r;
        for (;;) {
                uint32_t dev_ev, stream_ev;
                smolvm_fuse_relay_ev_events(rl, &dev_ev, &stream_ev);
                struct pollfd p[3] = {
                        { .fd = dev_fuse_fd, .events = (short)dev_ev },
                        { .fd = stream_fd, .events = (short)stream_ev },
                        { .fd = cancel_fd, .events = POLLIN },
                };
                int k = poll(p, cancel_fd >= 0 ? 3 : 2, -1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        break;
                }
                if (cancel_fd >= 0 && p[2].revents) {
                        r = -ECANCELED;
                        break;
                }
                r = smolvm_fuse_relay_ev_step(rl, (uint32_t)(dev_ev ? p[0].revents : 0), (uint32_t)p[1].revents);
                if (r <= 0)
                        break;
        }
        smolvm_fuse_relay_ev_free(rl);
        return r;
}

int smolvm_fuse_relay(int dev_fuse_fd, int stream_fd)
{
        return smolvm_fuse_relay_cancellable(dev_fuse_fd, stream_fd, -1);
}
