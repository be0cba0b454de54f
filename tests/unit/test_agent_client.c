/* SPDX-License-Identifier: Apache-2.0 */
/* The agent client state machine (common/agent_client.c): every reply type,
 * malformed and oversized frames, ERROR's errno range, RESULT's "ok", the end
 * of the stream, nothing consumed past the answer, the frames it encodes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent_client.h"
#include "agent_frames.h"
#include "check_main.h"
#include "util.h"

/* What a client made of a buffer: its events' kinds and contents. */
typedef struct run {
        smolvm_agent_ev_kind kinds[32];
        unsigned n;
        int pid, error, exit_code, signal;
        bool timed_out;
        char message[SMOLVM_AGENT_MSG_MAX];
        char out[256];
        size_t out_len;
        json_t *result;
        size_t consumed;
} run;

static int drain(smolvm_agent_client *c, run *rn)
{
        smolvm_agent_event ev;
        int r;
        while ((r = smolvm_agent_client_next(c, &ev)) > 0) {
                ck_assert_uint_lt(rn->n, 32);
                rn->kinds[rn->n++] = ev.kind;
                switch (ev.kind) {
                case SMOLVM_AGENT_EV_STARTED:
                        rn->pid = ev.pid;
                        break;
                case SMOLVM_AGENT_EV_STDOUT:
                case SMOLVM_AGENT_EV_STDERR:
                        ck_assert_uint_gt(ev.len, 0);
                        ck_assert_uint_le(rn->out_len + ev.len, sizeof(rn->out));
                        memcpy(rn->out + rn->out_len, ev.data, ev.len);
                        rn->out_len += ev.len;
                        break;
                case SMOLVM_AGENT_EV_EXIT:
                        rn->exit_code = ev.exit.exit_code;
                        rn->signal = ev.exit.signal;
                        rn->timed_out = ev.exit.timed_out;
                        break;
                case SMOLVM_AGENT_EV_ERROR:
                        rn->error = ev.error;
                        snprintf(rn->message, sizeof(rn->message), "%s", ev.message);
                        break;
                case SMOLVM_AGENT_EV_RESULT:
                        json_decref(rn->result);
                        rn->result = json_incref(ev.result);
                        break;
                case SMOLVM_AGENT_EV_EOF:
                case SMOLVM_AGENT_EV_NONE:
                default:
                        break;
                }
        }
        return r;
}

/* Feed all of b (in pieces of step bytes) and collect the events into rn, until
 * an error or the end of b; then the agent's EOF if eof. Returns the last
 * next() result. */
static int feed_all(smolvm_agent_client *c, const buf *b, size_t step, bool eof, run *rn)
{
        size_t off = 0;
        int r = 0;
        while (off < b->len) {
                size_t n = smolvm_agent_client_feed(c, b->p + off, MIN(step, b->len - off));
                off += n;
                r = drain(c, rn);
                if (r < 0 || (n == 0 && smolvm_agent_client_finished(c)))
                        break;
        }
        rn->consumed = off;
        if (eof && r >= 0 && !smolvm_agent_client_finished(c)) {
                smolvm_agent_client_rx_eof(c);
                r = drain(c, rn);
        }
        return r;
}

/* A client of kind reply fed b whole and by single bytes: both give the same
 * result. Returns next()'s last result; rn is from the whole-buffer run. */
static int play(smolvm_agent_reply reply, uint32_t max_answer, const buf *b, bool eof, run *rn)
{
        smolvm_agent_client c1, c2;
        run r2 = { 0 };
        ck_assert_int_eq(smolvm_agent_client_init(&c1, reply, max_answer), 0);
        ck_assert_int_eq(smolvm_agent_client_init(&c2, reply, max_answer), 0);
        int r = feed_all(&c1, b, b->len ? b->len : 1, eof, rn);
        int r_bytes = feed_all(&c2, b, 1, eof, &r2);
        ck_assert_int_eq(r, r_bytes);
        ck_assert_uint_eq(rn->n, r2.n);
        for (unsigned i = 0; i < rn->n; i++)
                ck_assert_int_eq(rn->kinds[i], r2.kinds[i]);
        ck_assert_uint_eq(rn->consumed, r2.consumed);
        if (r < 0) {
                ck_assert_int_eq(smolvm_agent_client_error(&c1), r);
                ck_assert_str_ne(smolvm_agent_client_why(&c1), "");
                /* Sticky: the same error again, nothing more is read. */
                smolvm_agent_event ev;
                ck_assert_int_eq(smolvm_agent_client_next(&c1, &ev), r);
                ck_assert_uint_eq(smolvm_agent_client_feed(&c1, "x", 1), 0);
                ck_assert(smolvm_agent_client_finished(&c1));
        }
        json_decref(r2.result);
        smolvm_agent_client_done(&c1);
        smolvm_agent_client_done(&c2);
        return r;
}

