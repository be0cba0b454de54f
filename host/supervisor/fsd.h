/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-fs back-ends of a VM: one smolvm-virtiofsd child per mount, owned
 * by the supervisor (docs/internals.md, "Host directory mounts").
 *
 * The supervisor binds and listens on DIR/fs-N.sock itself and hands the
 * listening socket to the child (--fd 3), so the socket accepts QEMU's connect
 * whenever QEMU gets there; our own back-end also reports "READY" on a pipe
 * (--ready-fd 4) once its sandbox and file server are up, so a back-end that
 * cannot start is reported with its own words before QEMU is started. The
 * child runs in its own process group with PR_SET_PDEATHSIG(SIGKILL); its
 * stdout and stderr come through a pipe into DIR/virtiofsd-N.log, capped. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "evloop.h"

#define SUP_FSD_LOG_MAX_BYTES (1024u * 1024u)
#define SUP_FSD_READY_TIMEOUT_MS 10000u
#define SUP_FSD_BINARY "smolvm-virtiofsd"

typedef struct sup_fsd sup_fsd;

/* The back-end binary: $SMOLVM_VIRTIOFSD (a benchmarking knob: e.g. QEMU's
 * /usr/lib/qemu/virtiofsd, which is given "--fd=3 -o source=DIR -o cache=auto"
 * and has NO read-only mode), else $SMOLVM_LIBEXECDIR/smolvm-virtiofsd, else
 * the compile-time libexec dir. Writes into buf; returns buf. */
const char *sup_fsd_binary(char *buf, size_t len);

/* Listen on socket_path (a stale socket there is replaced) and start the
 * back-end for mount m. Does not wait for it (sup_fsd_wait_ready). log_path is
 * created/truncated. Returns 0 or a negative errno with err set. */
int sup_fsd_start(smolvm_evloop *loop, unsigned index, const sup_mount *m, const char *socket_path,
                  const char *log_path, sup_fsd **ret, char *err, size_t err_len);

/* Wait until the back-end said READY (a back-end without --ready-fd counts as
 * ready at once: its socket already listens) or deadline_ms (monotonic) passes.
 * Returns 0, -ETIMEDOUT, or -EIO when it exited first; err then has the last
 * line it printed. */
int sup_fsd_wait_ready(sup_fsd *f, uint64_t deadline_ms, char *err, size_t err_len);

/* Reap without blocking; logs (once) when the back-end has exited: guest
 * accesses under that mount then hang (QEMU does not fail them), the VM keeps
 * running. Returns 1 once it has exited, 0 while it runs. */
int sup_fsd_poll(sup_fsd *f);

/* Kill the back-end's process group (SIGKILL), reap it, close its pipes and
 * remove its socket. Accepts NULL. */
void sup_fsd_free(sup_fsd *f);
