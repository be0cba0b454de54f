/* SPDX-License-Identifier: Apache-2.0 */
/* Bringing the VM up and tearing it down (the order matters both ways), and
 * the supervisor's children. */
#pragma once

#include <stdbool.h>

typedef struct sup sup;

/* Read DIR/config.json, choose the accelerator, check the image files.
 * Returns 0 or a negative errno after sup_fail(). */
int sup_vm_load_config(sup *s);

/* Everything up to a spawned QEMU: the overlay disk, the event loop and its
 * signalfd, vsock.sock, chan.sock, console.log, qemu.log, the duties'
 * prepare hooks (duty.h), then QEMU with what they added. Returns 0 or a
 * negative errno after sup_fail(); sup_vm_teardown() cleans up either way. */
int sup_vm_start(sup *s);

/* Reap descendants reparented to us (we are a child subreaper) that nobody
 * tracks: never QEMU or a duty's child, whose owners want their exit status.
 * True while such an exited child is left for its owner to reap. */
bool sup_vm_reap_strays(sup *s);

/* Stop the VM and free everything, in this order: the vsock listener and the
 * guest channel, the duties' guest side (detach), QEMU (SIGKILL + reap), the
 * duties (destroy), every orphaned descendant, the console, the loop; then the
 * VM dir is left as the next reader must find it (sup_dir_release). */
void sup_vm_teardown(sup *s, bool failed);