/* play() of one frame of type whose payload is text. */
static int play1(smolvm_agent_reply reply, uint16_t type, const char *text, bool eof, run *rn)
{
        buf b = { 0 };
        add(&b, type, text);
        int r = play(reply, 0, &b, eof, rn);
        free(b.p);
        return r;
}

/* rn saw exactly the events of kinds want[0..n). */
#define check_kinds(rn, ...)                                                                                        \
        do {                                                                                                       \
                static const smolvm_agent_ev_kind want_[] = { __VA_ARGS__ };                                       \
                ck_assert_uint_eq((rn)->n, ARRAY_SIZE(want_));                                                     \
                for (size_t i_ = 0; i_ < ARRAY_SIZE(want_); i_++)                                                  \
                        ck_assert_int_eq((rn)->kinds[i_], want_[i_]);                                              \
        } while (0)

/* ---- every reply type ---- */

START_TEST(test_answer_ends_at_result)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": true, \"bytes\": 3}");
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": true}"); /* past the answer: not read */
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, true, &rn), 0);
        check_kinds(&rn, SMOLVM_AGENT_EV_RESULT);
        ck_assert_int_eq(json_integer_value(json_object_get(rn.result, "bytes")), 3);
        ck_assert_uint_eq(rn.consumed, SMOLVM_FRAME_HDR_SIZE + strlen("{\"ok\": true, \"bytes\": 3}"));
        json_decref(rn.result);
        free(b.p);
}
END_TEST

START_TEST(test_stream_result_then_eof)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": true, \"env\": {\"A\": \"1\"}}");
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_STREAM, 0, &b, true, &rn), 0);
        check_kinds(&rn, SMOLVM_AGENT_EV_RESULT, SMOLVM_AGENT_EV_EOF);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rn.result, "env"), "A")), "1");
        json_decref(rn.result);
        free(b.p);
}
END_TEST

START_TEST(test_stream_read_file)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\":true,\"size\":9,\"mode\":420}");
        add(&b, SMOLVM_FRAME_STDOUT, "abc");
        add(&b, SMOLVM_FRAME_STDOUT, ""); /* empty data frames make no event */
        add(&b, SMOLVM_FRAME_STDOUT, "de");
        add(&b, SMOLVM_FRAME_ERROR, "{\"errno\": 5, \"message\": \"read_file /x: the file shrank\"}");
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_STREAM, 0, &b, false, &rn), 0);
        check_kinds(&rn, SMOLVM_AGENT_EV_RESULT, SMOLVM_AGENT_EV_STDOUT, SMOLVM_AGENT_EV_STDOUT,
                    SMOLVM_AGENT_EV_ERROR);
        ck_assert_uint_eq(rn.out_len, 5);
        ck_assert(memcmp(rn.out, "abcde", 5) == 0);
        ck_assert_int_eq(rn.error, -EIO);
        ck_assert_str_eq(rn.message, "read_file /x: the file shrank");
        json_decref(rn.result);
        free(b.p);
}
END_TEST

