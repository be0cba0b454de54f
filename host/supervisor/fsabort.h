/* SPDX-License-Identifier: Apache-2.0 */
/* Telling the guest that a mount's file server is gone (docs/internals.md,
 * "Host directory mounts"): QEMU 7.2 neither fails nor completes the requests
 * of a vhost-user-fs back-end that died, so without help every guest access
 * under that mount blocks uninterruptibly for the rest of the VM's life. We
 * open a stream to the agent through the supervisor's mux and send
 * {"op":"fuse_abort","path":GUEST}; the agent aborts the mount's FUSE
 * connection through fusectl or, for virtio-fs (which Linux does not let
 * anyone abort), covers the mount with an aborted FUSE mount, after which new
 * accesses fail with ENOTCONN.
 *
 * Runs on the supervisor's event loop (no thread): common/agent_client_loop.h
 * writes the request into a socketpair whose other end the mux relays, reads
 * and validates the answer as it arrives, and a timerfd bounds the wait. */
#pragma once

#include <stddef.h>

#include "evloop.h"
#include "mux.h"

/* How long the agent has to answer. */
#define SUP_FSABORT_TIMEOUT_MS 20000u

typedef struct sup_fsabort sup_fsabort;

/* Called once, from the loop, when the request ended: err 0 (msg describes the
 * aborted connection) or a negative errno (msg says why, the agent's words
 * for an ERROR). */
typedef void (*sup_fsabort_done_cb)(void *userdata, int err, const char *msg);

/* Ask the agent to abort the FUSE connection of the mount at guest_path.
 * Returns 0 (done is called later, exactly once, unless sup_fsabort_free()
 * comes first) or a negative errno (done is not called): -ECONNRESET when the
 * channel is broken, -EMFILE, -ENOMEM, ... */
int sup_fsabort_start(smolvm_evloop *loop, smolvm_mux *mux, const char *guest_path, sup_fsabort_done_cb done,
                      void *userdata, sup_fsabort **ret);

/* Stop waiting (done is not called any more) and free. Call after the mux is
 * freed: a connect still pending calls back into a. Accepts NULL. */
void sup_fsabort_free(sup_fsabort *a);
