/* SPDX-License-Identifier: Apache-2.0 */
/* The fixture of the guest agent's op suites (test_guest_files.c, _env.c,
 * _system.c): the real handler (guest_harness.h) acting on a private temp dir,
 * with agent_etc_dir pointing into it; helpers to look at what it left. */
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "check_main.h"
#include "fileutil.h"
#include "guest_harness.h"

static char tmpdir[256];
static char etcdir[300];

/* A path under the test's temp dir (static buffers, rotated). */
static inline const char *tp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline const char *tp(const char *fmt, ...)
{
        static char bufs[8][4608];
        static int next;
        char *b = bufs[next++ % 8];
        int n = snprintf(b, sizeof(bufs[0]), "%s/", tmpdir);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b + n, sizeof(bufs[0]) - (size_t)n, fmt, ap);
        va_end(ap);
        return b;
}

static inline void put_file(const char *path, const char *content, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_all(fd, content, strlen(content)), 0);
        close(fd);
}

static inline char *slurp(const char *path, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        char *b = malloc((size_t)st.st_size + 1);
        ck_assert_int_eq(read_all(fd, b, (size_t)st.st_size), 0);
        b[st.st_size] = 0;
        close(fd);
        if (ret_len)
                *ret_len = (size_t)st.st_size;
        return b;
}

static inline int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static inline mode_t mode_of(const char *path)
{
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        return st.st_mode & 07777;
}

/* main() of an op suite: the temp dir and /etc stand-in around the run. */
static inline int guest_ops_main(Suite *s)
{
        /* A dead handler's socket must fail our writes, not kill the test. */
        (void)signal(SIGPIPE, SIG_IGN);
        snprintf(tmpdir, sizeof(tmpdir), "%s/smolvm-ops-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(etcdir, sizeof(etcdir), "%s/etc", tmpdir);
        if (mkdir(etcdir, 0755) < 0) {
                perror("mkdir");
                return 1;
        }
        agent_etc_dir = etcdir;
        int status = run_suite(s);
        (void)rm_rf(tmpdir);
        return status;
}