START_TEST(test_exec_sequence)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_STARTED, "{\"pid\": 42}");
        add(&b, SMOLVM_FRAME_STDOUT, "out");
        add(&b, SMOLVM_FRAME_STDERR, "err");
        add(&b, SMOLVM_FRAME_EXIT, "{\"exit_code\": -1, \"signal\": 9, \"timed_out\": true, \"duration_ms\": 7}");
        add_bytes(&b, "trailing"); /* after the final event: not consumed */
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_EXEC, 0, &b, false, &rn), 0);
        check_kinds(&rn, SMOLVM_AGENT_EV_STARTED, SMOLVM_AGENT_EV_STDOUT, SMOLVM_AGENT_EV_STDERR,
                    SMOLVM_AGENT_EV_EXIT);
        ck_assert_int_eq(rn.pid, 42);
        ck_assert_int_eq(rn.signal, 9);
        ck_assert_int_eq(rn.exit_code, -1);
        ck_assert(rn.timed_out);
        ck_assert_uint_eq(rn.out_len, 6);
        ck_assert_uint_eq(rn.consumed, b.len - strlen("trailing"));
        free(b.p);
}
END_TEST

START_TEST(test_exec_error_instead)
{
        run rn = { 0 };
        ck_assert_int_eq(play1(SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_ERROR,
                               "{\"errno\": 2, \"message\": \"exec nope: No such file or directory\"}", false, &rn),
                         0);
        check_kinds(&rn, SMOLVM_AGENT_EV_ERROR);
        ck_assert_int_eq(rn.error, -ENOENT);
        ck_assert_str_eq(rn.message, "exec nope: No such file or directory");
}
END_TEST

/* The frames an op does not answer with, or not at that point, are refused at
 * their header. */
START_TEST(test_unexpected_frames)
{
        static const struct {
                smolvm_agent_reply reply;
                uint16_t first, second; /* second 0: only one frame */
        } cases[] = {
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_STDOUT, 0 },     /* output before STARTED */
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_EXIT, 0 },       /* EXIT before STARTED */
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_RESULT, 0 },
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_STARTED, SMOLVM_FRAME_STARTED },
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_STARTED, SMOLVM_FRAME_RESULT },
                { SMOLVM_AGENT_REPLY_STREAM, SMOLVM_FRAME_STDOUT, 0 },   /* data before the RESULT */
                { SMOLVM_AGENT_REPLY_ANSWER, SMOLVM_FRAME_STARTED, 0 },
                { SMOLVM_AGENT_REPLY_STREAM, SMOLVM_FRAME_RESULT, SMOLVM_FRAME_RESULT },
                { SMOLVM_AGENT_REPLY_STREAM, SMOLVM_FRAME_RESULT, SMOLVM_FRAME_STDERR },
                { SMOLVM_AGENT_REPLY_STREAM, SMOLVM_FRAME_RESULT, SMOLVM_FRAME_EXIT },
                { SMOLVM_AGENT_REPLY_ANSWER, SMOLVM_FRAME_STDOUT, 0 },
                { SMOLVM_AGENT_REPLY_ANSWER, SMOLVM_FRAME_EXIT, 0 },
                /* the client's own types, and types nobody sends */
                { SMOLVM_AGENT_REPLY_ANSWER, SMOLVM_FRAME_REQUEST, 0 },
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_STDIN, 0 },
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_SIGNAL, 0 },
                { SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_STARTED, SMOLVM_FRAME_RESIZE },
                { SMOLVM_AGENT_REPLY_ANSWER, 0, 0 },
                { SMOLVM_AGENT_REPLY_ANSWER, 6, 0 },
                { SMOLVM_AGENT_REPLY_ANSWER, 22, 0 },
                { SMOLVM_AGENT_REPLY_ANSWER, 0xffff, 0 },
        };
        static const char *const payload[] = {
                [SMOLVM_FRAME_STARTED] = "{\"pid\":1}", [SMOLVM_FRAME_RESULT] = "{\"ok\":true}",
                [SMOLVM_FRAME_EXIT] = "{\"exit_code\":0}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                buf b = { 0 };
                uint16_t t1 = cases[i].first, t2 = cases[i].second;
                add(&b, t1, t1 < ARRAY_SIZE(payload) && payload[t1] ? payload[t1] : "x");
                if (t2)
                        add(&b, t2, t2 < ARRAY_SIZE(payload) && payload[t2] ? payload[t2] : "x");
                run rn = { 0 };
                ck_assert_msg(play(cases[i].reply, 0, &b, false, &rn) == -EPROTO, "case %zu", i);
                /* Refused at the header: its payload is never read. */
                ck_assert_uint_eq(rn.consumed, b.len - (t2 ? strlen(payload[t2] ? payload[t2] : "x")
                                                           : strlen(t1 < ARRAY_SIZE(payload) && payload[t1]
                                                                            ? payload[t1] : "x")));
                json_decref(rn.result);
                free(b.p);
        }
}
END_TEST

