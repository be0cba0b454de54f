/* SPDX-License-Identifier: Apache-2.0 */
/* common/subid.c: the /etc/subuid and /etc/subgid ranges a non-root image
 * build needs (mmdebstrap --mode=unshare), as mmdebstrap reads them. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "unpriv.h"

START_TEST(find_by_name)
{
        subid_range r = { 0, 0 };
        const char *text = "alice:100000:65536\nbob:165536:65536\n";
        ck_assert_int_eq(subid_find(text, "bob", &r), 0);
        ck_assert_uint_eq(r.first, 165536);
        ck_assert_uint_eq(r.count, 65536);
        /* The first line for the user counts, as in mmdebstrap. */
        ck_assert_int_eq(subid_find("bob:1:2\nbob:3:4", "bob", &r), 0);
        ck_assert_uint_eq(r.first, 1);
        ck_assert_uint_eq(r.count, 2);
        /* No trailing newline; a prefix of a name is not the name. */
        ck_assert_int_eq(subid_find("bobby:5:6\nbob:7:8", "bob", &r), 0);
        ck_assert_uint_eq(r.first, 7);
}
END_TEST

START_TEST(not_found_and_malformed)
{
        subid_range r = { 11, 12 };
        ck_assert_int_eq(subid_find("", "bob", &r), -ENOENT);
        ck_assert_int_eq(subid_find("alice:100000:65536\n", "bob", &r), -ENOENT);
        /* A numeric uid is not matched (mmdebstrap matches names only). */
        ck_assert_int_eq(subid_find("1001:100000:65536\n", "bob", &r), -ENOENT);
        /* Lines that do not parse are passed over, never half-taken. */
        ck_assert_int_eq(subid_find("bob:x:65536\nbob:1\nbob::5\nbob:1:\nbob:99999999999999999999:1\nbob:-1:2\n",
                                    "bob", &r),
                         -ENOENT);
        ck_assert_uint_eq(r.first, 11); /* untouched on failure */
        ck_assert_int_eq(subid_find("bob:1:2:3\nbob:4:5\n", "bob", &r), 0);
        ck_assert_uint_eq(r.first, 4);
        /* A line without a newline at the very end, an empty user. */
        ck_assert_int_eq(subid_find(":1:2\n", "", &r), 0);
        ck_assert_uint_eq(r.count, 2);
}
END_TEST

START_TEST(from_file)
{
        char path[] = "/tmp/test_unpriv.XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        const char *text = "root:100000:65536\nsmolvm:200000:65536\n";
        ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
        close(fd);
        subid_range r;
        ck_assert_int_eq(subid_file_find(path, "smolvm", &r), 0);
        ck_assert_uint_eq(r.first, 200000);
        ck_assert_int_eq(subid_file_find(path, "nobody-here", &r), -ENOENT);
        unlink(path);
        ck_assert_int_eq(subid_file_find(path, "smolvm", &r), -ENOENT);

        /* A file past the bound is refused, not read whole. */
        char big[] = "/tmp/test_unpriv.XXXXXX";
        fd = mkstemp(big);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, SUBID_FILE_MAX_BYTES + 1), 0);
        close(fd);
        ck_assert_int_eq(subid_file_find(big, "smolvm", &r), -EFBIG);
        unlink(big);
}
END_TEST

static Suite *unpriv_suite(void)
{
        Suite *s = suite_create("unpriv");
        TCase *tc = tcase_create("subid");
        tcase_add_test(tc, find_by_name);
        tcase_add_test(tc, not_found_and_malformed);
        tcase_add_test(tc, from_file);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(unpriv_suite());
}
