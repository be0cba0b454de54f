/* SPDX-License-Identifier: Apache-2.0 */
/* common/fileutil.c: the one mkdir -p, rm -rf and atomic write of the tree
 * (libsmolvm's VM dirs and downloads, the image builder's caches, the guest
 * agent's mkdir/write_file/env store). Real files in a temp dir. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "fileutil.h"
#include "util.h"

static char base[] = "/tmp/smolvm-fileutil.XXXXXX";
static char pbuf[8][1024];
static unsigned pnext;

/* base/rel, in one of a few rotating buffers. */
static const char *tp(const char *rel)
{
        char *b = pbuf[pnext++ % ARRAY_SIZE(pbuf)];
        snprintf(b, sizeof(pbuf[0]), "%s/%s", base, rel);
        return b;
}

static void setup(void)
{
        strcpy(base, "/tmp/smolvm-fileutil.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(base), 0);
        ck_assert_int_eq(access(base, F_OK), -1);
}

static mode_t mode_of(const char *p)
{
        struct stat st;
        ck_assert_int_eq(lstat(p, &st), 0);
        return st.st_mode;
}

static void put(const char *p, const char *text)
{
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_all(fd, text, strlen(text)), 0);
        ck_assert_int_eq(close(fd), 0);
}

static size_t n_entries(const char *dir)
{
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
        closedir(d);
        return n;
}

START_TEST(mkdir_p_cases)
{
        ck_assert_int_eq(mkdir_p(tp("a/b//c/"), 0755), 0);
        ck_assert(S_ISDIR(mode_of(tp("a/b/c"))));
        /* Existing: fine, and left as it is. */
        ck_assert_int_eq(chmod(tp("a/b"), 0700), 0);
        ck_assert_int_eq(mkdir_p(tp("a/b/c"), 0755), 0);
        ck_assert_uint_eq(mode_of(tp("a/b")) & 07777, 0700);
        /* A file in the way, as a parent or as the last component. */
        put(tp("f"), "x");
        ck_assert_int_eq(mkdir_p(tp("f/g"), 0755), -ENOTDIR);
        ck_assert_int_eq(mkdir_p(tp("f"), 0755), -ENOTDIR);
        ck_assert_int_eq(mkdir_p("", 0755), -ENOENT);
        /* An existing symlink is the caller's path: followed. */
        ck_assert_int_eq(symlink("a/b", tp("link")), 0);
        int fd = mkdir_p_open(tp("link/new"), 0755);
        ck_assert_int_ge(fd, 0);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_int_eq(close(fd), 0);
        ck_assert(S_ISDIR(mode_of(tp("a/b/new"))));
}
END_TEST

START_TEST(mkdir_p_modes)
{
        mode_t old = umask(077);
        ck_assert_int_eq(mkdir_p(tp("u/v"), 0755), 0);
        ck_assert_uint_eq(mode_of(tp("u")) & 07777, 0700); /* the umask applies */
        ck_assert_uint_eq(mode_of(tp("u/v")) & 07777, 0700);
        ck_assert_int_eq(mkdir_p_exact(tp("u/v/w/x"), 0751), 0);
        ck_assert_uint_eq(mode_of(tp("u/v")) & 07777, 0700); /* existing: untouched */
        ck_assert_uint_eq(mode_of(tp("u/v/w")) & 07777, 0751);
        ck_assert_uint_eq(mode_of(tp("u/v/w/x")) & 07777, 0751);
        umask(old);
}
END_TEST

START_TEST(rm_rf_cases)
{
        /* A symlink to a directory outside: the link goes, the target stays. */
        ck_assert_int_eq(mkdir_p(tp("outside"), 0755), 0);
        put(tp("outside/keep"), "k");
        ck_assert_int_eq(mkdir_p(tp("t/d/e"), 0755), 0);
        put(tp("t/d/e/f"), "f");
        ck_assert_int_eq(symlink(tp("outside"), tp("t/d/out")), 0);
        ck_assert_int_eq(rm_rf(tp("t")), 0);
        ck_assert_int_eq(access(tp("t"), F_OK), -1);
        ck_assert_int_eq(access(tp("outside/keep"), F_OK), 0);
        /* Missing: fine. A single file or a symlink: removed, not followed. */
        ck_assert_int_eq(rm_rf(tp("missing")), 0);
        ck_assert_int_eq(symlink(tp("outside"), tp("top-link")), 0);
        ck_assert_int_eq(rm_rf(tp("top-link")), 0);
        ck_assert_int_eq(access(tp("outside/keep"), F_OK), 0);
        ck_assert_int_eq(rm_rf(tp("outside/keep")), 0);
        ck_assert_int_eq(access(tp("outside/keep"), F_OK), -1);
}
END_TEST

/* Rootfs trees are deeper than the VM dirs libsmolvm's copy was written for
 * (it stopped at 16 levels with ELOOP). */