/* ---- malformed frames ---- */

START_TEST(test_reserved_nonzero)
{
        buf b = { 0 };
        add_raw(&b, SMOLVM_FRAME_RESULT, 1, "{\"ok\":true}", 11);
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, false, &rn), -EPROTO);
        ck_assert_uint_eq(rn.n, 0);
        free(b.p);
}
END_TEST

START_TEST(test_oversized)
{
        /* A data frame above 64 KiB, a RESULT above the caller's bound, a length
         * no frame may have: refused at the header, before any payload. */
        static const struct {
                smolvm_agent_reply reply;
                uint32_t max_answer;
                uint16_t type;
                uint32_t len;
        } cases[] = {
                { SMOLVM_AGENT_REPLY_ANSWER, 0, SMOLVM_FRAME_RESULT, SMOLVM_FRAME_MAX_PAYLOAD + 1 },
                { SMOLVM_AGENT_REPLY_ANSWER, 0, SMOLVM_FRAME_RESULT, 0xffffffffu },
                { SMOLVM_AGENT_REPLY_ANSWER, 4096, SMOLVM_FRAME_RESULT, 4097 },
                { SMOLVM_AGENT_REPLY_EXEC, 0, SMOLVM_FRAME_STARTED, SMOLVM_AGENT_SMALL_JSON_MAX + 1 },
                { SMOLVM_AGENT_REPLY_EXEC, 0, SMOLVM_FRAME_ERROR, SMOLVM_AGENT_SMALL_JSON_MAX + 1 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                smolvm_agent_client c;
                ck_assert_int_eq(smolvm_agent_client_init(&c, cases[i].reply, cases[i].max_answer), 0);
                uint8_t h[SMOLVM_FRAME_HDR_SIZE];
                smolvm_frame_hdr_encode(cases[i].type, cases[i].len, h);
                ck_assert_uint_eq(smolvm_agent_client_feed(&c, h, sizeof(h)), sizeof(h));
                smolvm_agent_event ev;
                ck_assert_int_eq(smolvm_agent_client_next(&c, &ev), -EPROTO);
                ck_assert_ptr_nonnull(strstr(smolvm_agent_client_why(&c), "oversized"));
                /* Nothing was buffered for it. */
                ck_assert_uint_le(c.rd.cap, SMOLVM_FRAME_HDR_SIZE + SMOLVM_FRAME_DATA_CHUNK);
                smolvm_agent_client_done(&c);
        }
        /* After STARTED, a STDOUT of 64 KiB + 1. */
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_STARTED, "{\"pid\":3}");
        uint8_t h[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(SMOLVM_FRAME_STDOUT, SMOLVM_FRAME_DATA_CHUNK + 1, h);
        b.p = realloc(b.p, b.len + sizeof(h));
        memcpy(b.p + b.len, h, sizeof(h));
        b.len += sizeof(h);
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_EXEC, 0, &b, false, &rn), -EPROTO);
        ck_assert_uint_eq(rn.n, 1);
        free(b.p);
}
END_TEST

START_TEST(test_data_chunk_limit_accepted)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\":true,\"size\":65536}");
        _cleanup_free_ char *big = malloc(SMOLVM_FRAME_DATA_CHUNK + 1);
        memset(big, 'z', SMOLVM_FRAME_DATA_CHUNK);
        big[SMOLVM_FRAME_DATA_CHUNK] = 0;
        add(&b, SMOLVM_FRAME_STDOUT, big);
        smolvm_agent_client c;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_STREAM, 0), 0);
        size_t off = 0;
        unsigned n_data = 0;
        smolvm_agent_event ev;
        while (off < b.len) {
                off += smolvm_agent_client_feed(&c, b.p + off, b.len - off);
                while (smolvm_agent_client_next(&c, &ev) > 0)
                        n_data += ev.kind == SMOLVM_AGENT_EV_STDOUT && ev.len == SMOLVM_FRAME_DATA_CHUNK;
        }
        ck_assert_uint_eq(n_data, 1);
        ck_assert_int_eq(smolvm_agent_client_error(&c), 0);
        smolvm_agent_client_done(&c);
        free(b.p);
}
END_TEST

