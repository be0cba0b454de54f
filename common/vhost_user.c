/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user back-end: message framing, validation and ring state machine. */
#include "vhost_user.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "fdpass.h"
#include "util.h"

/* u64 payload of SET_VRING_KICK/CALL/ERR: bits 0-7 queue index, bit 8 "no fd". */
#define VRING_IDX_MASK 0xffu
#define VRING_NOFD_MASK 0x100u
#define MEM_REGION_SIZE 32u
#define REPLY_TIMEOUT_MS 1000

typedef struct vu_queue {
        smolvm_vq vq;            /* owned by the device while running */
        uint16_t num;
        bool addr_set;
        uint64_t desc_uaddr, avail_uaddr, used_uaddr;
        uint16_t base;           /* last_avail_idx while not running */
        int kick_fd, call_fd, err_fd;
        bool started;            /* SET_VRING_KICK seen, no GET_VRING_BASE since */
        bool enabled;
        bool running;            /* between queue_start and queue_stop */
} vu_queue;

struct smolvm_vu_dev {
        smolvm_evloop *loop;
        int fd;
        bool watched;
        smolvm_vu_ops ops;
        void *userdata;

        uint64_t acked_features;
        uint64_t acked_protocol_features;
        bool broken;
        const char *broken_why;

        smolvm_vq_mem mem;
        void *map_addr[SMOLVM_VQ_MAX_REGIONS];
        size_t map_len[SMOLVM_VQ_MAX_REGIONS];

        vu_queue *queues;        /* ops.n_queues */

        /* Message being received. */
        uint8_t buf[SMOLVM_VHOST_USER_HDR_SIZE + SMOLVM_VHOST_USER_MAX_PAYLOAD];
        size_t have;
        int fds[SMOLVM_VHOST_USER_MAX_FDS];
        unsigned n_fds;
};

typedef struct msg {
        uint32_t request, flags, size;
        const uint8_t *payload;
        int *fds;
        unsigned n_fds;
} msg;

static uint64_t offered_features(const smolvm_vu_dev *dev)
{
        return dev->ops.features | (1ull << SMOLVM_VHOST_USER_F_PROTOCOL_FEATURES);
}

static uint64_t offered_protocol_features(const smolvm_vu_dev *dev)
{
        uint64_t implemented = (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_MQ) |
                               (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_REPLY_ACK);
        return dev->ops.protocol_features & implemented;
}

static void close_msg_fds(smolvm_vu_dev *dev)
{
        for (unsigned i = 0; i < dev->n_fds; i++)
                safe_close(dev->fds[i]);
        dev->n_fds = 0;
}

static void queue_stop(smolvm_vu_dev *dev, unsigned q)
{
        vu_queue *vq = &dev->queues[q];
        if (!vq->running)
                return;
        dev->ops.queue_stop(dev->userdata, q);
        vq->running = false;
        vq->base = vq->vq.last_avail_idx;
}

static void stop_all(smolvm_vu_dev *dev)
{
        for (unsigned q = 0; q < dev->ops.n_queues; q++)
                queue_stop(dev, q);
}

static int set_broken(smolvm_vu_dev *dev, int err, const char *why)
{
        if (dev->broken)
                return err;
        dev->broken = true;
        dev->broken_why = why;
        stop_all(dev);
        if (dev->watched) {
                smolvm_evloop_del(dev->loop, dev->fd);
                dev->watched = false;
        }
        close_msg_fds(dev);
        if (dev->ops.broken)
                dev->ops.broken(dev->userdata, err, why);
        return err;
}

/* Start q if everything it needs is in place; a ring the guest laid out badly
 * breaks the device (the front-end passed us addresses it did not map). */
static int queue_update(smolvm_vu_dev *dev, unsigned q)
{
        vu_queue *vq = &dev->queues[q];
        bool should_run = !dev->broken && vq->started && vq->enabled && vq->addr_set && vq->num > 0 &&
                          vq->kick_fd >= 0 && dev->mem.n_regions > 0;
        if (!should_run) {
                queue_stop(dev, q);
                return 0;
        }
        if (vq->running)
                return 0;
        bool event_idx = dev->acked_features & (1ull << SMOLVM_VIRTIO_F_EVENT_IDX);
        bool indirect = dev->acked_features & (1ull << SMOLVM_VIRTIO_F_INDIRECT_DESC);
        int r = smolvm_vq_init(&vq->vq, &dev->mem, vq->num, vq->desc_uaddr, vq->avail_uaddr, vq->used_uaddr,
                               vq->base, event_idx, indirect);
        if (r < 0)
                return set_broken(dev, r, vq->vq.why);
        vq->running = true;
        dev->ops.queue_start(dev->userdata, q);
        return 0;
}

