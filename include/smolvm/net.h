/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm: the network policy and port forwarding. Part of <smolvm/smolvm.h>, which includes it (the
 * types and conventions it uses are there): include that, not this file. */
#pragma once

#ifndef SMOLVM_INSIDE_SMOLVM_H
#error "include <smolvm/smolvm.h>, not this file"
#endif

/* ---- network ---------------------------------------------------------------- */

/* Add pattern to the VM's allow list (allow true; every deny pattern for the
 * same host, whatever its port, is removed) or to its deny list (allow false;
 * allow patterns for the same host are removed), in the record and, if it
 * runs, at once for new connections and DNS questions. Returns 0, SMOLVM_EINVAL (bad pattern, or
 * the VM was created without a network: the message says so). */
SMOLVM_EXPORT int smolvm_net_change(smolvm_vm *vm, bool allow, const char *pattern);
/* Path of the VM's egress log (JSON lines, docs/cli.md "smolvm net log"; the
 * previous part is the same path with ".1"). Free with free(). NULL on ENOMEM. */
SMOLVM_EXPORT char *smolvm_net_log_path(smolvm_vm *vm);

/* ---- port forwarding -------------------------------------------------------- */

/* Forward host bind_addr:host_port (NULL: 127.0.0.1; 0: a free port) to the
 * guest's TCP port guest_port. The listener lives in the VM's supervisor (it
 * outlives this process and dies with the VM); the forward is recorded in the
 * VM dir and set up again at every start, on the same host port. A VM that is
 * not running only gets the record (host_port 0 is then chosen at start).
 * Each connection is relayed to the guest's 127.0.0.1:guest_port, or ::1 when
 * that refuses; if neither listens, the host connection is closed at once.
 * Returns 0 and the host port in *ret_host_port (may be NULL; 0 for a stopped
 * VM asked for any port), -EADDRINUSE (the host port is taken: the message
 * names it), -EEXIST (guest_port is forwarded already), -EINVAL, -ENOSPC
 * (SMOLVM_MAX_PORTS), -EADDRNOTAVAIL (bind_addr is not the host's), ... */
SMOLVM_EXPORT int smolvm_port_expose(smolvm_vm *vm, uint16_t guest_port, uint16_t host_port, const char *bind_addr,
                                     uint16_t *ret_host_port);

typedef struct smolvm_port_info {
        uint16_t guest_port;
        uint16_t host_port;       /* 0: not chosen yet (the VM has not run since) */
        char bind_addr[46];       /* INET6_ADDRSTRLEN */
        bool active;              /* the supervisor listens on host_port now */
        unsigned connections;     /* connections it relays now (0 when not active) */
} smolvm_port_info;

/* The recorded forwards, in the order they were added, with whether each is
 * listening and how many connections it relays (asked of the running VM's
 * supervisor). *ret is malloc'd (free()), NULL when *ret_n is 0. Returns 0,
 * SMOLVM_ECORRUPT (ports.json unreadable), ... */
SMOLVM_EXPORT int smolvm_port_list(smolvm_vm *vm, smolvm_port_info **ret, size_t *ret_n);

/* Stop forwarding guest_port: the listener closes at once (connections already
 * relayed go on until they end) and the record goes. Returns 0,
 * SMOLVM_ENOTFOUND (not forwarded), ... */
SMOLVM_EXPORT int smolvm_port_close(smolvm_vm *vm, uint16_t guest_port);