/* ---- ERROR: one errno range, a sanitised message ---- */

START_TEST(test_error_errno_range)
{
        static const struct {
                const char *json;
                int want; /* > 0: -want is the event's error; < 0: next() fails with it */
        } cases[] = {
                { "{\"errno\": 1, \"message\": \"m\"}", 1 },
                { "{\"errno\": 4095, \"message\": \"m\"}", 4095 },
                { "{\"errno\": 0, \"message\": \"m\"}", -EBADMSG },
                { "{\"errno\": 4096, \"message\": \"m\"}", -EBADMSG },
                { "{\"errno\": -5, \"message\": \"m\"}", -EBADMSG },
                { "{\"errno\": \"5\", \"message\": \"m\"}", -EBADMSG },
                { "{\"errno\": 5.0, \"message\": \"m\"}", -EBADMSG },
                { "{\"message\": \"no errno\"}", -EBADMSG },
                { "{\"errno\": 2147483648}", -EBADMSG },
                { "[5, \"m\"]", -EBADMSG },
                { "not json", -EBADMSG },
                { "{\"errno\": 5, \"errno\": 6}", -EBADMSG }, /* duplicate keys */
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                run rn = { 0 };
                int r = play1(SMOLVM_AGENT_REPLY_ANSWER, SMOLVM_FRAME_ERROR, cases[i].json, false, &rn);
                if (cases[i].want > 0) {
                        ck_assert_msg(r == 0 && rn.error == -cases[i].want, "case %zu: %d %d", i, r, rn.error);
                } else {
                        ck_assert_msg(r == cases[i].want, "case %zu: %d", i, r);
                }
        }
}
END_TEST

START_TEST(test_error_message_sanitised)
{
        buf b = { 0 };
        /* ESC, a newline, DEL, U+009B (CSI in C1), and UTF-8 that stays. */
        add(&b, SMOLVM_FRAME_ERROR,
            "{\"errno\": 13, \"message\": \"a\\u001b[2Jb\\nc\\u007fd\\u009be \\u00e9t\\u00e9\"}");
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, false, &rn), 0);
        ck_assert_int_eq(rn.error, -EACCES);
        ck_assert_str_eq(rn.message, "a?[2Jb?c?d??e \xc3\xa9t\xc3\xa9");
        free(b.p);

        /* No message: the errno's text. */
        rn = (run){ 0 };
        ck_assert_int_eq(play1(SMOLVM_AGENT_REPLY_ANSWER, SMOLVM_FRAME_ERROR, "{\"errno\": 2}", false, &rn), 0);
        ck_assert_str_eq(rn.message, strerror(ENOENT));

        /* Too long: cut to SMOLVM_AGENT_MSG_MAX - 1 bytes at most, on a UTF-8 boundary. */
        b = (buf){ 0 };
        char json[4096];
        int n = snprintf(json, sizeof(json), "{\"errno\": 7, \"message\": \"x");
        for (int i = 0; i < 600; i++)
                n += snprintf(json + n, sizeof(json) - (size_t)n, "\\u00e9");
        snprintf(json + n, sizeof(json) - (size_t)n, "\"}");
        add(&b, SMOLVM_FRAME_ERROR, json);
        rn = (run){ 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, false, &rn), 0);
        size_t len = strlen(rn.message);
        ck_assert_uint_le(len, SMOLVM_AGENT_MSG_MAX - 1);
        ck_assert_uint_ge(len, SMOLVM_AGENT_MSG_MAX - 3);
        ck_assert_uint_eq((len - 1) % 2, 0); /* "x" and whole two-byte characters */
        free(b.p);
}
END_TEST

