/* SPDX-License-Identifier: Apache-2.0 */
/* `smolvm cp` argument parsing (host/cli/cp_spec.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "cp_spec.h"

START_TEST(test_spec_forms)
{
        cp_spec s;
        char err[256];
        ck_assert_int_eq(cp_spec_parse("dev:/root/x", &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "dev");
        ck_assert_str_eq(s.path, "/root/x");

        ck_assert_int_eq(cp_spec_parse("0123456789ab:/", &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "0123456789ab");
        ck_assert_str_eq(s.path, "/");

        ck_assert_int_eq(cp_spec_parse("my_vm.1-2:/a:b", &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "my_vm.1-2");
        ck_assert_str_eq(s.path, "/a:b");

        /* Host paths: no colon, a colon after a '/', an empty prefix. */
        ck_assert_int_eq(cp_spec_parse("./a:b", &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "");
        ck_assert_str_eq(s.path, "./a:b");
        ck_assert_int_eq(cp_spec_parse("/tmp/x", &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "");
        ck_assert_int_eq(cp_spec_parse(":/x", &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "");
        ck_assert_str_eq(s.path, ":/x");
}
END_TEST

START_TEST(test_spec_errors)
{
        cp_spec s;
        char err[256];
        ck_assert_int_eq(cp_spec_parse("dev:relative", &s, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "absolute"));
        ck_assert_int_eq(cp_spec_parse("dev:", &s, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(cp_spec_parse("", &s, err, sizeof(err)), -EINVAL);
        /* 64-character prefix: too long for a VM name, so a host path. */
        char longp[80];
        memset(longp, 'a', 64);
        strcpy(longp + 64, ":/x");
        ck_assert_int_eq(cp_spec_parse(longp, &s, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "");
}
END_TEST

START_TEST(test_args)
{
        cp_spec s, d;
        char err[256];
        ck_assert_int_eq(cp_args_parse("./f", "dev:/tmp/f", &s, &d, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "");
        ck_assert_str_eq(d.vm, "dev");
        ck_assert_int_eq(cp_args_parse("dev:/etc/hosts", "out", &s, &d, err, sizeof(err)), 0);
        ck_assert_str_eq(s.vm, "dev");
        ck_assert_str_eq(s.path, "/etc/hosts");
        ck_assert_int_eq(cp_args_parse("a:/x", "b:/y", &s, &d, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "one VM to another"));
        ck_assert_int_eq(cp_args_parse("x", "y", &s, &d, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "ID:/path"));
}
END_TEST

START_TEST(test_dest_path)
{
        char *p;
        p = cp_dest_path("/srv/app", "./app", false);
        ck_assert_str_eq(p, "/srv/app");
        free(p);
        p = cp_dest_path("/srv/", "./build/app", true);
        ck_assert_str_eq(p, "/srv/app");
        free(p);
        p = cp_dest_path("out", "/var/log/", true);
        ck_assert_str_eq(p, "out/log");
        free(p);
        ck_assert_ptr_null(cp_dest_path("out", "/", true));
        ck_assert_ptr_null(cp_dest_path("out", "a/..", true));
        ck_assert_ptr_null(cp_dest_path("out", ".", true));
        ck_assert(cp_ends_with_slash("/a/"));
        ck_assert(!cp_ends_with_slash("/a"));
        ck_assert(!cp_ends_with_slash(""));
}
END_TEST

START_TEST(test_parse_size)
{
        static const struct {
                const char *in;
                int r;
                uint64_t v;
        } cases[] = {
                { "4096", 0, 4096 },
                { "10M", 0, 10ull << 20 },
                { "2G", 0, 2ull << 30 },
                { "2g", 0, 2ull << 30 },
                { "512K", 0, 512ull << 10 },
                { "3GiB", 0, 3ull << 30 },
                { "1T", 0, 1ull << 40 },
                { "", -EINVAL, 0 },
                { "0", -EINVAL, 0 },
                { "M", -EINVAL, 0 },
                { "2X", -EINVAL, 0 },
                { "2MB", -EINVAL, 0 },
                { "2Mi", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { " 1", -EINVAL, 0 },
                { "1.5G", -EINVAL, 0 },
                { "99999999999999999999", -ERANGE, 0 },
                { "16777216T", -ERANGE, 0 },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t v = 7; /* untouched on failure */
                ck_assert_msg(cp_parse_size(cases[i].in, &v) == cases[i].r, "'%s'", cases[i].in);
                ck_assert_msg(v == (cases[i].r == 0 ? cases[i].v : 7), "'%s': %llu", cases[i].in,
                              (unsigned long long)v);
        }
}
END_TEST

static Suite *cp_suite(void)
{
        Suite *s = suite_create("cp_spec");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_spec_forms);
        tcase_add_test(tc, test_spec_errors);
        tcase_add_test(tc, test_args);
        tcase_add_test(tc, test_dest_path);
        tcase_add_test(tc, test_parse_size);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(cp_suite());
}
