/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal epoll event loop. Device and channel code never owns the loop: it is
 * handed one and registers fd watches on it (libvhost-user's set_watch idea), so
 * the supervisor runs the channel bridge, console and later fs devices in one loop.
 *
 * Callbacks may add, modify and delete any watch (including their own) while the
 * loop dispatches: deleted watches are never called again, freed after the batch. */
#pragma once

#include <stdint.h>
#include <sys/epoll.h>

typedef struct smolvm_evloop smolvm_evloop;

/* events: EPOLLIN/EPOLLOUT/... as passed to and returned by epoll. */
typedef void (*smolvm_ev_cb)(void *userdata, int fd, uint32_t events);

/* Returns 0 or negative errno. */
int smolvm_evloop_new(smolvm_evloop **ret);
/* Accepts NULL. Does not close registered fds (their owners do). */
void smolvm_evloop_free(smolvm_evloop *loop);

/* Watch fd (one watch per fd). Returns 0, -EEXIST, or negative errno. */
int smolvm_evloop_add(smolvm_evloop *loop, int fd, uint32_t events, smolvm_ev_cb cb, void *userdata);
/* Change the event mask of a watched fd. 0 mask = keep registered but silent
 * (taken out of the epoll set, so not even EPOLLHUP/EPOLLERR are reported). */
int smolvm_evloop_mod(smolvm_evloop *loop, int fd, uint32_t events);
/* Stop watching fd; call before closing it. Returns 0 or -ENOENT. */
int smolvm_evloop_del(smolvm_evloop *loop, int fd);

/* Wait up to timeout_ms (-1 = forever) and dispatch ready watches.
 * Returns the number dispatched (>= 0) or negative errno (EINTR is returned as 0). */
int smolvm_evloop_run_once(smolvm_evloop *loop, int timeout_ms);
