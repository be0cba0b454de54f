/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of one agent operation (docs/protocol.md, "Agent protocol"),
 * as a state machine that does no I/O: the one place that encodes client
 * frames and validates what the guest agent answers. How the bytes move is
 * the caller's business: a blocking loop (agent_client_io.h: libsmolvm,
 * smolvm-fs, smolvm-virtiofsd), a poll loop of its own (libsmolvm's exec), or
 * an event loop (agent_client_loop.h: the supervisor, over a socketpair into its
 * mux). How the stream was opened does not matter either (hybrid vsock,
 * hvsock_client.h; a mux stream; AF_VSOCK).
 *
 *   output: smolvm_agent_client_request() / _send() queue frames;
 *           _tx_buf() gives the bytes to write, _tx_commit() says how many went.
 *   input:  _rx_buf() gives where to read and how much (never more than the
 *           rest of the current frame, so nothing past the operation's last
 *           frame is ever consumed), _rx_commit() says how many came, _rx_eof()
 *           that the agent closed its side; or _feed() copies bytes in.
 *           _next() turns complete frames into events.
 *
 * Every reply frame is validated once, here: its type must be one the agent
 * sends and expected at this point of the operation, its reserved field 0,
 * its length within the type's bound; JSON payloads must be objects with the
 * fields the protocol gives them (RESULT "ok": true; ERROR "errno" in
 * 1..SMOLVM_AGENT_ERRNO_MAX; EXIT and STARTED in range). A violation is a
 * sticky error: every later call on the input side returns it. Memory stays
 * bounded by one frame each way.
 *
 * Not thread-safe: one client per operation, used by one thread at a time. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h"

/* ERROR frames carry a Linux errno in 1..this. */
#define SMOLVM_AGENT_ERRNO_MAX 4095
/* An ERROR message is cut to this many bytes (NUL included). */
#define SMOLVM_AGENT_MSG_MAX 512u
/* Largest STARTED, EXIT or ERROR payload accepted: they are short JSON objects. */
#define SMOLVM_AGENT_SMALL_JSON_MAX (64u * 1024u)
/* Output queue bound: one frame of the largest payload plus a few control
 * frames behind it (a SIGNAL after a pending STDIN frame). */
#define SMOLVM_AGENT_TX_MAX (SMOLVM_FRAME_HDR_SIZE + SMOLVM_FRAME_MAX_PAYLOAD + 64u)

/* What the operation answers, which decides the frames expected and when it ends. */
typedef enum smolvm_agent_reply {
        /* RESULT or ERROR, and that is all (mkdir, env_*, list_tree, write_file,
         * ping, fuse_abort; fuse_mount and fuse_serve, after which the stream
         * leaves the frame format): the client ends at the answer and never
         * consumes a byte past it, so the rest of the stream is the caller's. */
        SMOLVM_AGENT_REPLY_ANSWER,
        /* read_file: RESULT, then STDOUT frames until the agent closes the
         * stream (EOF) or sends an ERROR. */
        SMOLVM_AGENT_REPLY_STREAM,
        /* exec: STARTED, then STDOUT/STDERR, then EXIT; ERROR instead at any point. */
        SMOLVM_AGENT_REPLY_EXEC,
} smolvm_agent_reply;

typedef enum smolvm_agent_ev_kind {
        SMOLVM_AGENT_EV_NONE = 0,
        SMOLVM_AGENT_EV_STARTED, /* pid */
        SMOLVM_AGENT_EV_STDOUT,  /* data, len (never empty: empty data frames are skipped) */
        SMOLVM_AGENT_EV_STDERR,  /* data, len */
        SMOLVM_AGENT_EV_EXIT,    /* exit (final) */
        SMOLVM_AGENT_EV_ERROR,   /* error, message (final) */
        SMOLVM_AGENT_EV_RESULT,  /* result (final for REPLY_ANSWER) */
        SMOLVM_AGENT_EV_EOF,     /* REPLY_STREAM: the agent closed the stream after its data (final) */
} smolvm_agent_ev_kind;

typedef struct smolvm_agent_exit {
        int exit_code;        /* as the agent sent it: 0..255, or (with signal) what it gave, -1 */
        int signal;           /* 0, or the signal (1..64) that killed the command */
        bool timed_out;       /* the request's timeout_ms expired */
        uint64_t duration_ms; /* the guest's measure, < 2^42 */
} smolvm_agent_exit;

/* One step of the agent's answer. Pointers are borrowed: valid until the next
 * call into the client (or smolvm_agent_client_done()). */
typedef struct smolvm_agent_event {
        smolvm_agent_ev_kind kind;
        const uint8_t *data;     /* STDOUT, STDERR: the bytes */
        uint32_t len;            /* STDOUT, STDERR: 1..SMOLVM_FRAME_DATA_CHUNK */
        json_t *result;          /* RESULT: the object, "ok" is true; json_incref() to keep it */
        int error;               /* ERROR: the agent's errno, negative, -SMOLVM_AGENT_ERRNO_MAX..-1 */
        const char *message;     /* ERROR: the agent's message, sanitised (smolvm_agent_sanitize), never NULL */
        int pid;                 /* STARTED: guest pid, 0..INT32_MAX (0: not given) */
        smolvm_agent_exit exit;  /* EXIT */
} smolvm_agent_event;

typedef struct smolvm_agent_client {
        /* private: use the functions below */
        smolvm_agent_reply reply;
        uint32_t max_answer_bytes;
        smolvm_frame_reader rd;
        bool head_checked;  /* the header of the frame in rd passed check_head() */
        bool rx_eof;        /* the agent closed its side */
        bool requested;     /* the REQUEST is queued */
        bool tx_closed;     /* the agent stopped reading: output dropped */
        bool started;       /* EXEC: STARTED seen */
        bool answered;      /* STREAM: RESULT seen */
        bool finished;      /* a final event was returned */
        int error;          /* sticky, 0 or negative errno */
        uint8_t *tx;        /* queued output: tx[tx_off..tx_len) unsent */
        size_t tx_off, tx_len, tx_cap;
        json_t *held;       /* the last RESULT, freed at the next call */
        char why[160];      /* what the sticky error means */
        char msg[SMOLVM_AGENT_MSG_MAX];
} smolvm_agent_client;

/* Start a client for one operation whose answer is of the kind reply.
 * max_answer_bytes bounds a RESULT's payload (0: SMOLVM_FRAME_MAX_PAYLOAD;
 * fuse_mount's callers expect a short one). Returns 0 or -ENOMEM. */
int smolvm_agent_client_init(smolvm_agent_client *c, smolvm_agent_reply reply, uint32_t max_answer_bytes);
/* Free what the client holds. Idempotent; the struct may be zero-filled. */
void smolvm_agent_client_done(smolvm_agent_client *c);

/* ---- output ---- */

/* Queue the REQUEST frame: json[0..len), a JSON object (not checked here).
 * Exactly once, before any other frame. Returns 0, -E2BIG (longer than
 * SMOLVM_FRAME_MAX_PAYLOAD), -EALREADY (queued before), -ENOMEM, or the
 * sticky error. */
int smolvm_agent_client_request(smolvm_agent_client *c, const char *json, size_t len);
/* Queue a STDIN (payload, len <= SMOLVM_FRAME_MAX_PAYLOAD), STDIN_EOF (len 0)
 * or SIGNAL (4 bytes, le32) frame after the REQUEST. Returns 0, -EINVAL (a
 * type the client does not send, a bad length, no REQUEST yet), -ENOBUFS
 * (the queue would exceed SMOLVM_AGENT_TX_MAX: write some first), -EPIPE
 * (smolvm_agent_client_tx_close() was called) or -ENOMEM. Works after a
 * sticky error too (a SIGNAL from a client that gives up). */
int smolvm_agent_client_send(smolvm_agent_client *c, uint16_t type, const void *payload, uint32_t len);
/* The bytes waiting to be written: returns a pointer and sets *ret_len (0:
 * nothing to write). Valid until the next call into the client. */
const uint8_t *smolvm_agent_client_tx_buf(const smolvm_agent_client *c, size_t *ret_len);
/* n (<= the length _tx_buf gave) bytes were written. */
void smolvm_agent_client_tx_commit(smolvm_agent_client *c, size_t n);
/* The agent stopped reading (EPIPE, ECONNRESET on write): drop the queued
 * output; later sends fail with -EPIPE. Its answer is still read. */
void smolvm_agent_client_tx_close(smolvm_agent_client *c);
bool smolvm_agent_client_tx_closed(const smolvm_agent_client *c);

/* ---- input ---- */

/* Where to read the agent's next bytes: returns a pointer and sets *ret_len to
 * how many may be read there, at most what completes the frame being
 * received. *ret_len is 0 when nothing may be read now: a complete frame waits
 * for _next(), the operation is finished, the agent closed its side, or a
 * sticky error. Valid until the next call into the client. */
uint8_t *smolvm_agent_client_rx_buf(smolvm_agent_client *c, size_t *ret_len);
/* n (<= what _rx_buf allowed) bytes were read into the buffer it gave. */
void smolvm_agent_client_rx_commit(smolvm_agent_client *c, size_t n);
/* Copy bytes in, as far as _rx_buf allows. Returns the bytes consumed; the
 * caller keeps the rest (call _next(), then feed the rest again). After a
 * final event nothing more is consumed: for REPLY_ANSWER data[consumed..len)
 * is the first of the stream after the answer. */
size_t smolvm_agent_client_feed(smolvm_agent_client *c, const void *data, size_t len);
/* The agent closed its sending side (read returned 0, or ECONNRESET). */
void smolvm_agent_client_rx_eof(smolvm_agent_client *c);

/* The next event. Returns 1 with *ret (see smolvm_agent_event), 0 when more
 * bytes are needed (or the operation is finished: nothing more comes), or a
 * negative errno, sticky, explained by smolvm_agent_client_why():
 *   -EPROTO     a frame violates the framing or is not expected here (type,
 *               reserved field, length);
 *   -EBADMSG    a frame's payload is invalid (not a JSON object, a field
 *               missing or out of range, RESULT without "ok": true);
 *   -ECONNRESET the agent closed the stream inside a frame or before its
 *               answer;
 *   -ENOMEM;
 *   or what smolvm_agent_client_fail() recorded. */
int smolvm_agent_client_next(smolvm_agent_client *c, smolvm_agent_event *ret);

/* True once a final event was returned (EXIT, ERROR, EOF; RESULT for
 * REPLY_ANSWER) or after a sticky error: nothing more is read. */
bool smolvm_agent_client_finished(const smolvm_agent_client *c);
/* True when _next() has something to return without more input (a complete
 * frame, the agent's EOF, or a sticky error). */
bool smolvm_agent_client_ready(smolvm_agent_client *c);

/* Record err (negative) as the sticky error, with why (printf format) as its
 * explanation, unless an error is already recorded. For the I/O around the
 * client (a failed read, a timeout, a cancel). Returns the sticky error. */
int smolvm_agent_client_fail(smolvm_agent_client *c, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The sticky error (0: none) and what it means ("" when none), e.g. "the
 * guest agent sent a RESULT without \"ok\": true". */
int smolvm_agent_client_error(const smolvm_agent_client *c);
const char *smolvm_agent_client_why(const smolvm_agent_client *c);

/* Make guest text safe to show or log, in place: ASCII control characters,
 * DEL and the C1 controls (U+0080..U+009F in UTF-8) become '?'. The one rule
 * for text the agent sends (ERROR messages, strings taken from a RESULT). */
void smolvm_agent_sanitize(char *s);
