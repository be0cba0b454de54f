/* SPDX-License-Identifier: Apache-2.0 */
/* One agent operation on an event loop (evloop.h), for the supervisor: the
 * agent client (agent_client.h) driven by fd watches and a timerfd, no thread
 * and no blocking call. The stream is any connected socket: the supervisor's
 * are one end of a socketpair whose other end it gave to smolvm_mux_connect()
 * (fuse_abort today; streams reopened after a restore, the egress proxy's
 * requests tomorrow). Bytes written before the mux accepted wait in the
 * socket; if the mux refuses, it closes its end and the call ends with the
 * agent's EOF (-ECONNRESET): the caller's connect callback knows the cause. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "agent_client.h"
#include "evloop.h"

typedef struct smolvm_agent_loop_call smolvm_agent_loop_call;

typedef struct smolvm_agent_loop_ops {
        /* Each event of the answer, in order, the final one included. May
         * queue frames (_send), take the stream (_take_fd) or free the call
         * (then no callback follows). NULL: not interested. */
        void (*event)(void *userdata, const smolvm_agent_event *ev);
        /* Called once when the operation ended, after the final event: err 0,
         * or the agent's negative errno after an ERROR (why is its sanitised
         * message), or the negative errno of a failure (why explains it:
         * smolvm_agent_client_why(), e.g. -ETIMEDOUT, -ECONNRESET, -EPROTO).
         * The stream is closed by then unless it was taken. May free the call. */
        void (*done)(void *userdata, int err, const char *why);
} smolvm_agent_loop_ops;

/* Start the operation request[0..request_len) (a JSON object) on fd, whose
 * ownership passes to the call even on failure. reply and max_answer_bytes as
 * for smolvm_agent_client_init(). timeout_ms > 0 bounds the whole operation
 * (then it ends with -ETIMEDOUT). ops is copied; userdata is passed back.
 * Returns 0 (done will be called exactly once unless the call is freed first)
 * or a negative errno (-ENOMEM, -E2BIG, timerfd or epoll errors; no callback). */
int smolvm_agent_loop_call_start(smolvm_evloop *loop, int fd, smolvm_agent_reply reply, uint32_t max_answer_bytes,
                                 const char *request, size_t request_len, uint32_t timeout_ms,
                                 const smolvm_agent_loop_ops *ops, void *userdata, smolvm_agent_loop_call **ret);

/* Queue a client frame (STDIN, STDIN_EOF, SIGNAL) as smolvm_agent_client_send(). */
int smolvm_agent_loop_call_send(smolvm_agent_loop_call *call, uint16_t type, const void *payload, uint32_t len);

/* Take the stream: for REPLY_ANSWER, from the event callback of the RESULT
 * (the bytes after it are unread). The call stops watching it. Returns the fd
 * (the caller's) or -1 (taken before, or closed). */
int smolvm_agent_loop_call_take_fd(smolvm_agent_loop_call *call);

/* Stop (no callback any more), close the stream unless taken, free. NULL-safe;
 * from a callback of the call the free waits until the callback returns. */
void smolvm_agent_loop_call_free(smolvm_agent_loop_call *call);