/* ---- RESULT ---- */

START_TEST(test_result_needs_ok)
{
        static const char *const bad[] = {
                "{}", "{\"ok\": false}", "{\"ok\": \"true\"}", "{\"ok\": 1}", "{\"ok\": null}",
                "[true]", "true", "", "{\"ok\": true", "{\"ok\": true, \"ok\": true}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                for (int k = 0; k < 2; k++) {
                        run rn = { 0 };
                        smolvm_agent_reply reply = k ? SMOLVM_AGENT_REPLY_STREAM : SMOLVM_AGENT_REPLY_ANSWER;
                        ck_assert_msg(play1(reply, SMOLVM_FRAME_RESULT, bad[i], true, &rn) == -EBADMSG, "'%s'", bad[i]);
                        ck_assert_uint_eq(rn.n, 0);
                }
        }
}
END_TEST

/* ---- EXIT and STARTED fields ---- */

START_TEST(test_exit_and_started_ranges)
{
        static const char *const bad_exit[] = {
                "{\"exit_code\": 256}", "{\"exit_code\": -1}", "{}", "{\"exit_code\": 0, \"signal\": 65}",
                "{\"exit_code\": 0, \"timed_out\": \"yes\"}",
                "{\"exit_code\": 0, \"duration_ms\": -1}", "{\"exit_code\": 0, \"duration_ms\": 4398046511105}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad_exit); i++) {
                buf b = { 0 };
                add(&b, SMOLVM_FRAME_STARTED, "{\"pid\": 1}");
                add(&b, SMOLVM_FRAME_EXIT, bad_exit[i]);
                run rn = { 0 };
                ck_assert_msg(play(SMOLVM_AGENT_REPLY_EXEC, 0, &b, false, &rn) == -EBADMSG, "'%s'", bad_exit[i]);
                free(b.p);
        }
        static const char *const bad_started[] = { "{\"pid\": -1}", "{\"pid\": 2147483648}", "{\"pid\": \"1\"}", "7" };
        for (size_t i = 0; i < ARRAY_SIZE(bad_started); i++) {
                run rn = { 0 };
                ck_assert_msg(play1(SMOLVM_AGENT_REPLY_EXEC, SMOLVM_FRAME_STARTED, bad_started[i], false, &rn) ==
                                      -EBADMSG,
                              "'%s'", bad_started[i]);
        }
        /* Exit status without a signal; STARTED without a pid. */
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_STARTED, "{}");
        add(&b, SMOLVM_FRAME_EXIT, "{\"exit_code\": 3}");
        run rn = { 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_EXEC, 0, &b, false, &rn), 0);
        ck_assert_int_eq(rn.pid, 0);
        ck_assert_int_eq(rn.exit_code, 3);
        ck_assert_int_eq(rn.signal, 0);
        ck_assert(!rn.timed_out);
        free(b.p);
}
END_TEST

/* ---- the end of the stream ---- */

START_TEST(test_eof_cases)
{
        run rn = { 0 };
        buf b = { 0 };
        /* Before any answer, for each kind. */
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, true, &rn), -ECONNRESET);
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_STREAM, 0, &b, true, &rn), -ECONNRESET);
        /* exec: after STARTED, without EXIT. */
        add(&b, SMOLVM_FRAME_STARTED, "{\"pid\": 1}");
        rn = (run){ 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_EXEC, 0, &b, true, &rn), -ECONNRESET);
        free(b.p);
        /* In the middle of a header, and of a payload. */
        b = (buf){ 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\":true}");
        b.len -= 3;
        rn = (run){ 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, true, &rn), -ECONNRESET);
        b.len = 5;
        rn = (run){ 0 };
        ck_assert_int_eq(play(SMOLVM_AGENT_REPLY_ANSWER, 0, &b, true, &rn), -ECONNRESET);
        free(b.p);

        smolvm_agent_client c;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_EXEC, 0), 0);
        smolvm_agent_client_rx_eof(&c);
        smolvm_agent_event ev;
        ck_assert_int_eq(smolvm_agent_client_next(&c, &ev), -ECONNRESET);
        ck_assert_str_eq(smolvm_agent_client_why(&c), "the guest agent closed the stream without an exit status");
        smolvm_agent_client_done(&c);
}
END_TEST

