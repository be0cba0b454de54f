/* SPDX-License-Identifier: Apache-2.0 */
/* One agent stream as a handler sees it (docs/protocol.md): frames in, the
 * RESULT/ERROR answers out. handler.c and every op file (exec, fileops,
 * envstore, fuseops, fuseabort) use these; none of them calls back into
 * handler.c. */
#pragma once

#include <stdint.h>

#include "agent_proto.h"

/* Read the next frame into rd (blocking). deadline_ms: a now_ms() time after
 * which it gives up with -ETIMEDOUT, 0 for none. Returns 1 with the frame, 0
 * on EOF, or a negative errno (-EMSGSIZE, -EPROTO: a frame rd refused). */
int agent_read_frame(int fd, smolvm_frame_reader *rd, uint64_t deadline_ms, uint16_t *ret_type,
                     const uint8_t **ret_payload, uint32_t *ret_len);

/* Send an ERROR frame {"errno": err (positive), "message": msg}. Bytes of msg
 * that are not valid UTF-8 (a truncated path) are sent as '?'. */
int agent_send_error(int fd, int err, const char *msg);
/* The same with a printf format; the message is bounded (paths up to AGENT_MAX_PATH fit). */
int agent_send_errorf(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Send a frame with a JSON object payload (steals obj; NULL: -ENOMEM). */
struct json_t;
int agent_send_json(int fd, uint16_t type, struct json_t *obj);