START_TEST(rm_rf_deep)
{
        char rel[1024] = "deep";
        for (int i = 0; i < 60; i++)
                strcat(rel, "/d");
        ck_assert_int_eq(mkdir_p(tp(rel), 0755), 0);
        put(tp(strcat(rel, "/leaf")), "x");
        ck_assert_int_eq(rm_rf(tp("deep")), 0);
        ck_assert_int_eq(access(tp("deep"), F_OK), -1);
}
END_TEST

/* A mount below the tree (a killed debootstrap's /proc) is never emptied:
 * -EBUSY, the mount and what is in it stay; and rm_rf_last's last entry is
 * not removed while anything else is left. Needs root (mount). */
START_TEST(rm_rf_mount_and_last)
{
        if (geteuid() != 0)
                return; /* registered only for root, see main() */
        ck_assert_int_eq(mkdir_p(tp("vm/mnt"), 0755), 0);
        put(tp("vm/lock"), "");
        put(tp("vm/other"), "o");
        ck_assert_int_eq(mount("tmpfs", tp("vm/mnt"), "tmpfs", 0, "size=1m"), 0);
        put(tp("vm/mnt/inside"), "i");
        ck_assert_int_eq(rm_rf_last(tp("vm"), "lock"), -EBUSY);
        ck_assert_int_eq(access(tp("vm/mnt/inside"), F_OK), 0);
        ck_assert_int_eq(access(tp("vm/lock"), F_OK), 0);
        ck_assert_int_eq(access(tp("vm/other"), F_OK), -1);
        ck_assert_int_eq(umount2(tp("vm/mnt"), MNT_DETACH), 0);
        ck_assert_int_eq(rm_rf_last(tp("vm"), "lock"), 0);
        ck_assert_int_eq(access(tp("vm"), F_OK), -1);
}
END_TEST

/* path holds exactly the len bytes of want. */
static void assert_content(const char *path, const char *want, size_t len)
{
        char buf[64];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, sizeof(buf));
        ck_assert_int_eq(close(fd), 0);
        ck_assert_int_eq(n, (ssize_t)len);
        ck_assert_int_eq(memcmp(buf, want, len), 0);
}

START_TEST(write_atomic)
{
        mode_t old = umask(077);
        ck_assert_int_eq(write_file_atomic(tp("w.json"), "first", 5, 0644), 0);
        ck_assert_uint_eq(mode_of(tp("w.json")) & 07777, 0644); /* exactly, whatever the umask */
        umask(old);
        ck_assert_int_eq(write_file_atomic(tp("w.json"), "second", 6, 0600), 0);
        ck_assert_uint_eq(mode_of(tp("w.json")) & 07777, 0600);
        assert_content(tp("w.json"), "second", 6);
        ck_assert_int_eq(write_file_atomic(tp("empty"), "", 0, 0600), 0);
        ck_assert_int_eq(mode_of(tp("empty")) & S_IFMT, S_IFREG);
        ck_assert_uint_eq(n_entries(base), 2); /* no temp file left */

        /* Failures leave nothing behind: a missing directory, a directory in
         * the way, a path ending in '/'. */
        ck_assert_int_eq(write_file_atomic(tp("nodir/x"), "x", 1, 0600), -ENOENT);
        ck_assert_int_eq(mkdir_p(tp("sub"), 0755), 0);
        ck_assert_int_lt(write_file_atomic(base, "x", 1, 0600), 0);
        ck_assert_int_eq(write_file_atomic(tp("sub/"), "x", 1, 0600), -EISDIR);
        ck_assert_uint_eq(n_entries(base), 3);
        ck_assert_uint_eq(n_entries(tp("sub")), 0);
}
END_TEST

/* write_file_replace: the same replace, without the fsyncs. */
START_TEST(write_replace)
{
        ck_assert_int_eq(write_file_replace(tp("hosts"), "one\n", 4, 0644), 0);
        ck_assert_int_eq(write_file_replace(tp("hosts"), "two lines\nhere\n", 15, 0640), 0);
        ck_assert_uint_eq(mode_of(tp("hosts")) & 07777, 0640);
        assert_content(tp("hosts"), "two lines\nhere\n", 15);
        ck_assert_uint_eq(n_entries(base), 1); /* no temp file left */
        ck_assert_int_eq(write_file_replace(tp("nodir/x"), "x", 1, 0600), -ENOENT);
        ck_assert_uint_eq(n_entries(base), 1);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fileutil");
        TCase *tc = tcase_create("fileutil");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, mkdir_p_cases);
        tcase_add_test(tc, mkdir_p_modes);
        tcase_add_test(tc, rm_rf_cases);
        tcase_add_test(tc, rm_rf_deep);
        if (geteuid() == 0)
                tcase_add_test(tc, rm_rf_mount_and_last);
        tcase_add_test(tc, write_atomic);
        tcase_add_test(tc, write_replace);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
