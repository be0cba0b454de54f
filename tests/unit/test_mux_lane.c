/* SPDX-License-Identifier: Apache-2.0 */
/* The mux's switch to the lane (common/mux_lane.c, lane_io.c): a host mux and
 * a guest mux joined by a socketpair (the channel) and by a lane made of what
 * QEMU does for `-netdev stream` (a length-prefixed stream socket on the host
 * side, datagrams on the guest's interface): a pump in this process. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "lane_io.h"
#include "mux.h"
#include "util.h"
#include "wire.h"

#define PORT 4000u
#define EPOCH 0x5eed5eedull

typedef struct world world;

/* A byte stream end: writes total bytes of pattern then shuts, or reads and
 * checks them until EOF. */
typedef struct end {
        world *w;
        int fd;
        bool writer;
        uint64_t total, done;
        bool eof, bad;
} end;

struct world {
        smolvm_evloop *loop;
        smolvm_mux *host, *guest;
        int chan[2];
        int hq, pq;        /* host lane fd, the pump's stream end */
        int pd, gd;        /* the pump's datagram end, the guest's lane fd */
        uint8_t pump[1 << 20];
        size_t pump_len;
        smolvm_lane_host *lh;
        smolvm_lane_guest lg;
        uint32_t window;
        uint64_t lane_req_epoch;
        bool host_broken, guest_broken;
        const char *guest_why;
        end src, dst;
        uint32_t host_events;
};

static uint8_t pat(uint64_t i)
{
        return (uint8_t)(i * 131 + (i >> 9));
}

static void end_io(void *userdata, int fd, uint32_t events)
{
        (void)events;
        end *e = userdata;
        uint8_t buf[65536];
        if (e->writer) {
                while (e->done < e->total) {
                        size_t n = e->total - e->done < sizeof(buf) ? (size_t)(e->total - e->done) : sizeof(buf);
                        for (size_t i = 0; i < n; i++)
                                buf[i] = pat(e->done + i);
                        ssize_t w = write(fd, buf, n);
                        if (w <= 0)
                                return;
                        e->done += (uint64_t)w;
                }
                (void)shutdown(fd, SHUT_WR);
                (void)smolvm_evloop_del(e->w->loop, fd);
                return;
        }
        for (;;) {
                ssize_t r = read(fd, buf, sizeof(buf));
                if (r < 0)
                        return;
                if (r == 0) {
                        e->eof = true;
                        (void)smolvm_evloop_del(e->w->loop, fd);
                        return;
                }
                for (ssize_t i = 0; i < r; i++)
                        if (buf[i] != pat(e->done + (uint64_t)i))
                                e->bad = true;
                e->done += (uint64_t)r;
        }
}

/* The pump: frames from the host's stream become datagrams to the guest, and
 * the guest's datagrams become frames on the stream. */
static void pump_io(void *userdata, int fd, uint32_t events)
{
        (void)fd;
        (void)events;
        world *w = userdata;
        ssize_t r = recv(w->pq, w->pump + w->pump_len, sizeof(w->pump) - w->pump_len, MSG_DONTWAIT);
        if (r > 0)
                w->pump_len += (size_t)r;
        size_t off = 0;
        while (w->pump_len - off >= 4) {
                const uint8_t *p = w->pump + off;
                uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
                ck_assert_uint_le(n, SMOLVM_LANE_FRAME_HDR + SMOLVM_LANE_MAX_PAYLOAD);
                if (w->pump_len - off - 4 < n)
                        break;
                if (send(w->pd, p + 4, n, MSG_DONTWAIT) < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        break;
                }
                off += 4 + n;
        }
        memmove(w->pump, w->pump + off, w->pump_len - off);
        w->pump_len -= off;
        uint8_t d[256];
        while ((r = recv(w->pd, d + 4, sizeof(d) - 4, MSG_DONTWAIT)) > 0) {
                d[0] = d[1] = 0;
                d[2] = (uint8_t)(r >> 8);
                d[3] = (uint8_t)r;
                ck_assert_int_eq(send(w->pq, d, 4 + (size_t)r, MSG_DONTWAIT), 4 + r);
        }
}

