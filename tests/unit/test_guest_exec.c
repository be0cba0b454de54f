/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of exec as a shell user sees it, run on the host with the real handler
 * over a socketpair: background processes outlive their command (as over SSH)
 * and what they write later goes to a log; detached commands; terminals
 * (a pty, the window size and RESIZE frames, control characters). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "check_main.h"
#include "init.h"
#include "request.h"
#include "guest_harness.h"
#include "util.h"

static char logdir[256];

/* Wait up to ms for pid to be gone. */
static bool gone_within(pid_t pid, unsigned ms)
{
        for (unsigned waited = 0; waited < ms; waited += 20) {
                if (process_gone(pid))
                        return true;
                usleep(20 * 1000);
        }
        return process_gone(pid);
}

/* The content of a file, or NULL; waits up to ms for it to contain want. */
static char *file_with(const char *path, const char *want, unsigned ms)
{
        for (unsigned waited = 0;; waited += 50) {
                FILE *f = fopen(path, "r");
                if (f) {
                        char *buf = calloc(1, 65536);
                        ck_assert_ptr_nonnull(buf);
                        size_t n = fread(buf, 1, 65535, f);
                        buf[n] = '\0';
                        fclose(f);
                        if (strstr(buf, want) || waited >= ms)
                                return buf;
                        free(buf);
                } else if (waited >= ms) {
                        return NULL;
                }
                usleep(50 * 1000);
        }
}

static const char *log_path(int pid)
{
        static char p[512];
        snprintf(p, sizeof(p), "%s/%d.log", logdir, pid);
        return p;
}

/* ---- an incremental reader, for conversations with a command ---- */

typedef struct convo {
        int fd;
        pid_t handler;
        smolvm_frame_reader rd;
        char out[1 << 16];
        size_t out_len;
        int pid;          /* from STARTED */
        json_t *exit;     /* the EXIT frame */
        bool eof;
} convo;

