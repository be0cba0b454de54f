/* SPDX-License-Identifier: Apache-2.0 */
/* The agent protocol: what travels on one stream to the guest agent (vsock port
 * SMOLVM_AGENT_PORT). One stream = one operation. Both directions carry frames:
 *
 *     le32 len | le16 type | le16 reserved(0) | len bytes of payload
 *
 * The first client frame is REQUEST: a JSON object {"op": "...", ...}. Then,
 * for "exec", the client may send STDIN / STDIN_EOF / SIGNAL frames and the agent
 * sends STARTED, STDOUT, STDERR frames as output is produced and one EXIT (or
 * ERROR) frame, after which it closes the stream. Other ops answer with a
 * RESULT or ERROR frame; "read_file" streams the content as STDOUT frames after
 * its RESULT, and "write_file" takes the content as STDIN frames before it.
 * See docs/protocol.md for each op's fields. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMOLVM_AGENT_PORT 1024u
/* Egress by name (docs/protocol.md, "Egress"): the host port guest-initiated
 * streams go to, and the guest's resolver address (inside the synthetic range
 * 198.18.0.0/15 the host hands out addresses from). */
#define SMOLVM_EGRESS_PORT 1025u
#define SMOLVM_EGRESS_RESOLVER "198.18.0.53"

#define SMOLVM_FRAME_HDR_SIZE 8u
/* Largest payload in one frame. Data frames are sent in chunks of at most
 * SMOLVM_FRAME_DATA_CHUNK; JSON frames (REQUEST, RESULT, ...) up to the max. */
#define SMOLVM_FRAME_MAX_PAYLOAD (1024u * 1024u)
#define SMOLVM_FRAME_DATA_CHUNK (64u * 1024u)

enum smolvm_frame_type {
        /* client -> agent */
        SMOLVM_FRAME_REQUEST = 1,   /* JSON */
        SMOLVM_FRAME_STDIN = 2,     /* bytes */
        SMOLVM_FRAME_STDIN_EOF = 3, /* empty */
        SMOLVM_FRAME_SIGNAL = 4,    /* le32 signal number, delivered to the process group */
        SMOLVM_FRAME_RESIZE = 5,    /* le16 rows, le16 cols: the terminal's new size (exec with "tty") */
        /* agent -> client */
        SMOLVM_FRAME_STARTED = 16,  /* JSON {"pid": N} */
        SMOLVM_FRAME_STDOUT = 17,   /* bytes */
        SMOLVM_FRAME_STDERR = 18,   /* bytes */
        SMOLVM_FRAME_EXIT = 19,     /* JSON {"exit_code","signal","timed_out","duration_ms"} */
        SMOLVM_FRAME_ERROR = 20,    /* JSON {"errno": N, "message": "..."} */
        SMOLVM_FRAME_RESULT = 21,   /* JSON, op-specific */
};

/* Where the guest agent keeps exec logs: <dir>/<pid>.log holds the output of a
 * detached exec, and what the background processes of an exec wrote to its
 * stdout/stderr after it ended (docs/protocol.md, "exec"). */
#define SMOLVM_EXEC_LOG_DIR "/run/smolvm/exec"

/* True for the types defined above. */
bool smolvm_frame_type_known(uint16_t type);

/* Encode a frame header for payload_len bytes of type into out. */
void smolvm_frame_hdr_encode(uint16_t type, uint32_t payload_len, uint8_t out[SMOLVM_FRAME_HDR_SIZE]);

/* Incremental frame decoder with a bounded buffer (never grows past
 * SMOLVM_FRAME_HDR_SIZE + max_payload). Feed bytes as they arrive; pull frames. */
typedef struct smolvm_frame_reader {
        uint8_t *buf;
        size_t len;        /* bytes held */
        size_t cap;
        uint32_t max_payload;
        int error;         /* sticky: once set, the stream is unusable */
} smolvm_frame_reader;

/* max_payload <= SMOLVM_FRAME_MAX_PAYLOAD. Returns 0 or -ENOMEM. */
int smolvm_frame_reader_init(smolvm_frame_reader *r, uint32_t max_payload);
void smolvm_frame_reader_done(smolvm_frame_reader *r);

/* How many bytes the reader can accept now (0 = pull a frame first). */
size_t smolvm_frame_reader_space(const smolvm_frame_reader *r);
/* Copy up to len bytes in; returns bytes consumed (<= space). */
size_t smolvm_frame_reader_feed(smolvm_frame_reader *r, const void *data, size_t len);
/* Pointer where up to space() bytes may be read directly (then call _commit). */
uint8_t *smolvm_frame_reader_tail(smolvm_frame_reader *r);
void smolvm_frame_reader_commit(smolvm_frame_reader *r, size_t n);

/* Take the next complete frame. Returns 1 with ret_type, ret_payload and ret_len
 * set (payload valid until the next call into the reader), 0 if more bytes are
 * needed, -EMSGSIZE (length above max), -EPROTO (unknown type or non-zero
 * reserved field). Errors are sticky. */
int smolvm_frame_reader_next(smolvm_frame_reader *r, uint16_t *ret_type, const uint8_t **ret_payload,
                             uint32_t *ret_len);

/* Blocking helpers for simple users (the agent's handlers, the host library). */
/* Send one frame on a blocking fd. Returns 0 or negative errno. */
int smolvm_frame_send(int fd, uint16_t type, const void *payload, uint32_t len);

/* The environment rules of exec's "env" keys and env_set (docs/protocol.md), one
 * copy for the agent and the host, so that the host refuses at once what the
 * guest would refuse after a boot. */
#define AGENT_ENV_MAX_KEY 255u
/* Persistent env (env_set): per value, and keys + values over the whole store. */
#define AGENT_ENV_MAX_VALUE (64u * 1024u)
#define AGENT_ENV_MAX_TOTAL (1024u * 1024u)

/* True when key[0..len) matches [A-Za-z_][A-Za-z0-9_]* and is at most
 * AGENT_ENV_MAX_KEY bytes. */
bool agent_env_key_valid_n(const char *key, size_t len);
/* The same for a C string (false for NULL). */
bool agent_env_key_valid(const char *key);
/* One "KEY=VALUE" entry: 0, -EINVAL (no '=' or an invalid key) or -E2BIG (the
 * value is longer than AGENT_ENV_MAX_VALUE). *ret_key_len gets the length of
 * what precedes the first '=' (the whole entry without one), for messages. */
int agent_env_entry_check(const char *kv, size_t *ret_key_len);
