/* SPDX-License-Identifier: Apache-2.0 */
/* The mounts duty (duty.h): the VM's host directory mounts, config.json's
 * "mounts" (docs/internals.md, "Host directory mounts"). One sup_mount per
 * mount, whatever its transport:
 *   - virtio-fs: before QEMU (prepare), a sandboxed back-end per mount
 *     listening on DIR/fs-N.sock (fsd.c), a vhost-user-fs device and a
 *     smolvm.mount= kernel argument each; all started, then all waited for;
 *   - FUSE over vsock: after HELLO (guest_up), a server per mount on an agent
 *     stream (vsockfs.c), the ready line waiting for every guest mount.
 * Its server's death is reaped (reap) and acted on (step): during boot the boot
 * fails; afterwards it is logged (supervisor.log, console.log) and, for
 * virtio-fs, the guest is told to fail accesses instead of hanging
 * (fsabort.c); an exit with status 0 only if QEMU outlives it by a second. */
#pragma once

#include "duty.h"

extern const sup_duty_ops sup_mounts_duty;
