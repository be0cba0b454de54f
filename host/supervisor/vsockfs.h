/* SPDX-License-Identifier: Apache-2.0 */
/* Host directory mounts over FUSE over vsock (--mount-transport vsock;
 * docs/internals.md, "Host directory mounts"): no virtio-fs device; a
 * sandboxed smolvm-virtiofsd child (fsd.h, stream mode) answers the guest
 * kernel's FUSE requests over an agent stream.
 *
 * Per mount, once the guest said HELLO: a socketpair whose one end goes to
 * smolvm_mux_connect() to the agent port and the other to the child as its
 * --stream-fd. The child sends {"op":"fuse_mount",...}, waits for the agent's
 * RESULT, says READY, then serves until the stream ends. The supervisor only
 * relays bytes: it parses nothing the guest sends on these streams. */
#pragma once

#include <stddef.h>

#include "config.h"
#include "evloop.h"
#include "fsd.h"
#include "mux.h"

/* How long the guest agent has to answer the fuse_mount request (the child's
 * own bound, smolvm-virtiofsd's FUSE_MOUNT_TIMEOUT_MS). */
#define SUP_VSOCKFS_MOUNT_TIMEOUT_MS 20000u

typedef struct sup_vsockfs sup_vsockfs;

/* Start serving mount m (index for messages) to the guest through mux (from
 * a snapshot's saved state when state_fd >= 0: see sup_fsd_start_stream); the
 * server's stdout/stderr go to log_path. Does not wait for the guest
 * (sup_vsockfs_state). Returns 0 or a negative errno with err set (no child,
 * no stream). */
int sup_vsockfs_start(smolvm_evloop *loop, smolvm_mux *mux, unsigned index, const sup_mount_cfg *m, int state_fd,
                      const char *log_path, sup_vsockfs **ret, char *err, size_t err_len);

/* 0 while the guest has not answered yet, 1 once it mounted (the server said
 * READY), or a negative errno when the mount failed (err then says why, naming
 * the mount and quoting the server's last line). */
int sup_vsockfs_state(sup_vsockfs *v, char *err, size_t err_len);

/* The server process, for reaping and reporting its exit (fsd.h). */
sup_fsd *sup_vsockfs_fsd(sup_vsockfs *v);

/* Kill and reap the server (the stream closes with it: the guest detaches the
 * mount if still running). Call after the mux is freed (a pending connect calls
 * back into v) or while it still runs. Accepts NULL. */
void sup_vsockfs_free(sup_vsockfs *v);
