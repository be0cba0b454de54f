/* SPDX-License-Identifier: Apache-2.0 */
/* The lane's framing, window and epoch rules (common/lane.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "lane.h"
#include "lane_io.h"
#include "util.h"

#include <sys/socket.h>
#include <unistd.h>

#define FRAME_MAX (SMOLVM_LANE_FRAME_HDR + SMOLVM_LANE_MAX_PAYLOAD)

/* A DATA frame of len bytes (payload byte i = (off + i) * 7) from tx into buf. */
static size_t make_data(smolvm_lane_tx *tx, uint32_t len, uint8_t *buf)
{
        uint64_t off = tx->sent;
        smolvm_lane_tx_frame(tx, len, buf);
        for (uint32_t i = 0; i < len; i++)
                buf[SMOLVM_LANE_FRAME_HDR + i] = (uint8_t)((off + i) * 7);
        return SMOLVM_LANE_FRAME_HDR + len;
}

START_TEST(test_roundtrip)
{
        uint8_t buf[SMOLVM_LANE_FRAME_HDR + 4];
        smolvm_lane_hdr h = { .kind = SMOLVM_LANE_DATA, .len = 4, .epoch = 0x0102030405060708ull,
                              .off = 0x1112131415161718ull }, out;
        smolvm_lane_hdr_encode(&h, true, buf);
        ck_assert_int_eq(memcmp(buf, smolvm_lane_guest_mac, 6), 0);
        ck_assert_int_eq(memcmp(buf + 6, smolvm_lane_host_mac, 6), 0);
        ck_assert_uint_eq(buf[12], 0x88);
        ck_assert_uint_eq(buf[13], 0xb5);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, sizeof(buf), &out), 0);
        ck_assert_uint_eq(out.kind, SMOLVM_LANE_DATA);
        ck_assert_uint_eq(out.len, 4);
        ck_assert_uint_eq(out.epoch, h.epoch);
        ck_assert_uint_eq(out.off, h.off);
}
END_TEST

START_TEST(test_decode_rejects)
{
        static uint8_t buf[FRAME_MAX + 16];
        smolvm_lane_hdr out = { .kind = 0x55 };
        smolvm_lane_hdr h = { .kind = SMOLVM_LANE_DATA, .len = 100, .epoch = 1 };
        smolvm_lane_hdr_encode(&h, true, buf);
        size_t n = SMOLVM_LANE_FRAME_HDR + 100;
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, n, &out), 0);
        /* short, one byte missing, one byte too many */
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, SMOLVM_LANE_FRAME_HDR - 1, &out), -EPROTO);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, n - 1, &out), -EPROTO);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, n + 1, &out), -EPROTO);
        /* another ethertype, kind, version */
        buf[13] ^= 1;
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, n, &out), -EPROTO);
        buf[13] ^= 1;
        buf[SMOLVM_LANE_ETH_HDR] = 'X';
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, n, &out), -EPROTO);
        buf[SMOLVM_LANE_ETH_HDR] = SMOLVM_LANE_DATA;
        buf[SMOLVM_LANE_ETH_HDR + 1] = 2;
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, n, &out), -EPROTO);
        /* a length above the maximum, even with that many bytes there */
        h.len = SMOLVM_LANE_MAX_PAYLOAD + 1;
        smolvm_lane_hdr_encode(&h, true, buf);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, SMOLVM_LANE_FRAME_HDR + h.len, &out), -EPROTO);
        h.len = SMOLVM_LANE_MAX_PAYLOAD;
        smolvm_lane_hdr_encode(&h, true, buf);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, SMOLVM_LANE_FRAME_HDR + h.len, &out), 0);
        /* an ACK carries no payload; padded to Ethernet's 60 bytes it is fine */
        h = (smolvm_lane_hdr){ .kind = SMOLVM_LANE_ACK, .len = 8 };
        smolvm_lane_hdr_encode(&h, false, buf);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, SMOLVM_LANE_FRAME_HDR + 8, &out), -EPROTO);
        h.len = 0;
        smolvm_lane_hdr_encode(&h, false, buf);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, 60, &out), 0);
        ck_assert_uint_eq(out.kind, SMOLVM_LANE_ACK);
        ck_assert_int_eq(smolvm_lane_hdr_decode(buf, 61, &out), -EPROTO);
}
END_TEST

