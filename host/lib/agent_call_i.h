/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking client for one agent operation (one stream, docs/protocol.md): send
 * the REQUEST, optionally a stream of STDIN frames, and read the agent's frames.
 * Used by the request/answer ops (files, env); exec.c has its own poll loop
 * because it multiplexes stdin, output and a cancel fd. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_proto.h"
#include "smolvm_i.h"

/* An operation that makes no progress for this long is given up (-ETIMEDOUT).
 * Generous: under TCG a busy guest can stall for seconds. */
#define AGENT_CALL_IDLE_TIMEOUT_MS 60000u

typedef struct agent_call {
        int fd;
        int cancel_fd;            /* > 0: waits give up with -ECANCELED once it is readable;
                                   * the caller sets it after agent_call_open() */
        smolvm_frame_reader rd;
        bool eof;                 /* the agent closed its sending side */
        bool held;                /* a frame was read while sending: next() returns it first */
        uint16_t held_type;
        const uint8_t *held_payload; /* points into rd; valid until the next reader call */
        uint32_t held_len;
} agent_call;

/* Connect to the agent of vm and send req (borrowed) as the REQUEST frame.
 * what names the operation in error messages ("write_file /etc/x"). Returns 0
 * or a negative errno (recorded). */
int agent_call_open(smolvm_vm *vm, json_t *req, const char *what, agent_call *ret);
/* NULL-safe, idempotent. */
void agent_call_close(agent_call *c);

/* Send one frame. Returns 0 when sent, 1 when the agent answered or stopped
 * reading before it was all sent (stop sending, read its answer with
 * agent_call_next), or a negative errno (recorded). */
int agent_call_send(agent_call *c, uint16_t type, const void *payload, uint32_t len);

/* The next frame from the agent: 1 with type, payload (valid until the next call)
 * and len; 0 when the agent closed the stream cleanly between frames; a negative
 * errno (recorded) on a broken stream, a timeout, or -ECANCELED (cancel_fd). */
int agent_call_next(agent_call *c, uint16_t *ret_type, const uint8_t **ret_payload, uint32_t *ret_len);

/* Read the operation's answer: RESULT -> 0 and *ret (a JSON object, caller
 * decrefs); ERROR -> the agent's negative errno (recorded, marked as from the
 * guest); anything else -> -EPROTO / -ECONNRESET (recorded). */
int agent_call_result(agent_call *c, const char *what, json_t **ret);

/* Open, send req, read the answer, close. */
int agent_call_simple(smolvm_vm *vm, json_t *req, const char *what, json_t **ret);

/* ---- shared with exec.c ---- */
/* A JSON object from a frame payload, or NULL (not JSON, not an object). */
json_t *agent_parse_object(const uint8_t *p, uint32_t len);
/* Record the error an ERROR frame carries (message sanitised, marked as from the
 * guest) and return its negative errno; -EBADMSG for a malformed frame. */
int agent_parse_error(const uint8_t *p, uint32_t len);
