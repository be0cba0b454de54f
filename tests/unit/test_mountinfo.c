/* SPDX-License-Identifier: Apache-2.0 */
/* common/mountinfo.c: parsing /proc/self/mountinfo lines (what fuse_abort
 * and fuse_mount rely on to find a mount without touching it). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "mountinfo.h"

static int parse(const char *text, mountinfo_entry *e, char *mp, size_t mp_len)
{
        char line[1024];
        const char *p = NULL;
        snprintf(line, sizeof(line), "%s", text);
        int r = mountinfo_parse_line(line, e, &p);
        if (r == 0)
                snprintf(mp, mp_len, "%s", p);
        return r;
}

START_TEST(parse_lines)
{
        mountinfo_entry e;
        char mp[256];

        /* proc(5)'s example: one optional field. */
        ck_assert_int_eq(parse("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
                               &e, mp, sizeof(mp)),
                         0);
        ck_assert_int_eq(e.id, 36);
        ck_assert_uint_eq(e.major, 98);
        ck_assert_uint_eq(e.minor, 0);
        ck_assert_str_eq(mp, "/mnt2");
        ck_assert_str_eq(e.fstype, "ext3");

        /* No optional field; what our guest's virtio-fs mounts look like. */
        ck_assert_int_eq(parse("50 1 0:45 / /workspace ro,nosuid,nodev,relatime - virtiofs smolvm-fs-0 rw", &e, mp,
                               sizeof(mp)),
                         0);
        ck_assert_uint_eq(e.major, 0);
        ck_assert_uint_eq(e.minor, 45);
        ck_assert_str_eq(mp, "/workspace");
        ck_assert_str_eq(e.fstype, "virtiofs");

        /* Several optional fields; escapes in the mount point (space, tab,
         * newline, backslash); a malformed escape is kept as it is. */
        ck_assert_int_eq(parse("7 1 0:5 / /a\\040b\\011c\\012d\\134e\\9x rw shared:1 master:2 propagate_from:3 unbindable "
                               "- fuse.smolvm smolvm rw,user_id=0",
                               &e, mp, sizeof(mp)),
                         0);
        ck_assert_str_eq(mp, "/a b\tc\nd\\e\\9x");
        ck_assert_str_eq(e.fstype, "fuse.smolvm");

        /* Largest major/minor the kernel has (12/20 bits). */
        ck_assert_int_eq(parse("8 1 4095:1048575 / /big rw - fuseblk /dev/x rw", &e, mp, sizeof(mp)), 0);
        ck_assert_uint_eq(e.major, 4095);
        ck_assert_uint_eq(e.minor, 1048575);
}
END_TEST

START_TEST(parse_malformed)
{
        mountinfo_entry e = { .id = 99 };
        char mp[256];
        static const char *const bad[] = {
                "",
                "\n",
                "36 35 98:0 /mnt1",                                  /* too few fields */
                "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1",        /* no separator */
                "36 35 98:0 /mnt1 /mnt2 rw,noatime -",               /* no type */
                "x 35 98:0 / /m rw - ext4 /dev/x rw",                /* id not a number */
                "36 35 980 / /m rw - ext4 /dev/x rw",                /* no colon */
                "36 35 :0 / /m rw - ext4 /dev/x rw",
                "36 35 98: / /m rw - ext4 /dev/x rw",
                "36 35 -1:0 / /m rw - ext4 /dev/x rw",
                "36 35 4096:0 / /m rw - ext4 /dev/x rw",              /* major above 12 bits */
                "36 35 0:1048576 / /m rw - ext4 /dev/x rw",           /* minor above 20 bits */
                "36 35 0:99999999999999999999999 / /m rw - ext4 /dev/x rw",
                "36 35 0:1 / relative rw - ext4 /dev/x rw",          /* mount point not absolute */
                ("36 35 0:1 / /m rw - "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa /dev/x rw"), /* type too long */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(parse(bad[i], &e, mp, sizeof(mp)) == -EINVAL, "accepted: '%s'", bad[i]);
                ck_assert_int_eq(e.id, 99); /* untouched on failure */
        }
}
END_TEST

static FILE *table(const char *text)
{
        FILE *f = fmemopen((void *)text, strlen(text), "r");
        ck_assert_ptr_nonnull(f);
        return f;
}

START_TEST(find_topmost)
{
        static const char text[] = "1 0 254:0 / / rw - ext4 /dev/vda rw\n"
                                   "garbage that is no mountinfo line\n"
                                   "20 1 0:20 / /workspace rw - tmpfs tmpfs rw\n"
                                   "21 1 0:45 / /workspace ro - virtiofs smolvm-fs-0 rw\n"
                                   "22 1 0:46 / /workspace/sub ro - virtiofs smolvm-fs-1 rw\n"
                                   "23 1 0:47 / /work rw - tmpfs tmpfs rw\n";
        mountinfo_entry e;
        FILE *f = table(text);
        ck_assert_int_eq(mountinfo_find(f, "/workspace", &e), 0);
        fclose(f);
        ck_assert_int_eq(e.id, 21); /* stacked on 20 */
        ck_assert_str_eq(e.fstype, "virtiofs");
        ck_assert_uint_eq(mountinfo_fuse_conn_id(&e), 45);

        f = table(text);
        ck_assert_int_eq(mountinfo_find(f, "/", &e), 0);
        fclose(f);
        ck_assert_int_eq(e.id, 1);
        ck_assert_uint_eq(mountinfo_fuse_conn_id(&e), (254u << 20) | 0u);

        /* Exact paths only: no prefix, no trailing slash. */
        static const char *const absent[] = { "/worksp", "/workspace/", "/workspace/s", "/nope", "" };
        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
                f = table(text);
                e.id = 99;
                ck_assert_int_eq(mountinfo_find(f, absent[i], &e), -ENOENT);
                ck_assert_int_eq(e.id, 99);
                fclose(f);
        }
        f = table("");
        ck_assert_int_eq(mountinfo_find(f, "/", &e), -ENOENT);
        fclose(f);
}
END_TEST

