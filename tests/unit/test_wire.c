/* SPDX-License-Identifier: Apache-2.0 */
/* Channel packet header codec (common/wire.c). */
#include <errno.h>
#include <string.h>

#include "check_main.h"
#include "util.h"
#include "wire.h"

static smolvm_pkt_hdr sample(void)
{
        return (smolvm_pkt_hdr){
                .src_cid = 0x0102030405060708ull,
                .dst_cid = 0x1112131415161718ull,
                .src_port = 0x21222324u,
                .dst_port = 0x31323334u,
                .len = 1234,
                .type = SMOLVM_PKT_TYPE_STREAM,
                .op = SMOLVM_OP_RW,
                .flags = 0x41424344u,
                .buf_alloc = 0x51525354u,
                .fwd_cnt = 0x61626364u,
        };
}

START_TEST(test_roundtrip)
{
        smolvm_pkt_hdr h = sample(), out;
        uint8_t buf[SMOLVM_PKT_HDR_SIZE];
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
        ck_assert_uint_eq(out.src_cid, h.src_cid);
        ck_assert_uint_eq(out.dst_cid, h.dst_cid);
        ck_assert_uint_eq(out.src_port, h.src_port);
        ck_assert_uint_eq(out.dst_port, h.dst_port);
        ck_assert_uint_eq(out.len, h.len);
        ck_assert_uint_eq(out.type, h.type);
        ck_assert_uint_eq(out.op, h.op);
        ck_assert_uint_eq(out.flags, h.flags);
        ck_assert_uint_eq(out.buf_alloc, h.buf_alloc);
        ck_assert_uint_eq(out.fwd_cnt, h.fwd_cnt);
}
END_TEST

/* The layout is virtio_vsock_hdr's, little-endian: check a few offsets by hand. */
START_TEST(test_layout)
{
        smolvm_pkt_hdr h = sample();
        uint8_t buf[SMOLVM_PKT_HDR_SIZE];
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_uint_eq(buf[0], 0x08);
        ck_assert_uint_eq(buf[7], 0x01);
        ck_assert_uint_eq(buf[8], 0x18);
        ck_assert_uint_eq(buf[16], 0x24);
        ck_assert_uint_eq(buf[20], 0x34);
        ck_assert_uint_eq(get_le32(buf + 24), 1234);
        ck_assert_uint_eq(get_le16(buf + 28), SMOLVM_PKT_TYPE_STREAM);
        ck_assert_uint_eq(get_le16(buf + 30), SMOLVM_OP_RW);
        ck_assert_uint_eq(buf[32], 0x44);
        ck_assert_uint_eq(buf[36], 0x54);
        ck_assert_uint_eq(buf[43], 0x61);
}
END_TEST

START_TEST(test_all_ops)
{
        for (uint16_t op = SMOLVM_OP_REQUEST; op <= SMOLVM_OP_CREDIT_REQUEST; op++) {
                smolvm_pkt_hdr h = sample(), out;
                uint8_t buf[SMOLVM_PKT_HDR_SIZE];
                h.op = op;
                smolvm_pkt_hdr_encode(&h, buf);
                ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
                ck_assert_uint_eq(out.op, op);
                ck_assert_str_ne(smolvm_pkt_op_name(op), "UNKNOWN");
        }
        ck_assert_str_eq(smolvm_pkt_op_name(SMOLVM_OP_CREDIT_REQUEST), "CREDIT_REQUEST");
        ck_assert_str_eq(smolvm_pkt_op_name(8), "UNKNOWN");
        ck_assert_str_eq(smolvm_pkt_op_name(0xffff), "UNKNOWN");
}
END_TEST

START_TEST(test_max_len_ok)
{
        smolvm_pkt_hdr h = sample(), out;
        uint8_t buf[SMOLVM_PKT_HDR_SIZE];
        h.len = SMOLVM_PKT_MAX_PAYLOAD;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
        ck_assert_uint_eq(out.len, SMOLVM_PKT_MAX_PAYLOAD);
}
END_TEST

START_TEST(test_oversize)
{
        static const uint32_t lens[] = { SMOLVM_PKT_MAX_PAYLOAD + 1, 0x7fffffffu, 0xffffffffu };
        for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
                smolvm_pkt_hdr h = sample(), out = { .len = 77 };
                uint8_t buf[SMOLVM_PKT_HDR_SIZE];
                h.len = lens[i];
                smolvm_pkt_hdr_encode(&h, buf);
                ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), -EMSGSIZE);
                ck_assert_uint_eq(out.len, 77); /* untouched */
        }
        /* Oversize wins over an unknown type: framing is what matters. */
        smolvm_pkt_hdr h = sample(), out;
        uint8_t buf[SMOLVM_PKT_HDR_SIZE];
        h.len = SMOLVM_PKT_MAX_PAYLOAD + 1;
        h.type = 99;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), -EMSGSIZE);
}
END_TEST

START_TEST(test_unknown_type_op)
{
        struct {
                uint16_t type, op;
        } bad[] = {
                { SMOLVM_PKT_TYPE_STREAM, SMOLVM_OP_INVALID },
                { SMOLVM_PKT_TYPE_STREAM, 8 },
                { SMOLVM_PKT_TYPE_STREAM, 0xffff },
                { 0, SMOLVM_OP_RW },
                { 2, SMOLVM_OP_RW },
                { SMOLVM_PKT_TYPE_CHANNEL, 0 },
                { SMOLVM_PKT_TYPE_CHANNEL, SMOLVM_CHAN_OP_LANE_ON + 1 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                smolvm_pkt_hdr h = sample(), out;
                uint8_t buf[SMOLVM_PKT_HDR_SIZE];
                h.type = bad[i].type;
                h.op = bad[i].op;
                h.len = 100;
                smolvm_pkt_hdr_encode(&h, buf);
                ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), -EPROTO);
                /* Filled in so the caller can skip the payload. */
                ck_assert_uint_eq(out.len, 100);
                ck_assert_uint_eq(out.op, bad[i].op);
        }
        smolvm_pkt_hdr h = sample(), out;
        uint8_t buf[SMOLVM_PKT_HDR_SIZE];
        h.type = SMOLVM_PKT_TYPE_CHANNEL;
        h.op = SMOLVM_CHAN_OP_HELLO;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
        /* A restore's identity and its answer (wire.h). */
        h.op = SMOLVM_CHAN_OP_IDENTITY;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
        h.op = SMOLVM_CHAN_OP_IDENTITY_ACK;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
        h.op = SMOLVM_CHAN_OP_LANE_REQ;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
        h.op = SMOLVM_CHAN_OP_LANE_ON;
        smolvm_pkt_hdr_encode(&h, buf);
        ck_assert_int_eq(smolvm_pkt_hdr_decode(buf, &out), 0);
}
END_TEST

static Suite *wire_suite(void)
{
        Suite *s = suite_create("wire");
        TCase *tc = tcase_create("codec");
        tcase_add_test(tc, test_roundtrip);
        tcase_add_test(tc, test_layout);
        tcase_add_test(tc, test_all_ops);
        tcase_add_test(tc, test_max_len_ok);
        tcase_add_test(tc, test_oversize);
        tcase_add_test(tc, test_unknown_type_op);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(wire_suite());
}
