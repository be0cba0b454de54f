/* SPDX-License-Identifier: Apache-2.0 */
/* A restore's IDENTITY payload (wire.h) as PID 1 parses it (guest-init/restore.c,
 * agent_identity_parse): the supervisor is trusted, but the bytes are checked
 * exactly, so a mismatch of versions fails cleanly instead of half-applying. */
#include <errno.h>
#include <string.h>

#include "check_main.h"
#include "init.h"
#include "util.h"
#include "wire.h"

#define OFF_NS 4
#define OFF_ENTROPY 12
#define OFF_MID (OFF_ENTROPY + SMOLVM_CHAN_IDENTITY_ENTROPY)
#define OFF_NAME (OFF_MID + 16)

static void good(uint8_t p[SMOLVM_CHAN_IDENTITY_LEN])
{
        memset(p, 0, SMOLVM_CHAN_IDENTITY_LEN);
        put_le64(p + OFF_NS, 1765000000123456789ull);
        for (unsigned i = 0; i < SMOLVM_CHAN_IDENTITY_ENTROPY; i++)
                p[OFF_ENTROPY + i] = (uint8_t)(0xa0 + i);
        for (unsigned i = 0; i < 16; i++)
                p[OFF_MID + i] = (uint8_t)(i * 17);
        memcpy(p + OFF_NAME, "smolvm-0123456789ab", 19);
}

START_TEST(test_parse_good)
{
        uint8_t p[SMOLVM_CHAN_IDENTITY_LEN];
        agent_identity id;
        good(p);
        ck_assert_int_eq(agent_identity_parse(p, sizeof(p), &id), 0);
        ck_assert_int_eq(id.realtime_ns, 1765000000123456789ll);
        ck_assert_mem_eq(id.entropy, p + OFF_ENTROPY, SMOLVM_CHAN_IDENTITY_ENTROPY);
        ck_assert_str_eq(id.machine_id, "00112233445566778899aabbccddeeff");
        ck_assert_str_eq(id.hostname, "smolvm-0123456789ab");
        ck_assert(agent_machine_id_valid(id.machine_id));
        /* All-zero machine-id: keep the guest's. */
        memset(p + OFF_MID, 0, 16);
        ck_assert_int_eq(agent_identity_parse(p, sizeof(p), &id), 0);
        ck_assert_str_eq(id.machine_id, "");
        /* A hostname filling the field has no NUL: still taken, terminated. */
        memset(p + OFF_NAME, 'a', SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX);
        ck_assert_int_eq(agent_identity_parse(p, sizeof(p), &id), 0);
        ck_assert_uint_eq(strlen(id.hostname), SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX);
}
END_TEST

START_TEST(test_parse_refused)
{
        uint8_t p[SMOLVM_CHAN_IDENTITY_LEN + 1];
        agent_identity id;
        good(p);
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN - 1, &id), -EBADMSG);
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN + 1, &id), -EBADMSG);
        ck_assert_int_eq(agent_identity_parse(p, 0, &id), -EBADMSG);
        good(p);
        put_le32(p, 1); /* flags this init does not know */
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN, &id), -EOPNOTSUPP);
        good(p);
        put_le64(p + OFF_NS, UINT64_MAX);
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN, &id), -ERANGE);
        good(p);
        p[OFF_NAME + 40] = 'x'; /* a byte after the hostname's NUL */
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN, &id), -EBADMSG);
        good(p);
        memcpy(p + OFF_NAME, "Evil/../name", 12);
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN, &id), -EINVAL);
        good(p);
        memset(p + OFF_NAME, 0, SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX); /* empty hostname */
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN, &id), -EINVAL);
        good(p);
        p[OFF_NAME + 3] = '\n';
        ck_assert_int_eq(agent_identity_parse(p, SMOLVM_CHAN_IDENTITY_LEN, &id), -EINVAL);
}
END_TEST

START_TEST(test_machine_id_valid)
{
        ck_assert(agent_machine_id_valid("0123456789abcdef0123456789abcdef"));
        ck_assert(!agent_machine_id_valid("00000000000000000000000000000000"));
        ck_assert(!agent_machine_id_valid("0123456789ABCDEF0123456789abcdef"));
        ck_assert(!agent_machine_id_valid("0123456789abcdef0123456789abcde"));
        ck_assert(!agent_machine_id_valid("0123456789abcdef0123456789abcdef0"));
        ck_assert(!agent_machine_id_valid(""));
}
END_TEST

static Suite *identity_suite(void)
{
        Suite *s = suite_create("guest_identity");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_good);
        tcase_add_test(tc, test_parse_refused);
        tcase_add_test(tc, test_machine_id_valid);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(identity_suite());
}
