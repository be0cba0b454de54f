/* SPDX-License-Identifier: Apache-2.0 */
/* The file servers of a VM's mounts: one sandboxed smolvm-virtiofsd child per
 * mount, owned by the supervisor (docs/internals.md, "Host directory mounts"):
 * a virtio-fs back-end (sup_fsd_start), or the server of a FUSE-over-vsock
 * mount (sup_fsd_start_stream, used by vsockfs.c).
 *
 * The supervisor binds and listens on DIR/fs-N.sock itself and hands the
 * listening socket to the child (--fd 3), so the socket accepts QEMU's connect
 * whenever QEMU gets there; our own back-end also reports "READY" on a pipe
 * (--ready-fd 4) once its sandbox and file server are up, so a back-end that
 * cannot start is reported with its own words before QEMU is started. The
 * child runs in its own process group with PR_SET_PDEATHSIG(SIGKILL); its
 * stdout and stderr come through a pipe into DIR/virtiofsd-N.log, capped. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "evloop.h"

#define SUP_FSD_LOG_MAX_BYTES (1024u * 1024u)
#define SUP_FSD_READY_TIMEOUT_MS 10000u
#define SUP_FSD_BINARY "smolvm-virtiofsd"
/* A stream back-end's saved state: how long it may take, how big it may be
 * (fs_server.h's SMOLVM_FS_STATE_MAX, which the child enforces itself). */
#define SUP_FSD_STATE_TIMEOUT_MS 10000u
#define SUP_FSD_STATE_MAX_BYTES (64u << 20)

typedef struct sup_fsd sup_fsd;

/* The back-end binary: $SMOLVM_VIRTIOFSD (a benchmarking knob: e.g. QEMU's
 * /usr/lib/qemu/virtiofsd, which is given "--fd=3 -o source=DIR -o cache=auto"
 * and has NO read-only mode), else $SMOLVM_LIBEXECDIR/smolvm-virtiofsd, else
 * the compile-time libexec dir. Writes into buf; returns buf. */
const char *sup_fsd_binary(char *buf, size_t len);

/* Listen on socket_path (a stale socket there is replaced) and start the
 * back-end for mount m. Does not wait for it (sup_fsd_wait_ready). log_path is
 * created/truncated. Returns 0 or a negative errno with err set. */
int sup_fsd_start(smolvm_evloop *loop, unsigned index, const sup_mount_cfg *m, const char *socket_path,
                  const char *log_path, sup_fsd **ret, char *err, size_t err_len);

/* Start the FUSE-over-vsock server for mount m on stream_fd, a connected
 * stream to the guest agent (given to it as fd 3; the caller closes its own
 * copy): `smolvm-virtiofsd --stream-fd=3 --ready-fd=4 --shared-dir HOST
 * --read-only|--rw --fuse-mount=GUEST --control-fd=5`, which asks the agent
 * on the stream to mount GUEST, says READY once it did, then serves until the
 * stream ends. With state_fd >= 0 (a restore: a snapshot's fs-N.state, given
 * as --state-fd=6; the caller closes its copy) it starts from that state and
 * reattaches the stream to the guest's existing mount (--fuse-reattach).
 * Always our binary ($SMOLVM_VIRTIOFSD only if it names smolvm-virtiofsd:
 * QEMU's has no stream mode). Its ready pipe is watched on loop, so the loop
 * wakes when it answers. Returns 0 or a negative errno with err set. */
int sup_fsd_start_stream(smolvm_evloop *loop, unsigned index, const sup_mount_cfg *m, int stream_fd, int state_fd,
                         const char *log_path, sup_fsd **ret, char *err, size_t err_len);

/* Stream back-ends: ask the server for its state (the nodeids and handles the
 * guest kernel holds: docs/internals.md, "Mounts across snapshots") and write
 * it to path (atomically, 0600). Blocks, SUP_FSD_STATE_TIMEOUT_MS at most:
 * called while the VM is paused for a snapshot. Returns 0 with *ret_bytes, or
 * a negative errno with err set. */
int sup_fsd_save_state(sup_fsd *f, const char *path, size_t *ret_bytes, char *err, size_t err_len);

/* Without blocking: 0 while the back-end has not said READY, 1 once it has,
 * -EIO when its ready pipe ended without (why then has the last line it
 * printed, possibly empty). */
int sup_fsd_ready_state(sup_fsd *f, char *why, size_t why_len);

/* Wait until the back-end said READY (a back-end without --ready-fd counts as
 * ready at once: its socket already listens) or deadline_ms (monotonic) passes.
 * Returns 0, -ETIMEDOUT, or -EIO when it exited first; err then has the last
 * line it printed. */
int sup_fsd_wait_ready(sup_fsd *f, uint64_t deadline_ms, char *err, size_t err_len);

/* Reap without blocking. Returns 1 once the back-end has exited, 0 while it
 * runs. The caller reports it (sup_fsd_describe_exit): while the VM runs,
 * QEMU 7.2 neither fails nor completes the requests of a back-end that went
 * away, so the guest must be told (fsabort.h). */
int sup_fsd_poll(sup_fsd *f);

/* After sup_fsd_poll() returned 1: how it ended, e.g. "killed by signal 9
 * (SIGKILL)", "exit status 137: its server was killed by signal 9 (SIGKILL)"
 * or "exit status 1", then ": " and the last line it printed, if any. Returns
 * true if it exited with status 0, which it does when QEMU disconnects (QEMU
 * going away, not the back-end failing). */
bool sup_fsd_describe_exit(const sup_fsd *f, char *buf, size_t len);

/* "mount N (HOST at GUEST)", for messages. */
const char *sup_fsd_desc(const sup_fsd *f);

/* "virtio-fs server" or "FUSE-over-vsock server", for messages. */
const char *sup_fsd_what(const sup_fsd *f);

/* The back-end's pid (the process the supervisor started), 0 once reaped. */
pid_t sup_fsd_pid(const sup_fsd *f);

/* Kill the back-end's process group (SIGKILL), reap it, close its pipes and
 * remove its socket (if it has one). Accepts NULL. */
void sup_fsd_free(sup_fsd *f);