static void update_all(smolvm_vu_dev *dev)
{
        for (unsigned q = 0; q < dev->ops.n_queues && !dev->broken; q++)
                queue_update(dev, q);
}

static void unmap_all(smolvm_vu_dev *dev)
{
        for (uint32_t i = 0; i < dev->mem.n_regions; i++)
                munmap(dev->map_addr[i], dev->map_len[i]);
        memset(&dev->mem, 0, sizeof(dev->mem));
}

static int send_reply(smolvm_vu_dev *dev, uint32_t request, const void *payload, uint32_t size)
{
        uint8_t out[SMOLVM_VHOST_USER_HDR_SIZE + 64];
        if (size > sizeof(out) - SMOLVM_VHOST_USER_HDR_SIZE)
                return -EINVAL;
        put_le32(out, request);
        put_le32(out + 4, SMOLVM_VHOST_USER_VERSION | SMOLVM_VHOST_USER_REPLY_MASK);
        put_le32(out + 8, size);
        memcpy(out + SMOLVM_VHOST_USER_HDR_SIZE, payload, size);
        size_t len = SMOLVM_VHOST_USER_HDR_SIZE + size, done = 0;
        while (done < len) {
                ssize_t n = send(dev->fd, out + done, len - done, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                /* Replies are tiny; a full socket means a peer that stopped reading. */
                                struct pollfd p = { .fd = dev->fd, .events = POLLOUT };
                                int pr = poll(&p, 1, REPLY_TIMEOUT_MS);
                                if (pr <= 0)
                                        return pr == 0 ? -ETIMEDOUT : negative_errno();
                                continue;
                        }
                        return negative_errno();
                }
                done += (size_t)n;
        }
        return 0;
}

static int reply_u64(smolvm_vu_dev *dev, uint32_t request, uint64_t v)
{
        uint8_t p[8];
        put_le64(p, v);
        return send_reply(dev, request, p, sizeof(p));
}

/* ---- request handlers: return 0, or negative errno (the device breaks) ---- */

static int check_queue(const smolvm_vu_dev *dev, uint32_t q)
{
        return q < dev->ops.n_queues ? 0 : -ERANGE;
}

static int take_fd(msg *m, int *ret_fd)
{
        if (m->n_fds != 1)
                return -EBADMSG;
        *ret_fd = m->fds[0];
        m->fds[0] = -1;
        m->n_fds = 0;
        return 0;
}

static int handle_set_features(smolvm_vu_dev *dev, const msg *m)
{
        uint64_t f = get_le64(m->payload);
        if (f & ~offered_features(dev))
                return -EINVAL;
        stop_all(dev);
        dev->acked_features = f;
        /* Without PROTOCOL_FEATURES rings are enabled as soon as they start. */
        if (!(f & (1ull << SMOLVM_VHOST_USER_F_PROTOCOL_FEATURES)))
                for (unsigned q = 0; q < dev->ops.n_queues; q++)
                        dev->queues[q].enabled = true;
        update_all(dev);
        return 0;
}

static int handle_set_mem_table(smolvm_vu_dev *dev, msg *m)
{
        uint32_t n = get_le32(m->payload);
        if (n == 0 || n > SMOLVM_VHOST_USER_MAX_REGIONS)
                return -E2BIG;
        if (m->size != 8 + n * MEM_REGION_SIZE || m->n_fds != n)
                return -EBADMSG;

        smolvm_vq_mem mem = { 0 };
        void *map_addr[SMOLVM_VHOST_USER_MAX_REGIONS];
        size_t map_len[SMOLVM_VHOST_USER_MAX_REGIONS];
        int r = 0;
        uint32_t mapped = 0;
        for (; mapped < n; mapped++) {
                const uint8_t *reg = m->payload + 8 + mapped * MEM_REGION_SIZE;
                uint64_t gpa = get_le64(reg), size = get_le64(reg + 8);
                uint64_t uaddr = get_le64(reg + 16), offset = get_le64(reg + 24);
                struct stat st;
                if (fstat(m->fds[mapped], &st) < 0) {
                        r = negative_errno();
                        break;
                }
                /* Only shared memory files: a pipe or socket cannot be guest RAM,
                 * and a mapping past EOF would SIGBUS us on the first access. */
                if (!S_ISREG(st.st_mode) || size == 0 || offset > UINT64_MAX - size ||
                    offset + size > (uint64_t)st.st_size || offset + size > SIZE_MAX) {
                        r = -EINVAL;
                        break;
                }
                /* Map from file offset 0 so the offset needs no page alignment. */
                size_t len = (size_t)(offset + size);
                void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[mapped], 0);
                if (p == MAP_FAILED) {
                        r = negative_errno();
                        break;
                }
                map_addr[mapped] = p;
                map_len[mapped] = len;
                r = smolvm_vq_mem_add(&mem, gpa, size, uaddr, (uint8_t *)p + offset);
                if (r < 0) {
                        mapped++;
                        break;
                }
        }
        if (r < 0) {
                for (uint32_t i = 0; i < mapped; i++)
                        munmap(map_addr[i], map_len[i]);
                return r;
        }
        /* The mappings keep the memory alive; the fds are closed with the message. */
        stop_all(dev);
        unmap_all(dev);
        dev->mem = mem;
        for (uint32_t i = 0; i < n; i++) {
                dev->map_addr[i] = map_addr[i];
                dev->map_len[i] = map_len[i];
        }
        update_all(dev);
        return 0;
}

