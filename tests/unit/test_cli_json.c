/* SPDX-License-Identifier: Apache-2.0 */
/* The --json output text of run/exec (host/cli/cli_json_text.c): collected chunk by chunk
 * it is exactly what cli_json_string() makes of the whole output, and the cap
 * counts JSON text, never cutting an escape or a UTF-8 sequence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "cli_json_text.h"

/* cli_json_string() of the whole buffer, without the quotes. */
static char *one_shot(const unsigned char *p, size_t len, size_t *ret_len)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        ck_assert_ptr_nonnull(f);
        cli_json_string(f, (const char *)p, len);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_uint_ge(size, 2);
        *ret_len = size - 2;
        memmove(buf, buf + 1, size - 2);
        return buf;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
        rnd_state = rnd_state * 1103515245u + 12345u;
        return rnd_state >> 8;
}

/* Bytes that exercise every path: ASCII, escapes, control bytes, valid 2..4
 * byte sequences, and broken ones (lone leads, lone continuations, overlong,
 * surrogates). */
static size_t fill_mixed(unsigned char *p, size_t cap)
{
        static const char *const pieces[] = {
                "plain ascii ", "\"", "\\", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "\xc3\xa9",
                "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\x80", "\xbf",
                "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "\xfe",
        };
        size_t len = 0;
        while (len + 8 < cap) {
                const char *s = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
                size_t n = strlen(s);
                memcpy(p + len, s, n);
                len += n;
        }
        return len;
}

START_TEST(test_chunks_match_one_shot)
{
        static unsigned char in[200000];
        for (int round = 0; round < 50; round++) {
                size_t len = fill_mixed(in, 1000 + rnd() % (sizeof(in) - 1000));
                size_t want_len;
                char *want = one_shot(in, len, &want_len);
                cli_json_text t = { 0 };
                size_t off = 0;
                while (off < len) {
                        /* Mostly tiny chunks, so sequences get cut everywhere. */
                        size_t n = round % 2 ? 1 + rnd() % 5 : 1 + rnd() % 70000;
                        n = n > len - off ? len - off : n;
                        cli_json_text_add(&t, in + off, n, false);
                        off += n;
                }
                cli_json_text_add(&t, NULL, 0, true);
                ck_assert(!t.truncated);
                ck_assert_uint_eq(t.len, want_len);
                ck_assert(memcmp(t.buf, want, want_len) == 0);
                free(want);
                free(t.buf);
        }
}
END_TEST

/* An unfinished sequence at the very end becomes U+FFFD per byte, as in one go. */
START_TEST(test_unfinished_at_end)
{
        cli_json_text t = { 0 };
        cli_json_text_add(&t, "a\xe2\x82", 3, false);
        ck_assert_uint_eq(t.len, 1);
        ck_assert_uint_eq(t.part_len, 2);
        cli_json_text_add(&t, NULL, 0, true);
        ck_assert_uint_eq(t.len, 13);
        ck_assert(memcmp(t.buf, "a\\ufffd\\ufffd", 13) == 0);
        free(t.buf);
}
END_TEST

/* The cap counts JSON text: control bytes fill it six times as fast, and the
 * last escape that does not fit whole is left out. */
START_TEST(test_cap_counts_escapes)
{
        const size_t chunk = 65536;
        unsigned char *ones = malloc(chunk);
        ck_assert_ptr_nonnull(ones);
        memset(ones, 1, chunk);
        cli_json_text t = { 0 };
        size_t fed = 0;
        while (fed < CLI_JSON_OUTPUT_CAP / 6 + chunk) {
                cli_json_text_add(&t, ones, chunk, false);
                fed += chunk;
        }
        cli_json_text_add(&t, NULL, 0, true);
        ck_assert(t.truncated);
        ck_assert_uint_eq(t.len, CLI_JSON_OUTPUT_CAP / 6 * 6);
        ck_assert(memcmp(t.buf + t.len - 6, "\\u0001", 6) == 0);
        ck_assert_uint_le(t.cap, CLI_JSON_OUTPUT_CAP);
        free(t.buf);

        /* Plain text fills it exactly; one byte more sets truncated. */
        memset(ones, 'a', chunk);
        t = (cli_json_text){ 0 };
        for (fed = 0; fed < CLI_JSON_OUTPUT_CAP; fed += chunk)
                cli_json_text_add(&t, ones, chunk, false);
        ck_assert(!t.truncated);
        ck_assert_uint_eq(t.len, CLI_JSON_OUTPUT_CAP);
        cli_json_text_add(&t, "b", 1, false);
        ck_assert(t.truncated);
        ck_assert_uint_eq(t.len, CLI_JSON_OUTPUT_CAP);
        free(t.buf);
        free(ones);
}
END_TEST

/* A cap of the user's own (smolvm mcp --max-output): the same rules at that size,
 * never more memory than the cap. */
START_TEST(test_cap_of_its_own)
{
        cli_json_text t = { .max_len = 1024 };
        char a[700];
        memset(a, 'a', sizeof(a));
        cli_json_text_add(&t, a, sizeof(a), false);
        ck_assert(!t.truncated);
        cli_json_text_add(&t, "\xc3\xa9\n", 3, false);
        ck_assert_uint_eq(t.len, 700 + 2 + 2);
        cli_json_text_add(&t, a, sizeof(a), false);
        cli_json_text_add(&t, NULL, 0, true);
        ck_assert(t.truncated);
        ck_assert_uint_eq(t.len, 1024);
        ck_assert_uint_le(t.cap, 1024);
        free(t.buf);

        /* An escape that does not fit whole is left out. */
        t = (cli_json_text){ .max_len = 8 };
        cli_json_text_add(&t, "ab\x01\x02", 4, true);
        ck_assert(t.truncated);
        ck_assert_uint_eq(t.len, 8);
        ck_assert(memcmp(t.buf, "ab\\u0001", 8) == 0);
        free(t.buf);
}
END_TEST

static Suite *cli_json_suite(void)
{
        Suite *s = suite_create("cli_json");
        TCase *tc = tcase_create("text");
        tcase_add_test(tc, test_chunks_match_one_shot);
        tcase_add_test(tc, test_unfinished_at_end);
        tcase_add_test(tc, test_cap_counts_escapes);
        tcase_add_test(tc, test_cap_of_its_own);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(cli_json_suite());
}
