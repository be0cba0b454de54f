/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock for the library: common/hvsock_client.c does the handshake;
 * this turns its failures into messages a user can act on. */
#include <stdio.h>

#include "hvsock_client.h"
#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

/* Nobody answered in time: the guest is hung or stopped, or the supervisor is. A
 * timeout of its kind, named for what the user can act on. */
static int not_responding(const char *vm_dir, uint32_t port, const char *step)
{
        const char *id = strrchr(vm_dir, '/') ? strrchr(vm_dir, '/') + 1 : vm_dir;
        char hint[256];
        snprintf(hint, sizeof(hint),
                 "the guest may be hung or the host overloaded: `smolvm logs %s` shows its console, "
                 "`smolvm stop %s && smolvm start %s` restarts it",
                 id, id, id);
        return vm_error(SMOLVM_EUNREACHABLE, hint, "VM %s is not responding: %s (port %u) within %u s", id, step,
                        port, CONNECT_TIMEOUT_MS / 1000u);
}

int vsock_connect(const char *vm_dir, uint32_t port, int cancel_fd)
{
        uint64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
        smolvm_hvsock_conn c;
        int r = smolvm_hvsock_connect(&c, vm_dir, port, deadline, cancel_fd > 0 ? cancel_fd : -1);
        if (r >= 0)
                return r;
        if (r == -ECANCELED)
                return vm_error(r, NULL, "interrupted");
        switch (c.step) {
        case SMOLVM_HVSOCK_STEP_CONNECT:
                if (r == -ETIMEDOUT)
                        return not_responding(vm_dir, port, "its supervisor did not accept the connection");
                if (strcmp(c.why, "connect") != 0) /* open (of vm_dir, for a long path), socket */
                        return vm_error(r, NULL, "%s %s: %s", c.why, vm_dir, strerror(-r));
                return vm_error(r, r == -ENOENT || r == -ECONNREFUSED ? "is the VM running?" : NULL,
                                "connect %s/" VMDIR_VSOCK ": %s", vm_dir, strerror(-r));
        case SMOLVM_HVSOCK_STEP_SEND:
                if (r == -ETIMEDOUT)
                        return not_responding(vm_dir, port, "its supervisor took no request");
                return vm_error(r, NULL, "send the handshake to %s/" VMDIR_VSOCK ": %s", vm_dir, strerror(-r));
        case SMOLVM_HVSOCK_STEP_REPLY:
        case SMOLVM_HVSOCK_STEP_DONE:
        default:
                /* The supervisor closes the stream when the guest refuses it (at
                 * once) or when the guest never answers (after its own connect
                 * timeout, as long as ours): the time tells which. */
                if (r == -ETIMEDOUT || (r == -ECONNREFUSED && now_ms() + CONNECT_TIMEOUT_MS / 2 >= deadline))
                        return not_responding(vm_dir, port, "the guest agent did not answer");
                if (r == -ECONNREFUSED)
                        return vm_error(r, "the guest agent is not listening (did the VM crash?)",
                                        "guest refused the connection to port %u", port);
                return vm_error(r, NULL, "hybrid vsock handshake on port %u: %s", port,
                                r == -EPROTO ? c.why : strerror(-r));
        }
}