static int handle_vring_state(smolvm_vu_dev *dev, const msg *m)
{
        uint32_t q = get_le32(m->payload), num = get_le32(m->payload + 4);
        int r = check_queue(dev, q);
        if (r < 0)
                return r;
        vu_queue *vq = &dev->queues[q];
        switch (m->request) {
        case SMOLVM_VHOST_USER_SET_VRING_NUM: {
                uint32_t max = dev->ops.max_queue_size ? dev->ops.max_queue_size : 1024;
                if (num == 0 || num > max || (num & (num - 1)) != 0)
                        return -EINVAL;
                queue_stop(dev, q);
                vq->num = (uint16_t)num;
                break;
        }
        case SMOLVM_VHOST_USER_SET_VRING_BASE:
                if (num > UINT16_MAX)
                        return -EINVAL;
                queue_stop(dev, q);
                vq->base = (uint16_t)num;
                break;
        case SMOLVM_VHOST_USER_SET_VRING_ENABLE:
                if (num > 1)
                        return -EINVAL;
                queue_stop(dev, q);
                vq->enabled = num == 1;
                break;
        case SMOLVM_VHOST_USER_GET_VRING_BASE: {
                /* Stops the ring (vhost-user: "stopped upon GET_VRING_BASE"); a
                 * new SET_VRING_KICK starts it again. */
                queue_stop(dev, q);
                vq->started = false;
                vq->kick_fd = safe_close(vq->kick_fd);
                uint8_t p[8];
                put_le32(p, q);
                put_le32(p + 4, vq->base);
                return send_reply(dev, m->request, p, sizeof(p));
        }
        default:
                return -EINVAL;
        }
        return queue_update(dev, q);
}

static int handle_vring_addr(smolvm_vu_dev *dev, const msg *m)
{
        uint32_t q = get_le32(m->payload);
        int r = check_queue(dev, q);
        if (r < 0)
                return r;
        vu_queue *vq = &dev->queues[q];
        queue_stop(dev, q);
        /* flags (payload + 4) only carries VHOST_VRING_F_LOG: no dirty logging here. */
        vq->desc_uaddr = get_le64(m->payload + 8);
        vq->used_uaddr = get_le64(m->payload + 16);
        vq->avail_uaddr = get_le64(m->payload + 24);
        vq->addr_set = true;
        return queue_update(dev, q);
}

static int handle_vring_fd(smolvm_vu_dev *dev, msg *m)
{
        uint64_t v = get_le64(m->payload);
        if (v & ~(uint64_t)(VRING_IDX_MASK | VRING_NOFD_MASK))
                return -EINVAL;
        uint32_t q = (uint32_t)(v & VRING_IDX_MASK);
        int r = check_queue(dev, q);
        if (r < 0)
                return r;
        int fd = -1;
        if (v & VRING_NOFD_MASK) {
                if (m->n_fds != 0)
                        return -EBADMSG;
                /* No kick fd means the back-end polls the ring: not implemented. */
                if (m->request == SMOLVM_VHOST_USER_SET_VRING_KICK)
                        return -EOPNOTSUPP;
        } else {
                r = take_fd(m, &fd);
                if (r < 0)
                        return r;
        }
        vu_queue *vq = &dev->queues[q];
        queue_stop(dev, q);
        switch (m->request) {
        case SMOLVM_VHOST_USER_SET_VRING_KICK:
                /* A worker must never block reading it (QEMU's is non-blocking anyway). */
                if (fd_set_nonblock(fd, true) < 0) {
                        safe_close(fd);
                        return -EBADF;
                }
                safe_close(vq->kick_fd);
                vq->kick_fd = fd;
                vq->started = true;
                break;
        case SMOLVM_VHOST_USER_SET_VRING_CALL:
                safe_close(vq->call_fd);
                vq->call_fd = fd;
                break;
        case SMOLVM_VHOST_USER_SET_VRING_ERR:
                safe_close(vq->err_fd);
                vq->err_fd = fd;
                break;
        default:
                safe_close(fd);
                return -EINVAL;
        }
        return queue_update(dev, q);
}

