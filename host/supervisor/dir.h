/* SPDX-License-Identifier: Apache-2.0 */
/* The VM directory the supervisor owns while it runs (docs/internals.md,
 * "Paths"; the file names are common/vmdir.h): making sure no other supervisor
 * does (a second one would steal its sockets), the pid file by which libsmolvm
 * derives the VM's state, the overlay disk, and what is left or removed when
 * the supervisor exits. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct sup sup;

/* DIR/name, malloc'd (exits on out of memory: nothing can be done then). */
char *sup_dir_path(const sup *s, const char *name);
/* DIR/name for a printf format (the per-mount names of vmdir.h). */
char *sup_dir_pathf(const sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The VM's id (the dir's last component), for messages naming a fix. */
const char *sup_dir_id(const sup *s);

/* Check that DIR is a directory and that no other live supervisor serves it
 * (its supervisor.pid naming a live process called smolvm-supervisor).
 * Returns 0, or -1 after sup_fail(). Before the log is opened: truncating it
 * would destroy the other one's. */
int sup_dir_claim(sup *s);
/* Atomically write our pid to supervisor.pid. Returns 0 or a negative errno. */
int sup_dir_write_pid(sup *s);
/* Create overlay.qcow2 over the rootfs unless it exists (a persistent VM
 * restarting keeps its disk); sets s->created_overlay. Returns 0 or a negative
 * errno after sup_fail(). */
int sup_dir_prepare_overlay(sup *s);
/* The first line of qemu.log (empty if none), for "QEMU failed to start". */
void sup_dir_qemu_log_first_line(const sup *s, char *buf, size_t len);

/* Leave the VM dir as the VM's next reader must find it (after everything
 * that used its files was stopped; closes the log). --ephemeral: remove the
 * files we know (only those: never a recursive delete of a directory someone
 * configured) and the dir itself. Else the disk and the logs stay, nothing
 * may connect any more, and a failed run leaves "failed" (failed_why) so
 * the VM's derived state reads "error"; a boot that never got ready also
 * removes the overlay it created. */
void sup_dir_release(sup *s, bool failed);
