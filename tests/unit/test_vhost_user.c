/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user back-end (common/vhost_user.c) over a socketpair: a good bring-up
 * starts and stops queues; malformed messages end in the broken state with the
 * callback called once, never a crash. Then the whole virtio-fs device
 * (fs/virtiofs.c + the real file server) driven as the guest drives it: rings
 * in shared memory, FORGET on the hiprio queue with no reply buffer. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "check_main.h"
#include "evloop.h"
#include "fdpass.h"
#include "fs_test_tree.h"
#include "util.h"
#include "vhost_user.h"
#include "virtiofs.h"

#define RAM_SIZE (1u << 20)

typedef struct fixture {
        smolvm_evloop *loop;
        smolvm_vu_dev *dev;
        int peer;           /* the front-end's end */
        int n_start, n_stop, n_broken;
        int last_err;
        unsigned last_q;
} fixture;

static fixture *fx;

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

static void send_raw(const void *buf, size_t len, const int *fds, unsigned n_fds)
{
        ck_assert_int_eq(fdpass_send(fx->peer, buf, len, fds, n_fds, 0), (ssize_t)len);
}

static void send_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds, unsigned n_fds)
{
        uint8_t buf[1024];
        put_le32(buf, req);
        put_le32(buf + 4, flags);
        put_le32(buf + 8, size);
        if (size)
                memcpy(buf + 12, payload, size);
        send_raw(buf, 12 + size, fds, n_fds);
}

static void send_u64(uint32_t req, uint32_t flags, uint64_t v, const int *fds, unsigned n_fds)
{
        uint8_t p[8];
        put_le64(p, v);
        send_msg(req, flags, p, 8, fds, n_fds);
}

static void send_state(uint32_t req, uint32_t q, uint32_t num)
{
        uint8_t p[8];
        put_le32(p, q);
        put_le32(p + 4, num);
        send_msg(req, 1, p, 8, NULL, 0);
}

