/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the guest agent's suites (test_guest_*.c): the real
 * handler (agent_handle_stream) in a forked child behind a socketpair, a client
 * that sends it frames, and one reader that keeps every frame of its answer. */
#pragma once

#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "init.h"
#include "util.h"

/* Everything the handler sent until it closed the stream. */
typedef struct reply {
        char *out; /* all STDOUT bytes, NUL-terminated; never NULL */
        size_t out_len;
        char *err; /* all STDERR bytes, NUL-terminated; never NULL */
        size_t err_len;
        json_t *started, *exit, *error, *result; /* at most one of each */
        int n_frames;
        int result_index;        /* frame index of RESULT, or -1 */
        int first_data_index;    /* frame index of the first STDOUT, or -1 */
        uint32_t max_frame;      /* largest payload of any frame, bytes */
        uint32_t max_data_frame; /* largest STDOUT payload, bytes */
        int handler_status;      /* from waitpid */
        uint64_t ms;             /* run()/runf(): request to handler exit */
} reply;

static inline pid_t start_handler(int *ret_fd)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                _exit(agent_handle_stream(sv[1]));
        }
        close(sv[1]);
        *ret_fd = sv[0];
        return pid;
}

static inline void send_frame(int fd, uint16_t type, const void *p, uint32_t len)
{
        ck_assert_int_eq(smolvm_frame_send(fd, type, p, len), 0);
}

static inline void send_req(int fd, const char *json)
{
        send_frame(fd, SMOLVM_FRAME_REQUEST, json, (uint32_t)strlen(json));
}

static inline void send_reqf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void send_reqf(int fd, const char *fmt, ...)
{
        char *s;
        va_list ap;
        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
        va_end(ap);
        send_req(fd, s);
        free(s);
}

static inline void reply_append(char **buf, size_t *buf_len, const uint8_t *p, uint32_t len)
{
        *buf = realloc(*buf, *buf_len + len + 1);
        ck_assert_ptr_nonnull(*buf);
        memcpy(*buf + *buf_len, p, len);
        *buf_len += len;
        (*buf)[*buf_len] = '\0';
}

/* Read frames until EOF, close fd, then reap the handler. Whatever the client
 * did, the handler exits: it never crashes, and it sends no frame type the
 * protocol does not name. */
static inline reply *finish(int fd, pid_t pid)
{
        reply *rp = calloc(1, sizeof(*rp));
        ck_assert_ptr_nonnull(rp);
        rp->out = calloc(1, 1);
        rp->err = calloc(1, 1);
        rp->result_index = rp->first_data_index = -1;
        smolvm_frame_reader rd;
        ck_assert_int_eq(smolvm_frame_reader_init(&rd, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        for (;;) {
                uint16_t type;
                const uint8_t *p;
                uint32_t len;
                int r = smolvm_frame_reader_next(&rd, &type, &p, &len);
                ck_assert_int_ge(r, 0);
                if (r == 1) {
                        json_t **slot = NULL;
                        rp->max_frame = MAX(rp->max_frame, len);
                        switch (type) {
                        case SMOLVM_FRAME_STDOUT:
                                reply_append(&rp->out, &rp->out_len, p, len);
                                rp->max_data_frame = MAX(rp->max_data_frame, len);
                                if (rp->first_data_index < 0)
                                        rp->first_data_index = rp->n_frames;
                                break;
                        case SMOLVM_FRAME_STDERR: reply_append(&rp->err, &rp->err_len, p, len); break;
                        case SMOLVM_FRAME_STARTED: slot = &rp->started; break;
                        case SMOLVM_FRAME_EXIT: slot = &rp->exit; break;
                        case SMOLVM_FRAME_ERROR: slot = &rp->error; break;
                        case SMOLVM_FRAME_RESULT:
                                slot = &rp->result;
                                rp->result_index = rp->n_frames;
                                break;
                        default: ck_abort_msg("unexpected frame type %u", type);
                        }
                        if (slot) {
                                ck_assert_ptr_null(*slot);
                                *slot = json_loadb((const char *)p, len, 0, NULL);
                                ck_assert_ptr_nonnull(*slot);
                        }
                        rp->n_frames++;
                        continue;
                }
                size_t space = smolvm_frame_reader_space(&rd);
                ck_assert_uint_gt(space, 0);
                ssize_t n = read(fd, smolvm_frame_reader_tail(&rd), space);
                ck_assert_int_ge(n, 0);
                if (n == 0)
                        break;
                smolvm_frame_reader_commit(&rd, (size_t)n);
        }
        smolvm_frame_reader_done(&rd);
        close(fd);
        ck_assert_int_eq(waitpid(pid, &rp->handler_status, 0), pid);
        ck_assert_msg(WIFEXITED(rp->handler_status), "handler died: status 0x%x", rp->handler_status);
        return rp;
}

/* One request, no input: the whole answer. */
static inline reply *run(const char *json)
{
        uint64_t t0 = now_ms();
        int fd;
        pid_t pid = start_handler(&fd);
        send_req(fd, json);
        reply *rp = finish(fd, pid);
        rp->ms = now_ms() - t0;
        return rp;
}

static inline reply *runf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline reply *runf(const char *fmt, ...)
{
        char *s;
        va_list ap;
        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
        va_end(ap);
        reply *rp = run(s);
        free(s);
        return rp;
}

static inline void reply_free(reply *rp)
{
        json_decref(rp->started);
        json_decref(rp->exit);
        json_decref(rp->error);
        json_decref(rp->result);
        free(rp->out);
        free(rp->err);
        free(rp);
}

static inline json_int_t jint(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);
        ck_assert_msg(json_is_integer(v), "field %s missing", k);
        return json_integer_value(v);
}

static inline const char *jstr(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);
        ck_assert_msg(json_is_string(v), "field %s missing", k);
        return json_string_value(v);
}

/* Macros, not functions: a failure names the caller's line. */
#define ASSERT_ERROR(rp, want_errno, want_substr)                                                            \
        do {                                                                                                 \
                ck_assert_msg((rp)->error, "expected an ERROR frame");                                      \
                ck_assert_ptr_null((rp)->result);                                                            \
                ck_assert_int_eq(jint((rp)->error, "errno"), want_errno);                                    \
                ck_assert_msg(strstr(jstr((rp)->error, "message"), want_substr), "message '%s' lacks '%s'", \
                              jstr((rp)->error, "message"), want_substr);                                    \
        } while (0)

#define ASSERT_OK(rp)                                                                                  \
        do {                                                                                           \
                ck_assert_msg(!(rp)->error, "ERROR: %s", (rp)->error ? jstr((rp)->error, "message") : ""); \
                ck_assert_ptr_nonnull((rp)->result);                                                   \
                ck_assert(json_is_true(json_object_get((rp)->result, "ok")));                          \
        } while (0)

/* runf() a request that must fail with want_errno, naming want_substr. */
#define ASSERT_RUN_FAILS(want_errno, want_substr, ...)              \
        do {                                                        \
                reply *_rp = runf(__VA_ARGS__);                     \
                ASSERT_ERROR(_rp, want_errno, want_substr);         \
                reply_free(_rp);                                    \
        } while (0)

/* runf() a request that must succeed ({"ok": true}). */
#define ASSERT_RUN_OK(...)                  \
        do {                                \
                reply *_rp = runf(__VA_ARGS__); \
                ASSERT_OK(_rp);             \
                reply_free(_rp);            \
        } while (0)