START_TEST(test_tx_window)
{
        smolvm_lane_tx tx = { 0 };
        ck_assert_uint_eq(smolvm_lane_tx_room(&tx), 0); /* no lane yet */
        smolvm_lane_tx_start(&tx, 42, 256 * 1024);
        static uint8_t buf[FRAME_MAX];
        size_t room, n_frames = 0;
        while ((room = smolvm_lane_tx_room(&tx)) > 0) {
                ck_assert_uint_le(room, SMOLVM_LANE_MAX_PAYLOAD);
                make_data(&tx, (uint32_t)room, buf);
                n_frames++;
        }
        ck_assert_uint_eq(tx.sent, 256 * 1024);
        ck_assert_uint_eq(n_frames, 5); /* 4 of 64976 and the rest */

        uint8_t ack[SMOLVM_LANE_FRAME_HDR];
        smolvm_lane_rx rx;
        /* an ACK of another epoch (stale, from before a restore) opens nothing */
        smolvm_lane_rx_init(&rx, 41, 256 * 1024);
        rx.next = 100000;
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        ck_assert_int_eq(smolvm_lane_tx_on_frame(&tx, ack, sizeof(ack)), 0);
        ck_assert_uint_eq(smolvm_lane_tx_room(&tx), 0);
        /* ours does, once */
        smolvm_lane_rx_init(&rx, 42, 256 * 1024);
        rx.next = 100000;
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        ck_assert_int_eq(smolvm_lane_tx_on_frame(&tx, ack, sizeof(ack)), 1);
        ck_assert_uint_eq(smolvm_lane_tx_room(&tx), SMOLVM_LANE_MAX_PAYLOAD);
        ck_assert_int_eq(smolvm_lane_tx_on_frame(&tx, ack, sizeof(ack)), 0);
        /* a lying guest: beyond what was sent, or going back */
        rx.next = tx.sent + 1;
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        ck_assert_int_eq(smolvm_lane_tx_on_frame(&tx, ack, sizeof(ack)), -EPROTO);
        rx.next = 99999;
        rx.acked = 0;
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        ck_assert_int_eq(smolvm_lane_tx_on_frame(&tx, ack, sizeof(ack)), -EPROTO);
        ck_assert_uint_eq(tx.acked, 100000);
        /* a DATA frame from the guest is no ACK */
        ck_assert_int_eq(smolvm_lane_tx_on_frame(&tx, buf, SMOLVM_LANE_FRAME_HDR + 10), -EPROTO);
}
END_TEST

START_TEST(test_tx_window_bounds)
{
        smolvm_lane_tx tx;
        smolvm_lane_tx_start(&tx, 1, 0);
        ck_assert_uint_eq(tx.window, SMOLVM_LANE_WINDOW_MIN);
        ck_assert_uint_eq(smolvm_lane_tx_room(&tx), SMOLVM_LANE_MAX_PAYLOAD);
        smolvm_lane_tx_start(&tx, 1, UINT32_MAX);
        ck_assert_uint_eq(tx.window, SMOLVM_LANE_WINDOW_MAX);
}
END_TEST

START_TEST(test_rx_sequence)
{
        smolvm_lane_tx tx;
        smolvm_lane_rx rx;
        smolvm_lane_tx_start(&tx, 7, 1 << 20);
        smolvm_lane_rx_init(&rx, 7, 1 << 20);
        static uint8_t f1[FRAME_MAX], f2[FRAME_MAX], f3[FRAME_MAX];
        size_t n1 = make_data(&tx, 1000, f1);
        size_t n2 = make_data(&tx, 2000, f2);
        size_t n3 = make_data(&tx, 3000, f3);
        const uint8_t *p = NULL;
        size_t len = 0;
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, f1, n1, &p, &len), 1);
        ck_assert_ptr_eq(p, f1 + SMOLVM_LANE_FRAME_HDR);
        ck_assert_uint_eq(len, 1000);
        /* f2 lost: f3 is a gap, the lane cannot go on */
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, f3, n3, &p, &len), -EPROTO);
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, f2, n2, &p, &len), 1);
        ck_assert_uint_eq(len, 2000);
        /* a repeat is a gap too (never taken twice) */
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, f2, n2, &p, &len), -EPROTO);
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, f3, n3, &p, &len), 1);
        ck_assert_uint_eq(rx.next, 6000);
        /* an ACK frame to the guest is not data */
        uint8_t ack[SMOLVM_LANE_FRAME_HDR];
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, ack, sizeof(ack), &p, &len), -EPROTO);
}
END_TEST

