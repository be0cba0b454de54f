/* SPDX-License-Identifier: Apache-2.0 */
/* Agent protocol frame reader (common/agent_proto.c). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "agent_proto.h"
#include "check_main.h"
#include "util.h"

/* Build header + payload (payload byte i = seed + i). Caller frees. */
static uint8_t *make_frame(uint16_t type, uint32_t len, uint8_t seed)
{
        uint8_t *f = malloc(SMOLVM_FRAME_HDR_SIZE + (size_t)len);
        ck_assert_ptr_nonnull(f);
        smolvm_frame_hdr_encode(type, len, f);
        for (uint32_t i = 0; i < len; i++)
                f[SMOLVM_FRAME_HDR_SIZE + i] = (uint8_t)(seed + i);
        return f;
}

static void check_payload(const uint8_t *p, uint32_t len, uint8_t seed)
{
        for (uint32_t i = 0; i < len; i++)
                ck_assert_uint_eq(p[i], (uint8_t)(seed + i));
}

START_TEST(test_hdr_encode)
{
        uint8_t h[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(SMOLVM_FRAME_STDOUT, 0x01020304u, h);
        ck_assert_uint_eq(get_le32(h), 0x01020304u);
        ck_assert_uint_eq(get_le16(h + 4), SMOLVM_FRAME_STDOUT);
        ck_assert_uint_eq(get_le16(h + 6), 0);
        ck_assert(smolvm_frame_type_known(SMOLVM_FRAME_RESULT));
        ck_assert(!smolvm_frame_type_known(0));
        ck_assert(smolvm_frame_type_known(SMOLVM_FRAME_RESIZE));
        ck_assert(!smolvm_frame_type_known(6));
        ck_assert(!smolvm_frame_type_known(22));
}
END_TEST

START_TEST(test_byte_by_byte)
{
        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, 4096), 0);
        uint32_t len = 300;
        _cleanup_free_ uint8_t *f = make_frame(SMOLVM_FRAME_STDIN, len, 7);
        uint16_t type;
        const uint8_t *p;
        uint32_t plen;
        for (size_t i = 0; i < SMOLVM_FRAME_HDR_SIZE + len; i++) {
                ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 0);
                ck_assert_uint_eq(smolvm_frame_reader_feed(&r, f + i, 1), 1);
        }
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 1);
        ck_assert_uint_eq(type, SMOLVM_FRAME_STDIN);
        ck_assert_uint_eq(plen, len);
        check_payload(p, plen, 7);
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 0);
        smolvm_frame_reader_done(&r);
}
END_TEST

START_TEST(test_truncated_then_nothing)
{
        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, 4096), 0);
        _cleanup_free_ uint8_t *f = make_frame(SMOLVM_FRAME_REQUEST, 10, 0);
        uint16_t type;
        const uint8_t *p;
        uint32_t plen;
        /* Header only partially, then header + part of the payload. */
        ck_assert_uint_eq(smolvm_frame_reader_feed(&r, f, 5), 5);
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 0);
        ck_assert_uint_eq(smolvm_frame_reader_feed(&r, f + 5, 8), 8);
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 0);
        ck_assert_uint_eq(smolvm_frame_reader_space(&r), 5);
        smolvm_frame_reader_done(&r);
}
END_TEST

