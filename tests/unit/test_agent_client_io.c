/* SPDX-License-Identifier: Apache-2.0 */
/* The agent client's blocking driver (common/agent_client_io.c) and its
 * event-loop wrapper (agent_client_loop.c), over socketpairs. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agent_client.h"
#include "agent_client_io.h"
#include "agent_client_loop.h"
#include "agent_frames.h"
#include "check_main.h"
#include "util.h"

/* ---- the blocking driver on a socketpair ---- */

static void *answer_after_request(void *arg)
{
        int *fd = arg;
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": true}");
        add_bytes(&b, "RAW");
        /* Read the request first, as the agent does. */
        uint8_t hdr[SMOLVM_FRAME_HDR_SIZE], body[256];
        ck_assert_int_eq(read_all(*fd, hdr, sizeof(hdr)), 0);
        ck_assert_int_eq(read_all(*fd, body, get_le32(hdr)), 0);
        ck_assert_int_eq(write_all(*fd, b.p, b.len), 0);
        free(b.p);
        return NULL;
}

START_TEST(test_io_answer_leaves_the_rest)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, answer_after_request, &sv[1]), 0);
        smolvm_agent_client c;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_ANSWER, 4096), 0);
        ck_assert_int_eq(smolvm_agent_client_request(&c, "{\"op\":\"fuse_serve\"}", 19), 0);
        smolvm_agent_io_opts o = { .deadline_ms = now_ms() + 10000, .cancel_fd = -1 };
        smolvm_agent_event ev;
        ck_assert_int_eq(smolvm_agent_client_io(&c, sv[0], &o, &ev), 1);
        ck_assert_int_eq(ev.kind, SMOLVM_AGENT_EV_RESULT);
        ck_assert_int_eq(smolvm_agent_client_io(&c, sv[0], &o, &ev), 0); /* finished */
        pthread_join(t, NULL);
        char rest[8] = { 0 };
        ck_assert_int_eq(read_all(sv[0], rest, 3), 0);
        ck_assert_str_eq(rest, "RAW");
        smolvm_agent_client_done(&c);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

START_TEST(test_io_timeout_and_cancel)
{
        int sv[2], pfd[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        smolvm_agent_client c;
        smolvm_agent_event ev;
        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_ANSWER, 0), 0);
        ck_assert_int_eq(smolvm_agent_client_request(&c, "{}", 2), 0);
        uint64_t t0 = now_ms();
        smolvm_agent_io_opts o = { .idle_ms = 200, .cancel_fd = -1 };
        ck_assert_int_eq(smolvm_agent_client_io(&c, sv[0], &o, &ev), -ETIMEDOUT);
        ck_assert_uint_ge(now_ms() - t0, 200);
        ck_assert_str_eq(smolvm_agent_client_why(&c), "no answer from the guest agent for 200 ms");
        smolvm_agent_client_done(&c);

        ck_assert_int_eq(smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_ANSWER, 0), 0);
        ck_assert_int_eq(smolvm_agent_client_request(&c, "{}", 2), 0);
        ck_assert_int_eq(write(pfd[1], "x", 1), 1);
        o = (smolvm_agent_io_opts){ .idle_ms = 60000, .cancel_fd = pfd[0] };
        ck_assert_int_eq(smolvm_agent_client_io(&c, sv[0], &o, &ev), -ECANCELED);
        smolvm_agent_client_done(&c);
        close(sv[0]);
        close(sv[1]);
        close(pfd[0]);
        close(pfd[1]);
}
END_TEST

/* ---- the event-loop wrapper ---- */

typedef struct loop_seen {
        smolvm_agent_loop_call *call;
        int done_calls, err, events;
        char why[SMOLVM_AGENT_MSG_MAX];
        bool free_in_done;
} loop_seen;

static void loop_event(void *ud, const smolvm_agent_event *ev)
{
        ((loop_seen *)ud)->events++;
}

static void loop_done(void *ud, int err, const char *why)
{
        loop_seen *s = ud;
        s->done_calls++;
        s->err = err;
        snprintf(s->why, sizeof(s->why), "%s", why);
        if (s->free_in_done) {
                smolvm_agent_loop_call_free(s->call);
                s->call = NULL;
        }
}

