/* SPDX-License-Identifier: Apache-2.0 */
/* The egress rules (common/egress_policy.c): patterns, verdicts, which
 * addresses count as public, and net.json's parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "egress_policy.h"

START_TEST(test_patterns)
{
        ck_assert(egress_pattern_valid("example.org"));
        ck_assert(egress_pattern_valid("*.example.org"));
        ck_assert(egress_pattern_valid("example.org:443"));
        ck_assert(egress_pattern_valid("10.1.2.3:80"));
        ck_assert(egress_pattern_valid("2001:db8::1"));
        ck_assert(egress_pattern_valid("[2001:db8::1]:443"));
        ck_assert(!egress_pattern_valid(""));
        ck_assert(!egress_pattern_valid("bad pattern!"));
        ck_assert(!egress_pattern_valid("example.org:0"));
        ck_assert(!egress_pattern_valid("example.org:65536"));
        ck_assert(!egress_pattern_valid("example.org:"));
        ck_assert(!egress_pattern_valid("a..b"));
        ck_assert(!egress_pattern_valid("*."));

        ck_assert(egress_pattern_match("example.org", "example.org", 443));
        ck_assert(egress_pattern_match("example.org", "example.org", 0));
        ck_assert(!egress_pattern_match("example.org", "www.example.org", 443));
        ck_assert(egress_pattern_match("*.example.org", "www.example.org", 443));
        ck_assert(egress_pattern_match("*.example.org", "a.b.example.org", 443));
        ck_assert(!egress_pattern_match("*.example.org", "example.org", 443));
        ck_assert(!egress_pattern_match("*.example.org", "badexample.org", 443));
        ck_assert(egress_pattern_match("example.org:443", "example.org", 443));
        ck_assert(!egress_pattern_match("example.org:443", "example.org", 80));
        ck_assert(egress_pattern_match("example.org:443", "example.org", 0)); /* DNS: any port */
        ck_assert(egress_pattern_match("[2001:db8::1]:443", "2001:db8::1", 443));

        ck_assert(egress_pattern_same_host("example.org:443", "example.org"));
        ck_assert(!egress_pattern_same_host("example.org", "*.example.org"));
}
END_TEST

START_TEST(test_verdicts)
{
        egress_policy p = { 0 };
        char *allow[] = { "web.test:8000", "*.corp.test" }, *deny[] = { "secret.corp.test", "web.test:9000" };
        memcpy(p.allow, allow, sizeof(allow));
        p.n_allow = 2;
        memcpy(p.deny, deny, sizeof(deny));
        p.n_deny = 2;
        ck_assert(egress_allowed(&p, "web.test", 8000));
        ck_assert(!egress_allowed(&p, "web.test", 8001));
        ck_assert(egress_allowed(&p, "web.test", 0)); /* DNS: allowed on some port; a deny with a port keeps it */
        ck_assert(egress_allowed(&p, "a.corp.test", 22));
        ck_assert(!egress_allowed(&p, "secret.corp.test", 22));
        ck_assert(!egress_allowed(&p, "secret.corp.test", 0));
        ck_assert(!egress_allowed(&p, "other.test", 80));
        ck_assert(!egress_allowed(&p, "1.2.3.4", 80));
        p.open = true;
        ck_assert(egress_allowed(&p, "other.test", 80));
        ck_assert(!egress_allowed(&p, "secret.corp.test", 80));
        ck_assert(!egress_allowed(&p, "web.test", 9000));
        ck_assert(!egress_explicit(&p, "other.test", 80));
        ck_assert(egress_explicit(&p, "web.test", 8000));
}
END_TEST

static bool pub(const char *a)
{
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, a, &in->sin_addr) == 1)
                in->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1)
                in6->sin6_family = AF_INET6;
        else
                ck_abort_msg("bad address %s", a);
        return egress_addr_public((struct sockaddr *)&ss);
}

START_TEST(test_public)
{
        static const char *const refused[] = { "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.5", "192.168.1.1",
                                               "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                                               "255.255.255.255", "198.18.1.0", "198.19.255.255", "::1", "::",
                                               "fe80::1", "fc00::1", "fd12::1", "::ffff:127.0.0.1",
                                               "::ffff:169.254.169.254", "ff02::1" };
        for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++)
                ck_assert_msg(!pub(refused[i]), "%s counted as public", refused[i]);
        ck_assert(pub("93.184.216.34"));
        ck_assert(pub("8.8.8.8"));
        ck_assert(pub("2606:2800:220:1::1"));
        ck_assert(pub("::ffff:8.8.8.8"));
}
END_TEST

static int load_text(const char *text, egress_policy *p, char *err, size_t err_len)
{
        char path[] = "/tmp/test_egress_policy.XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        int r = egress_policy_load(path, p, err, err_len);
        unlink(path);
        return r;
}

START_TEST(test_load)
{
        egress_policy p;
        char err[512];
        ck_assert_int_eq(load_text("{\"mode\": \"open\", \"allow\": [\"a.test\"], \"deny\": [\"*.b.test\"], "
                                   "\"hosts\": {\"a.test\": \"127.0.0.1\", \"c.test\": \"::1\"}}",
                                   &p, err, sizeof(err)),
                         0);
        ck_assert(p.open);
        ck_assert_uint_eq(p.n_allow, 1);
        ck_assert_uint_eq(p.n_deny, 1);
        ck_assert_uint_eq(p.n_pins, 2);
        const egress_pin *pin = egress_pin_find(&p, "c.test");
        ck_assert_ptr_nonnull(pin);
        ck_assert_int_eq(pin->addr.ss_family, AF_INET6);
        ck_assert_ptr_null(egress_pin_find(&p, "d.test"));
        egress_policy_done(&p);

        static const char *const bad[] = {
                "[]", "{\"allow\": [\"bad pattern!\"]}", "{\"allow\": \"a.test\"}",
                "{\"hosts\": {\"a.test\": \"not-an-ip\"}}", "{\"hosts\": {\"Bad Name\": \"1.2.3.4\"}}", "{",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                err[0] = '\0';
                ck_assert_int_eq(load_text(bad[i], &p, err, sizeof(err)), -EINVAL);
                ck_assert_msg(err[0] != '\0', "no message for %s", bad[i]);
        }
}
END_TEST

static Suite *egress_suite(void)
{
        Suite *s = suite_create("egress_policy");
        TCase *tc = tcase_create("rules");
        tcase_add_test(tc, test_patterns);
        tcase_add_test(tc, test_verdicts);
        tcase_add_test(tc, test_public);
        tcase_add_test(tc, test_load);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(egress_suite());
}
