/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user back-end (common/vhost_user.c) over a socketpair: a good bring-up
 * starts and stops queues; malformed messages end in the broken state with the
 * callback called once, never a crash. The virtio-fs device on top of it:
 * test_virtiofs.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/eventfd.h>

#include "vu_test_front.h"

#define RAM_SIZE (1u << 20)

static void cb_start(void *u, unsigned q) { fixture *f = u; f->n_start++; f->last_q = q; }
static void cb_stop(void *u, unsigned q) { fixture *f = u; f->n_stop++; f->last_q = q; }
static void cb_broken(void *u, int err, const char *why) { fixture *f = u; f->n_broken++; f->last_err = err; }

static void setup(void)
{
        fx = calloc(1, sizeof(*fx));
        ck_assert_int_eq(smolvm_evloop_new(&fx->loop), 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        fx->peer = sv[1];
        smolvm_vu_ops ops = {
                .features = (1ull << SMOLVM_VIRTIO_F_VERSION_1) | (1ull << SMOLVM_VIRTIO_F_EVENT_IDX),
                .protocol_features = (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_MQ) |
                                     (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ull << 12),
                .n_queues = 2,
                .queue_start = cb_start,
                .queue_stop = cb_stop,
                .broken = cb_broken,
        };
        ck_assert_int_eq(smolvm_vu_dev_new(fx->loop, sv[0], &ops, fx, &fx->dev), 0);
}

static void teardown(void)
{
        smolvm_vu_dev_free(fx->dev);
        smolvm_evloop_free(fx->loop);
        safe_close(fx->peer);
        free(fx);
}

/* Read a reply; returns its u64 payload (or the state's num for 8-byte replies). */
static uint64_t recv_reply(uint32_t req, uint32_t size)
{
        pump();
        uint8_t buf[64];
        struct pollfd p = { .fd = fx->peer, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 1000), 1);
        ck_assert_int_eq(read(fx->peer, buf, 12 + size), (ssize_t)(12 + size));
        ck_assert_uint_eq(get_le32(buf), req);
        ck_assert_uint_eq(get_le32(buf + 4), SMOLVM_VHOST_USER_VERSION | SMOLVM_VHOST_USER_REPLY_MASK);
        ck_assert_uint_eq(get_le32(buf + 8), size);
        return get_le64(buf + 12);
}

static void assert_broken(int err)
{
        pump();
        ck_assert(smolvm_vu_dev_is_broken(fx->dev));
        ck_assert_ptr_nonnull(smolvm_vu_dev_broken_reason(fx->dev));
        ck_assert_int_eq(fx->n_broken, 1);
        if (err)
                ck_assert_int_eq(fx->last_err, err);
        /* Further input is ignored; the callback is not called again. */
        uint8_t junk[12] = { 0 };
        (void)!send(fx->peer, junk, sizeof(junk), MSG_NOSIGNAL | MSG_DONTWAIT);
        pump();
        ck_assert_int_eq(fx->n_broken, 1);
}

