/* SPDX-License-Identifier: Apache-2.0 */
/* The boot state machine and the ready line (docs/internals.md, "Supervisor"):
 * QEMU spawned -> QEMU connected chan.sock (the guest channel's mux) -> the
 * guest agent's HELLO -> every duty up (duty.h) -> the ready line; then the VM
 * runs until QEMU exits, a stop signal, a broken channel or a failing duty.
 * Every failure before the ready line is reported on it ({"ok":false,...}). */
#pragma once

#include <stdint.h>

typedef struct sup sup;

/* Listen on DIR/chan.sock for QEMU's channel connection (only our QEMU may
 * connect: SO_PEERCRED). Returns 0 or a negative errno. */
int sup_boot_listen_chan(sup *s);
/* A restore, once QEMU runs: watch its monitor for the guest closing the
 * channel port, then connect chan.sock (QEMU listens there on a restore). */
int sup_boot_restore_begin(sup *s);

/* One pass of the state machine after the loop dispatched. Returns -1 to keep
 * running, else the supervisor's exit code (sup.h). */
int sup_boot_step(sup *s);

/* How long the loop may sleep before the next sup_boot_step(): ms, or -1 for
 * no deadline. */
int sup_boot_timeout_ms(const sup *s);