static void convo_start(convo *c, const char *req)
{
        memset(c, 0, sizeof(*c));
        c->handler = start_handler(&c->fd);
        ck_assert_int_eq(smolvm_frame_reader_init(&c->rd, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        send_req(c->fd, req);
}

/* Read frames until out holds want (want NULL: until EOF) or ms pass. */
static bool convo_until(convo *c, const char *want, unsigned ms)
{
        uint64_t deadline = now_ms() + ms;
        for (;;) {
                uint16_t type;
                const uint8_t *p;
                uint32_t len;
                int r = smolvm_frame_reader_next(&c->rd, &type, &p, &len);
                ck_assert_int_ge(r, 0);
                if (r == 1) {
                        if (type == SMOLVM_FRAME_STDOUT) {
                                size_t n = MIN((size_t)len, sizeof(c->out) - 1 - c->out_len);
                                memcpy(c->out + c->out_len, p, n);
                                c->out_len += n;
                                c->out[c->out_len] = '\0';
                        } else if (type == SMOLVM_FRAME_STARTED) {
                                json_t *j = json_loadb((const char *)p, len, 0, NULL);
                                c->pid = (int)jint(j, "pid");
                                json_decref(j);
                        } else if (type == SMOLVM_FRAME_EXIT) {
                                c->exit = json_loadb((const char *)p, len, 0, NULL);
                        } else {
                                ck_abort_msg("unexpected frame type %u (%.*s)", type, (int)len, (const char *)p);
                        }
                        continue;
                }
                if (want && strstr(c->out, want))
                        return true;
                if (c->eof)
                        return !want;
                uint64_t now = now_ms();
                if (now >= deadline)
                        return false;
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
                        continue;
                ssize_t n = read(c->fd, smolvm_frame_reader_tail(&c->rd), smolvm_frame_reader_space(&c->rd));
                ck_assert_int_ge(n, 0);
                if (n == 0)
                        c->eof = true;
                else
                        smolvm_frame_reader_commit(&c->rd, (size_t)n);
        }
}

static void convo_send(convo *c, uint16_t type, const void *p, uint32_t len)
{
        send_frame(c->fd, type, p, len);
}

static void convo_resize(convo *c, uint16_t rows, uint16_t cols)
{
        uint8_t ws[4];
        put_le16(ws, rows);
        put_le16(ws + 2, cols);
        convo_send(c, SMOLVM_FRAME_RESIZE, ws, 4);
}

/* Read to EOF, reap the handler. */
static void convo_end(convo *c)
{
        ck_assert_msg(convo_until(c, NULL, 20000), "no end of the stream; output: '%s'", c->out);
        close(c->fd);
        int st;
        ck_assert_int_eq(waitpid(c->handler, &st, 0), c->handler);
        ck_assert_msg(WIFEXITED(st), "handler died: status 0x%x", st);
        smolvm_frame_reader_done(&c->rd);
}

static void convo_free(convo *c)
{
        json_decref(c->exit);
        c->exit = NULL;
}

/* ---- background processes: as over SSH ---- */

START_TEST(background_survives_by_default)
{
        /* The command exits at once, leaving a child that holds its stdout: the
         * exec ends within the drain limit and the child keeps running. */
        uint64_t t0 = now_ms();
        convo c;
        convo_start(&c, "{\"op\":\"exec\",\"shell\":\"sleep 1000 & echo $!\",\"cwd\":\"/\"}");
        ck_assert(convo_until(&c, NULL, 10000));
        uint64_t ms = now_ms() - t0;
        ck_assert_msg(ms < 2500, "took %llu ms", (unsigned long long)ms);
        ck_assert_int_eq(jint(c.exit, "exit_code"), 0);
        pid_t bg = atoi(c.out);
        ck_assert_int_gt(bg, 0);
        usleep(200 * 1000);
        ck_assert_msg(!process_gone(bg), "background sleep %d was killed", (int)bg);
        kill(bg, SIGKILL);
        convo_end(&c); /* the handler ends once nothing holds the output */
        convo_free(&c);
}
END_TEST

START_TEST(background_killed_on_request)
{
        reply *res = run("{\"op\":\"exec\",\"shell\":\"sleep 1000 & echo $!\",\"cwd\":\"/\","
                         "\"keep_background\":false}");
        ck_assert_msg(res->ms < 2500, "took %llu ms", (unsigned long long)res->ms);
        pid_t bg = atoi(res->out);
        ck_assert_int_gt(bg, 0);
        ck_assert_msg(gone_within(bg, 2000), "background sleep %d survived", (int)bg);
        reply_free(res);
}
END_TEST

START_TEST(background_output_goes_to_log)
{
        /* Written after the exec ended: kept in <log dir>/<pid>.log, and the
         * writer is not killed by SIGPIPE at its first write. */
        convo c;
        convo_start(&c, "{\"op\":\"exec\",\"shell\":\"(sleep 1; echo late; sleep 0.3; echo later) & echo early\","
                        "\"cwd\":\"/\"}");
        uint64_t t0 = now_ms();
        ck_assert(convo_until(&c, NULL, 10000));
        ck_assert_msg(now_ms() - t0 < 1000 + 500, "the exec waited for its background writer");
        ck_assert_str_eq(c.out, "early\n");
        ck_assert_int_gt(c.pid, 0);
        char *log = file_with(log_path(c.pid), "later\n", 5000);
        ck_assert_msg(log, "no log %s", log_path(c.pid));
        ck_assert_str_eq(log, "late\nlater\n");
        free(log);
        convo_end(&c);
        convo_free(&c);

        /* Nothing left over: no log file. */
        reply *res = run("{\"op\":\"exec\",\"shell\":\"echo $$\",\"cwd\":\"/\"}");
        ck_assert_int_eq(access(log_path(atoi(res->out)), F_OK), -1);
        reply_free(res);
}
END_TEST

START_TEST(client_gone_kills_background)
{
        /* While the command runs, a client that vanishes takes the whole group. */
        convo c;
        convo_start(&c, "{\"op\":\"exec\",\"shell\":\"sleep 1000 & echo bg=$!; sleep 1000\",\"cwd\":\"/\"}");
        ck_assert(convo_until(&c, "\n", 5000));
        pid_t bg = atoi(c.out + 3);
        ck_assert_int_gt(bg, 0);
        close(c.fd);
        ck_assert_int_eq(waitpid(c.handler, NULL, 0), c.handler);
        ck_assert_msg(gone_within(bg, 2000), "background sleep %d survived its client", (int)bg);
        ck_assert(gone_within(c.pid, 2000));
        smolvm_frame_reader_done(&c.rd);
}
END_TEST

/* ---- detach ---- */

START_TEST(detach_returns_pid_and_logs)
{
        int fd;
        pid_t handler = start_handler(&fd);
        uint64_t t0 = now_ms();
        send_req(fd, "{\"op\":\"exec\",\"shell\":\"echo out; echo err >&2; exec sleep 1000\",\"cwd\":\"/\","
                     "\"detach\":true}");
        reply *rp = collect(fd);
        ck_assert_msg(rp->eof_ms - t0 < 2000, "detach took %llu ms", (unsigned long long)(rp->eof_ms - t0));
        ASSERT_OK(rp);
        ck_assert_ptr_null(rp->started);
        ck_assert_ptr_null(rp->exit);
        int pid = (int)jint(rp->result, "pid");
        ck_assert_int_gt(pid, 0);
        ck_assert_str_eq(jstr(rp->result, "log"), log_path(pid));
        reply_free(rp);

        /* The stream is closed: the command runs on, its output in the log. */
        char *log = file_with(log_path(pid), "err\n", 5000);
        ck_assert_ptr_nonnull(log);
        ck_assert_str_eq(log, "out\nerr\n");
        free(log);
        ck_assert(!process_gone(pid));
        struct stat st;
        ck_assert_int_eq(stat(log_path(pid), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);

        /* Its end ends the handler (the log's writer). */
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(handler, &status, 0), handler);
        ck_assert(WIFEXITED(status));
}
END_TEST

START_TEST(detach_log_exists_at_once)
{
        int fd;
        pid_t handler = start_handler(&fd);
        send_req(fd, "{\"op\":\"exec\",\"argv\":[\"sleep\",\"1000\"],\"cwd\":\"/\",\"detach\":true}");
        reply *rp = collect(fd);
        ASSERT_OK(rp);
        int pid = (int)jint(rp->result, "pid");
        reply_free(rp);
        char *log = file_with(log_path(pid), "", 0);
        ck_assert_ptr_nonnull(log);
        ck_assert_str_eq(log, "");
        free(log);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(handler, NULL, 0), handler);

        /* A command that cannot start: ERROR, as for any exec. */
        ASSERT_RUN_FAILS(ENOENT, "no-such-cmd-xyz",
                         "{\"op\":\"exec\",\"argv\":[\"no-such-cmd-xyz\"],\"cwd\":\"/\",\"detach\":true}");
}
END_TEST

/* ---- terminals ---- */

START_TEST(tty_is_a_terminal)
{
        reply *res = run("{\"op\":\"exec\",\"shell\":\"tty; stty size; echo $TERM; echo to-stderr >&2\","
                         "\"cwd\":\"/\",\"tty\":true,\"rows\":33,\"cols\":101,\"env\":[\"TERM=vt220\"]}");
        ck_assert_int_eq(jint(res->exit, "exit_code"), 0);
        ck_assert_msg(strstr(res->out, "/dev/pts/"), "not a pty: '%s'", res->out);
        ck_assert_msg(strstr(res->out, "33 101\r\n"), "size: '%s'", res->out);
        ck_assert_msg(strstr(res->out, "vt220\r\n"), "TERM: '%s'", res->out);
        /* One stream: stderr goes to the terminal too. */
        ck_assert_msg(strstr(res->out, "to-stderr\r\n"), "stderr: '%s'", res->out);
        ck_assert_uint_eq(res->err_len, 0);
        reply_free(res);

        /* Without tty: no terminal, as before. */
        res = run("{\"op\":\"exec\",\"shell\":\"tty\",\"cwd\":\"/\"}");
        ck_assert_str_eq(res->out, "not a tty\n");
        reply_free(res);
}
END_TEST

START_TEST(tty_resize_and_input)
{
        convo c;
        convo_start(&c, "{\"op\":\"exec\",\"argv\":[\"sh\",\"-c\",\"stty size; read x; stty size; read y; "
                        "echo got:$y\"],\"cwd\":\"/\",\"tty\":true,\"stdin\":true,\"rows\":24,\"cols\":80}");
        ck_assert_msg(convo_until(&c, "24 80\r\n", 5000), "out: '%s'", c.out);
        convo_resize(&c, 50, 132);
        convo_send(&c, SMOLVM_FRAME_STDIN, "go\n", 3);
        ck_assert_msg(convo_until(&c, "50 132\r\n", 5000), "out: '%s'", c.out);
        convo_send(&c, SMOLVM_FRAME_STDIN, "abc\n", 4);
        convo_end(&c);
        ck_assert_msg(strstr(c.out, "got:abc\r\n"), "out: '%s'", c.out);
        ck_assert_msg(strstr(c.out, "go\r\n"), "typed input is echoed: '%s'", c.out);
        ck_assert_int_eq(jint(c.exit, "exit_code"), 0);
        convo_free(&c);
}
END_TEST

START_TEST(tty_control_characters)
{
        /* Ctrl-C: the line discipline makes it SIGINT for the foreground group.
         * The command itself, no shell: STARTED comes once it was exec'ed, so
         * SIGINT is at its default (a shell between its lines may catch it,
         * or fork a child that misses it). */
        convo c;
        convo_start(&c, "{\"op\":\"exec\",\"argv\":[\"sleep\",\"100\"],\"cwd\":\"/\",\"tty\":true,\"stdin\":true}");
        for (int i = 0; i < 100 && c.pid <= 0 && !c.eof; i++)
                (void)convo_until(&c, "\x01", 100); /* never in the output: reads frames for 100 ms */
        ck_assert_int_gt(c.pid, 0);
        uint64_t t0 = now_ms();
        convo_send(&c, SMOLVM_FRAME_STDIN, "\x03", 1);
        convo_end(&c);
        ck_assert_msg(now_ms() - t0 < 5000, "Ctrl-C took %llu ms", (unsigned long long)(now_ms() - t0));
        ck_assert_msg(jint(c.exit, "signal") == SIGINT, "exit: %lld/%lld", (long long)jint(c.exit, "exit_code"),
                      (long long)jint(c.exit, "signal"));
        convo_free(&c);

        /* Ctrl-D at the start of a line: EOF for the reader. */
        convo_start(&c, "{\"op\":\"exec\",\"argv\":[\"cat\"],\"cwd\":\"/\",\"tty\":true,\"stdin\":true}");
        convo_send(&c, SMOLVM_FRAME_STDIN, "abc\n", 4);
        ck_assert(convo_until(&c, "abc\r\nabc\r\n", 5000)); /* the echo, then cat's copy */
        convo_send(&c, SMOLVM_FRAME_STDIN, "\x04", 1);
        convo_end(&c);
        ck_assert_int_eq(jint(c.exit, "exit_code"), 0);
        convo_free(&c);
}
END_TEST

START_TEST(tty_timeout_kills_the_session)
{
        /* An interactive bash puts its jobs in process groups of their own: the
         * timeout still reaches them (the whole session). */
        reply *res = run("{\"op\":\"exec\",\"argv\":[\"bash\",\"--norc\",\"-i\",\"-c\",\"sleep 1000 & echo bg=$!; "
                         "sleep 1000\"],\"cwd\":\"/\",\"tty\":true,\"timeout_ms\":1500}");
        ck_assert(json_is_true(json_object_get(res->exit, "timed_out")));
        char *bgs = strstr(res->out, "bg=");
        ck_assert_msg(bgs, "out: '%s'", res->out);
        pid_t bg = atoi(bgs + 3);
        ck_assert_int_gt(bg, 0);
        ck_assert_msg(gone_within(bg, 2000), "job %d survived the timeout", (int)bg);
        reply_free(res);
}
END_TEST

START_TEST(resize_ignored_without_tty)
{
        convo c;
        convo_start(&c, "{\"op\":\"exec\",\"argv\":[\"cat\"],\"cwd\":\"/\",\"stdin\":true}");
        convo_resize(&c, 10, 10);
        uint8_t bad[3] = { 1, 2, 3 };
        convo_send(&c, SMOLVM_FRAME_RESIZE, bad, 3); /* a bad length: ignored as well */
        convo_send(&c, SMOLVM_FRAME_STDIN, "still here\n", 11);
        convo_send(&c, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        convo_end(&c);
        ck_assert_str_eq(c.out, "still here\n");
        ck_assert_int_eq(jint(c.exit, "exit_code"), 0);
        convo_free(&c);
}
END_TEST

/* ---- the new request fields ---- */

static void parse_fails(const char *json, int want, const char *substr)
{
        agent_request req;
        char err[512] = "";
        ck_assert_int_eq(agent_request_parse(json, strlen(json), &req, err, sizeof(err)), want);
        ck_assert_msg(strstr(err, substr), "message '%s' lacks '%s'", err, substr);
}

START_TEST(parse_tty_detach)
{
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"tty\":1}", -EINVAL, "'tty'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"detach\":\"yes\"}", -EINVAL, "'detach'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"tty\":true,\"rows\":-1}", -EINVAL, "'rows'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"tty\":true,\"cols\":65536}", -EINVAL, "'cols'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"tty\":true,\"cols\":1.5}", -EINVAL, "'cols'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"detach\":true,\"tty\":true}", -EINVAL, "'detach'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"detach\":true,\"stdin\":true}", -EINVAL, "'detach'");
        parse_fails("{\"op\":\"exec\",\"argv\":[\"a\"],\"detach\":true,\"timeout_ms\":5}", -EINVAL, "'detach'");

        agent_request req;
        char err[512];
        const char *ok = "{\"op\":\"exec\",\"argv\":[\"a\"],\"tty\":true,\"rows\":65535,\"cols\":7}";
        ck_assert_int_eq(agent_request_parse(ok, strlen(ok), &req, err, sizeof(err)), 0);
        ck_assert(req.exec.tty);
        ck_assert_uint_eq(req.exec.rows, 65535);
        ck_assert_uint_eq(req.exec.cols, 7);
        ck_assert(req.exec.keep_background); /* the default: as over SSH */
        ck_assert(!req.exec.detach);
        agent_request_done(&req);
        ok = "{\"op\":\"exec\",\"argv\":[\"a\"],\"detach\":true,\"keep_background\":false,\"timeout_ms\":0}";
        ck_assert_int_eq(agent_request_parse(ok, strlen(ok), &req, err, sizeof(err)), 0);
        ck_assert(req.exec.detach);
        ck_assert(!req.exec.keep_background);
        ck_assert(!req.exec.tty);
        agent_request_done(&req);
}
END_TEST

static Suite *exec_suite(void)
{
        Suite *s = suite_create("guest-exec");
        TCase *tc = tcase_create("background");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, background_survives_by_default);
        tcase_add_test(tc, background_killed_on_request);
        tcase_add_test(tc, background_output_goes_to_log);
        tcase_add_test(tc, client_gone_kills_background);
        tcase_add_test(tc, detach_returns_pid_and_logs);
        tcase_add_test(tc, detach_log_exists_at_once);
        suite_add_tcase(s, tc);
        tc = tcase_create("tty");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, tty_is_a_terminal);
        tcase_add_test(tc, tty_resize_and_input);
        tcase_add_test(tc, tty_control_characters);
        tcase_add_test(tc, tty_timeout_kills_the_session);
        tcase_add_test(tc, resize_ignored_without_tty);
        tcase_add_test(tc, parse_tty_detach);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        /* Hermetic: no stored env, and exec logs in a private directory. */
        agent_etc_dir = "/nonexistent/smolvm-test-etc";
        char tmpl[] = "/tmp/smolvm-test-exec.XXXXXX";
        if (!mkdtemp(tmpl))
                return 1;
        snprintf(logdir, sizeof(logdir), "%s/exec", tmpl);
        agent_exec_log_dir = logdir;
        int r = run_suite(exec_suite());
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
        (void)!system(cmd);
        return r;
}