START_TEST(test_bring_up)
{
        send_msg(SMOLVM_VHOST_USER_GET_FEATURES, 1, NULL, 0, NULL, 0);
        uint64_t f = recv_reply(SMOLVM_VHOST_USER_GET_FEATURES, 8);
        ck_assert(f & (1ull << SMOLVM_VHOST_USER_F_PROTOCOL_FEATURES));
        ck_assert(f & (1ull << SMOLVM_VIRTIO_F_VERSION_1));
        send_msg(SMOLVM_VHOST_USER_GET_PROTOCOL_FEATURES, 1, NULL, 0, NULL, 0);
        uint64_t pf = recv_reply(SMOLVM_VHOST_USER_GET_PROTOCOL_FEATURES, 8);
        /* Bit 12 was asked for by the device but is not implemented by the core. */
        ck_assert_uint_eq(pf, (1u << SMOLVM_VHOST_USER_PROTOCOL_F_MQ) | (1u << SMOLVM_VHOST_USER_PROTOCOL_F_REPLY_ACK));
        send_u64(SMOLVM_VHOST_USER_SET_PROTOCOL_FEATURES, 1, pf, NULL, 0);
        send_msg(SMOLVM_VHOST_USER_GET_QUEUE_NUM, 1, NULL, 0, NULL, 0);
        ck_assert_uint_eq(recv_reply(SMOLVM_VHOST_USER_GET_QUEUE_NUM, 8), 2);
        send_msg(SMOLVM_VHOST_USER_SET_OWNER, 1 | SMOLVM_VHOST_USER_NEED_REPLY_MASK, NULL, 0, NULL, 0);
        ck_assert_uint_eq(recv_reply(SMOLVM_VHOST_USER_SET_OWNER, 8), 0);
        send_u64(SMOLVM_VHOST_USER_SET_FEATURES, 1, f, NULL, 0);

        int mfd = make_memfd(RAM_SIZE + 0x1000);
        send_mem_table(mfd, RAM_SIZE, 0x1000);
        safe_close(mfd);
        send_state(SMOLVM_VHOST_USER_SET_VRING_NUM, 1, 64);
        uint8_t a[40] = { 0 };
        put_le32(a, 1);
        put_le64(a + 8, 0x40000000ull);            /* desc */
        put_le64(a + 16, 0x40000000ull + 0x2000);  /* used */
        put_le64(a + 24, 0x40000000ull + 0x1000);  /* avail */
        send_msg(SMOLVM_VHOST_USER_SET_VRING_ADDR, 1, a, sizeof(a), NULL, 0);
        send_state(SMOLVM_VHOST_USER_SET_VRING_BASE, 1, 5);
        int kfd = eventfd(0, EFD_CLOEXEC), cfd = eventfd(0, EFD_CLOEXEC);
        send_u64(SMOLVM_VHOST_USER_SET_VRING_CALL, 1, 1, &cfd, 1);
        send_u64(SMOLVM_VHOST_USER_SET_VRING_KICK, 1, 1, &kfd, 1);
        pump();
        /* PROTOCOL_FEATURES negotiated: the ring starts disabled. */
        ck_assert_int_eq(fx->n_start, 0);
        send_state(SMOLVM_VHOST_USER_SET_VRING_ENABLE, 1, 1);
        pump();
        ck_assert_int_eq(fx->n_start, 1);
        ck_assert_uint_eq(fx->last_q, 1);
        smolvm_vq *vq = smolvm_vu_queue_vq(fx->dev, 1);
        ck_assert(!vq->broken);
        ck_assert_uint_eq(vq->num, 64);
        ck_assert_uint_eq(vq->last_avail_idx, 5);
        ck_assert_int_ge(smolvm_vu_queue_kick_fd(fx->dev, 1), 0);
        /* The device made progress: GET_VRING_BASE stops the ring and reports it. */
        vq->last_avail_idx = 9;
        send_state(SMOLVM_VHOST_USER_GET_VRING_BASE, 1, 0);
        uint64_t st = recv_reply(SMOLVM_VHOST_USER_GET_VRING_BASE, 8);
        ck_assert_uint_eq(st & 0xffffffffu, 1);
        ck_assert_uint_eq(st >> 32, 9);
        ck_assert_int_eq(fx->n_stop, 1);
        ck_assert_int_lt(smolvm_vu_queue_kick_fd(fx->dev, 1), 0);
        ck_assert(!smolvm_vu_dev_is_broken(fx->dev));
        ck_assert_int_eq(fx->n_broken, 0);
        safe_close(kfd);
        safe_close(cfd);

        /* Orderly close by the front-end. */
        fx->peer = safe_close(fx->peer);
        assert_broken(-ECONNRESET);
}
END_TEST

START_TEST(test_short_header)
{
        uint8_t half[6] = { 1, 0, 0, 0, 1, 0 };
        send_raw(half, sizeof(half), NULL, 0);
        pump();
        ck_assert(!smolvm_vu_dev_is_broken(fx->dev));   /* may still arrive */
        fx->peer = safe_close(fx->peer);
        assert_broken(-ECONNRESET);
}
END_TEST

START_TEST(test_payload_too_large)
{
        uint8_t h[12];
        put_le32(h, SMOLVM_VHOST_USER_SET_MEM_TABLE);
        put_le32(h + 4, 1);
        put_le32(h + 8, SMOLVM_VHOST_USER_MAX_PAYLOAD + 1);
        send_raw(h, sizeof(h), NULL, 0);
        assert_broken(-EMSGSIZE);
}
END_TEST

