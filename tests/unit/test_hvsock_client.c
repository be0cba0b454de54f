/* SPDX-License-Identifier: Apache-2.0 */
/* The hybrid-vsock connector (common/hvsock_client.c) against a listening
 * socket of the test's own playing the supervisor. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "check_main.h"
#include "hvsock_client.h"
#include "util.h"

static char dir[64];
static int listen_fd = -1;

/* A VM dir with a listening vsock.sock (backlog as given). */
static void setup_dir(int backlog)
{
        snprintf(dir, sizeof(dir), "/tmp/smolvm-test-hvsock-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock.sock", dir);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(listen_fd, 0);
        ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(listen_fd, backlog), 0);
}

static void setup(void)
{
        setup_dir(16);
}

static void teardown(void)
{
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/vsock.sock", dir);
        unlink(p);
        rmdir(dir);
        listen_fd = safe_close(listen_fd);
}

/* The supervisor's side: accept, and check the CONNECT line. */
static int accept_connect(uint32_t port)
{
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        char want[32], got[32] = { 0 };
        int n = snprintf(want, sizeof(want), "CONNECT %u\n", port);
        ck_assert_int_eq(read_all(fd, got, (size_t)n), 0);
        ck_assert_str_eq(got, want);
        return fd;
}

/* Drive c with _step() until it is done or fails, waiting as it says. */
static int drive(smolvm_hvsock_conn *c)
{
        int r;
        while ((r = smolvm_hvsock_conn_step(c)) == 0) {
                int t = smolvm_hvsock_conn_timeout_ms(c);
                struct pollfd p = { .fd = smolvm_hvsock_conn_fd(c), .events = smolvm_hvsock_conn_events(c) };
                ck_assert(p.events || t >= 0);
                poll(&p, 1, t);
        }
        return r;
}

START_TEST(test_ok_line_leaves_the_rest)
{
        smolvm_hvsock_conn c;
        ck_assert_int_eq(smolvm_hvsock_conn_start(&c, dir, 1024, now_ms() + 10000), 0);
        /* Connected and the line sent at once; now waiting for the answer. */
        ck_assert_int_eq(smolvm_hvsock_conn_step(&c), 0);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_REPLY);
        ck_assert_int_eq(smolvm_hvsock_conn_events(&c), POLLIN);
        int srv = accept_connect(1024);
        /* The OK line in two pieces, the guest's first bytes right behind it. */
        ck_assert_int_eq(write_all(srv, "OK 49", 5), 0);
        ck_assert_int_eq(smolvm_hvsock_conn_step(&c), 0);
        ck_assert_int_eq(write_all(srv, "152\nFUSE\x01\x02", 10), 0);
        ck_assert_int_eq(drive(&c), 1);
        ck_assert_uint_eq(c.local_port, 49152);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_DONE);
        int fd = smolvm_hvsock_conn_take_fd(&c);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(smolvm_hvsock_conn_take_fd(&c), -1);
        ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        char rest[8] = { 0 };
        ck_assert_int_eq(recv(fd, rest, sizeof(rest), MSG_DONTWAIT), 6);
        ck_assert(memcmp(rest, "FUSE\x01\x02", 6) == 0);
        smolvm_hvsock_conn_done(&c);
        /* The stream works both ways. */
        ck_assert_int_eq(write_all(fd, "ping", 4), 0);
        ck_assert_int_eq(read_all(srv, rest, 4), 0);
        ck_assert(memcmp(rest, "ping", 4) == 0);
        close(fd);
        close(srv);
}
END_TEST

typedef struct answer {
        const char *bytes; /* NULL: close without answering */
        size_t len;
        unsigned delay_ms;
        uint32_t port;
        bool hold; /* keep the connection until the client closes it, else close after answering */
} answer;

static void *answer_thread(void *arg)
{
        answer *a = arg;
        int srv = accept_connect(a->port);
        if (a->delay_ms)
                nanosleep(&(struct timespec){ .tv_nsec = (long)a->delay_ms * 1000000L }, NULL);
        if (a->bytes) /* may fail: the client gave up (the deadline test) */
                (void)send(srv, a->bytes, a->len, MSG_NOSIGNAL);
        char c;
        if (a->hold)
                (void)!read(srv, &c, 1);
        close(srv);
        return NULL;
}

