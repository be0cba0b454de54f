/* SPDX-License-Identifier: Apache-2.0 */
/* The vhost-user-fs device (virtio 1.2, 5.11 "File System Device"): queue 0 is
 * the hiprio queue (FORGET, INTERRUPT), queues 1..n carry requests. Each
 * available chain's readable part is one FUSE request and its writable part
 * the room for the reply; both are handed to smolvm_fs_handle() as iovecs that
 * point straight into guest memory, so READ data is preadv'ed into the guest
 * without a copy.
 *
 * Threads: the vhost-user protocol runs on the loop the caller hands in; all
 * queues are processed by one worker thread, so the file server is only ever
 * called from that thread (it is not required to be thread-safe). Once a
 * second the worker also looks for a stalled queue (smolvm_vq_check_stall): a
 * lost kick or interrupt, anyone's, would otherwise hang the guest's file system
 * for good with nothing logged; it serves or re-interrupts, and says so. The config
 * space (tag, number of request queues) is QEMU's: nothing to serve here. */
#pragma once

#include <stdint.h>

#include "evloop.h"
#include "fs_server.h"

typedef struct smolvm_virtiofs smolvm_virtiofs;

typedef struct smolvm_virtiofs_config {
        smolvm_fs *fs;                /* borrowed; must outlive the device */
        uint16_t n_request_queues;    /* 0 = 1; QEMU's num-request-queues */
        /* The front-end closed the socket (err = -ECONNRESET) or broke the
         * protocol. Called once from the loop thread; do not free the device
         * from it (let the loop return first). */
        void (*broken)(void *userdata, int err, const char *why);
        void *userdata;
        bool trace;                   /* print each vhost-user request to stderr */
} smolvm_virtiofs_config;

/* Serve vhost-user-fs on the connected socket sock_fd (ownership passes to the
 * device on success). Returns 0 or negative errno. */
int smolvm_virtiofs_new(smolvm_evloop *loop, int sock_fd, const smolvm_virtiofs_config *cfg,
                        smolvm_virtiofs **ret);
/* Stops the worker, unmaps guest memory, closes the socket. Accepts NULL. */
void smolvm_virtiofs_free(smolvm_virtiofs *vfs);

typedef struct smolvm_virtiofs_stats {
        uint64_t n_requests;        /* chains completed */
        uint64_t n_dropped;         /* requests the server could not answer (pushed with len 0) */
        uint64_t n_notifies;        /* call eventfd signals */
        uint32_t n_broken_queues;   /* queues stopped because the guest broke the ring protocol */
        /* Stalls the worker's once-a-second look found (smolvm_vq_check_stall):
         * chains left without a kick (served then), interrupts signalled again. */
        uint64_t n_stalled_kicks, n_stalled_calls;
} smolvm_virtiofs_stats;
/* Safe to call from the loop thread while the worker runs (relaxed counters). */
void smolvm_virtiofs_get_stats(const smolvm_virtiofs *vfs, smolvm_virtiofs_stats *ret);
