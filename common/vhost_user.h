/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user back-end protocol (QEMU docs/interop/vhost-user.rst) over a
 * connected Unix stream socket, split rings only.
 *
 * The front-end (QEMU) is our child and semi-trusted, but its messages are
 * still validated one by one: exact payload sizes per request, fd counts,
 * region sizes/offsets/overlaps against the memfd, queue indexes and sizes.
 * Any violation, an unknown request or a closed socket puts the device into a
 * sticky broken state: all queues stop, the socket is dropped from the loop,
 * and ops->broken is called once. Nothing here exits or aborts.
 *
 * The device does not own an event loop: it registers its socket on the loop it
 * is handed. Queue processing is the device's business: the core calls
 * queue_start when a ring is usable (started by SET_VRING_KICK, enabled, mapped)
 * and queue_stop before anything the ring depends on changes (memory table,
 * addresses, fds, features, GET_VRING_BASE). queue_stop must return only once
 * nothing touches that queue any more; between start and stop the device may
 * use the queue from any one thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "evloop.h"
#include "virtqueue.h"

/* Feature bits (virtio 1.2, 6; vhost-user). */
#define SMOLVM_VIRTIO_F_INDIRECT_DESC 28
#define SMOLVM_VIRTIO_F_EVENT_IDX 29
#define SMOLVM_VHOST_USER_F_PROTOCOL_FEATURES 30
#define SMOLVM_VIRTIO_F_VERSION_1 32

/* Protocol feature bits we implement. */
#define SMOLVM_VHOST_USER_PROTOCOL_F_MQ 0
#define SMOLVM_VHOST_USER_PROTOCOL_F_REPLY_ACK 3

/* vhost-user requests (front-end to back-end). */
enum {
        SMOLVM_VHOST_USER_GET_FEATURES = 1,
        SMOLVM_VHOST_USER_SET_FEATURES = 2,
        SMOLVM_VHOST_USER_SET_OWNER = 3,
        SMOLVM_VHOST_USER_RESET_OWNER = 4,
        SMOLVM_VHOST_USER_SET_MEM_TABLE = 5,
        SMOLVM_VHOST_USER_SET_VRING_NUM = 8,
        SMOLVM_VHOST_USER_SET_VRING_ADDR = 9,
        SMOLVM_VHOST_USER_SET_VRING_BASE = 10,
        SMOLVM_VHOST_USER_GET_VRING_BASE = 11,
        SMOLVM_VHOST_USER_SET_VRING_KICK = 12,
        SMOLVM_VHOST_USER_SET_VRING_CALL = 13,
        SMOLVM_VHOST_USER_SET_VRING_ERR = 14,
        SMOLVM_VHOST_USER_GET_PROTOCOL_FEATURES = 15,
        SMOLVM_VHOST_USER_SET_PROTOCOL_FEATURES = 16,
        SMOLVM_VHOST_USER_GET_QUEUE_NUM = 17,
        SMOLVM_VHOST_USER_SET_VRING_ENABLE = 18,
};

/* Header flags. */
#define SMOLVM_VHOST_USER_VERSION 0x1u
#define SMOLVM_VHOST_USER_VERSION_MASK 0x3u
#define SMOLVM_VHOST_USER_REPLY_MASK 0x4u
#define SMOLVM_VHOST_USER_NEED_REPLY_MASK 0x8u
#define SMOLVM_VHOST_USER_HDR_SIZE 12u
/* Largest payload we accept: SET_MEM_TABLE with 8 regions is 8 + 8 * 32. */
#define SMOLVM_VHOST_USER_MAX_PAYLOAD 264u
/* Regions per SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS) and fds per message. */
#define SMOLVM_VHOST_USER_MAX_REGIONS 8u
#define SMOLVM_VHOST_USER_MAX_FDS 8u
/* Most queues a device may declare (index field of the u64 fd messages is 8 bits). */
#define SMOLVM_VHOST_USER_MAX_QUEUES 64u

typedef struct smolvm_vu_dev smolvm_vu_dev;

typedef struct smolvm_vu_ops {
        uint64_t features;           /* virtio features offered; PROTOCOL_FEATURES is added */
        uint64_t protocol_features;  /* offered; masked to MQ | REPLY_ACK */
        uint16_t n_queues;           /* 1..SMOLVM_VHOST_USER_MAX_QUEUES */
        uint16_t max_queue_size;     /* 0 = 1024 */
        void (*queue_start)(void *userdata, unsigned q);
        void (*queue_stop)(void *userdata, unsigned q);
        /* err: negative errno (-ECONNRESET when the peer closed). Called once,
         * from the loop thread. Must not free the device. */
        void (*broken)(void *userdata, int err, const char *why);
        /* Optional: every well-formed request, before it is handled. */
        void (*trace)(void *userdata, uint32_t request, uint32_t flags, uint32_t size_bytes);
} smolvm_vu_ops;

/* Serve the front-end on sock_fd (connected AF_UNIX stream). Takes ownership of
 * sock_fd on success (made non-blocking), registers it on loop. ops is copied.
 * Returns 0 or negative errno. */
int smolvm_vu_dev_new(smolvm_evloop *loop, int sock_fd, const smolvm_vu_ops *ops, void *userdata,
                      smolvm_vu_dev **ret);
/* Stops all queues, unmaps guest memory, closes every fd. Accepts NULL. */
void smolvm_vu_dev_free(smolvm_vu_dev *dev);

bool smolvm_vu_dev_is_broken(const smolvm_vu_dev *dev);
/* Reason for the broken state (static string), or NULL. */
const char *smolvm_vu_dev_broken_reason(const smolvm_vu_dev *dev);

/* For the device, between queue_start and queue_stop of q: */
smolvm_vq *smolvm_vu_queue_vq(smolvm_vu_dev *dev, unsigned q);
int smolvm_vu_queue_kick_fd(const smolvm_vu_dev *dev, unsigned q);
/* Signal the call eventfd if smolvm_vq_should_notify() says so; returns
 * whether it did. */
bool smolvm_vu_queue_notify(smolvm_vu_dev *dev, unsigned q);
/* Signal the call eventfd whatever the driver asked for (an interrupt it
 * seems to have missed: smolvm_vq_check_stall). */
void smolvm_vu_queue_call(smolvm_vu_dev *dev, unsigned q);
/* The guest broke queue q (vq->broken): signal the err eventfd, if any. */
void smolvm_vu_queue_report_error(smolvm_vu_dev *dev, unsigned q);