START_TEST(test_oversized)
{
        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, 1000), 0);
        uint8_t h[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(SMOLVM_FRAME_STDIN, 1001, h);
        ck_assert_uint_eq(smolvm_frame_reader_feed(&r, h, sizeof(h)), sizeof(h));
        uint16_t type;
        const uint8_t *p;
        uint32_t plen;
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EMSGSIZE);
        /* Sticky, and the reader accepts nothing more (no growth). */
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EMSGSIZE);
        ck_assert_uint_eq(smolvm_frame_reader_space(&r), 0);
        ck_assert_uint_eq(smolvm_frame_reader_feed(&r, "xxxx", 4), 0);
        ck_assert_uint_le(r.cap, SMOLVM_FRAME_HDR_SIZE + 1000);
        smolvm_frame_reader_done(&r);

        /* 0xffffffff with the largest allowed max. */
        ck_assert_int_eq(smolvm_frame_reader_init(&r, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        smolvm_frame_hdr_encode(SMOLVM_FRAME_STDIN, 0xffffffffu, h);
        ck_assert_uint_eq(smolvm_frame_reader_feed(&r, h, sizeof(h)), sizeof(h));
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EMSGSIZE);
        smolvm_frame_reader_done(&r);

        /* A max above the protocol's is clamped. */
        ck_assert_int_eq(smolvm_frame_reader_init(&r, 0xffffffffu), 0);
        ck_assert_uint_eq(r.max_payload, SMOLVM_FRAME_MAX_PAYLOAD);
        smolvm_frame_hdr_encode(SMOLVM_FRAME_STDIN, SMOLVM_FRAME_MAX_PAYLOAD + 1, h);
        smolvm_frame_reader_feed(&r, h, sizeof(h));
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EMSGSIZE);
        smolvm_frame_reader_done(&r);
}
END_TEST

START_TEST(test_unknown_type)
{
        static const uint16_t bad[] = { 0, 6, 15, 22, 0xffff };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                smolvm_frame_reader r;
                ck_assert_int_eq(smolvm_frame_reader_init(&r, 4096), 0);
                uint8_t h[SMOLVM_FRAME_HDR_SIZE];
                smolvm_frame_hdr_encode(bad[i], 0, h);
                smolvm_frame_reader_feed(&r, h, sizeof(h));
                uint16_t type;
                const uint8_t *p;
                uint32_t plen;
                ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EPROTO);
                ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EPROTO);
                smolvm_frame_reader_done(&r);
        }
}
END_TEST

START_TEST(test_reserved_nonzero)
{
        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, 4096), 0);
        uint8_t h[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(SMOLVM_FRAME_STDOUT, 0, h);
        put_le16(h + 6, 1);
        smolvm_frame_reader_feed(&r, h, sizeof(h));
        uint16_t type;
        const uint8_t *p;
        uint32_t plen;
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), -EPROTO);
        smolvm_frame_reader_done(&r);
}
END_TEST

/* Three frames in one buffer, fed in odd-sized chunks that straddle frame
 * boundaries; feed() stops at each boundary until the frame is pulled. */
START_TEST(test_split_across_feeds)
{
        static const uint32_t lens[] = { 0, 70000, 13 };
        static const uint16_t types[] = { SMOLVM_FRAME_STDIN_EOF, SMOLVM_FRAME_STDOUT, SMOLVM_FRAME_EXIT };
        size_t total = 0;
        for (size_t i = 0; i < 3; i++)
                total += SMOLVM_FRAME_HDR_SIZE + lens[i];
        _cleanup_free_ uint8_t *stream = malloc(total);
        size_t off = 0;
        for (size_t i = 0; i < 3; i++) {
                _cleanup_free_ uint8_t *f = make_frame(types[i], lens[i], (uint8_t)(i * 40));
                memcpy(stream + off, f, SMOLVM_FRAME_HDR_SIZE + lens[i]);
                off += SMOLVM_FRAME_HDR_SIZE + lens[i];
        }

        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        size_t pos = 0, got = 0, chunk = 3;
        while (got < 3) {
                size_t n = MIN(chunk, total - pos);
                size_t used = smolvm_frame_reader_feed(&r, stream + pos, n);
                pos += used;
                uint16_t type;
                const uint8_t *p;
                uint32_t plen;
                int k;
                while ((k = smolvm_frame_reader_next(&r, &type, &p, &plen)) == 1) {
                        ck_assert_uint_eq(type, types[got]);
                        ck_assert_uint_eq(plen, lens[got]);
                        check_payload(p, plen, (uint8_t)(got * 40));
                        got++;
                }
                ck_assert_int_eq(k, 0);
                chunk = chunk * 3 + 1;
                if (chunk > 20000)
                        chunk = 7;
        }
        ck_assert_uint_eq(pos, total);
        smolvm_frame_reader_done(&r);
}
END_TEST

