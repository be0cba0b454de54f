/* SPDX-License-Identifier: Apache-2.0 */
/* common/relay.c: the two-way socket relay of port forwards. Two socketpairs
 * (a client and a server end around the relay), driven with poll as the guest
 * handler drives it: bytes both ways intact, half-close passed through in each
 * direction separately, a full destination stops the reading (memory stays
 * bounded), a destination that is gone ends the relay with an error. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "relay.h"
#include "util.h"

/* client <-> [a | relay | b] <-> server */
static int client, a, b, server;
static smolvm_relay rl;

static void setup(void)
{
        int p[2], q[2];
        signal(SIGPIPE, SIG_IGN);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, q), 0);
        client = p[0];
        a = p[1];
        b = q[0];
        server = q[1];
        ck_assert_int_eq(fd_set_nonblock(a, true), 0);
        ck_assert_int_eq(fd_set_nonblock(b, true), 0);
        ck_assert_int_eq(smolvm_relay_init(&rl, a, b), 0);
}

static void teardown(void)
{
        smolvm_relay_done(&rl);
        smolvm_relay_done(&rl); /* idempotent */
        safe_close(client);
        safe_close(a);
        safe_close(b);
        safe_close(server);
}

/* Step the relay until it is quiet (nothing ready within 20 ms). Returns the
 * last step's result. */
static int pump(void)
{
        int r;
        for (;;) {
                r = smolvm_relay_step(&rl);
                if (r != 0)
                        return r;
                struct pollfd p[2];
                for (int i = 0; i < 2; i++)
                        p[i] = (struct pollfd){ .fd = rl.fd[i], .events = (short)smolvm_relay_events(&rl, i) };
                if (poll(p, 2, 20) == 0)
                        return 0;
        }
}

static size_t read_avail(int fd, char *buf, size_t size)
{
        size_t got = 0;
        for (;;) {
                ssize_t n = recv(fd, buf + got, size - got, MSG_DONTWAIT);
                if (n <= 0)
                        return got;
                got += (size_t)n;
        }
}

START_TEST(test_both_ways_and_half_close)
{
        char buf[64];
        ck_assert_int_eq(write(client, "ping", 4), 4);
        ck_assert_int_eq(pump(), 0);
        ck_assert_uint_eq(read_avail(server, buf, sizeof(buf)), 4);
        ck_assert_mem_eq(buf, "ping", 4);

        /* The client half-closes: the server reads EOF but may still answer. */
        ck_assert_int_eq(shutdown(client, SHUT_WR), 0);
        ck_assert_int_eq(pump(), 0);
        ck_assert_int_eq(read(server, buf, sizeof(buf)), 0);
        ck_assert_int_eq(write(server, "pong", 4), 4);
        ck_assert_int_eq(pump(), 0);
        ck_assert_uint_eq(read_avail(client, buf, sizeof(buf)), 4);
        ck_assert_mem_eq(buf, "pong", 4);

        /* Then the server's EOF ends the relay, and the client sees it. */
        ck_assert_int_eq(shutdown(server, SHUT_WR), 0);
        ck_assert_int_eq(pump(), 1);
        ck_assert_int_eq(read(client, buf, sizeof(buf)), 0);
        ck_assert_uint_eq(rl.dir[0].n_bytes, 4);
        ck_assert_uint_eq(rl.dir[1].n_bytes, 4);
}
END_TEST

START_TEST(test_backpressure_bounded)
{
        /* The server never reads: the relay fills b's socket buffer, then its own
         * buffer, then stops reading a, so the client's writes block (EAGAIN). */
        static char chunk[65536];
        size_t sent = 0;
        ck_assert_int_eq(fd_set_nonblock(client, true), 0);
        for (int round = 0; round < 64; round++) {
                for (;;) {
                        ssize_t n = send(client, chunk, sizeof(chunk), MSG_DONTWAIT);
                        if (n < 0) {
                                ck_assert_int_eq(errno, EAGAIN);
                                break;
                        }
                        sent += (size_t)n;
                }
                ck_assert_int_eq(pump(), 0);
        }
        /* It stopped: nothing more moves while the server does not read. */
        ck_assert_int_eq(send(client, chunk, 1, MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_uint_le(rl.dir[0].len, SMOLVM_RELAY_BUF);
        ck_assert_uint_eq(smolvm_relay_events(&rl, 0) & POLLIN, 0);
        /* Then everything arrives, in order and complete. */
        size_t got = 0;
        static char rbuf[65536];
        ck_assert_int_eq(shutdown(client, SHUT_WR), 0);
        for (int i = 0; i < 100000 && got < sent; i++) {
                got += read_avail(server, rbuf, sizeof(rbuf));
                (void)pump();
        }
        ck_assert_uint_eq(got, sent);
}
END_TEST

START_TEST(test_destination_gone)
{
        /* The server closes completely while the client still sends: the relay's
         * write fails and it ends with an error instead of buffering. */
        safe_close(server);
        server = -1;
        ck_assert_int_eq(write(client, "data", 4), 4);
        int r = pump();
        ck_assert(r == -EPIPE || r == -ECONNRESET);
}
END_TEST

static Suite *relay_suite(void)
{
        Suite *s = suite_create("relay");
        TCase *tc = tcase_create("relay");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_both_ways_and_half_close);
        tcase_add_test(tc, test_backpressure_bounded);
        tcase_add_test(tc, test_destination_gone);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(relay_suite());
}
