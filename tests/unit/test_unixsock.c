/* SPDX-License-Identifier: Apache-2.0 */
/* Unix stream sockets at a path (common/unixsock.c): listening replaces a
 * stale socket but never another file; a socket in a directory too deep for
 * sun_path is still reached (through /proc/self/fd). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "fileutil.h"
#include "unixsock.h"
#include "util.h"

static char tmp[64];

static void setup(void)
{
        snprintf(tmp, sizeof(tmp), "/tmp/test_unixsock.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmp), 0);
}

/* A client connects to sa and sends a byte; the listener accepts it. */
static void connect_accept(int lfd, const struct sockaddr_un *sa)
{
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c, 0);
        ck_assert_int_eq(connect(c, (const struct sockaddr *)sa, sizeof(*sa)), 0);
        ck_assert_int_eq(write(c, "x", 1), 1);
        int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(a, 0);
        char b;
        ck_assert_int_eq(read(a, &b, 1), 1);
        ck_assert_int_eq(b, 'x');
        safe_close(a);
        safe_close(c);
}

START_TEST(test_listen)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/s.sock", tmp);
        int lfd = unix_listen(path, 4, 0);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(fcntl(lfd, F_GETFD), FD_CLOEXEC);
        ck_assert_int_eq(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0);
        struct sockaddr_un sa;
        int dir_fd;
        ck_assert_int_eq(unix_sockaddr_at(tmp, "s.sock", &sa, &dir_fd), 0);
        ck_assert_int_eq(dir_fd, -1);
        ck_assert_str_eq(sa.sun_path, path);
        connect_accept(lfd, &sa);
        /* Killed without cleaning up: the next run replaces the socket. */
        safe_close(lfd);
        lfd = unix_listen(path, 4, SOCK_NONBLOCK);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_ne(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0);
        connect_accept(lfd, &sa);
        safe_close(lfd);
}
END_TEST

/* A file that is not a socket is never removed. */
START_TEST(test_listen_keeps_other_files)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/file", tmp);
        ck_assert_int_eq(write_file_atomic(path, "keep", 4, 0600), 0);
        ck_assert_int_eq(unix_listen(path, 1, 0), -EADDRINUSE);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(st.st_size, 4);

        char long_path[200];
        memset(long_path, 'a', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        ck_assert_int_eq(unix_listen(long_path, 1, 0), -ENAMETOOLONG);
}
END_TEST

/* A directory deeper than sun_path holds: the address goes through
 * /proc/self/fd/N, which must stay open until the connect. */
START_TEST(test_sockaddr_deep_dir)
{
        char dir[PATH_MAX];
        int n = snprintf(dir, sizeof(dir), "%s", tmp);
        while (n < 150)
                n += snprintf(dir + n, sizeof(dir) - (size_t)n, "/%s", "a-long-directory-name");
        ck_assert_int_eq(mkdir_p(dir, 0700), 0);
        /* Listen through the /proc path too (bind resolves it as connect does). */
        struct sockaddr_un sa;
        int dir_fd;
        ck_assert_int_eq(unix_sockaddr_at(dir, "deep.sock", &sa, &dir_fd), 0);
        ck_assert_int_ge(dir_fd, 0);
        char want[64];
        snprintf(want, sizeof(want), "/proc/self/fd/%d/deep.sock", dir_fd);
        ck_assert_str_eq(sa.sun_path, want);
        int lfd = unix_listen(sa.sun_path, 1, 0);
        ck_assert_int_ge(lfd, 0);
        connect_accept(lfd, &sa);
        safe_close(dir_fd);
        safe_close(lfd);

        /* The socket is really in the deep directory. */
        char full[PATH_MAX + 16];
        snprintf(full, sizeof(full), "%s/deep.sock", dir);
        struct stat st;
        ck_assert_int_eq(lstat(full, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));

        ck_assert_int_eq(unix_sockaddr_at("/nonexistent/dir/that/is/long/enough/to/need/the/proc/fallback/"
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                          "x.sock", &sa, &dir_fd),
                         -ENOENT);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("unixsock");
        TCase *tc = tcase_create("unixsock");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_listen);
        tcase_add_test(tc, test_listen_keeps_other_files);
        tcase_add_test(tc, test_sockaddr_deep_dir);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
