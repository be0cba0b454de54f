/* SPDX-License-Identifier: Apache-2.0 */
/* A snapshot's FUSE-over-vsock mounts (docs/internals.md, "Mounts across
 * snapshots"): while the VM is paused, each mount's file server hands its
 * state to the supervisor (FSSTATE), which writes DIR/fs-N.state; it moves into
 * the snapshot as fs-N.state. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "hvsock_client.h"
#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

int vm_mounts_save_states(smolvm_vm *vm, const char *staging)
{
        for (size_t i = 0; i < vm->rec.n_mounts; i++) {
                char line[SMOLVM_HVSOCK_LINE_MAX + 1], from[PATH_MAX], to[PATH_MAX], name[32];
                smolvm_hvsock_conn c;
                uint32_t bytes = 0;
                snprintf(line, sizeof(line), "FSSTATE %zu\n", i);
                /* The supervisor answers once the server's state is on disk. */
                int r = smolvm_hvsock_control(&c, vm->dir, line, now_ms() + VM_MOUNT_STATE_TIMEOUT_MS, &bytes);
                if (r < 0)
                        return vm_error(r, r == -ECONNREFUSED ? "restart the VM with this smolvm" : NULL,
                                        "mount %zu (%s at %s): its file server's state could not be saved: %s (see "
                                        "%s/supervisor.log)", i, vm->rec.mounts[i].host_path,
                                        vm->rec.mounts[i].guest_path, strerror(-r), vm->dir);
                snprintf(name, sizeof(name), VMDIR_FS_STATE_FMT, i);
                snprintf(from, sizeof(from), "%s/%s", vm->dir, name);
                snprintf(name, sizeof(name), SNAPDIR_FS_STATE_FMT, i);
                snprintf(to, sizeof(to), "%s/%s", staging, name);
                if (rename(from, to) < 0) {
                        r = negative_errno();
                        (void)unlink(from);
                        return vm_error(r, NULL, "rename %s to %s: %s", from, to, strerror(-r));
                }
        }
        return 0;
}