/* Across a restore: the device's ring still holds frames of the old lane;
 * the new lane (new epoch, offsets from 0 again) must take none of them. */
START_TEST(test_epoch_after_restore)
{
        smolvm_lane_tx old_tx, new_tx;
        smolvm_lane_rx rx;
        smolvm_lane_tx_start(&old_tx, 0xaaaa, 1 << 20);
        static uint8_t stale[FRAME_MAX], fresh[FRAME_MAX];
        size_t ns = make_data(&old_tx, 500, stale); /* offset 0, like the new lane's first */
        smolvm_lane_tx_start(&new_tx, 0xbbbb, 1 << 20);
        smolvm_lane_rx_init(&rx, 0xbbbb, 1 << 20);
        size_t nf = make_data(&new_tx, 700, fresh);
        const uint8_t *p = NULL;
        size_t len = 0;
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, stale, ns, &p, &len), 0);
        ck_assert_uint_eq(rx.next, 0);
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, fresh, nf, &p, &len), 1);
        ck_assert_uint_eq(len, 700);
        ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, stale, ns, &p, &len), 0);
        ck_assert_uint_eq(rx.next, 700);
}
END_TEST

/* Sender and receiver together, frames of odd sizes, the receiver taking
 * frames as it likes: the window is never exceeded, every byte arrives once
 * and in order, ACKs go every quarter window. */
START_TEST(test_end_to_end)
{
        const uint32_t window = 300000;
        const uint64_t total = 4u << 20;
        smolvm_lane_tx tx;
        smolvm_lane_rx rx;
        smolvm_lane_tx_start(&tx, 99, window);
        smolvm_lane_rx_init(&rx, 99, window);
        /* the "socket buffer": frames sent, not yet taken */
        enum { QMAX = 64 };
        static uint8_t q[QMAX][FRAME_MAX];
        size_t qlen[QMAX];
        size_t qh = 0, qn = 0, max_inflight = 0, n_acks = 0;
        uint64_t got = 0;
        unsigned seed = 1;
        while (got < total) {
                size_t room = smolvm_lane_tx_room(&tx);
                if (room > 0 && tx.sent < total && qn < QMAX) {
                        /* mostly large frames, sometimes tiny ones */
                        uint32_t len = rand_r(&seed) % 8 ? (uint32_t)(room / 2 + 1 + (size_t)rand_r(&seed) % (room / 2 + 1))
                                                     : (uint32_t)(1 + rand_r(&seed) % 16);
                        if (len > room)
                                len = (uint32_t)room;
                        if (len > total - tx.sent)
                                len = (uint32_t)(total - tx.sent);
                        qlen[(qh + qn) % QMAX] = make_data(&tx, len, q[(qh + qn) % QMAX]);
                        qn++;
                        if (tx.sent - tx.acked > max_inflight)
                                max_inflight = tx.sent - tx.acked;
                        if (rand_r(&seed) % 2)
                                continue;
                }
                ck_assert_uint_gt(qn, 0); /* never stuck: the window reopens */
                const uint8_t *p;
                size_t len;
                ck_assert_int_eq(smolvm_lane_rx_on_frame(&rx, q[qh], qlen[qh], &p, &len), 1);
                /* one assert per frame: Check reports every passing assert to its parent */
                size_t bad = len;
                for (size_t i = 0; i < len && bad == len; i++)
                        if (p[i] != (uint8_t)((got + i) * 7))
                                bad = i;
                ck_assert_uint_eq(bad, len);
                got += len;
                qh = (qh + 1) % QMAX;
                qn--;
                uint8_t ack[SMOLVM_LANE_FRAME_HDR];
                /* force once the queue is empty: a receiver with nothing left
                 * acknowledges what it holds (else a window < 4 acks stalls) */
                if (smolvm_lane_rx_ack(&rx, qn == 0, ack)) {
                        n_acks++;
                        ck_assert_int_ge(smolvm_lane_tx_on_frame(&tx, ack, sizeof(ack)), 0);
                }
        }
        ck_assert_uint_eq(got, total);
        ck_assert_uint_le(max_inflight, window);
        /* an ACK at least every quarter window plus one frame, the last forced */
        ck_assert_uint_ge(n_acks, total / (window / 4 + SMOLVM_LANE_MAX_PAYLOAD));
        ck_assert_uint_eq(rx.acked, total);
        ck_assert_uint_eq(tx.acked, total);
}
END_TEST

