/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the guest agent that run on the host: request parsing (hostile
 * input) and the real handler (exec relay) over a socketpair. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "check_main.h"
#include "init.h"
#include "request.h"
#include "guest_harness.h"
#include "util.h"

/* ---- request parsing ---- */

static int parse(const char *json, agent_request *req, char *err, size_t errlen)
{
        err[0] = '\0';
        return agent_request_parse(json, strlen(json), req, err, errlen);
}

#define ASSERT_PARSE_FAILS(json, want_err, want_substr)                                            \
        do {                                                                                       \
                agent_request _req;                                                                \
                char _err[512];                                                                    \
                int _r = parse(json, &_req, _err, sizeof(_err));                                   \
                ck_assert_int_eq(_r, want_err);                                                    \
                ck_assert_msg(strstr(_err, want_substr), "message '%s' lacks '%s'", _err, want_substr); \
        } while (0)

START_TEST(parse_malformed)
{
        ASSERT_PARSE_FAILS("", -EINVAL, "not valid JSON");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\"", -EINVAL, "not valid JSON");
        ASSERT_PARSE_FAILS("[1,2]", -EINVAL, "JSON object");
        ASSERT_PARSE_FAILS("{}", -EINVAL, "'op'");
        ASSERT_PARSE_FAILS("{\"op\": 5}", -EINVAL, "'op'");
        ASSERT_PARSE_FAILS("{\"op\": \"launch-missiles\"}", -EOPNOTSUPP, "launch-missiles");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\"}", -EINVAL, "'argv'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": \"ls\"}", -EINVAL, "'argv'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": []}", -EINVAL, "'argv'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\", 3]}", -EINVAL, "'argv[1]'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [null]}", -EINVAL, "'argv[0]'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"\"]}", -EINVAL, "'argv[0]'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"a\\u0000b\"]}", -EINVAL, "JSON");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"shell\": 1}", -EINVAL, "'shell'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"shell\": \"x\", \"argv\": [\"x\"]}", -EINVAL, "exclusive");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"env\": {\"A\": \"B\"}}", -EINVAL, "'env'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"env\": [\"A=1\", \"B\"]}", -EINVAL, "'env[1]'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"env\": [\"=x\"]}", -EINVAL, "'env[0]'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"cwd\": \"tmp\"}", -EINVAL, "'cwd'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"cwd\": 1}", -EINVAL, "'cwd'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"timeout_ms\": -1}", -EINVAL, "'timeout_ms'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"timeout_ms\": 1.5}", -EINVAL, "'timeout_ms'");
        ASSERT_PARSE_FAILS("{\"op\": \"exec\", \"argv\": [\"ls\"], \"stdin\": 1}", -EINVAL, "'stdin'");
        ASSERT_PARSE_FAILS("{\"op\": \"fuse_abort\"}", -EINVAL, "missing field 'path'");
        ASSERT_PARSE_FAILS("{\"op\": \"fuse_abort\", \"path\": \"workspace\"}", -EINVAL, "absolute");
}
END_TEST

static char *big_array_request(const char *field, size_t n)
{
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_string("A=1"));
        json_t *o = json_pack("{s:s,s:[s]}", "op", "exec", "argv", "true");
        json_object_set_new(o, field, arr);
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return s;
}

START_TEST(parse_bounds)
{
        agent_request req;
        char err[512];
        char *s = big_array_request("argv", AGENT_MAX_ARGV + 1);
        ck_assert_int_eq(parse(s, &req, err, sizeof(err)), -E2BIG);
        ck_assert_ptr_nonnull(strstr(err, "'argv'"));
        free(s);
        s = big_array_request("env", AGENT_MAX_ENV + 1);
        ck_assert_int_eq(parse(s, &req, err, sizeof(err)), -E2BIG);
        ck_assert_ptr_nonnull(strstr(err, "'env'"));
        free(s);
        s = big_array_request("argv", AGENT_MAX_ARGV);
        ck_assert_int_eq(parse(s, &req, err, sizeof(err)), 0);
        ck_assert_uint_eq(req.exec.n_argv, AGENT_MAX_ARGV);
        ck_assert_ptr_null(req.exec.argv[AGENT_MAX_ARGV]);
        agent_request_done(&req);
        free(s);
        /* 1 MiB op name: the message stays bounded. */
        size_t n = 1 << 20;
        char *big = malloc(n + 32);
        ck_assert_ptr_nonnull(big);
        memcpy(big, "{\"op\":\"", 7);
        memset(big + 7, 'x', n);
        strcpy(big + 7 + n, "\"}");
        ck_assert_int_eq(parse(big, &req, err, sizeof(err)), -EOPNOTSUPP);
        ck_assert_uint_lt(strlen(err), 200);
        free(big);
}
END_TEST

