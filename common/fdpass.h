/* SPDX-License-Identifier: Apache-2.0 */
/* Passing fds over a unix socket (SCM_RIGHTS): the one copy of the cmsg
 * boilerplate for every side (vhost-user, QMP, the guest's FUSE hand-offs).
 * Receiving is bounded and never leaks: every fd arrives O_CLOEXEC, and on any
 * error every fd that came with the message is closed. Needs nothing but libc
 * (the guest links it statically). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* The most fds one message may carry through these helpers (vhost-user's
 * SET_MEM_TABLE needs 8). */
#define FDPASS_MAX_FDS 16u

/* sendmsg of len bytes of buf (len >= 1: a stream socket carries fds only with
 * data) with n_fds fds of fds[] (0..FDPASS_MAX_FDS; fds may be NULL if 0)
 * riding on them. flags as for sendmsg; MSG_NOSIGNAL is always added; EINTR is
 * retried. Returns the bytes sent (a stream socket may take fewer than len: the
 * fds went with them, the caller writes the rest) or a negative errno
 * (-EINVAL: len 0 or too many fds). The caller keeps its fds either way. */
ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds, int flags);

/* recvmsg of up to len bytes into buf and up to max_fds (<= FDPASS_MAX_FDS)
 * fds into fds[] (may be NULL if max_fds is 0), each O_CLOEXEC
 * (MSG_CMSG_CLOEXEC). flags as for recvmsg (e.g. MSG_DONTWAIT); EINTR is
 * retried. Returns the bytes received (0: end of stream) with *ret_n_fds the
 * fds received (the caller owns them), or a negative errno with every fd the
 * message carried closed and fds[] and *ret_n_fds untouched (its bytes are
 * consumed all the same):
 *   -EBADMSG   more fds than max_fds, or the kernel truncated the control
 *              data (MSG_CTRUNC);
 *   -EMSGSIZE  a datagram or record longer than len (MSG_TRUNC);
 *   -EAGAIN    nothing there yet (MSG_DONTWAIT or a non-blocking socket);
 *   -EINVAL    max_fds over FDPASS_MAX_FDS; else recvmsg's errno.
 * Control messages other than SCM_RIGHTS are ignored. */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds, int flags);
