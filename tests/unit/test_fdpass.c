/* SPDX-License-Identifier: Apache-2.0 */
/* Passing fds over a unix socket (common/fdpass.c): fds arrive O_CLOEXEC and
 * are the sender's files; too many fds, a truncated control buffer or a
 * truncated record are refused with every received fd closed (the fd table is
 * counted before and after: no leak), the caller's array untouched. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "fdpass.h"
#include "util.h"

/* Open fds of this process (the test runs in a forked child of its own). */
static int n_open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

static void pair(int type, int sv[2])
{
        ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
}

/* n fresh fds (pipe read ends; the write ends are closed). */
static void make_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int p[2];
                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                fds[i] = p[0];
                safe_close(p[1]);
        }
}

static void close_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
}

static bool same_file(int a, int b)
{
        struct stat sa, sb;
        ck_assert_int_eq(fstat(a, &sa), 0);
        ck_assert_int_eq(fstat(b, &sb), 0);
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

START_TEST(test_roundtrip)
{
        int sv[2], sent[3], got[4] = { -1, -1, -1, -1 };
        pair(SOCK_STREAM, sv);
        make_fds(sent, 3);
        ck_assert_int_eq(fdpass_send(sv[0], "hello", 5, sent, 3, 0), 5);
        char buf[16];
        size_t n_fds = 99;
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), got, 4, &n_fds, 0), 5);
        ck_assert_mem_eq(buf, "hello", 5);
        ck_assert_uint_eq(n_fds, 3);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_ge(got[i], 0);
                ck_assert_int_ne(got[i], sent[i]);
                ck_assert(same_file(got[i], sent[i]));
                ck_assert_int_eq(fcntl(got[i], F_GETFD), FD_CLOEXEC);
        }
        ck_assert_int_eq(got[3], -1);
        close_fds(got, 3);
        close_fds(sent, 3);

        /* No fds: plain data, *ret_n_fds 0; fds may be NULL when max_fds is 0. */
        ck_assert_int_eq(fdpass_send(sv[0], "x", 1, NULL, 0, 0), 1);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), got, 4, &n_fds, 0), 1);
        ck_assert_uint_eq(n_fds, 0);
        ck_assert_int_eq(fdpass_send(sv[0], "y", 1, NULL, 0, 0), 1);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0, &n_fds, 0), 1);
        ck_assert_int_eq(buf[0], 'y');

        /* The most fds allowed. */
        int many[FDPASS_MAX_FDS], back[FDPASS_MAX_FDS];
        make_fds(many, FDPASS_MAX_FDS);
        ck_assert_int_eq(fdpass_send(sv[0], "m", 1, many, FDPASS_MAX_FDS, 0), 1);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), back, FDPASS_MAX_FDS, &n_fds, 0), 1);
        ck_assert_uint_eq(n_fds, FDPASS_MAX_FDS);
        for (size_t i = 0; i < FDPASS_MAX_FDS; i++)
                ck_assert(same_file(back[i], many[i]));
        close_fds(back, FDPASS_MAX_FDS);
        close_fds(many, FDPASS_MAX_FDS);

        /* End of stream. */
        safe_close(sv[0]);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), got, 4, &n_fds, 0), 0);
        ck_assert_uint_eq(n_fds, 0);
        safe_close(sv[1]);
}
END_TEST

/* sent fds, received with room for max: -EBADMSG, nothing left open, the
 * caller's array and count untouched, and the socket still usable. */
