/* SPDX-License-Identifier: Apache-2.0 */
/* One agent operation (one stream, docs/protocol.md) for the library, blocking:
 * hybrid vsock (connect.c), then common/agent_client.h's state machine driven
 * by common/agent_client_io.h, with the failures recorded (vm_error) in words
 * for the user. Used by the request/answer ops (files, download, env); exec.c
 * drives the same state machine from its own poll loop (stdin, output, cancel). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_client.h"
#include "smolvm_i.h"

/* An operation that makes no progress for this long is given up (-ETIMEDOUT).
 * Generous: under TCG a busy guest can stall for seconds. */
#define AGENT_CALL_IDLE_TIMEOUT_MS 60000u

typedef struct agent_call {
        int fd;
        int cancel_fd;            /* > 0: waits give up with -ECANCELED once it is readable;
                                   * the caller sets it after agent_call_open() */
        uint32_t idle_ms;         /* 0: AGENT_CALL_IDLE_TIMEOUT_MS; may be set after agent_call_open() */
        const char *what;         /* names the operation in messages ("write_file"); static */
        smolvm_agent_client cl;
} agent_call;

/* Connect to the agent of vm and send req (borrowed) as the REQUEST frame of an
 * operation answered as reply says (SMOLVM_AGENT_REPLY_ANSWER: RESULT or
 * ERROR; SMOLVM_AGENT_REPLY_STREAM: read_file's data after it). what names the
 * operation in error messages (a static string). Returns 0 or a negative
 * errno (recorded; *ret untouched). */
int agent_call_open(smolvm_vm *vm, json_t *req, const char *what, smolvm_agent_reply reply, agent_call *ret);
/* NULL-safe, idempotent. */
void agent_call_close(agent_call *c);

/* Send one frame (STDIN, STDIN_EOF). Returns 0 when sent, 1 when the agent
 * answered or stopped reading before it was all sent (stop sending, read its
 * answer with agent_call_next), or a negative errno (recorded). */
int agent_call_send(agent_call *c, uint16_t type, const void *payload, uint32_t len);

/* The next event of the answer (agent_client.h): 1 with *ret (borrowed until
 * the next call); 0 when the operation is over (a REPLY_STREAM's EOF, or after
 * the final event); a negative errno
 * (recorded) for an ERROR from the agent (marked as from the guest), a
 * broken stream, a timeout, or -ECANCELED (cancel_fd). */
int agent_call_next(agent_call *c, smolvm_agent_event *ret);

/* Read the operation's answer: RESULT -> 0 and *ret (a JSON object whose "ok"
 * is true, caller decrefs); anything else -> a negative errno (recorded). */
int agent_call_result(agent_call *c, json_t **ret);

/* Open, send req, read the answer, close. */
int agent_call_simple(smolvm_vm *vm, json_t *req, const char *what, json_t **ret);

/* Record the failure of client cl (its sticky error), what naming the operation,
 * with a hint fitting the reply kind; an ERROR event is recorded with
 * agent_error_record(). Returns the negative errno. Shared with exec.c. */
int agent_client_record(const smolvm_agent_client *cl, const char *what);
/* Record the agent's ERROR (marked as from the guest) and return its errno. */
int agent_error_record(const smolvm_agent_event *ev);