/* Write one frame as QEMU's -netdev stream does: 4-byte big-endian length. */
static void put_stream_frame(int fd, const uint8_t *frame, uint32_t len)
{
        uint8_t pfx[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };
        ck_assert_int_eq(write(fd, pfx, 4), 4);
        size_t off = 0;
        while (off < len) {
                ssize_t w = write(fd, frame + off, len - off);
                ck_assert_int_gt(w, 0);
                off += (size_t)w;
        }
}

/* Feed the host end until it has consumed everything or said no; returns
 * the OR of its positive results, or its first negative one. */
static int host_drain(smolvm_lane_host *h, int fd)
{
        int opened = 0;
        for (int i = 0; i < 10000; i++) {
                int r = smolvm_lane_host_on_readable(h);
                if (r < 0)
                        return r;
                opened |= r;
                uint8_t b;
                if (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0)
                        return opened; /* all consumed */
        }
        return -ELOOP;
}

/* What the guest sends on the lane's interface besides ACKs (IPv6 router
 * solicitations, ARP, a hostile guest's junk, a 60 KB frame) is dropped after
 * a bounded read, never taken as a lie that breaks the lane; the ACK after it
 * still opens the window. */
START_TEST(test_host_ignores_other_frames)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        int big = 1 << 20;
        (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        smolvm_lane_host *h;
        ck_assert_int_eq(smolvm_lane_host_new(sv[1], &h), 0);
        smolvm_lane_host_start(h, 7, SMOLVM_LANE_WINDOW_MIN);
        static uint8_t data[SMOLVM_LANE_MAX_PAYLOAD];
        struct iovec iov = { data, sizeof(data) };
        ck_assert_int_eq(smolvm_lane_host_send(h, &iov, 1), (int)sizeof(data));
        ck_assert_int_eq(smolvm_lane_host_send(h, &iov, 1), -EAGAIN); /* window full */

        static uint8_t junk[60000];
        memset(junk, 0x5a, sizeof(junk));
        junk[12] = 0x86, junk[13] = 0xdd; /* IPv6 */
        put_stream_frame(sv[0], junk, 90);
        put_stream_frame(sv[0], junk, sizeof(junk));
        junk[12] = 0x88, junk[13] = 0xb5; /* the lane's ethertype, but no lane header */
        put_stream_frame(sv[0], junk, 60);
        put_stream_frame(sv[0], junk, 0);
        smolvm_lane_rx rx;
        smolvm_lane_rx_init(&rx, 7, SMOLVM_LANE_WINDOW_MIN);
        rx.next = sizeof(data);
        uint8_t ack[SMOLVM_LANE_FRAME_HDR];
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        put_stream_frame(sv[0], ack, sizeof(ack));
        ck_assert_int_eq(host_drain(h, sv[1]), 1);
        ck_assert_uint_gt(smolvm_lane_host_send(h, &iov, 1), 0); /* the window opened */

        /* An ACK beyond what was sent is still a lie. */
        rx.next = 10u * sizeof(data);
        ck_assert(smolvm_lane_rx_ack(&rx, true, ack));
        put_stream_frame(sv[0], ack, sizeof(ack));
        ck_assert_int_eq(host_drain(h, sv[1]), -EPROTO);
        smolvm_lane_host_free(h);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("lane");
        TCase *tc = tcase_create("lane");
        tcase_add_test(tc, test_roundtrip);
        tcase_add_test(tc, test_decode_rejects);
        tcase_add_test(tc, test_tx_window);
        tcase_add_test(tc, test_tx_window_bounds);
        tcase_add_test(tc, test_rx_sequence);
        tcase_add_test(tc, test_epoch_after_restore);
        tcase_add_test(tc, test_end_to_end);
        tcase_add_test(tc, test_host_ignores_other_frames);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