/* The blocking connect against one answer; returns its result, c filled. */
static int connect_against(const char *bytes, size_t len, uint64_t timeout_ms, int cancel_fd,
                           smolvm_hvsock_conn *c)
{
        answer a = { .bytes = bytes, .len = len, .port = 7 };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, answer_thread, &a), 0);
        int r = smolvm_hvsock_connect(c, dir, 7, now_ms() + timeout_ms, cancel_fd);
        safe_close(r); /* the thread's read sees EOF */
        pthread_join(t, NULL);
        return r;
}

START_TEST(test_garbage_lines)
{
        static const char *const bad[] = {
                "NO 5\n", "OK\n", "OK \n", "OK 5x\n", "ok 5\n", "OK  5\n", "OK -1\n", "OK 4294967296\n",
                "OK 99999999999\n", "\n", "OK 5\r\n",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                smolvm_hvsock_conn c;
                int r = connect_against(bad[i], strlen(bad[i]), 10000, -1, &c);
                ck_assert_msg(r == -EPROTO, "'%s': %d", bad[i], r);
                ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_REPLY);
                ck_assert_str_eq(c.why, "the reply to CONNECT is not \"OK <port>\"");
        }
        smolvm_hvsock_conn c;
        ck_assert_int_ge(connect_against("OK 4294967295\n", 14, 10000, -1, &c), 0);
        ck_assert_uint_eq(c.local_port, 4294967295u);
}
END_TEST

START_TEST(test_long_line)
{
        char line[SMOLVM_HVSOCK_REPLY_MAX + 8];
        memset(line, '7', sizeof(line));
        memcpy(line, "OK ", 3);
        line[sizeof(line) - 1] = '\n';
        smolvm_hvsock_conn c;
        ck_assert_int_eq(connect_against(line, sizeof(line), 10000, -1, &c), -EPROTO);
        ck_assert_str_eq(c.why, "the reply to CONNECT is too long");
        /* Exactly SMOLVM_HVSOCK_REPLY_MAX bytes without a newline is too long as well. */
        ck_assert_int_eq(connect_against(line, SMOLVM_HVSOCK_REPLY_MAX, 10000, -1, &c), -EPROTO);
        ck_assert_str_eq(c.why, "the reply to CONNECT is too long");
}
END_TEST

START_TEST(test_eof_is_refused)
{
        smolvm_hvsock_conn c;
        ck_assert_int_eq(connect_against(NULL, 0, 10000, -1, &c), -ECONNREFUSED);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_REPLY);
        /* EOF after part of the line. */
        ck_assert_int_eq(connect_against("OK 1", 4, 10000, -1, &c), -ECONNREFUSED);
}
END_TEST

START_TEST(test_deadline)
{
        smolvm_hvsock_conn c;
        answer a = { .bytes = "OK 1\n", .len = 5, .delay_ms = 900, .port = 7 };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, answer_thread, &a), 0);
        uint64_t t0 = now_ms();
        int r = smolvm_hvsock_connect(&c, dir, 7, t0 + 300, -1);
        uint64_t took = now_ms() - t0;
        pthread_join(t, NULL);
        ck_assert_int_eq(r, -ETIMEDOUT);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_REPLY);
        ck_assert_str_eq(c.why, "the guest did not answer");
        ck_assert_uint_ge(took, 300);
        ck_assert_uint_lt(took, 5000);
}
END_TEST

static void *cancel_later(void *arg)
{
        nanosleep(&(struct timespec){ .tv_nsec = 200 * 1000000L }, NULL);
        ck_assert_int_eq(write(*(int *)arg, "x", 1), 1);
        return NULL;
}

START_TEST(test_cancel_fd)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, cancel_later, &p[1]), 0);
        answer a = { .bytes = NULL, .port = 7, .hold = true };
        pthread_t srv;
        ck_assert_int_eq(pthread_create(&srv, NULL, answer_thread, &a), 0);
        smolvm_hvsock_conn c;
        uint64_t t0 = now_ms();
        /* The thread accepts but never answers: only the cancel ends it. */
        int r = smolvm_hvsock_connect(&c, dir, 7, t0 + 20000, p[0]);
        ck_assert_int_eq(r, -ECANCELED);
        ck_assert_uint_lt(now_ms() - t0, 10000);
        pthread_join(t, NULL);
        pthread_join(srv, NULL);
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(test_no_socket)
{
        teardown();
        snprintf(dir, sizeof(dir), "/tmp/smolvm-test-hvsock-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        smolvm_hvsock_conn c;
        ck_assert_int_eq(smolvm_hvsock_connect(&c, dir, 1024, now_ms() + 1000, -1), -ENOENT);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_CONNECT);
        ck_assert_str_eq(c.why, "connect");
        /* A socket file nobody listens on. */
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock.sock", dir);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);
        ck_assert_int_eq(smolvm_hvsock_connect(&c, dir, 1024, now_ms() + 1000, -1), -ECONNREFUSED);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_CONNECT);
}
END_TEST

