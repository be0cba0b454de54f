/* SPDX-License-Identifier: Apache-2.0 */
/* Validation of guest-supplied paths (host/lib/guest_path.c): what a hostile
 * guest's list_tree answer may name below the download destination. */
#include <string.h>

#include "check_main.h"
#include "guest_path.h"

static bool valid(const char *p)
{
        return guest_relpath_valid(p, strlen(p));
}

START_TEST(test_accepts_plain_relative)
{
        ck_assert(valid("a"));
        ck_assert(valid("a/b/c.txt"));
        ck_assert(valid(".hidden/..dots/x.."));
        ck_assert(valid("...")); /* a name, not a parent reference */
        ck_assert(valid("with space/ü"));
}
END_TEST

START_TEST(test_refuses_escapes)
{
        ck_assert(!valid(""));
        ck_assert(!valid("/etc/passwd"));
        ck_assert(!valid(".."));
        ck_assert(!valid("../x"));
        ck_assert(!valid("a/../../x"));
        ck_assert(!valid("a/.."));
        ck_assert(!valid("."));
        ck_assert(!valid("./a"));
        ck_assert(!valid("a/./b"));
        ck_assert(!valid("a//b"));
        ck_assert(!valid("a/"));
        ck_assert(!guest_relpath_valid(NULL, 0));
}
END_TEST

START_TEST(test_refuses_nul)
{
        /* JSON can carry \u0000: "a\0/../../etc" must not pass as "a". */
        static const char p[] = "a\0/../../etc";
        ck_assert(!guest_relpath_valid(p, sizeof(p) - 1));
        ck_assert(!guest_relpath_valid("ab\0", 3));
}
END_TEST

START_TEST(test_bounds)
{
        char name[300];
        memset(name, 'x', 255);
        name[255] = '\0';
        ck_assert(valid(name));
        memset(name, 'x', 256);
        name[256] = '\0';
        ck_assert(!valid(name));

        /* 257 components "a/a/.../a": one too deep. */
        char deep[GUEST_RELPATH_MAX_DEPTH * 2 + 3];
        size_t n = 0;
        for (unsigned i = 0; i < GUEST_RELPATH_MAX_DEPTH; i++) {
                deep[n++] = 'a';
                deep[n++] = '/';
        }
        deep[n - 1] = '\0';
        ck_assert(valid(deep));
        deep[n - 1] = '/';
        deep[n++] = 'a';
        deep[n] = '\0';
        ck_assert(!valid(deep));

        static char longp[GUEST_RELPATH_MAX + 2];
        for (size_t i = 0; i < sizeof(longp) - 1; i++)
                longp[i] = (i % 100 == 99) ? '/' : 'y';
        longp[sizeof(longp) - 1] = '\0';
        ck_assert(!valid(longp));
}
END_TEST

START_TEST(test_symlink_targets)
{
        ck_assert(guest_symlink_target_valid("/etc", 4));
        ck_assert(guest_symlink_target_valid("../../x", 7));
        ck_assert(!guest_symlink_target_valid("", 0));
        ck_assert(!guest_symlink_target_valid("a\0b", 3));
}
END_TEST

static Suite *guest_path_suite(void)
{
        Suite *s = suite_create("guest_path");
        TCase *tc = tcase_create("relpath");
        tcase_add_test(tc, test_accepts_plain_relative);
        tcase_add_test(tc, test_refuses_escapes);
        tcase_add_test(tc, test_refuses_nul);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_symlink_targets);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(guest_path_suite());
}