START_TEST(test_huge_size)
{
        uint8_t h[12];
        put_le32(h, SMOLVM_VHOST_USER_GET_FEATURES);
        put_le32(h + 4, 1);
        put_le32(h + 8, 0xffffffffu);
        send_raw(h, sizeof(h), NULL, 0);
        assert_broken(-EMSGSIZE);
}
END_TEST

START_TEST(test_unknown_request)
{
        send_msg(99, 1, NULL, 0, NULL, 0);
        assert_broken(-EOPNOTSUPP);
}
END_TEST

START_TEST(test_bad_version)
{
        send_msg(SMOLVM_VHOST_USER_GET_FEATURES, 2, NULL, 0, NULL, 0);
        assert_broken(-EPROTO);
}
END_TEST

START_TEST(test_reply_flag_in_request)
{
        send_msg(SMOLVM_VHOST_USER_GET_FEATURES, 1 | SMOLVM_VHOST_USER_REPLY_MASK, NULL, 0, NULL, 0);
        assert_broken(-EPROTO);
}
END_TEST

START_TEST(test_wrong_size_for_request)
{
        uint8_t p[4] = { 0 };
        send_msg(SMOLVM_VHOST_USER_SET_FEATURES, 1, p, sizeof(p), NULL, 0);
        assert_broken(-EBADMSG);
}
END_TEST

START_TEST(test_feature_not_offered)
{
        send_u64(SMOLVM_VHOST_USER_SET_FEATURES, 1, 1ull << 40, NULL, 0);
        assert_broken(-EINVAL);
}
END_TEST

START_TEST(test_fd_with_wrong_request)
{
        int efd = eventfd(0, EFD_CLOEXEC);
        send_msg(SMOLVM_VHOST_USER_GET_FEATURES, 1, NULL, 0, &efd, 1);
        safe_close(efd);
        assert_broken(-EBADMSG);
}
END_TEST

START_TEST(test_too_many_fds)
{
        int fds[10];
        for (int i = 0; i < 10; i++)
                fds[i] = eventfd(0, EFD_CLOEXEC);
        send_u64(SMOLVM_VHOST_USER_SET_VRING_CALL, 1, 0, fds, 10);
        for (int i = 0; i < 10; i++)
                safe_close(fds[i]);
        assert_broken(-EBADMSG);
}
END_TEST

START_TEST(test_mem_table_too_many_regions)
{
        uint8_t p[8 + 32 * 9];
        memset(p, 0, sizeof(p));
        put_le32(p, 9);
        int fds[8];
        for (int i = 0; i < 8; i++)
                fds[i] = make_memfd(4096);
        /* 9 regions do not even fit the payload maximum. */
        send_msg(SMOLVM_VHOST_USER_SET_MEM_TABLE, 1, p, 8 + 32 * 8, fds, 8);
        for (int i = 0; i < 8; i++)
                safe_close(fds[i]);
        assert_broken(-E2BIG);
}
END_TEST

START_TEST(test_mem_table_fd_count)
{
        uint8_t p[8 + 32];
        memset(p, 0, sizeof(p));
        put_le32(p, 1);
        put_le64(p + 16, 4096);
        send_msg(SMOLVM_VHOST_USER_SET_MEM_TABLE, 1, p, sizeof(p), NULL, 0);
        assert_broken(-EBADMSG);
}
END_TEST

START_TEST(test_mem_table_size_mismatch)
{
        uint8_t p[8 + 32];
        memset(p, 0, sizeof(p));
        put_le32(p, 2);
        int fd = make_memfd(4096);
        send_msg(SMOLVM_VHOST_USER_SET_MEM_TABLE, 1, p, sizeof(p), &fd, 1);
        safe_close(fd);
        assert_broken(-EBADMSG);
}
END_TEST

START_TEST(test_mem_table_pipe_fd)
{
        int pfd[2];
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        send_mem_table(pfd[0], 4096, 0);
        safe_close(pfd[0]);
        safe_close(pfd[1]);
        assert_broken(-EINVAL);
}
END_TEST

START_TEST(test_mem_table_past_eof)
{
        int fd = make_memfd(8192);
        send_mem_table(fd, 8192, 4096);   /* offset + size > file size */
        safe_close(fd);
        assert_broken(-EINVAL);
}
END_TEST