START_TEST(parse_valid)
{
        agent_request req;
        char err[512];
        ck_assert_int_eq(parse("{\"op\":\"ping\"}", &req, err, sizeof(err)), 0);
        ck_assert_int_eq(req.op, AGENT_OP_PING);
        agent_request_done(&req);
        ck_assert_int_eq(parse("{\"op\":\"poweroff\",\"extra\":1}", &req, err, sizeof(err)), 0);
        ck_assert_int_eq(req.op, AGENT_OP_POWEROFF);

        ck_assert_int_eq(parse("{\"op\":\"exec\",\"shell\":\"echo hi\"}", &req, err, sizeof(err)), 0);
        ck_assert_int_eq(req.op, AGENT_OP_EXEC);
        ck_assert_uint_eq(req.exec.n_argv, 3);
        ck_assert_str_eq(req.exec.argv[0], "/bin/sh");
        ck_assert_str_eq(req.exec.argv[1], "-c");
        ck_assert_str_eq(req.exec.argv[2], "echo hi");
        ck_assert_ptr_null(req.exec.argv[3]);
        ck_assert_str_eq(req.exec.cwd, "/root");
        ck_assert_uint_eq(req.exec.timeout_ms, 0);
        ck_assert(!req.exec.want_stdin);
        ck_assert_str_eq(req.exec.envp[0], "PATH=" AGENT_DEFAULT_PATH);
        ck_assert_str_eq(req.exec.envp[1], "HOME=/root");
        ck_assert_str_eq(req.exec.envp[2], "TERM=xterm");
        ck_assert_str_eq(req.exec.envp[3], "LANG=C.UTF-8");
        ck_assert_ptr_null(req.exec.envp[4]);
        agent_request_done(&req);

        ck_assert_int_eq(parse("{\"op\":\"exec\",\"argv\":[\"ls\",\"-l\"],\"env\":[\"HOME=/tmp\",\"X=1=2\"],"
                               "\"cwd\":\"/tmp\",\"timeout_ms\":1500,\"stdin\":true}",
                               &req, err, sizeof(err)),
                         0);
        ck_assert_str_eq(req.exec.argv[1], "-l");
        ck_assert_str_eq(req.exec.cwd, "/tmp");
        ck_assert_uint_eq(req.exec.timeout_ms, 1500);
        ck_assert(req.exec.want_stdin);
        ck_assert_uint_eq(req.exec.n_envp, 5);
        ck_assert_str_eq(req.exec.envp[1], "HOME=/tmp");
        ck_assert_str_eq(req.exec.envp[4], "X=1=2");
        agent_request_done(&req);

        ck_assert_int_eq(parse("{\"op\":\"fuse_mount\",\"path\":\"/w\",\"read_only\":false}", &req, err, sizeof(err)),
                         0);
        ck_assert_int_eq(req.op, AGENT_OP_FUSE_MOUNT);
        ck_assert_str_eq(req.file.path, "/w");
        ck_assert(!req.file.read_only);
        agent_request_done(&req);
        ck_assert_int_eq(parse("{\"op\":\"fuse_abort\",\"path\":\"/workspace\"}", &req, err, sizeof(err)), 0);
        ck_assert_int_eq(req.op, AGENT_OP_FUSE_ABORT);
        ck_assert_str_eq(req.file.path, "/workspace");
        agent_request_done(&req);
}
END_TEST

START_TEST(env_merge)
{
        const char *base[] = { "PATH=/bin", "HOME=/root" };
        const char *extra[] = { "FOO=1", "PATH=/x", "FOO=2", "EMPTY=" };
        char **v;
        size_t n, bad = 99;
        ck_assert_int_eq(agent_env_merge(base, 2, extra, 4, &v, &n, &bad), 0);
        ck_assert_uint_eq(n, 4);
        ck_assert_str_eq(v[0], "PATH=/x");
        ck_assert_str_eq(v[1], "HOME=/root");
        ck_assert_str_eq(v[2], "FOO=2");
        ck_assert_str_eq(v[3], "EMPTY=");
        ck_assert_ptr_null(v[4]);
        agent_strv_free(v);

        const char *bad_extra[] = { "A=1", "NOEQUALS" };
        v = NULL;
        ck_assert_int_eq(agent_env_merge(base, 2, bad_extra, 2, &v, &n, &bad), -EINVAL);
        ck_assert_uint_eq(bad, 1);
        ck_assert_ptr_null(v);
        /* A key that prefixes another key is a different variable. */
        const char *pfx[] = { "PAT=1" };
        ck_assert_int_eq(agent_env_merge(base, 2, pfx, 1, &v, &n, NULL), 0);
        ck_assert_uint_eq(n, 3);
        agent_strv_free(v);
}
END_TEST

/* ---- the handler, for real, over a socketpair ---- */