static void reset_queues(smolvm_vu_dev *dev)
{
        stop_all(dev);
        for (unsigned q = 0; q < dev->ops.n_queues; q++) {
                vu_queue *vq = &dev->queues[q];
                safe_close(vq->kick_fd);
                safe_close(vq->call_fd);
                safe_close(vq->err_fd);
                *vq = (vu_queue){ .kick_fd = -1, .call_fd = -1, .err_fd = -1 };
        }
}

/* Exact payload size of each request, or -1 for unknown. */
static int payload_size(uint32_t request)
{
        switch (request) {
        case SMOLVM_VHOST_USER_GET_FEATURES:
        case SMOLVM_VHOST_USER_SET_OWNER:
        case SMOLVM_VHOST_USER_RESET_OWNER:
        case SMOLVM_VHOST_USER_GET_PROTOCOL_FEATURES:
        case SMOLVM_VHOST_USER_GET_QUEUE_NUM:
                return 0;
        case SMOLVM_VHOST_USER_SET_FEATURES:
        case SMOLVM_VHOST_USER_SET_PROTOCOL_FEATURES:
        case SMOLVM_VHOST_USER_SET_VRING_KICK:
        case SMOLVM_VHOST_USER_SET_VRING_CALL:
        case SMOLVM_VHOST_USER_SET_VRING_ERR:
        case SMOLVM_VHOST_USER_SET_VRING_NUM:
        case SMOLVM_VHOST_USER_SET_VRING_BASE:
        case SMOLVM_VHOST_USER_GET_VRING_BASE:
        case SMOLVM_VHOST_USER_SET_VRING_ENABLE:
                return 8;
        case SMOLVM_VHOST_USER_SET_VRING_ADDR:
                return 40;
        case SMOLVM_VHOST_USER_SET_MEM_TABLE:
                return -2; /* variable, checked by the handler */
        default:
                return -1;
        }
}

