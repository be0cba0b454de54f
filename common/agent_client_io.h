/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking I/O for an agent client (agent_client.h) on a connected stream:
 * the loop that libsmolvm's request/answer ops (host/lib/agent_call.c),
 * smolvm-fs and smolvm-virtiofsd (fs/fuse_client.c) share. It uses only
 * poll(2), read(2) and send(2) with MSG_DONTWAIT | MSG_NOSIGNAL, so it runs
 * under smolvm-virtiofsd's seccomp filter and never blocks in a syscall past
 * its deadline, whether or not the fd is in non-blocking mode. */
#pragma once

#include <stdint.h>

#include "agent_client.h"

/* Non-blocking single steps, for any loop (exec's poll loop, the event loop
 * of agent_client_loop.h, the blocking call below). */
/* One read(2) from fd of what c allows (agent_client.h: never past the frame
 * being received). Returns 0: bytes taken, EOF noted (also for ECONNRESET),
 * nothing allowed, or nothing there (EAGAIN, EINTR); else the sticky error. */
int smolvm_agent_client_read(smolvm_agent_client *c, int fd);
/* One send(2) to fd of c's queued output. Returns 0: bytes written, nothing
 * queued, the socket full (EAGAIN, EINTR), or the agent stopped reading
 * (EPIPE, ECONNRESET: smolvm_agent_client_tx_close()); else the sticky error. */
int smolvm_agent_client_write(smolvm_agent_client *c, int fd);

typedef struct smolvm_agent_io_opts {
        uint64_t deadline_ms; /* now_ms() time by which the call gives up; 0: none */
        uint32_t idle_ms;     /* give up after this long without a byte moving; 0: none */
        int cancel_fd;        /* >= 0: give up once it is readable; -1: none */
} smolvm_agent_io_opts;

/* Write c's queued output to the socket fd and read the agent's frames.
 *
 * With ret_ev: until an event is ready; returns 1 with *ret_ev (borrowed as
 * from smolvm_agent_client_next()), or 0 when the operation is finished and
 * nothing more will come.
 * With ret_ev NULL: until the queued output is written; returns 0 then, or 1
 * as soon as the agent has answered (an event is ready: take it by calling
 * again with ret_ev) or stopped reading (smolvm_agent_client_tx_closed(); its
 * answer is still to be read). Stop sending in both cases.
 *
 * Nothing is read past the operation's final frame. Errors are negative
 * errnos, sticky in c and explained by smolvm_agent_client_why(): the
 * client's own (-EPROTO, -EBADMSG, -ECONNRESET, ...), -ETIMEDOUT (deadline
 * or idle time), -ECANCELED (cancel_fd), or read(2)/send(2)/poll(2)'s errno. */
int smolvm_agent_client_io(smolvm_agent_client *c, int fd, const smolvm_agent_io_opts *o,
                           smolvm_agent_event *ret_ev);