/* A VM dir whose socket path does not fit sun_path (108 bytes). */
START_TEST(test_long_path)
{
        char deep[PATH_MAX];
        snprintf(deep, sizeof(deep), "%s", dir);
        while (strlen(deep) < 150) {
                strcat(deep, "/a-fairly-long-directory-name");
                ck_assert_int_eq(mkdir(deep, 0700), 0);
        }
        /* Bind through a short relative path: chdir there. */
        int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_eq(chdir(deep), 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "vsock.sock");
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(lfd, 4), 0);
        ck_assert_int_eq(fchdir(cwd), 0);
        close(cwd);
        int saved = listen_fd;
        listen_fd = lfd;

        answer a = { .bytes = "OK 3\nz", .len = 6, .port = 9 };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, answer_thread, &a), 0);
        smolvm_hvsock_conn c;
        int fd = smolvm_hvsock_connect(&c, deep, 9, now_ms() + 10000, -1);
        ck_assert_int_ge(fd, 0);
        ck_assert_uint_eq(c.local_port, 3);
        char z;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert_int_eq(read(fd, &z, 1), 1);
        ck_assert_int_eq(z, 'z');
        close(fd);
        pthread_join(t, NULL);

        listen_fd = saved;
        close(lfd);
        /* Remove the tree through relative paths, deepest first. */
        ck_assert_int_eq(chdir(deep), 0);
        unlink("vsock.sock");
        while (strlen(deep) > strlen(dir)) {
                ck_assert_int_eq(chdir(".."), 0);
                char *slash = strrchr(deep, '/');
                ck_assert_int_eq(rmdir(slash + 1), 0);
                *slash = '\0';
        }
        ck_assert_int_eq(chdir("/"), 0);
}
END_TEST

/* The listener's backlog is full: a non-blocking connect() gets EAGAIN and
 * the connector tries again until the supervisor accepts. */
static void *accept_late(void *arg)
{
        int *held = arg;
        nanosleep(&(struct timespec){ .tv_nsec = 300 * 1000000L }, NULL);
        int first = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC); /* the one filling the backlog */
        ck_assert_int_ge(first, 0);
        int srv = accept_connect(5);
        ck_assert_int_eq(write_all(srv, "OK 11\n", 6), 0);
        char c;
        (void)!read(srv, &c, 1);
        close(srv);
        close(first);
        close(*held);
        return NULL;
}

START_TEST(test_backlog_full_retry)
{
        teardown();
        setup_dir(0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock.sock", dir);
        /* Fill the backlog (0 lets one connection wait). */
        int held = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_eq(connect(held, (struct sockaddr *)&sa, sizeof(sa)), 0);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_eq(connect(probe, (struct sockaddr *)&sa, sizeof(sa)), -1);
        ck_assert_int_eq(errno, EAGAIN);
        close(probe);

        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, accept_late, &held), 0);
        smolvm_hvsock_conn c;
        ck_assert_int_eq(smolvm_hvsock_conn_start(&c, dir, 5, now_ms() + 10000), 0);
        ck_assert_int_eq(smolvm_hvsock_conn_step(&c), 0);
        ck_assert_int_eq(c.step, SMOLVM_HVSOCK_STEP_CONNECT);
        ck_assert_int_eq(smolvm_hvsock_conn_events(&c), 0); /* only time tells */
        ck_assert_int_le(smolvm_hvsock_conn_timeout_ms(&c), 10);
        ck_assert_int_eq(drive(&c), 1);
        ck_assert_uint_eq(c.local_port, 11);
        int fd = smolvm_hvsock_conn_take_fd(&c);
        smolvm_hvsock_conn_done(&c);
        close(fd);
        pthread_join(t, NULL);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("hvsock_client");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_ok_line_leaves_the_rest);
        tcase_add_test(tc, test_garbage_lines);
        tcase_add_test(tc, test_long_line);
        tcase_add_test(tc, test_eof_is_refused);
        tcase_add_test(tc, test_deadline);
        tcase_add_test(tc, test_cancel_fd);
        tcase_add_test(tc, test_no_socket);
        tcase_add_test(tc, test_long_path);
        tcase_add_test(tc, test_backlog_full_retry);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        return run_suite(suite());
}