static void host_lane_io(void *userdata, int fd, uint32_t events)
{
        (void)fd;
        world *w = userdata;
        int r = 0;
        if (events & EPOLLOUT)
                r = smolvm_lane_host_on_writable(w->lh);
        if (r >= 0 && (events & EPOLLIN)) {
                int a = smolvm_lane_host_on_readable(w->lh);
                r = a < 0 ? a : (r | a);
        }
        ck_assert_int_ge(r, 0);
        if (r > 0)
                smolvm_mux_lane_kick(w->host);
}

static void on_lane_req(void *userdata, uint64_t epoch, uint32_t window)
{
        world *w = userdata;
        w->lane_req_epoch = epoch;
        smolvm_lane_host_start(w->lh, epoch, window);
        smolvm_mux_lane lane = { .send = smolvm_lane_host_send, .fd = -1, .userdata = w->lh };
        ck_assert_int_eq(smolvm_mux_lane_start(w->host, epoch, &lane), 0);
}

static int on_accept(void *userdata, uint32_t local_port, uint32_t peer_port)
{
        (void)peer_port;
        world *w = userdata;
        ck_assert_uint_eq(local_port, PORT);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        w->dst = (end){ .w = w, .fd = sv[1] };
        ck_assert_int_eq(smolvm_evloop_add(w->loop, sv[1], EPOLLIN, end_io, &w->dst), 0);
        return sv[0];
}

static void on_broken_host(void *userdata, int err, const char *why)
{
        (void)err;
        (void)why;
        ((world *)userdata)->host_broken = true;
}

static void on_broken_guest(void *userdata, int err, const char *why)
{
        (void)err;
        world *w = userdata;
        w->guest_broken = true;
        w->guest_why = why;
}

static const smolvm_mux_ops host_ops = { .broken = on_broken_host, .lane_req = on_lane_req };
static const smolvm_mux_ops guest_ops = { .accept = on_accept, .broken = on_broken_guest };

static world *world_new(uint32_t window)
{
        world *w = calloc(1, sizeof(*w));
        ck_assert_ptr_nonnull(w);
        w->window = window;
        ck_assert_int_eq(smolvm_evloop_new(&w->loop), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->chan), 0);
        int q[2], d[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, q), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, d), 0);
        w->hq = q[0];
        w->pq = q[1];
        w->pd = d[0];
        w->gd = d[1];
        ck_assert_int_eq(smolvm_lane_host_new(w->hq, &w->lh), 0);
        w->lg.fd = w->gd;
        smolvm_lane_rx_init(&w->lg.rx, EPOCH, window);
        ck_assert_int_eq(smolvm_evloop_add(w->loop, w->pq, EPOLLIN, pump_io, w), 0);
        ck_assert_int_eq(smolvm_evloop_add(w->loop, w->pd, EPOLLIN, pump_io, w), 0);
        w->host_events = EPOLLIN;
        ck_assert_int_eq(smolvm_evloop_add(w->loop, w->hq, EPOLLIN, host_lane_io, w), 0);
        ck_assert_int_eq(smolvm_mux_new(w->loop, w->chan[0], true, &host_ops, w, NULL, 0, &w->host), 0);
        ck_assert_int_eq(smolvm_mux_new(w->loop, w->chan[1], false, &guest_ops, w, NULL, 0, &w->guest), 0);
        return w;
}

static void world_free(world *w)
{
        smolvm_mux_free(w->host);
        smolvm_mux_free(w->guest);
        smolvm_lane_host_free(w->lh);
        close(w->hq);
        close(w->pq);
        close(w->pd);
        close(w->gd);
        smolvm_evloop_free(w->loop);
        free(w);
}