static int dispatch(smolvm_vu_dev *dev, msg *m, const char **ret_why)
{
        int expect = payload_size(m->request);
        if (expect == -1) {
                *ret_why = "unknown request";
                return -EOPNOTSUPP;
        }
        if ((expect >= 0 && m->size != (uint32_t)expect) || (expect == -2 && m->size < 8)) {
                *ret_why = "wrong payload size for request";
                return -EBADMSG;
        }
        bool takes_fds = m->request == SMOLVM_VHOST_USER_SET_MEM_TABLE || m->request == SMOLVM_VHOST_USER_SET_VRING_KICK ||
                         m->request == SMOLVM_VHOST_USER_SET_VRING_CALL || m->request == SMOLVM_VHOST_USER_SET_VRING_ERR;
        if (!takes_fds && m->n_fds > 0) {
                *ret_why = "unexpected fds with request";
                return -EBADMSG;
        }
        if (dev->ops.trace)
                dev->ops.trace(dev->userdata, m->request, m->flags, m->size);

        int r;
        *ret_why = "invalid request";
        switch (m->request) {
        case SMOLVM_VHOST_USER_GET_FEATURES:
                return reply_u64(dev, m->request, offered_features(dev));
        case SMOLVM_VHOST_USER_GET_PROTOCOL_FEATURES:
                return reply_u64(dev, m->request, offered_protocol_features(dev));
        case SMOLVM_VHOST_USER_GET_QUEUE_NUM:
                return reply_u64(dev, m->request, dev->ops.n_queues);
        case SMOLVM_VHOST_USER_GET_VRING_BASE:
                return handle_vring_state(dev, m);
        case SMOLVM_VHOST_USER_SET_FEATURES:
                *ret_why = "SET_FEATURES: feature not offered";
                r = handle_set_features(dev, m);
                break;
        case SMOLVM_VHOST_USER_SET_PROTOCOL_FEATURES: {
                uint64_t f = get_le64(m->payload);
                *ret_why = "SET_PROTOCOL_FEATURES: feature not offered";
                r = (f & ~offered_protocol_features(dev)) ? -EINVAL : 0;
                if (r == 0)
                        dev->acked_protocol_features = f;
                break;
        }
        case SMOLVM_VHOST_USER_SET_OWNER:
                r = 0;
                break;
        case SMOLVM_VHOST_USER_RESET_OWNER:
                reset_queues(dev);
                dev->acked_features = 0;
                r = 0;
                break;
        case SMOLVM_VHOST_USER_SET_MEM_TABLE:
                *ret_why = "SET_MEM_TABLE: bad region table or fds";
                r = handle_set_mem_table(dev, m);
                break;
        case SMOLVM_VHOST_USER_SET_VRING_NUM:
        case SMOLVM_VHOST_USER_SET_VRING_BASE:
        case SMOLVM_VHOST_USER_SET_VRING_ENABLE:
                *ret_why = "vring state: bad queue index or value";
                r = handle_vring_state(dev, m);
                break;
        case SMOLVM_VHOST_USER_SET_VRING_ADDR:
                *ret_why = "SET_VRING_ADDR: bad queue index";
                r = handle_vring_addr(dev, m);
                break;
        case SMOLVM_VHOST_USER_SET_VRING_KICK:
        case SMOLVM_VHOST_USER_SET_VRING_CALL:
        case SMOLVM_VHOST_USER_SET_VRING_ERR:
                *ret_why = "vring fd: bad queue index or fd";
                r = handle_vring_fd(dev, m);
                break;
        default:
                *ret_why = "unknown request";
                return -EOPNOTSUPP;
        }
        if (dev->broken)
                return r < 0 ? r : -EIO;
        /* REPLY_ACK: a status for requests that have no reply of their own. */
        if ((dev->acked_protocol_features & (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_REPLY_ACK)) &&
            (m->flags & SMOLVM_VHOST_USER_NEED_REPLY_MASK)) {
                int sr = reply_u64(dev, m->request, r < 0 ? 1 : 0);
                if (r == 0 && sr < 0) {
                        *ret_why = "sending reply failed";
                        r = sr;
                }
        }
        return r;
}

/* Receive into buf up to want bytes total; fds may only ride on the header. */
static int recv_some(smolvm_vu_dev *dev, size_t want)
{
        size_t n_fds = 0;
        ssize_t n = fdpass_recv(dev->fd, dev->buf + dev->have, want - dev->have, dev->fds + dev->n_fds,
                                SMOLVM_VHOST_USER_MAX_FDS - dev->n_fds, &n_fds, MSG_DONTWAIT);
        if (n < 0)
                return (int)n;
        dev->n_fds += (unsigned)n_fds;
        bool bad_fds = n_fds > 0 && dev->have >= SMOLVM_VHOST_USER_HDR_SIZE;
        if (n == 0)
                return -ECONNRESET;
        dev->have += (size_t)n;
        return bad_fds ? -EBADMSG : 0;
}

static void on_socket(void *userdata, int fd, uint32_t events)
{
        smolvm_vu_dev *dev = userdata;
        while (!dev->broken) {
                size_t want = SMOLVM_VHOST_USER_HDR_SIZE;
                if (dev->have >= SMOLVM_VHOST_USER_HDR_SIZE) {
                        uint32_t size = get_le32(dev->buf + 8);
                        want += size;
                }
                if (dev->have < want) {
                        int r = recv_some(dev, want);
                        if (r == -EAGAIN)
                                return;
                        if (r == -ECONNRESET) {
                                set_broken(dev, r, dev->have ? "peer closed mid-message" : "peer closed the connection");
                                return;
                        }
                        if (r < 0) {
                                set_broken(dev, r, r == -EBADMSG ? "too many or misplaced fds" : "recvmsg failed");
                                return;
                        }
                        if (dev->have == SMOLVM_VHOST_USER_HDR_SIZE) {
                                uint32_t flags = get_le32(dev->buf + 4), size = get_le32(dev->buf + 8);
                                if ((flags & SMOLVM_VHOST_USER_VERSION_MASK) != SMOLVM_VHOST_USER_VERSION ||
                                    (flags & SMOLVM_VHOST_USER_REPLY_MASK)) {
                                        set_broken(dev, -EPROTO, "bad header flags");
                                        return;
                                }
                                if (size > SMOLVM_VHOST_USER_MAX_PAYLOAD) {
                                        set_broken(dev, -EMSGSIZE, "payload larger than any request");
                                        return;
                                }
                        }
                        continue;
                }
                msg m = {
                        .request = get_le32(dev->buf),
                        .flags = get_le32(dev->buf + 4),
                        .size = get_le32(dev->buf + 8),
                        .payload = dev->buf + SMOLVM_VHOST_USER_HDR_SIZE,
                        .fds = dev->fds,
                        .n_fds = dev->n_fds,
                };
                const char *why = NULL;
                int r = dispatch(dev, &m, &why);
                dev->n_fds = m.n_fds; /* handlers take the fds they keep */
                close_msg_fds(dev);
                dev->have = 0;
                if (r < 0) {
                        set_broken(dev, r, why ? why : "request failed");
                        return;
                }
        }
}