START_TEST(test_max_size_frame)
{
        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, SMOLVM_FRAME_MAX_PAYLOAD), 0);
        uint32_t len = SMOLVM_FRAME_MAX_PAYLOAD;
        _cleanup_free_ uint8_t *f = make_frame(SMOLVM_FRAME_RESULT, len, 99);
        size_t total = SMOLVM_FRAME_HDR_SIZE + len, pos = 0;
        /* Zero-copy path: tail/commit. */
        while (pos < total) {
                size_t space = smolvm_frame_reader_space(&r);
                ck_assert_uint_gt(space, 0);
                size_t n = MIN(space, MIN((size_t)65536, total - pos));
                memcpy(smolvm_frame_reader_tail(&r), f + pos, n);
                smolvm_frame_reader_commit(&r, n);
                pos += n;
        }
        ck_assert_uint_eq(smolvm_frame_reader_space(&r), 0);
        ck_assert_uint_le(r.cap, SMOLVM_FRAME_HDR_SIZE + SMOLVM_FRAME_MAX_PAYLOAD);
        uint16_t type;
        const uint8_t *p;
        uint32_t plen;
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 1);
        ck_assert_uint_eq(type, SMOLVM_FRAME_RESULT);
        ck_assert_uint_eq(plen, len);
        check_payload(p, plen, 99);
        smolvm_frame_reader_done(&r);
}
END_TEST

START_TEST(test_send_and_read)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(smolvm_frame_send(sv[0], SMOLVM_FRAME_STDERR, "hello", 5), 0);
        ck_assert_int_eq(smolvm_frame_send(sv[0], SMOLVM_FRAME_STDIN_EOF, NULL, 0), 0);
        safe_close(sv[0]);
        uint8_t buf[64];
        ssize_t n = read(sv[1], buf, sizeof(buf));
        ck_assert_int_eq(n, 2 * SMOLVM_FRAME_HDR_SIZE + 5);
        smolvm_frame_reader r;
        ck_assert_int_eq(smolvm_frame_reader_init(&r, 64), 0);
        size_t used = smolvm_frame_reader_feed(&r, buf, (size_t)n);
        ck_assert_uint_eq(used, SMOLVM_FRAME_HDR_SIZE + 5);
        uint16_t type;
        const uint8_t *p;
        uint32_t plen;
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 1);
        ck_assert_uint_eq(type, SMOLVM_FRAME_STDERR);
        ck_assert_mem_eq(p, "hello", 5);
        ck_assert_uint_eq(smolvm_frame_reader_feed(&r, buf + used, (size_t)n - used), SMOLVM_FRAME_HDR_SIZE);
        ck_assert_int_eq(smolvm_frame_reader_next(&r, &type, &p, &plen), 1);
        ck_assert_uint_eq(type, SMOLVM_FRAME_STDIN_EOF);
        ck_assert_uint_eq(plen, 0);
        smolvm_frame_reader_done(&r);
        safe_close(sv[1]);
}
END_TEST

static Suite *frame_suite(void)
{
        Suite *s = suite_create("frame");
        TCase *tc = tcase_create("reader");
        tcase_add_test(tc, test_hdr_encode);
        tcase_add_test(tc, test_byte_by_byte);
        tcase_add_test(tc, test_truncated_then_nothing);
        tcase_add_test(tc, test_oversized);
        tcase_add_test(tc, test_unknown_type);
        tcase_add_test(tc, test_reserved_nonzero);
        tcase_add_test(tc, test_split_across_feeds);
        tcase_add_test(tc, test_max_size_frame);
        tcase_add_test(tc, test_send_and_read);
        tcase_set_timeout(tc, 30);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(frame_suite());
}