/* ---- handing the stream over: nothing past the answer is consumed ---- */

START_TEST(test_answer_leftover_feed)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": true}");
        size_t answer_len = b.len;
        add_bytes(&b, "\x28\x00\x00\x00FUSE-INIT...");
        for (size_t step = 1; step <= b.len; step++) {
                smolvm_agent_client c;
                ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_ANSWER, 4096), 0);
                size_t off = 0;
                bool got_result = false;
                while (off < b.len) {
                        size_t n = smolvm_agent_client_feed(&c, b.p + off, MIN(step, b.len - off));
                        off += n;
                        smolvm_agent_event ev;
                        int r;
                        while ((r = smolvm_agent_client_next(&c, &ev)) > 0)
                                got_result = ev.kind == SMOLVM_AGENT_EV_RESULT;
                        ck_assert_int_eq(r, 0);
                        if (n == 0)
                                break;
                }
                ck_assert(got_result);
                ck_assert(smolvm_agent_client_finished(&c));
                ck_assert_uint_eq(off, answer_len); /* data[off..] is the caller's */
                size_t space;
                smolvm_agent_client_rx_buf(&c, &space);
                ck_assert_uint_eq(space, 0);
                smolvm_agent_client_done(&c);
        }
        free(b.p);
}
END_TEST

START_TEST(test_rx_buf_never_past_frame)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_STARTED, "{\"pid\": 5}");
        add(&b, SMOLVM_FRAME_STDOUT, "0123456789");
        add(&b, SMOLVM_FRAME_EXIT, "{\"exit_code\": 0}");
        size_t exec_len = b.len;
        add_bytes(&b, "after");
        smolvm_agent_client c;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_EXEC, 0), 0);
        size_t off = 0;
        for (;;) {
                smolvm_agent_event ev;
                while (smolvm_agent_client_next(&c, &ev) > 0)
                        ;
                size_t space;
                uint8_t *p = smolvm_agent_client_rx_buf(&c, &space);
                if (space == 0)
                        break;
                /* What a read(2) of space bytes from a socket holding all of b gets. */
                size_t n = MIN(space, b.len - off);
                memcpy(p, b.p + off, n);
                smolvm_agent_client_rx_commit(&c, n);
                off += n;
        }
        ck_assert(smolvm_agent_client_finished(&c));
        ck_assert_int_eq(smolvm_agent_client_error(&c), 0);
        ck_assert_uint_eq(off, exec_len);
        smolvm_agent_client_done(&c);
        free(b.p);
}
END_TEST

/* ---- output ---- */

