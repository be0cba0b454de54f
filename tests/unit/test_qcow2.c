/* SPDX-License-Identifier: Apache-2.0 */
/* The overlays smolvm writes itself (common/qemu_img.c qcow2_create_overlay),
 * judged by QEMU's own tools: `qemu-img check` finds no error, `qemu-img info`
 * reads the size and backing file we meant, `qemu-img compare` finds the same
 * disk as qemu-img's own overlay, and qemu-io writes through it and reads back
 * while the base stays untouched. Bad requests fail cleanly, leaving no file. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "qemu_img.h"

static char dir[64];

static void setup(void)
{
        snprintf(dir, sizeof(dir), "/tmp/test_qcow2.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ck_assert_int_eq(system(cmd), 0);
}

/* Runs cmd in dir; returns its exit status, its stdout in out (may be NULL). */
static int sh(char *out, size_t out_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t out_len, const char *fmt, ...)
{
        char cmd[1024], full[1200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        snprintf(full, sizeof(full), "cd %s && %s", dir, cmd);
        FILE *f = popen(full, "r");
        ck_assert_ptr_nonnull(f);
        size_t n = out ? fread(out, 1, out_len - 1, f) : 0;
        if (out)
                out[n] = '\0';
        else {
                char sink[4096];
                while (fread(sink, 1, sizeof(sink), f) > 0)
                        ;
        }
        int st = pclose(f);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static char *path(const char *name)
{
        static char p[4][128];
        static int i;
        char *r = p[i++ % 4];
        snprintf(r, sizeof(p[0]), "%s/%s", dir, name);
        return r;
}

START_TEST(test_over_raw_base)
{
        char err[256], info[4096];
        ck_assert_int_eq(sh(NULL, 0, "truncate -s 10M base.raw"), 0);
        ck_assert_int_eq(qcow2_create_overlay("base.raw", "raw", path("ov.qcow2"), 0, err, sizeof(err)), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-img check -q ov.qcow2"), 0);
        ck_assert_int_eq(sh(info, sizeof(info), "qemu-img info --output=json ov.qcow2"), 0);
        ck_assert_ptr_nonnull(strstr(info, "\"virtual-size\": 10485760"));
        ck_assert_ptr_nonnull(strstr(info, "\"backing-filename\": \"base.raw\""));
        ck_assert_ptr_nonnull(strstr(info, "\"backing-filename-format\": \"raw\""));
        ck_assert_int_eq(sh(NULL, 0, "qemu-img create -q -f qcow2 -F raw -b base.raw ref.qcow2"), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-img compare -q ov.qcow2 ref.qcow2"), 0);
        /* Guest writes land in the overlay, never in the base. */
        ck_assert_int_eq(sh(NULL, 0, "qemu-io -f qcow2 -c 'write -P 0xab 1M 192k' ov.qcow2"), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-io -f qcow2 -c 'read -P 0xab 1M 192k' -c 'read -P 0 0 1M' ov.qcow2 | "
                            "grep -c 'read' | grep -qx 2"), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-img check -q ov.qcow2"), 0);
        ck_assert_int_eq(sh(NULL, 0, "cmp -s base.raw /dev/zero -n 10485760"), 0);
}
END_TEST

START_TEST(test_over_qcow2_base_with_size)
{
        char err[256], info[4096];
        ck_assert_int_eq(sh(NULL, 0, "truncate -s 1M base.raw && "
                            "qemu-img create -q -f qcow2 -F raw -b base.raw mid.qcow2 && "
                            "qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' mid.qcow2"), 0);
        /* Larger than the base (a grown disk), not a whole sector: rounded up. */
        uint64_t size = (UINT64_C(1) << 30) + 1;
        ck_assert_int_eq(qcow2_create_overlay("mid.qcow2", "qcow2", path("top.qcow2"), size, err, sizeof(err)), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-img check -q top.qcow2"), 0);
        ck_assert_int_eq(sh(info, sizeof(info), "qemu-img info --output=json top.qcow2"), 0);
        ck_assert_ptr_nonnull(strstr(info, "\"virtual-size\": 1073742336"));
        ck_assert_ptr_nonnull(strstr(info, "\"backing-filename-format\": \"qcow2\""));
        ck_assert_int_eq(sh(NULL, 0, "qemu-io -f qcow2 -c 'read -P 0x5a 0 64k' top.qcow2 | grep -q '^read'"), 0);
        /* The size of a qcow2 base comes from its header. */
        ck_assert_int_eq(qcow2_create_overlay("top.qcow2", "qcow2", path("top2.qcow2"), 0, err, sizeof(err)), 0);
        ck_assert_int_eq(sh(info, sizeof(info), "qemu-img info --output=json top2.qcow2"), 0);
        ck_assert_ptr_nonnull(strstr(info, "\"virtual-size\": 1073742336"));
        ck_assert_int_eq(sh(NULL, 0, "qemu-img check -q top2.qcow2"), 0);
}
END_TEST

START_TEST(test_large_disk)
{
        char err[256], info[4096];
        ck_assert_int_eq(sh(NULL, 0, "truncate -s 1M base.raw"), 0);
        /* 8 TiB: an L1 table of two clusters. */
        uint64_t size = UINT64_C(8) << 40;
        ck_assert_int_eq(qcow2_create_overlay("base.raw", "raw", path("big.qcow2"), size, err, sizeof(err)), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-img check -q big.qcow2"), 0);
        ck_assert_int_eq(sh(info, sizeof(info), "qemu-img info --output=json big.qcow2"), 0);
        ck_assert_ptr_nonnull(strstr(info, "\"virtual-size\": 8796093022208"));
        ck_assert_int_eq(sh(NULL, 0, "qemu-io -f qcow2 -c 'write -P 0x11 7T 64k' -c 'read -P 0x11 7T 64k' big.qcow2 "
                            "| grep -c '^read' | grep -qx 1"), 0);
        ck_assert_int_eq(sh(NULL, 0, "qemu-img check -q big.qcow2"), 0);
}
END_TEST

START_TEST(test_refused)
{
        char err[256];
        ck_assert_int_eq(sh(NULL, 0, "truncate -s 1M base.raw && ln -s /nonexistent link.qcow2"), 0);
        ck_assert_int_eq(qcow2_create_overlay("missing.raw", "raw", path("a.qcow2"), 0, err, sizeof(err)), -ENOENT);
        ck_assert_int_eq(qcow2_create_overlay("base.raw", "qcow2", path("b.qcow2"), 0, err, sizeof(err)), -EIO);
        ck_assert_ptr_nonnull(strstr(err, "not a qcow2 file"));
        ck_assert_int_eq(qcow2_create_overlay("base.raw", "raw", path("c.qcow2"), UINT64_C(70) << 40, err,
                                              sizeof(err)), -EFBIG);
        ck_assert_int_eq(qcow2_create_overlay("base.raw", "vmdk", path("d.qcow2"), 0, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(qcow2_create_overlay("base.raw", "raw", path("link.qcow2"), 0, err, sizeof(err)), -ELOOP);
        char longname[1100];
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ck_assert_int_eq(qcow2_create_overlay(longname, "raw", path("e.qcow2"), 1 << 20, err, sizeof(err)),
                         -ENAMETOOLONG);
        /* Nothing is left behind by any of them. */
        ck_assert_int_eq(sh(NULL, 0, "test \"$(ls | tr '\\n' ' ')\" = 'base.raw link.qcow2 '"), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("qcow2");
        TCase *tc = tcase_create("overlay");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_over_raw_base);
        tcase_add_test(tc, test_over_qcow2_base_with_size);
        tcase_add_test(tc, test_large_disk);
        tcase_add_test(tc, test_refused);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