static bool process_gone(pid_t pid)
{
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return true;
        bool zombie = fgets(buf, sizeof(buf), f) && strstr(buf, ") Z ");
        fclose(f);
        return zombie;
}

START_TEST(exec_echo)
{
        reply *res = run("{\"op\":\"exec\",\"argv\":[\"echo\",\"hello\"],\"cwd\":\"/\"}");
        ck_assert_ptr_nonnull(res->started);
        ck_assert_int_gt(jint(res->started, "pid"), 0);
        ck_assert_str_eq(res->out, "hello\n");
        ck_assert_ptr_nonnull(res->exit);
        ck_assert_int_eq(jint(res->exit, "exit_code"), 0);
        ck_assert_int_eq(jint(res->exit, "signal"), 0);
        ck_assert(json_is_false(json_object_get(res->exit, "timed_out")));
        ck_assert_int_ge(jint(res->exit, "duration_ms"), 0);
        reply_free(res);
}
END_TEST

START_TEST(exec_status_and_stderr)
{
        reply *res = run("{\"op\":\"exec\",\"shell\":\"echo oops >&2; echo $FOO $HOME $PWD; exit 3\","
                         "\"env\":[\"FOO=bar\"],\"cwd\":\"/tmp\"}");
        ck_assert_str_eq(res->err, "oops\n");
        ck_assert_str_eq(res->out, "bar /root /tmp\n");
        ck_assert_int_eq(jint(res->exit, "exit_code"), 3);
        reply_free(res);

        res = run("{\"op\":\"exec\",\"shell\":\"kill -SEGV $$\",\"cwd\":\"/\"}");
        ck_assert_int_eq(jint(res->exit, "exit_code"), -1);
        ck_assert_int_eq(jint(res->exit, "signal"), SIGSEGV);
        reply_free(res);
}
END_TEST

START_TEST(exec_errors)
{
        reply *res = run("{\"op\":\"exec\",\"argv\":[\"true\"],\"cwd\":\"/nonexistent-dir-xyz\"}");
        ck_assert_ptr_null(res->started);
        ck_assert_ptr_null(res->exit);
        ASSERT_ERROR(res, ENOENT, "/nonexistent-dir-xyz");
        reply_free(res);

        ASSERT_RUN_FAILS(ENOENT, "no-such-command-xyz", "{\"op\":\"exec\",\"argv\":[\"no-such-command-xyz\"],\"cwd\":\"/\"}");
        ASSERT_RUN_FAILS(EOPNOTSUPP, "frobnicate", "{\"op\":\"frobnicate\"}");
        ASSERT_RUN_FAILS(EINVAL, "argv[0]", "{\"op\":\"exec\",\"argv\":[1]}");

        res = run("{\"op\":\"ping\"}");
        ASSERT_OK(res);
        ck_assert_int_gt(jint(res->result, "uptime_ms"), 0);
        reply_free(res);

        /* First frame not a REQUEST. */
        int fd;
        pid_t pid = start_handler(&fd);
        send_frame(fd, SMOLVM_FRAME_STDIN, "x", 1);
        res = finish(fd, pid);
        ck_assert_int_eq(jint(res->error, "errno"), EPROTO);
        reply_free(res);
}
END_TEST

START_TEST(exec_timeout_kills_group)
{
        reply *res = run("{\"op\":\"exec\",\"shell\":\"sleep 1000 & echo $!; sleep 1000\",\"timeout_ms\":500,"
                         "\"cwd\":\"/\"}");
        ck_assert_msg(res->ms < 3000, "took %llu ms", (unsigned long long)res->ms);
        ck_assert(json_is_true(json_object_get(res->exit, "timed_out")));
        ck_assert_int_eq(jint(res->exit, "signal"), SIGKILL);
        pid_t bg = atoi(res->out);
        ck_assert_int_gt(bg, 0);
        usleep(100 * 1000);
        ck_assert_msg(process_gone(bg), "background sleep %d survived", (int)bg);
        reply_free(res);
}
END_TEST

START_TEST(exec_background_does_not_hang)
{
        /* The command exits at once but leaves a child holding stdout. */
        reply *res = run("{\"op\":\"exec\",\"shell\":\"sleep 1000 & echo $!\",\"cwd\":\"/\"}");
        ck_assert_msg(res->ms < 2000, "took %llu ms", (unsigned long long)res->ms);
        ck_assert_int_eq(jint(res->exit, "exit_code"), 0);
        pid_t bg = atoi(res->out);
        usleep(100 * 1000);
        ck_assert_msg(process_gone(bg), "background sleep %d survived", (int)bg);
        reply_free(res);

        /* On request, it survives (but does not hold the exec open). */
        res = run("{\"op\":\"exec\",\"shell\":\"sleep 1000 & echo $!\",\"cwd\":\"/\",\"keep_background\":true}");
        ck_assert_msg(res->ms < 2000, "took %llu ms", (unsigned long long)res->ms);
        bg = atoi(res->out);
        ck_assert_int_gt(bg, 0);
        ck_assert(!process_gone(bg));
        kill(bg, SIGKILL);
        reply_free(res);
}
END_TEST