static void pump(void)
{
        for (int i = 0; i < 5; i++)
                smolvm_evloop_run_once(fx->loop, 20);
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

static int make_memfd(size_t size)
{
        int fd = memfd_create("guest-ram", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* One region: GPA 0, VMM address 0x40000000, file offset 0x1000. */
static void send_mem_table(int fd, uint64_t size, uint64_t offset)
{
        uint8_t p[8 + 32];
        memset(p, 0, sizeof(p));
        put_le32(p, 1);
        put_le64(p + 8, 0);
        put_le64(p + 16, size);
        put_le64(p + 24, 0x40000000ull);
        put_le64(p + 32, offset);
        send_msg(SMOLVM_VHOST_USER_SET_MEM_TABLE, 1, p, sizeof(p), &fd, 1);
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

/* ---- the virtio-fs device: the guest's side of the rings, by hand ---- */

#define VQ_NUM 16u
#define VQ_BASE(q) (0x4000u * (q))   /* desc at +0, avail at +0x1000, used at +0x2000 */
#define DATA_GPA 0x10000u

typedef struct vfs_fixture {
        fs_test_tree tree;
        smolvm_fs *fs;
        smolvm_virtiofs *vfs;
        uint8_t *ram;               /* the guest's view of the memfd */
        int kick[2], call[2];
        uint16_t avail_idx[2], used_seen[2]; /* chains made available / seen used */
        uint32_t data_off;          /* bump allocator in the data area */
        uint64_t unique;
} vfs_fixture;

static vfs_fixture *vx;

static void on_vfs_broken(void *u, int err, const char *why)
{
        fixture *f = u;
        f->n_broken++;
        f->last_err = err;
        (void)why;
}

static void vfs_setup(void)
{
        fx = calloc(1, sizeof(*fx));
        vx = calloc(1, sizeof(*vx));
        ck_assert_int_eq(fs_test_tree_make(&vx->tree), 0);
        smolvm_fs_config fcfg = { .root = vx->tree.share, .read_only = true };
        ck_assert_int_eq(smolvm_fs_new(&fcfg, &vx->fs), 0);
        ck_assert_int_eq(smolvm_evloop_new(&fx->loop), 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        fx->peer = sv[1];
        smolvm_virtiofs_config cfg = { .fs = vx->fs, .broken = on_vfs_broken, .userdata = fx };
        ck_assert_int_eq(smolvm_virtiofs_new(fx->loop, sv[0], &cfg, &vx->vfs), 0);

        int mfd = make_memfd(RAM_SIZE);
        vx->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        ck_assert_ptr_ne(vx->ram, MAP_FAILED);
        send_u64(SMOLVM_VHOST_USER_SET_FEATURES, 1, 1ull << SMOLVM_VIRTIO_F_VERSION_1, NULL, 0);
        send_mem_table(mfd, RAM_SIZE, 0);
        safe_close(mfd);
        for (unsigned q = 0; q < 2; q++) {
                send_state(SMOLVM_VHOST_USER_SET_VRING_NUM, q, VQ_NUM);
                uint8_t a[40] = { 0 };
                put_le32(a, q);
                put_le64(a + 8, 0x40000000ull + VQ_BASE(q));
                put_le64(a + 16, 0x40000000ull + VQ_BASE(q) + 0x2000);
                put_le64(a + 24, 0x40000000ull + VQ_BASE(q) + 0x1000);
                send_msg(SMOLVM_VHOST_USER_SET_VRING_ADDR, 1, a, sizeof(a), NULL, 0);
                send_state(SMOLVM_VHOST_USER_SET_VRING_BASE, q, 0);
                vx->kick[q] = eventfd(0, EFD_CLOEXEC);
                vx->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                send_u64(SMOLVM_VHOST_USER_SET_VRING_CALL, 1, q, &vx->call[q], 1);
                send_u64(SMOLVM_VHOST_USER_SET_VRING_KICK, 1, q, &vx->kick[q], 1);
        }
        pump();
        ck_assert_int_eq(fx->n_broken, 0);
}

static void vfs_teardown(void)
{
        smolvm_virtiofs_free(vx->vfs);
        smolvm_fs_free(vx->fs);
        smolvm_evloop_free(fx->loop);
        safe_close(fx->peer);
        for (unsigned q = 0; q < 2; q++) {
                safe_close(vx->kick[q]);
                safe_close(vx->call[q]);
        }
        munmap(vx->ram, RAM_SIZE);
        fs_test_tree_remove(&vx->tree);
        free(vx);
        free(fx);
}

/* Copy bytes into the data area; returns their guest address. */
static uint32_t guest_put(const void *p, uint32_t len)
{
        uint32_t gpa = DATA_GPA + vx->data_off;
        ck_assert_uint_le(gpa + len, RAM_SIZE);
        if (p)
                memcpy(vx->ram + gpa, p, len);
        else
                memset(vx->ram + gpa, 0xa5, len);
        vx->data_off += (len + 15u) & ~15u;
        return gpa;
}

/* Queue one chain on q: a readable request, then (when out_len > 0) a writable
 * reply buffer; kick, and wait until the device used it. Returns the length
 * the device wrote; *ret_out (if given) points at the reply. */
static uint32_t vq_call(unsigned q, const void *req, uint32_t req_len, uint32_t out_len, const uint8_t **ret_out)
{
        uint16_t head = (uint16_t)((2u * vx->avail_idx[q]) % VQ_NUM); /* two entries per chain */
        uint8_t *desc = vx->ram + VQ_BASE(q) + 16u * head;
        uint32_t in_gpa = guest_put(req, req_len);
        put_le64(desc, in_gpa);
        put_le32(desc + 8, req_len);
        put_le16(desc + 12, out_len ? SMOLVM_VRING_DESC_F_NEXT : 0);
        put_le16(desc + 14, (uint16_t)(head + 1));
        uint32_t out_gpa = 0;
        if (out_len) {
                out_gpa = guest_put(NULL, out_len);
                put_le64(desc + 16, out_gpa);
                put_le32(desc + 24, out_len);
                put_le16(desc + 28, SMOLVM_VRING_DESC_F_WRITE);
                put_le16(desc + 30, 0);
        }
        uint8_t *avail = vx->ram + VQ_BASE(q) + 0x1000;
        put_le16(avail + 4 + 2u * (vx->avail_idx[q] % VQ_NUM), head);
        vx->avail_idx[q]++;
        __atomic_store_n((uint16_t *)(void *)(avail + 2), htole16(vx->avail_idx[q]), __ATOMIC_RELEASE);
        uint64_t one = 1;
        ck_assert_int_eq(write(vx->kick[q], &one, sizeof(one)), (ssize_t)sizeof(one));

        const uint8_t *used = vx->ram + VQ_BASE(q) + 0x2000;
        for (int i = 0; i < 5000; i++) {
                uint16_t idx = le16toh(__atomic_load_n((const uint16_t *)(const void *)(used + 2), __ATOMIC_ACQUIRE));
                if (idx != vx->used_seen[q])
                        break;
                usleep(1000);
        }
        uint16_t idx = get_le16(used + 2);
        ck_assert_uint_eq(idx, (uint16_t)(vx->used_seen[q] + 1)); /* used once, not left in the ring */
        const uint8_t *e = used + 4 + 8u * (vx->used_seen[q] % VQ_NUM);
        vx->used_seen[q]++;
        ck_assert_uint_eq(get_le32(e), head);
        if (ret_out)
                *ret_out = vx->ram + out_gpa;
        return get_le32(e + 4);
}

static uint32_t fuse_call(unsigned q, uint32_t opcode, uint64_t nodeid, const void *args, uint32_t args_len,
                          uint32_t out_len, const uint8_t **ret_out)
{
        uint8_t req[512];
        struct fuse_in_header h = { .len = (uint32_t)sizeof(h) + args_len, .opcode = opcode,
                                    .unique = ++vx->unique, .nodeid = nodeid };
        ck_assert_uint_le(h.len, sizeof(req));
        memcpy(req, &h, sizeof(h));
        memcpy(req + sizeof(h), args, args_len);
        return vq_call(q, req, h.len, out_len, ret_out);
}

static uint64_t vfs_lookup(const char *name)
{
        const uint8_t *out;
        uint32_t n = fuse_call(1, FUSE_LOOKUP, FUSE_ROOT_ID, name, (uint32_t)strlen(name) + 1, 256, &out);
        ck_assert_uint_eq(n, sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out));
        struct fuse_out_header oh;
        struct fuse_entry_out e;
        memcpy(&oh, out, sizeof(oh));
        memcpy(&e, out + sizeof(oh), sizeof(e));
        ck_assert_int_eq(oh.error, 0);
        return e.nodeid;
}

static uint32_t vfs_inodes(void)
{
        smolvm_fs_stats st;
        smolvm_fs_get_stats(vx->fs, &st);
        return st.n_inodes;
}

START_TEST(test_virtiofs_forget_without_reply_buffer)
{
        struct fuse_init_in init = { .major = 7, .minor = 31, .max_readahead = 65536 };
        const uint8_t *out;
        uint32_t n = fuse_call(1, FUSE_INIT, 0, &init, sizeof(init), 256, &out);
        ck_assert_uint_eq(n, sizeof(struct fuse_out_header) + sizeof(struct fuse_init_out));
        ck_assert_uint_eq(vfs_inodes(), 1);

        /* FORGET as Linux's virtio-fs sends it on the hiprio queue: one readable
         * descriptor, nothing writable. The inode is released, the chain used
         * with 0 bytes. */
        uint64_t a = vfs_lookup("hello.txt");
        ck_assert_uint_eq(vfs_lookup("hello.txt"), a);
        ck_assert_uint_eq(vfs_inodes(), 2);
        struct fuse_forget_in fi = { .nlookup = 1 };
        ck_assert_uint_eq(fuse_call(0, FUSE_FORGET, a, &fi, sizeof(fi), 0, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 2); /* one lookup still counted */
        ck_assert_uint_eq(fuse_call(0, FUSE_FORGET, a, &fi, sizeof(fi), 0, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 1);

        /* BATCH_FORGET, also without a reply buffer, on either queue. */
        uint64_t b = vfs_lookup("big.bin"), d = vfs_lookup("dir");
        ck_assert_uint_eq(vfs_inodes(), 3);
        struct {
                struct fuse_batch_forget_in in;
                struct fuse_forget_one one[2];
        } bf = { { .count = 2 }, { { b, 1 }, { d, 1 } } };
        ck_assert_uint_eq(fuse_call(0, FUSE_BATCH_FORGET, 0, &bf, sizeof(bf), 0, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 1);
        b = vfs_lookup("big.bin");
        bf.in.count = 1;
        bf.one[0] = (struct fuse_forget_one){ b, 1 };
        ck_assert_uint_eq(fuse_call(1, FUSE_BATCH_FORGET, 0, &bf, sizeof(bf.in) + sizeof(bf.one[0]), 0, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 1);

        /* Still bounded and validated: a FORGET too short for its argument and
         * a BATCH_FORGET claiming more entries than it carries release nothing
         * beyond what is there; each chain is still used. */
        a = vfs_lookup("hello.txt");
        ck_assert_uint_eq(fuse_call(0, FUSE_FORGET, a, &fi, 4, 0, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 2);
        bf.in.count = 1000000;
        bf.one[0] = (struct fuse_forget_one){ a, 1 };
        ck_assert_uint_eq(fuse_call(0, FUSE_BATCH_FORGET, 0, &bf, sizeof(bf.in) + sizeof(bf.one[0]), 0, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 1);
        /* A request that needs a reply but has no room for one: dropped, the
         * chain still comes back (0 bytes), the device keeps serving. */
        ck_assert_uint_eq(fuse_call(0, FUSE_LOOKUP, FUSE_ROOT_ID, "dir", 4, 0, NULL), 0);
        ck_assert_uint_eq(fuse_call(1, FUSE_LOOKUP, FUSE_ROOT_ID, "dir", 4, 8, NULL), 0);
        ck_assert_uint_eq(vfs_inodes(), 1);
        vfs_lookup("dir");
        ck_assert_uint_eq(vfs_inodes(), 2);

        smolvm_virtiofs_stats vs;
        smolvm_virtiofs_get_stats(vx->vfs, &vs);
        ck_assert_uint_eq(vs.n_dropped, 2);
        ck_assert_uint_eq(vs.n_broken_queues, 0);
        ck_assert_int_eq(fx->n_broken, 0);
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

        tc = tcase_create("virtiofs");
        tcase_add_checked_fixture(tc, vfs_setup, vfs_teardown);
        tcase_add_test(tc, test_virtiofs_forget_without_reply_buffer);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
