/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueues (virtio 1.2, 2.7) seen from the device side, over guest
 * memory that a VMM shared with us (vhost-user SET_MEM_TABLE).
 *
 * Everything in guest memory is hostile and may change under us at any time:
 * ring fields are read once, with explicit little-endian accessors; each
 * descriptor is copied out before it is validated; every guest address is
 * translated with a bounds check against the region table; chains are walked
 * with a counter bounded by the queue size (direct) or the table size
 * (indirect). Any violation puts the queue into a sticky broken state: it is
 * never processed again until it is re-initialised. Nothing here asserts,
 * aborts or allocates on guest input.
 *
 * Not thread-safe: one thread owns a queue while it is running. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* vhost-user SET_MEM_TABLE carries at most 8 regions; leave room for ADD_MEM_REG. */
#define SMOLVM_VQ_MAX_REGIONS 32u
/* Largest queue the split ring format allows (virtio 1.2: Queue Size <= 32768). */
#define SMOLVM_VQ_MAX_SIZE 32768u
/* Most descriptors one chain may use, indirect tables included. Linux never
 * builds longer chains than its sg limits (a 1 MiB FUSE READ is ~260). */
#define SMOLVM_VQ_MAX_CHAIN 1024u
/* iovecs one element may produce (a descriptor crossing a region boundary
 * becomes several). */
#define SMOLVM_VQ_MAX_IOV (SMOLVM_VQ_MAX_CHAIN + 64u)

/* Descriptor flags (virtio 1.2, 2.7.5). */
#define SMOLVM_VRING_DESC_F_NEXT 1u
#define SMOLVM_VRING_DESC_F_WRITE 2u
#define SMOLVM_VRING_DESC_F_INDIRECT 4u
/* Ring flags. */
#define SMOLVM_VRING_AVAIL_F_NO_INTERRUPT 1u
#define SMOLVM_VRING_USED_F_NO_NOTIFY 1u

/* One guest RAM region, mapped at host. */
typedef struct smolvm_vq_region {
        uint64_t gpa;          /* guest physical start */
        uint64_t size_bytes;
        uint64_t uaddr;        /* start in the VMM's address space (ring addresses use it) */
        uint8_t *host;         /* start in ours */
} smolvm_vq_region;

typedef struct smolvm_vq_mem {
        uint32_t n_regions;
        smolvm_vq_region regions[SMOLVM_VQ_MAX_REGIONS];
} smolvm_vq_mem;

/* Append a region. Rejects size 0, any wrap-around of gpa/uaddr/host ranges, a
 * guest-physical overlap with an existing region, and a full table.
 * Returns 0, -EINVAL, or -E2BIG. */
int smolvm_vq_mem_add(smolvm_vq_mem *mem, uint64_t gpa, uint64_t size_bytes, uint64_t uaddr, void *host);

/* Host pointer for [gpa, gpa + len_bytes) if it lies within one region, else NULL. */
void *smolvm_vq_mem_gpa(const smolvm_vq_mem *mem, uint64_t gpa, uint64_t len_bytes);
/* Same for an address in the VMM's address space (vhost-user ring addresses). */
void *smolvm_vq_mem_uaddr(const smolvm_vq_mem *mem, uint64_t uaddr, uint64_t len_bytes);

/* Translate [gpa, gpa + len_bytes) into iovecs (split at region boundaries),
 * appended at iov[*n_iov], at most max_iov in total. Returns 0, -EFAULT (not
 * all of it is guest RAM) or -E2BIG (too many pieces). */
int smolvm_vq_mem_gpa_iov(const smolvm_vq_mem *mem, uint64_t gpa, uint64_t len_bytes,
                          struct iovec *iov, unsigned *n_iov, unsigned max_iov);

