/* SPDX-License-Identifier: Apache-2.0 */
/* Channel-control packets besides HELLO (common/mux_control.c): what a restore's
 * IDENTITY and its ACK ride on. Two muxes on a socketpair, one evloop. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "check_main.h"
#include "evloop.h"
#include "mux.h"
#include "util.h"
#include "wire.h"

typedef struct pair {
        smolvm_evloop *loop;
        smolvm_mux *host, *guest;
        int hellos, controls;
        uint16_t op;
        uint8_t payload[512];
        uint32_t len;
} pair;

static void on_hello(void *userdata, const uint8_t *payload, uint32_t len)
{
        ((pair *)userdata)->hellos++;
}

static void on_control(void *userdata, uint16_t op, const uint8_t *payload, uint32_t len)
{
        pair *p = userdata;
        p->controls++;
        p->op = op;
        p->len = len;
        memcpy(p->payload, payload, MIN(len, (uint32_t)sizeof(p->payload)));
}

static const smolvm_mux_ops with_control = { .hello = on_hello, .control = on_control };
static const smolvm_mux_ops hello_only = { .hello = on_hello };

static pair *pair_new(const smolvm_mux_ops *guest_ops)
{
        pair *p = calloc(1, sizeof(*p));
        int c[2];
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(smolvm_evloop_new(&p->loop), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
        ck_assert_int_eq(smolvm_mux_new(p->loop, c[0], true, &with_control, p, NULL, 0, &p->host), 0);
        ck_assert_int_eq(smolvm_mux_new(p->loop, c[1], false, guest_ops, p, NULL, 0, &p->guest), 0);
        return p;
}

static void pair_free(pair *p)
{
        smolvm_mux_free(p->host);
        smolvm_mux_free(p->guest);
        smolvm_evloop_free(p->loop);
        free(p);
}

/* Run the loop until *counter reaches want (or 2 s pass). */
static void run_until_count(pair *p, const int *counter, int want)
{
        uint64_t end = now_ms() + 2000;
        while (*counter < want && now_ms() < end)
                ck_assert_int_ge(smolvm_evloop_run_once(p->loop, 20), 0);
}

START_TEST(test_control_delivered)
{
        pair *p = pair_new(&with_control);
        uint8_t id[SMOLVM_CHAN_IDENTITY_LEN];
        for (size_t i = 0; i < sizeof(id); i++)
                id[i] = (uint8_t)(i * 7);
        /* Sent from outside any callback, right after the mux starts: HELLO goes
         * first, then this, in order. */
        ck_assert_int_eq(smolvm_mux_send_control(p->host, SMOLVM_CHAN_OP_IDENTITY, id, sizeof(id)), 0);
        run_until_count(p, &p->controls, 1);
        run_until_count(p, &p->hellos, 2);
        ck_assert_int_eq(p->hellos, 2);
        ck_assert_int_eq(p->controls, 1);
        ck_assert_uint_eq(p->op, SMOLVM_CHAN_OP_IDENTITY);
        ck_assert_uint_eq(p->len, sizeof(id));
        ck_assert_mem_eq(p->payload, id, sizeof(id));
        /* The other way, an empty payload. */
        ck_assert_int_eq(smolvm_mux_send_control(p->guest, SMOLVM_CHAN_OP_IDENTITY_ACK, NULL, 0), 0);
        run_until_count(p, &p->controls, 2);
        ck_assert_int_eq(p->controls, 2);
        ck_assert_uint_eq(p->op, SMOLVM_CHAN_OP_IDENTITY_ACK);
        ck_assert_uint_eq(p->len, 0);
        pair_free(p);
}
END_TEST

START_TEST(test_control_without_callback_dropped)
{
        pair *p = pair_new(&hello_only);
        uint8_t b[4] = { 1, 2, 3, 4 };
        ck_assert_int_eq(smolvm_mux_send_control(p->host, SMOLVM_CHAN_OP_IDENTITY, b, sizeof(b)), 0);
        /* An op wire.h does not know is dropped by the decoder, framing intact. */
        ck_assert_int_eq(smolvm_mux_send_control(p->host, 0x77, b, sizeof(b)), 0);
        run_until_count(p, &p->hellos, 2);
        smolvm_mux_stats st;
        uint64_t end = now_ms() + 2000;
        do {
                ck_assert_int_ge(smolvm_evloop_run_once(p->loop, 20), 0);
                smolvm_mux_get_stats(p->guest, &st);
        } while (st.n_dropped < 2 && now_ms() < end);
        ck_assert_uint_eq(st.n_dropped, 2);
        ck_assert_int_eq(p->controls, 0);
        ck_assert(!smolvm_mux_is_broken(p->guest));
        pair_free(p);
}
END_TEST

START_TEST(test_control_bad_args)
{
        pair *p = pair_new(&with_control);
        ck_assert_int_eq(smolvm_mux_send_control(NULL, SMOLVM_CHAN_OP_IDENTITY, NULL, 0), -EINVAL);
        ck_assert_int_eq(smolvm_mux_send_control(p->host, SMOLVM_CHAN_OP_IDENTITY, NULL, 4), -EINVAL);
        ck_assert_int_eq(smolvm_mux_send_control(p->host, SMOLVM_CHAN_OP_IDENTITY, "x", SMOLVM_PKT_MAX_PAYLOAD + 1),
                         -EINVAL);
        pair_free(p);
}
END_TEST

static Suite *mux_control_suite(void)
{
        Suite *s = suite_create("mux_control");
        TCase *tc = tcase_create("control");
        tcase_add_test(tc, test_control_delivered);
        tcase_add_test(tc, test_control_without_callback_dropped);
        tcase_add_test(tc, test_control_bad_args);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(mux_control_suite());
}