int smolvm_vu_dev_new(smolvm_evloop *loop, int sock_fd, const smolvm_vu_ops *ops, void *userdata,
                      smolvm_vu_dev **ret)
{
        if (!loop || sock_fd < 0 || !ops || !ops->queue_start || !ops->queue_stop || ops->n_queues == 0 ||
            ops->n_queues > SMOLVM_VHOST_USER_MAX_QUEUES || !ret)
                return -EINVAL;
        smolvm_vu_dev *dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        dev->queues = calloc(ops->n_queues, sizeof(*dev->queues));
        if (!dev->queues) {
                free(dev);
                return -ENOMEM;
        }
        dev->loop = loop;
        dev->fd = sock_fd;
        dev->ops = *ops;
        dev->userdata = userdata;
        for (unsigned q = 0; q < ops->n_queues; q++)
                dev->queues[q] = (vu_queue){ .kick_fd = -1, .call_fd = -1, .err_fd = -1 };
        int r = fd_set_nonblock(sock_fd, true);
        if (r < 0) {
                free(dev->queues);
                free(dev);
                return r;
        }
        r = smolvm_evloop_add(loop, sock_fd, EPOLLIN, on_socket, dev);
        if (r < 0) {
                free(dev->queues);
                free(dev);
                return r;
        }
        dev->watched = true;
        *ret = dev;
        return 0;
}

void smolvm_vu_dev_free(smolvm_vu_dev *dev)
{
        if (!dev)
                return;
        /* Not a failure: suppress the callback while tearing down. */
        dev->ops.broken = NULL;
        reset_queues(dev);
        unmap_all(dev);
        close_msg_fds(dev);
        if (dev->watched)
                smolvm_evloop_del(dev->loop, dev->fd);
        safe_close(dev->fd);
        free(dev->queues);
        free(dev);
}

bool smolvm_vu_dev_is_broken(const smolvm_vu_dev *dev)
{
        return dev->broken;
}

const char *smolvm_vu_dev_broken_reason(const smolvm_vu_dev *dev)
{
        return dev->broken ? dev->broken_why : NULL;
}

smolvm_vq *smolvm_vu_queue_vq(smolvm_vu_dev *dev, unsigned q)
{
        return q < dev->ops.n_queues ? &dev->queues[q].vq : NULL;
}

int smolvm_vu_queue_kick_fd(const smolvm_vu_dev *dev, unsigned q)
{
        return q < dev->ops.n_queues ? dev->queues[q].kick_fd : -1;
}

static void signal_eventfd(int fd)
{
        if (fd < 0)
                return;
        uint64_t one = 1;
        /* EAGAIN means the counter is already non-zero: the signal is pending. */
        ssize_t n;
        do
                n = write(fd, &one, sizeof(one));
        while (n < 0 && errno == EINTR);
}

bool smolvm_vu_queue_notify(smolvm_vu_dev *dev, unsigned q)
{
        if (q >= dev->ops.n_queues)
                return false;
        vu_queue *vq = &dev->queues[q];
        if (vq->call_fd < 0 || !smolvm_vq_should_notify(&vq->vq))
                return false;
        signal_eventfd(vq->call_fd);
        return true;
}

void smolvm_vu_queue_call(smolvm_vu_dev *dev, unsigned q)
{
        if (q < dev->ops.n_queues)
                signal_eventfd(dev->queues[q].call_fd);
}

void smolvm_vu_queue_report_error(smolvm_vu_dev *dev, unsigned q)
{
        if (q < dev->ops.n_queues)
                signal_eventfd(dev->queues[q].err_fd);
}
