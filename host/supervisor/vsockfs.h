/* SPDX-License-Identifier: Apache-2.0 */
/* Host directory mounts over FUSE over vsock (--mount-transport vsock;
 * docs/internals.md, "Host directory mounts"): no virtio-fs device, the
 * supervisor's own file server answers the guest kernel's FUSE requests over
 * an agent stream.
 *
 * Per mount, once the guest said HELLO: a smolvm_fs rooted at the host dir, a
 * socketpair whose one end goes to smolvm_mux_connect() to the agent port, and
 * a thread on the other end that sends {"op":"fuse_mount",...}, waits for the
 * agent's RESULT, then runs smolvm_fs_serve_stream() until the stream ends.
 * The thread only touches its own end of the socketpair, the smolvm_fs and the
 * fields marked below; it wakes the supervisor's loop through an eventfd. */
#pragma once

#include <stddef.h>

#include "config.h"
#include "evloop.h"
#include "mux.h"

/* How long the guest agent has to answer the fuse_mount request. */
#define SUP_VSOCKFS_MOUNT_TIMEOUT_MS 20000u

typedef struct sup_vsockfs sup_vsockfs;

/* Start serving mount m (index for messages) to the guest through mux. Does not
 * wait for the guest (sup_vsockfs_state). Returns 0 or a negative errno with
 * err set (the host dir cannot be served, no thread, no stream). */
int sup_vsockfs_start(smolvm_evloop *loop, smolvm_mux *mux, unsigned index, const sup_mount *m,
                      sup_vsockfs **ret, char *err, size_t err_len);

/* 0 while the guest has not answered yet, 1 once it mounted, or a negative
 * errno when the mount failed (err then says why, naming the mount). */
int sup_vsockfs_state(sup_vsockfs *v, char *err, size_t err_len);

/* Close the stream (the guest detaches the mount), join the thread, free the
 * file server. Call after the mux is gone or while it still runs. Accepts NULL. */
void sup_vsockfs_free(sup_vsockfs *v);
