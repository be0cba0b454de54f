/* SPDX-License-Identifier: Apache-2.0 */
/* Host name lookups off the supervisor's event loop.
 *
 * getaddrinfo() blocks for as long as the host's DNS takes (seconds, retries),
 * and the supervisor has one thread: a slow answer would stall every stream of
 * the VM. A lookup runs on a detached thread of its own instead, which writes
 * its result as one message to a socketpair; the loop watches the other end.
 * The thread owns everything it touches (a copy of the name, its end of the
 * pair): cancelling is closing our end, after which the thread's answer goes
 * nowhere and it frees its own state. getaddrinfo cannot be interrupted, so a
 * cancelled lookup still occupies its slot until it returns: at most
 * SUP_RESOLVE_MAX threads exist at any time, process-wide. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

#define SUP_RESOLVE_MAX 16u /* lookups in flight, cancelled ones included */
#define SUP_RESOLVE_ADDRS 8u /* addresses kept per answer */

typedef struct sup_resolve_result {
        int status; /* 0, or getaddrinfo's EAI_* code */
        unsigned n;
        struct sockaddr_storage addrs[SUP_RESOLVE_ADDRS];
} sup_resolve_result;

/* Start looking up name (TCP addresses, any family). Returns the fd that turns
 * readable when the answer is there (the caller owns it: close it to cancel),
 * -EAGAIN when SUP_RESOLVE_MAX lookups are in flight, or another negative errno. */
int sup_resolve_start(const char *name);

/* Read the answer from a readable fd of sup_resolve_start. Returns 0, or
 * -EAGAIN (not there yet), or -EIO (the lookup's thread ended without one). */
int sup_resolve_read(int fd, sup_resolve_result *ret);

/* Lookups in flight, cancelled ones included (for tests and logs). */
unsigned sup_resolve_in_flight(void);