/* One loop turn, then the host lane's EPOLLOUT as its state says (the
 * supervisor's duty does the same after each turn). */
static void turn(world *w)
{
        ck_assert_int_ge(smolvm_evloop_run_once(w->loop, 20), 0);
        uint32_t ev = EPOLLIN | (smolvm_lane_host_blocked(w->lh) ? EPOLLOUT : 0);
        if (ev != w->host_events) {
                ck_assert_int_eq(smolvm_evloop_mod(w->loop, w->hq, ev), 0);
                w->host_events = ev;
        }
}

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        (void)local_port;
        ck_assert_int_eq(err, 0);
        end *e = userdata;
        ck_assert_int_eq(smolvm_evloop_add(e->w->loop, e->fd, EPOLLOUT, end_io, e), 0);
}

/* A host -> guest stream of total bytes; switch to the lane after
 * switch_after bytes reached the guest (0: before the stream starts). */
static void transfer(world *w, uint64_t total, uint64_t switch_after)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        w->src = (end){ .w = w, .fd = sv[1], .writer = true, .total = total };
        bool asked = false;
        if (switch_after == 0) {
                smolvm_mux_lane lane = { .recv = smolvm_lane_guest_recv, .fd = w->gd, .userdata = &w->lg };
                ck_assert_int_eq(smolvm_mux_lane_request(w->guest, EPOCH, w->window, &lane), 0);
                asked = true;
                for (int i = 0; i < 500 && !smolvm_mux_lane_active(w->host); i++)
                        turn(w);
                ck_assert(smolvm_mux_lane_active(w->host));
        }
        ck_assert_int_eq(smolvm_mux_connect(w->host, PORT, sv[0], connect_cb, &w->src), 0);
        for (int i = 0; i < 20000 && !w->dst.eof && !w->guest_broken && !w->host_broken; i++) {
                turn(w);
                if (!asked && w->dst.done >= switch_after) {
                        smolvm_mux_lane lane = { .recv = smolvm_lane_guest_recv, .fd = w->gd, .userdata = &w->lg };
                        ck_assert_int_eq(smolvm_mux_lane_request(w->guest, EPOCH, w->window, &lane), 0);
                        asked = true;
                }
        }
        ck_assert(!w->guest_broken);
        ck_assert(!w->host_broken);
        ck_assert(w->dst.eof);
        ck_assert(!w->dst.bad);
        ck_assert_uint_eq(w->dst.done, total);
        close(w->dst.fd);
        close(w->src.fd);
}

/* Everything after the switch rides the lane, the window holds, bytes intact. */
START_TEST(test_lane_carries_all)
{
        world *w = world_new(256 * 1024);
        transfer(w, 8u << 20, 0);
        ck_assert_uint_eq(w->lane_req_epoch, EPOCH);
        ck_assert(smolvm_mux_lane_active(w->guest));
        /* 8 MiB of payload plus the mux's headers went as lane frames */
        ck_assert_uint_ge(w->lg.rx.next, 8u << 20);
        world_free(w);
}
END_TEST

/* The switch in the middle of a stream: what went on the channel before
 * LANE_ON and what comes on the lane after it join in order. */
START_TEST(test_switch_mid_stream)
{
        world *w = world_new(1 << 20);
        transfer(w, 6u << 20, 1u << 20);
        ck_assert(smolvm_mux_lane_active(w->guest));
        ck_assert_uint_gt(w->lg.rx.next, 0);
        ck_assert_uint_lt(w->lg.rx.next, 6u << 20); /* the first MiB was not on the lane */
        world_free(w);
}
END_TEST

