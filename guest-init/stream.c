/* SPDX-License-Identifier: Apache-2.0 */
/* A handler's stream: reading frames, sending RESULT/ERROR (stream.h). */
#include "stream.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "request.h"
#include "util.h"

int agent_read_frame(int fd, smolvm_frame_reader *rd, uint64_t deadline_ms, uint16_t *ret_type,
                     const uint8_t **ret_payload, uint32_t *ret_len)
{
        for (;;) {
                int r = smolvm_frame_reader_next(rd, ret_type, ret_payload, ret_len);
                if (r != 0)
                        return r;
                size_t space = smolvm_frame_reader_space(rd);
                if (space == 0)
                        return rd->error ? rd->error : -EPROTO;
                if (deadline_ms && (r = fd_wait(fd, POLLIN, deadline_ms, -1)) < 0)
                        return r;
                ssize_t n = read(fd, smolvm_frame_reader_tail(rd), space);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return 0;
                smolvm_frame_reader_commit(rd, (size_t)n);
        }
}

int agent_send_json(int fd, uint16_t type, json_t *obj)
{
        if (!obj)
                return -ENOMEM;
        char *s = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        if (!s)
                return -ENOMEM;
        int r = smolvm_frame_send(fd, type, s, (uint32_t)strlen(s));
        free(s);
        return r;
}

int agent_send_error(int fd, int err, const char *msg)
{
        json_t *o = json_pack("{s:i,s:s}", "errno", err, "message", msg);
        if (!o) {
                /* Not UTF-8 (jansson refuses it): a client must still learn why. */
                _cleanup_free_ char *clean = strdup(msg);
                if (!clean)
                        return -ENOMEM;
                for (char *p = clean; *p; p++)
                        if ((unsigned char)*p >= 0x80)
                                *p = '?';
                o = json_pack("{s:i,s:s}", "errno", err, "message", clean);
        }
        return agent_send_json(fd, SMOLVM_FRAME_ERROR, o);
}

int agent_send_errorf(int fd, int err, const char *fmt, ...)
{
        char msg[AGENT_MAX_PATH + 512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return agent_send_error(fd, err, msg);
}