START_TEST(test_mem_table_offset_overflow)
{
        int fd = make_memfd(8192);
        send_mem_table(fd, 4096, UINT64_MAX - 100);
        safe_close(fd);
        assert_broken(-EINVAL);
}
END_TEST

START_TEST(test_mem_table_overlap)
{
        uint8_t p[8 + 64];
        memset(p, 0, sizeof(p));
        put_le32(p, 2);
        for (int i = 0; i < 2; i++) {
                uint8_t *r = p + 8 + 32 * i;
                put_le64(r, 0x1000u * (unsigned)i);   /* GPA 0 and 0x1000 */
                put_le64(r + 8, 0x2000);              /* each 8 KiB: they overlap */
                put_le64(r + 16, 0x10000u * (unsigned)i);
        }
        int fds[2] = { make_memfd(0x2000), make_memfd(0x2000) };
        send_msg(SMOLVM_VHOST_USER_SET_MEM_TABLE, 1, p, sizeof(p), fds, 2);
        safe_close(fds[0]);
        safe_close(fds[1]);
        assert_broken(-EINVAL);
}
END_TEST

START_TEST(test_bad_queue_index)
{
        send_state(SMOLVM_VHOST_USER_SET_VRING_NUM, 7, 64);
        assert_broken(-ERANGE);
}
END_TEST

START_TEST(test_bad_queue_size)
{
        send_state(SMOLVM_VHOST_USER_SET_VRING_NUM, 0, 100);
        assert_broken(-EINVAL);
}
END_TEST

START_TEST(test_kick_without_fd)
{
        send_u64(SMOLVM_VHOST_USER_SET_VRING_KICK, 1, 0, NULL, 0);
        assert_broken(-EBADMSG);
}
END_TEST

START_TEST(test_ring_outside_memory)
{
        int mfd = make_memfd(RAM_SIZE);
        send_mem_table(mfd, RAM_SIZE, 0);
        safe_close(mfd);
        send_u64(SMOLVM_VHOST_USER_SET_FEATURES, 1, 1ull << SMOLVM_VIRTIO_F_VERSION_1, NULL, 0);
        send_state(SMOLVM_VHOST_USER_SET_VRING_NUM, 0, 64);
        uint8_t a[40] = { 0 };
        put_le64(a + 8, 0x40000000ull + RAM_SIZE - 16);  /* desc table runs off the end */
        put_le64(a + 16, 0x40000000ull + 0x2000);
        put_le64(a + 24, 0x40000000ull + 0x1000);
        send_msg(SMOLVM_VHOST_USER_SET_VRING_ADDR, 1, a, sizeof(a), NULL, 0);
        int kfd = eventfd(0, EFD_CLOEXEC);
        send_u64(SMOLVM_VHOST_USER_SET_VRING_KICK, 1, 0, &kfd, 1);
        safe_close(kfd);
        assert_broken(-EFAULT);
        ck_assert_int_eq(fx->n_start, 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("vhost_user");
        TCase *tc = tcase_create("vhost_user");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_bring_up);
        tcase_add_test(tc, test_short_header);
        tcase_add_test(tc, test_payload_too_large);
        tcase_add_test(tc, test_huge_size);
        tcase_add_test(tc, test_unknown_request);
        tcase_add_test(tc, test_bad_version);
        tcase_add_test(tc, test_reply_flag_in_request);
        tcase_add_test(tc, test_wrong_size_for_request);
        tcase_add_test(tc, test_feature_not_offered);
        tcase_add_test(tc, test_fd_with_wrong_request);
        tcase_add_test(tc, test_too_many_fds);
        tcase_add_test(tc, test_mem_table_too_many_regions);
        tcase_add_test(tc, test_mem_table_fd_count);
        tcase_add_test(tc, test_mem_table_size_mismatch);
        tcase_add_test(tc, test_mem_table_pipe_fd);
        tcase_add_test(tc, test_mem_table_past_eof);
        tcase_add_test(tc, test_mem_table_offset_overflow);
        tcase_add_test(tc, test_mem_table_overlap);
        tcase_add_test(tc, test_bad_queue_index);
        tcase_add_test(tc, test_bad_queue_size);
        tcase_add_test(tc, test_kick_without_fd);
        tcase_add_test(tc, test_ring_outside_memory);
        suite_add_tcase(s, tc);

        return run_suite(s);
}