/* Frames of another epoch (in the device's ring across a restore) are dropped. */
START_TEST(test_stale_frames_dropped)
{
        world *w = world_new(256 * 1024);
        smolvm_lane_tx old;
        smolvm_lane_tx_start(&old, EPOCH + 1, 1 << 20);
        uint8_t f[SMOLVM_LANE_FRAME_HDR + 100];
        memset(f, 0xee, sizeof(f));
        smolvm_lane_tx_frame(&old, 100, f);
        ck_assert_int_eq(send(w->pd, f, sizeof(f), 0), (ssize_t)sizeof(f));
        ck_assert_int_eq(send(w->pd, f, sizeof(f), 0), (ssize_t)sizeof(f));
        transfer(w, 1u << 20, 0);
        ck_assert_uint_eq(w->lg.n_stale, 2);
        world_free(w);
}
END_TEST

/* After LANE_ON the host's channel fd must stay silent: a byte there breaks it. */
START_TEST(test_bytes_on_channel_after_switch)
{
        world *w = world_new(256 * 1024);
        transfer(w, 1u << 16, 0);
        ck_assert_int_eq(write(w->chan[0], "x", 1), 1);
        for (int i = 0; i < 100 && !w->guest_broken; i++)
                turn(w);
        ck_assert(w->guest_broken);
        ck_assert_str_eq(w->guest_why, "bytes on the channel after LANE_ON");
        world_free(w);
}
END_TEST

/* A LANE_ON of an epoch the guest did not ask for breaks the channel (its
 * bytes would go where the guest does not read). */
START_TEST(test_lane_on_wrong_epoch)
{
        world *w = world_new(256 * 1024);
        smolvm_mux_lane glane = { .recv = smolvm_lane_guest_recv, .fd = w->gd, .userdata = &w->lg };
        ck_assert_int_eq(smolvm_mux_lane_request(w->guest, EPOCH, w->window, &glane), 0);
        ck_assert_int_eq(smolvm_mux_lane_request(w->guest, EPOCH, w->window, &glane), -EALREADY);
        /* the host starts on its own, with another epoch (before the request arrives) */
        smolvm_lane_host_start(w->lh, EPOCH + 7, w->window);
        smolvm_mux_lane hlane = { .send = smolvm_lane_host_send, .fd = -1, .userdata = w->lh };
        ck_assert_int_eq(smolvm_mux_lane_start(w->host, EPOCH + 7, &hlane), 0);
        for (int i = 0; i < 100 && !w->guest_broken; i++)
                turn(w);
        ck_assert(w->guest_broken);
        ck_assert_str_eq(w->guest_why, "LANE_ON for a lane we did not ask for");
        world_free(w);
}
END_TEST

/* The host never takes a LANE_ON (the guest's to receive): it drops one and
 * parses on, whatever follows it in the same read. */
START_TEST(test_host_drops_lane_on)
{
        world *w = world_new(256 * 1024);
        for (int i = 0; i < 5; i++)
                turn(w);
        uint8_t buf[2 * (SMOLVM_PKT_HDR_SIZE + 8)] = { 0 };
        smolvm_pkt_hdr h = { .src_cid = SMOLVM_CID_GUEST, .dst_cid = SMOLVM_CID_HOST,
                             .type = SMOLVM_PKT_TYPE_CHANNEL, .op = SMOLVM_CHAN_OP_LANE_ON, .len = 8 };
        smolvm_pkt_hdr_encode(&h, buf);
        h.op = SMOLVM_CHAN_OP_HELLO;
        smolvm_pkt_hdr_encode(&h, buf + SMOLVM_PKT_HDR_SIZE + 8);
        ck_assert_int_eq(write(w->chan[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
        for (int i = 0; i < 20; i++)
                turn(w);
        ck_assert(!w->host_broken);
        transfer(w, 1u << 16, 0);
        world_free(w);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("mux_lane");
        TCase *tc = tcase_create("mux_lane");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_lane_carries_all);
        tcase_add_test(tc, test_switch_mid_stream);
        tcase_add_test(tc, test_stale_frames_dropped);
        tcase_add_test(tc, test_bytes_on_channel_after_switch);
        tcase_add_test(tc, test_lane_on_wrong_epoch);
        tcase_add_test(tc, test_host_drops_lane_on);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