START_TEST(exec_stdin_and_signal)
{
        int fd;
        pid_t pid = start_handler(&fd);
        send_req(fd, "{\"op\":\"exec\",\"argv\":[\"cat\"],\"stdin\":true,\"cwd\":\"/\"}");
        send_frame(fd, SMOLVM_FRAME_STDIN, "abc", 3);
        send_frame(fd, SMOLVM_FRAME_STDIN, "def\n", 4);
        send_frame(fd, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        reply *res = finish(fd, pid);
        ck_assert_str_eq(res->out, "abcdef\n");
        ck_assert_int_eq(jint(res->exit, "exit_code"), 0);
        reply_free(res);

        /* Client half-close also ends stdin. */
        pid = start_handler(&fd);
        send_req(fd, "{\"op\":\"exec\",\"argv\":[\"wc\",\"-c\"],\"stdin\":true,\"cwd\":\"/\"}");
        send_frame(fd, SMOLVM_FRAME_STDIN, "12345", 5);
        shutdown(fd, SHUT_WR);
        res = finish(fd, pid);
        ck_assert_int_eq(atoi(res->out), 5);
        reply_free(res);

        pid = start_handler(&fd);
        send_req(fd, "{\"op\":\"exec\",\"shell\":\"sleep 1000\",\"cwd\":\"/\"}");
        uint8_t sig[4];
        put_le32(sig, SIGTERM);
        usleep(200 * 1000);
        send_frame(fd, SMOLVM_FRAME_SIGNAL, sig, 4);
        res = finish(fd, pid);
        ck_assert_int_eq(jint(res->exit, "signal"), SIGTERM);
        reply_free(res);
}
END_TEST

START_TEST(exec_large_output)
{
        reply *res = run("{\"op\":\"exec\",\"shell\":\"head -c 5000000 /dev/zero; echo done >&2\",\"cwd\":\"/\"}");
        ck_assert_uint_eq(res->out_len, 5000000);
        ck_assert_uint_le(res->max_frame, SMOLVM_FRAME_DATA_CHUNK);
        ck_assert_str_eq(res->err, "done\n");
        ck_assert_int_eq(jint(res->exit, "exit_code"), 0);
        reply_free(res);
}
END_TEST

START_TEST(exec_client_gone_kills)
{
        int fd;
        pid_t pid = start_handler(&fd);
        send_req(fd, "{\"op\":\"exec\",\"shell\":\"echo $$; exec sleep 1000\",\"cwd\":\"/\"}");
        /* Read STARTED, then hang up. */
        smolvm_frame_reader rd;
        smolvm_frame_reader_init(&rd, SMOLVM_FRAME_MAX_PAYLOAD);
        uint16_t type;
        const uint8_t *p;
        uint32_t len;
        int cmd_pid = 0;
        while (smolvm_frame_reader_next(&rd, &type, &p, &len) != 1 || type != SMOLVM_FRAME_STARTED) {
                ssize_t n = read(fd, smolvm_frame_reader_tail(&rd), smolvm_frame_reader_space(&rd));
                ck_assert_int_gt(n, 0);
                smolvm_frame_reader_commit(&rd, (size_t)n);
        }
        json_t *j = json_loadb((const char *)p, len, 0, NULL);
        cmd_pid = (int)jint(j, "pid");
        json_decref(j);
        smolvm_frame_reader_done(&rd);
        close(fd);
        uint64_t t0 = now_ms();
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_uint_lt(now_ms() - t0, 2000);
        ck_assert(process_gone(cmd_pid));
}
END_TEST

static Suite *agent_suite(void)
{
        Suite *s = suite_create("guest-agent");
        TCase *tc = tcase_create("request");
        tcase_add_test(tc, parse_malformed);
        tcase_add_test(tc, parse_bounds);
        tcase_add_test(tc, parse_valid);
        tcase_add_test(tc, env_merge);
        suite_add_tcase(s, tc);
        tc = tcase_create("exec");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, exec_echo);
        tcase_add_test(tc, exec_status_and_stderr);
        tcase_add_test(tc, exec_errors);
        tcase_add_test(tc, exec_timeout_kills_group);
        tcase_add_test(tc, exec_background_does_not_hang);
        tcase_add_test(tc, exec_stdin_and_signal);
        tcase_add_test(tc, exec_large_output);
        tcase_add_test(tc, exec_client_gone_kills);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        /* Hermetic: never merge a stored env (env.json) from the machine running the tests. */
        agent_etc_dir = "/nonexistent/smolvm-test-etc";
        return run_suite(agent_suite());
}