typedef struct smolvm_vq {
        const smolvm_vq_mem *mem;
        uint16_t num;                /* queue size, a power of 2 */
        bool event_idx;              /* VIRTIO_RING_F_EVENT_IDX negotiated */
        bool indirect;               /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
        const uint8_t *desc;         /* 16 * num bytes */
        const uint8_t *avail;        /* 6 + 2 * num bytes */
        uint8_t *used;               /* 6 + 8 * num bytes */
        uint16_t last_avail_idx;     /* next avail entry we will take */
        uint16_t used_idx;           /* shadow of used->idx (only we write it) */
        uint16_t signalled_used;     /* used_idx at the last notification */
        bool signalled_used_valid;
        /* smolvm_vq_check_stall's view at its last call. */
        bool watch_valid;
        uint16_t watch_last_avail, watch_avail, watch_used, watch_used_event;
        bool broken;                 /* sticky */
        int err;                     /* negative errno of the first violation */
        const char *why;             /* static string naming it */
} smolvm_vq;

/* An available descriptor chain: iov[0, n_rd) are device-readable (the
 * request), iov[n_rd, n_rd + n_wr) device-writable (room for the reply). The
 * iovecs point straight into guest memory. */
typedef struct smolvm_vq_elem {
        uint16_t head;
        unsigned n_rd, n_wr;
        uint32_t rd_len_bytes, wr_len_bytes;
        struct iovec iov[SMOLVM_VQ_MAX_IOV];
} smolvm_vq_elem;

/* Map a queue whose ring addresses are in the VMM's address space. Checks
 * num (power of 2, 1..32768), alignment (desc 16, avail 2, used 4) and that each
 * ring lies within one region. Reads the current used->idx as the shadow. Any
 * previous broken state is cleared. Returns 0 or -EINVAL/-EFAULT; on failure
 * vq is left broken. */
int smolvm_vq_init(smolvm_vq *vq, const smolvm_vq_mem *mem, uint16_t num,
                   uint64_t desc_uaddr, uint64_t avail_uaddr, uint64_t used_uaddr,
                   uint16_t last_avail_idx, bool event_idx, bool indirect);

/* Take the next available chain. Returns 1 with *elem filled, 0 when nothing is
 * available, or negative errno when the driver broke the protocol (vq->broken
 * is set and stays set; later calls return vq->err). */
int smolvm_vq_pop(smolvm_vq *vq, smolvm_vq_elem *elem);

/* Return a chain to the driver with len_bytes written into its writable
 * part (clamped to what it offered). Returns 0 or vq->err when broken. */
int smolvm_vq_push(smolvm_vq *vq, const smolvm_vq_elem *elem, uint32_t len_bytes);

/* After pushing: should the driver be interrupted now? Honours
 * VIRTQ_AVAIL_F_NO_INTERRUPT or, with event idx, used_event. Updates the
 * bookkeeping, so call it once per notification decision. */
bool smolvm_vq_should_notify(smolvm_vq *vq);

/* Before sleeping: with event idx, publish avail_event = last_avail_idx so the
 * driver kicks on the next buffer. Returns true when more buffers became
 * available meanwhile (process them before sleeping). */
bool smolvm_vq_arm_kick(smolvm_vq *vq);

/* For a device that looks at its queues now and then while it sleeps (each
 * call compares with the previous one; call it only from the thread that owns
 * the queue). A notification lost by anyone between the driver and us stalls
 * a queue with nothing on our side to see it; this sees it:
 *  - SMOLVM_VQ_STALL_KICK: chains were available at the previous call and none
 *    has been taken since: their kick never came. Pop them.
 *  - SMOLVM_VQ_STALL_CALL (event idx only): at the previous call the used
 *    index had passed the driver's used_event, and neither has moved since: the
 *    driver did not get (or did not act on) our interrupt. Signal it again;
 *    virtio lets a device interrupt spuriously.
 * Without event idx we cannot tell what the driver reaped: no CALL. Returns a
 * mask of those, 0 for a healthy or broken queue and on the first call. */
#define SMOLVM_VQ_STALL_KICK 1u
#define SMOLVM_VQ_STALL_CALL 2u
unsigned smolvm_vq_check_stall(smolvm_vq *vq);

/* Mark broken (sticky) with a reason; returns err. For device code that finds
 * a chain unusable. */
int smolvm_vq_set_broken(smolvm_vq *vq, int err, const char *why);