/* Every well-formed line, in file order, mount points unescaped; the
 * callback's error stops the walk (what the image builder's umount_beneath
 * uses to find what a killed debootstrap left mounted). */
typedef struct seen {
        char mps[8][64];
        long ids[8];
        size_t n;
        size_t stop_after;
} seen;

static int collect(const mountinfo_entry *e, const char *mountpoint, void *ud)
{
        seen *s = ud;
        if (s->n == s->stop_after)
                return -ECANCELED;
        ck_assert_uint_lt(s->n, 8);
        snprintf(s->mps[s->n], sizeof(s->mps[0]), "%s", mountpoint);
        s->ids[s->n++] = e->id;
        return 0;
}

START_TEST(foreach_lines)
{
        static const char text[] = "1 0 254:0 / / rw - ext4 /dev/vda rw\n"
                                   "garbage that is no mountinfo line\n"
                                   "30 1 0:20 / /tmp/b\\040uild/root/proc rw - proc proc rw\n"
                                   "31 30 0:21 / /tmp/b\\040uild/root/sys rw shared:5 - sysfs sysfs rw\n"
                                   "32 1 0:22 / /other rw - tmpfs tmpfs rw";
        seen s = { .stop_after = 99 };
        FILE *f = table(text);
        ck_assert_int_eq(mountinfo_foreach(f, collect, &s), 0);
        fclose(f);
        ck_assert_uint_eq(s.n, 4);
        ck_assert_str_eq(s.mps[0], "/");
        ck_assert_str_eq(s.mps[1], "/tmp/b uild/root/proc");
        ck_assert_str_eq(s.mps[2], "/tmp/b uild/root/sys");
        ck_assert_int_eq(s.ids[2], 31);
        ck_assert_str_eq(s.mps[3], "/other"); /* last line without a newline */

        s = (seen){ .stop_after = 2 };
        f = table(text);
        ck_assert_int_eq(mountinfo_foreach(f, collect, &s), -ECANCELED);
        fclose(f);
        ck_assert_uint_eq(s.n, 2);

        s = (seen){ .stop_after = 99 };
        f = table("");
        ck_assert_int_eq(mountinfo_foreach(f, collect, &s), 0);
        fclose(f);
        ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(fuse_types)
{
        static const char *const yes[] = { "virtiofs", "fuse", "fuseblk", "fuse.smolvm", "fuse.sshfs", "fuseblk.ntfs" };
        static const char *const no[] = { "ext4", "tmpfs", "fusectl", "fuse.", "fuseblk.", "fusex", "virtiofs2", "" };
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                ck_assert_msg(mountinfo_is_fuse(yes[i]), "%s is FUSE", yes[i]);
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                ck_assert_msg(!mountinfo_is_fuse(no[i]), "%s is not FUSE", no[i]);
}
END_TEST

static Suite *mountinfo_suite(void)
{
        Suite *s = suite_create("mountinfo");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, parse_lines);
        tcase_add_test(tc, parse_malformed);
        tcase_add_test(tc, find_topmost);
        tcase_add_test(tc, foreach_lines);
        tcase_add_test(tc, fuse_types);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(mountinfo_suite());
}