static void expect_refused(size_t sent_n, size_t max)
{
        int sv[2], sent[FDPASS_MAX_FDS], got[FDPASS_MAX_FDS];
        pair(SOCK_STREAM, sv);
        make_fds(sent, sent_n);
        for (size_t i = 0; i < FDPASS_MAX_FDS; i++)
                got[i] = -7;
        ck_assert_int_eq(fdpass_send(sv[0], "abc", 3, sent, sent_n, 0), 3);
        close_fds(sent, sent_n); /* now only the message holds them */
        int before = n_open_fds();
        char buf[8];
        size_t n_fds = 99;
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), max ? got : NULL, max, &n_fds, 0), -EBADMSG);
        ck_assert_int_eq(n_open_fds(), before);
        ck_assert_uint_eq(n_fds, 99);
        for (size_t i = 0; i < FDPASS_MAX_FDS; i++)
                ck_assert_int_eq(got[i], -7);
        ck_assert_int_eq(fdpass_send(sv[0], "d", 1, NULL, 0, 0), 1);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), got, 1, &n_fds, 0), 1);
        ck_assert_uint_eq(n_fds, 0);
        safe_close(sv[0]);
        safe_close(sv[1]);
}

/* One more fd than asked for: the control buffer has room for it (cmsg
 * alignment), so the helper's own count must refuse it. */
START_TEST(test_too_many_fds)
{
        expect_refused(2, 1);
        expect_refused(4, 3);
}
END_TEST

/* Far more fds than the control buffer holds: the kernel sets MSG_CTRUNC and
 * installs what fits; those are closed too. No room at all: every fd is
 * dropped by the kernel, still -EBADMSG. */
START_TEST(test_ctrunc)
{
        expect_refused(FDPASS_MAX_FDS, 1);
        expect_refused(FDPASS_MAX_FDS, 4);
        expect_refused(1, 0);
}
END_TEST

/* A record longer than the buffer (SOCK_SEQPACKET): -EMSGSIZE, its fd closed. */
START_TEST(test_record_truncated)
{
        int sv[2], fd;
        pair(SOCK_SEQPACKET, sv);
        make_fds(&fd, 1);
        char big[100] = { 0 };
        ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(big), &fd, 1, 0), 100);
        safe_close(fd);
        int before = n_open_fds();
        int got = -7;
        size_t n_fds = 99;
        char buf[10];
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &got, 1, &n_fds, 0), -EMSGSIZE);
        ck_assert_int_eq(n_open_fds(), before);
        ck_assert_int_eq(got, -7);
        ck_assert_uint_eq(n_fds, 99);
        /* A record that fits still works. */
        make_fds(&fd, 1);
        ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(buf), &fd, 1, 0), 10);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &got, 1, &n_fds, 0), 10);
        ck_assert_uint_eq(n_fds, 1);
        ck_assert(same_file(got, fd));
        safe_close(got);
        safe_close(fd);
        safe_close(sv[0]);
        safe_close(sv[1]);
}
END_TEST

START_TEST(test_errors)
{
        int sv[2], fds[FDPASS_MAX_FDS + 1];
        pair(SOCK_STREAM, sv);
        make_fds(fds, FDPASS_MAX_FDS + 1);
        char buf[4];
        size_t n_fds = 99;
        /* Bad arguments. */
        ck_assert_int_eq(fdpass_send(sv[0], "", 0, fds, 1, 0), -EINVAL);
        ck_assert_int_eq(fdpass_send(sv[0], "a", 1, fds, FDPASS_MAX_FDS + 1, 0), -EINVAL);
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), fds, FDPASS_MAX_FDS + 1, &n_fds, 0), -EINVAL);
        /* Nothing there yet. */
        ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0, &n_fds, MSG_DONTWAIT), -EAGAIN);
        ck_assert_uint_eq(n_fds, 99);
        /* The peer is gone: -EPIPE, no SIGPIPE (the test would die of it). */
        safe_close(sv[1]);
        ck_assert_int_eq(fdpass_send(sv[0], "a", 1, fds, 1, 0), -EPIPE);
        ck_assert_int_eq(fdpass_recv(-1, buf, sizeof(buf), NULL, 0, &n_fds, 0), -EBADF);
        close_fds(fds, FDPASS_MAX_FDS + 1);
        safe_close(sv[0]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fdpass");
        TCase *tc = tcase_create("fdpass");
        tcase_add_test(tc, test_roundtrip);
        tcase_add_test(tc, test_too_many_fds);
        tcase_add_test(tc, test_ctrunc);
        tcase_add_test(tc, test_record_truncated);
        tcase_add_test(tc, test_errors);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