/* Run a call whose agent side (peer) got answer, then closes if close_peer. */
static void loop_run(const buf *answer, bool close_peer, uint32_t timeout_ms, loop_seen *s)
{
        smolvm_evloop *loop;
        ck_assert_int_eq(smolvm_evloop_new(&loop), 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        if (answer->len)
                ck_assert_int_eq(write_all(sv[1], answer->p, answer->len), 0);
        if (close_peer)
                sv[1] = safe_close(sv[1]);
        smolvm_agent_loop_ops ops = { .event = loop_event, .done = loop_done };
        const char *req = "{\"op\":\"fuse_abort\",\"path\":\"/x\"}";
        ck_assert_int_eq(smolvm_agent_loop_call_start(loop, sv[0], SMOLVM_AGENT_REPLY_ANSWER, 65536, req, strlen(req),
                                                      timeout_ms, &ops, s, &s->call), 0);
        uint64_t until = now_ms() + 5000;
        while (!s->done_calls && now_ms() < until)
                ck_assert_int_ge(smolvm_evloop_run_once(loop, 100), 0);
        /* Nothing more after done. */
        smolvm_evloop_run_once(loop, 50);
        smolvm_agent_loop_call_free(s->call);
        if (sv[1] >= 0) {
                /* The request reached the peer. */
                uint8_t hdr[SMOLVM_FRAME_HDR_SIZE];
                ck_assert_int_eq(read_all(sv[1], hdr, sizeof(hdr)), 0);
                ck_assert_uint_eq(get_le16(hdr + 4), SMOLVM_FRAME_REQUEST);
                ck_assert_uint_eq(get_le32(hdr), strlen(req));
                safe_close(sv[1]);
        }
        smolvm_evloop_free(loop);
}

START_TEST(test_loop_outcomes)
{
        buf b = { 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": true, \"method\": \"abort\"}");
        loop_seen s = { 0 };
        loop_run(&b, false, 0, &s);
        ck_assert_int_eq(s.done_calls, 1);
        ck_assert_int_eq(s.err, 0);
        ck_assert_int_eq(s.events, 1);
        free(b.p);

        b = (buf){ 0 };
        add(&b, SMOLVM_FRAME_ERROR, "{\"errno\": 2, \"message\": \"fuse_abort /x: nothing is mounted there\"}");
        s = (loop_seen){ .free_in_done = true };
        loop_run(&b, true, 0, &s);
        ck_assert_int_eq(s.done_calls, 1);
        ck_assert_int_eq(s.err, -ENOENT);
        ck_assert_str_eq(s.why, "fuse_abort /x: nothing is mounted there");
        free(b.p);

        b = (buf){ 0 };
        s = (loop_seen){ 0 };
        loop_run(&b, true, 0, &s); /* the mux refused: our end sees EOF */
        ck_assert_int_eq(s.done_calls, 1);
        ck_assert_int_eq(s.err, -ECONNRESET);
        ck_assert_int_eq(s.events, 0);

        s = (loop_seen){ .free_in_done = true };
        uint64_t t0 = now_ms();
        loop_run(&b, false, 300, &s); /* nobody answers */
        ck_assert_int_eq(s.done_calls, 1);
        ck_assert_int_eq(s.err, -ETIMEDOUT);
        ck_assert_uint_ge(now_ms() - t0, 300);

        b = (buf){ 0 };
        add(&b, SMOLVM_FRAME_RESULT, "{\"ok\": false}");
        s = (loop_seen){ 0 };
        loop_run(&b, false, 0, &s);
        ck_assert_int_eq(s.err, -EBADMSG);
        ck_assert_str_eq(s.why, "the guest agent sent a RESULT without \"ok\": true");
        free(b.p);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("agent_client_io");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_io_answer_leaves_the_rest);
        tcase_add_test(tc, test_io_timeout_and_cancel);
        tcase_add_test(tc, test_loop_outcomes);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(suite());
}