START_TEST(test_output_frames)
{
        smolvm_agent_client c;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_EXEC, 0), 0);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN, "x", 1), -EINVAL); /* REQUEST first */
        const char *req = "{\"op\":\"exec\",\"argv\":[\"true\"]}";
        ck_assert_int_eq(smolvm_agent_client_request(&c, req, strlen(req)), 0);
        ck_assert_int_eq(smolvm_agent_client_request(&c, req, strlen(req)), -EALREADY);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN, "hi", 2), 0);
        uint8_t sig[4];
        put_le32(sig, 9);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_SIGNAL, sig, 3), -EINVAL);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_SIGNAL, sig, 4), 0);
        uint8_t ws[4];
        put_le16(ws, 40);
        put_le16(ws + 2, 120);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_RESIZE, ws, 5), -EINVAL);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_RESIZE, ws, 4), 0);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN_EOF, "x", 1), -EINVAL);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN_EOF, NULL, 0), 0);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_REQUEST, "{}", 2), -EINVAL);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDOUT, "x", 1), -EINVAL);

        size_t len;
        const uint8_t *p = smolvm_agent_client_tx_buf(&c, &len);
        size_t want = 5 * SMOLVM_FRAME_HDR_SIZE + strlen(req) + 2 + 4 + 4;
        ck_assert_uint_eq(len, want);
        /* A frame reader sees the four frames, in order. */
        smolvm_frame_reader rd;
        ck_assert_int_eq(smolvm_frame_reader_init(&rd, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        static const uint16_t types[] = { SMOLVM_FRAME_REQUEST, SMOLVM_FRAME_STDIN, SMOLVM_FRAME_SIGNAL,
                                          SMOLVM_FRAME_RESIZE, SMOLVM_FRAME_STDIN_EOF };
        size_t off = 0;
        for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
                uint16_t type;
                const uint8_t *pl;
                uint32_t plen;
                int r;
                while ((r = smolvm_frame_reader_next(&rd, &type, &pl, &plen)) == 0)
                        off += smolvm_frame_reader_feed(&rd, p + off, len - off);
                ck_assert_int_eq(r, 1);
                ck_assert_uint_eq(type, types[i]);
                if (i == 0)
                        ck_assert(plen == strlen(req) && memcmp(pl, req, plen) == 0);
                if (i == 2)
                        ck_assert_uint_eq(get_le32(pl), 9);
                if (i == 3)
                        ck_assert(plen == 4 && get_le16(pl) == 40 && get_le16(pl + 2) == 120);
        }
        ck_assert_uint_eq(off, len);
        smolvm_frame_reader_done(&rd);

        /* Partial writes, then the agent stops reading. */
        smolvm_agent_client_tx_commit(&c, 3);
        smolvm_agent_client_tx_buf(&c, &len);
        ck_assert_uint_eq(len, want - 3);
        smolvm_agent_client_tx_close(&c);
        smolvm_agent_client_tx_buf(&c, &len);
        ck_assert_uint_eq(len, 0);
        ck_assert(smolvm_agent_client_tx_closed(&c));
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN, "x", 1), -EPIPE);
        smolvm_agent_client_done(&c);
}
END_TEST

START_TEST(test_output_bounds)
{
        smolvm_agent_client c;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_ANSWER, 0), 0);
        _cleanup_free_ char *big = malloc(SMOLVM_FRAME_MAX_PAYLOAD + 1);
        memset(big, ' ', SMOLVM_FRAME_MAX_PAYLOAD + 1);
        ck_assert_int_eq(smolvm_agent_client_request(&c, big, SMOLVM_FRAME_MAX_PAYLOAD + 1), -E2BIG);
        ck_assert_int_eq(smolvm_agent_client_request(&c, big, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        /* A SIGNAL and a RESIZE still fit behind a full frame; another full frame does not. */
        uint8_t sig[4] = { 9 };
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_SIGNAL, sig, 4), 0);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_RESIZE, sig, 4), 0);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN, big, 4096), -ENOBUFS);
        size_t len;
        smolvm_agent_client_tx_buf(&c, &len);
        smolvm_agent_client_tx_commit(&c, len);
        ck_assert_int_eq(smolvm_agent_client_send(&c, SMOLVM_FRAME_STDIN, big, 4096), 0);
        ck_assert_uint_le(c.tx_cap, SMOLVM_AGENT_TX_MAX);
        smolvm_agent_client_done(&c);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("agent_client");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_answer_ends_at_result);
        tcase_add_test(tc, test_stream_result_then_eof);
        tcase_add_test(tc, test_stream_read_file);
        tcase_add_test(tc, test_exec_sequence);
        tcase_add_test(tc, test_exec_error_instead);
        tcase_add_test(tc, test_unexpected_frames);
        tcase_add_test(tc, test_reserved_nonzero);
        tcase_add_test(tc, test_oversized);
        tcase_add_test(tc, test_data_chunk_limit_accepted);
        tcase_add_test(tc, test_error_errno_range);
        tcase_add_test(tc, test_error_message_sanitised);
        tcase_add_test(tc, test_result_needs_ok);
        tcase_add_test(tc, test_exit_and_started_ranges);
        tcase_add_test(tc, test_eof_cases);
        tcase_add_test(tc, test_answer_leftover_feed);
        tcase_add_test(tc, test_rx_buf_never_past_frame);
        tcase_add_test(tc, test_output_frames);
        tcase_add_test(tc, test_output_bounds);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(suite());
}
