/* SPDX-License-Identifier: Apache-2.0 */
/* The whole virtio-fs device (fs/virtiofs.c over common/vhost_user.c, with the
 * real file server) driven as QEMU and the guest drive it: vhost-user messages
 * on a socketpair (vu_test_front.h), rings in shared memory written by hand.
 * FORGET on the hiprio queue with no reply buffer; a lost kick and a lost
 * interrupt, which the worker's once-a-second look must get past. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <sys/eventfd.h>

#include "fs_test_tree.h"
#include "virtiofs.h"
#include "vu_test_front.h"

#define RAM_SIZE (1u << 20)
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
static uint64_t vfs_features = 1ull << SMOLVM_VIRTIO_F_VERSION_1;

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
        send_u64(SMOLVM_VHOST_USER_SET_FEATURES, 1, vfs_features, NULL, 0);
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

/* Make one chain available on q without kicking: a readable request, then
 * (when out_len > 0) a writable reply buffer at *ret_out_gpa. Returns its head. */
static uint16_t vq_offer(unsigned q, const void *req, uint32_t req_len, uint32_t out_len, uint32_t *ret_out_gpa)
{
        uint16_t head = (uint16_t)((2u * vx->avail_idx[q]) % VQ_NUM); /* two entries per chain */
        uint8_t *desc = vx->ram + VQ_BASE(q) + 16u * head;
        uint32_t in_gpa = guest_put(req, req_len);
        put_le64(desc, in_gpa);
        put_le32(desc + 8, req_len);
        put_le16(desc + 12, out_len ? SMOLVM_VRING_DESC_F_NEXT : 0);
        put_le16(desc + 14, (uint16_t)(head + 1));
        *ret_out_gpa = 0;
        if (out_len) {
                *ret_out_gpa = guest_put(NULL, out_len);
                put_le64(desc + 16, *ret_out_gpa);
                put_le32(desc + 24, out_len);
                put_le16(desc + 28, SMOLVM_VRING_DESC_F_WRITE);
                put_le16(desc + 30, 0);
        }
        uint8_t *avail = vx->ram + VQ_BASE(q) + 0x1000;
        put_le16(avail + 4 + 2u * (vx->avail_idx[q] % VQ_NUM), head);
        vx->avail_idx[q]++;
        __atomic_store_n((uint16_t *)(void *)(avail + 2), htole16(vx->avail_idx[q]), __ATOMIC_RELEASE);
        return head;
}

static void vq_kick(unsigned q)
{
        uint64_t one = 1;
        ck_assert_int_eq(write(vx->kick[q], &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* Wait up to timeout_ms for the device to use a chain on q. */
static bool vq_wait_used(unsigned q, int timeout_ms)
{
        const uint8_t *used = vx->ram + VQ_BASE(q) + 0x2000;
        for (int i = 0; i <= timeout_ms; i++) {
                uint16_t idx = le16toh(__atomic_load_n((const uint16_t *)(const void *)(used + 2), __ATOMIC_ACQUIRE));
                if (idx != vx->used_seen[q])
                        return true;
                usleep(1000);
        }
        return false;
}

/* Reap the chain the device used on q, which must be head. Returns the length
 * the device wrote; *ret_out (if given) points at the reply. */
static uint32_t vq_reap(unsigned q, uint16_t head, uint32_t out_gpa, const uint8_t **ret_out)
{
        const uint8_t *used = vx->ram + VQ_BASE(q) + 0x2000;
        uint16_t idx = get_le16(used + 2);
        ck_assert_uint_eq(idx, (uint16_t)(vx->used_seen[q] + 1)); /* used once, not left in the ring */
        const uint8_t *e = used + 4 + 8u * (vx->used_seen[q] % VQ_NUM);
        vx->used_seen[q]++;
        ck_assert_uint_eq(get_le32(e), head);
        if (ret_out)
                *ret_out = vx->ram + out_gpa;
        return get_le32(e + 4);
}

/* Queue one chain on q, kick, wait until the device used it, reap it. */
static uint32_t vq_call(unsigned q, const void *req, uint32_t req_len, uint32_t out_len, const uint8_t **ret_out)
{
        uint32_t out_gpa;
        uint16_t head = vq_offer(q, req, req_len, out_len, &out_gpa);
        vq_kick(q);
        vq_wait_used(q, 5000);
        return vq_reap(q, head, out_gpa, ret_out);
}

/* Build a FUSE request in req (512 bytes); returns its length. */
static uint32_t fuse_req(uint8_t *req, uint32_t opcode, uint64_t nodeid, const void *args, uint32_t args_len)
{
        struct fuse_in_header h = { .len = (uint32_t)sizeof(h) + args_len, .opcode = opcode,
                                    .unique = ++vx->unique, .nodeid = nodeid };
        ck_assert_uint_le(h.len, 512);
        memcpy(req, &h, sizeof(h));
        memcpy(req + sizeof(h), args, args_len);
        return h.len;
}

static uint32_t fuse_call(unsigned q, uint32_t opcode, uint64_t nodeid, const void *args, uint32_t args_len,
                          uint32_t out_len, const uint8_t **ret_out)
{
        uint8_t req[512];
        uint32_t len = fuse_req(req, opcode, nodeid, args, args_len);
        return vq_call(q, req, len, out_len, ret_out);
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

/* A kick lost on the way (the guest's, QEMU's or ours): the request is served
 * anyway within two of the worker's looks, and the log says so. Before the
 * look, the request waited forever (vq_wait_used failed). */
START_TEST(test_virtiofs_lost_kick)
{
        struct fuse_init_in init = { .major = 7, .minor = 31, .max_readahead = 65536 };
        fuse_call(1, FUSE_INIT, 0, &init, sizeof(init), 256, NULL);
        uint8_t req[512];
        uint32_t out_gpa, len = fuse_req(req, FUSE_LOOKUP, FUSE_ROOT_ID, "hello.txt", 10);
        uint16_t head = vq_offer(1, req, len, 256, &out_gpa);
        ck_assert(!vq_wait_used(1, 200)); /* a kick is what normally wakes the device */
        ck_assert(vq_wait_used(1, 5000));
        const uint8_t *out;
        ck_assert_uint_eq(vq_reap(1, head, out_gpa, &out), sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out));
        struct fuse_out_header oh;
        memcpy(&oh, out, sizeof(oh));
        ck_assert_int_eq(oh.error, 0);
        smolvm_virtiofs_stats vs;
        smolvm_virtiofs_get_stats(vx->vfs, &vs);
        ck_assert_uint_eq(vs.n_stalled_kicks, 1);
        ck_assert_uint_eq(vs.n_stalled_calls, 0); /* no event idx: never guessed */
        vfs_lookup("dir"); /* kicks still work */
}
END_TEST

static uint64_t call_count(unsigned q, int timeout_ms)
{
        struct pollfd p = { .fd = vx->call[q], .events = POLLIN };
        uint64_t v = 0;
        if (poll(&p, 1, timeout_ms) == 1)
                ck_assert_int_eq(read(vx->call[q], &v, sizeof(v)), (ssize_t)sizeof(v));
        return v;
}

/* With event idx, an interrupt lost on the way: the driver re-armed at its last
 * used index and waits, the device has passed it. The device interrupts again
 * (before: once, then never); a driver that reaped is left alone. */
START_TEST(test_virtiofs_lost_interrupt)
{
        uint8_t *used_event = vx->ram + VQ_BASE(1) + 0x1000 + 4 + 2 * VQ_NUM;
        struct fuse_init_in init = { .major = 7, .minor = 31, .max_readahead = 65536 };
        fuse_call(1, FUSE_INIT, 0, &init, sizeof(init), 256, NULL);
        put_le16(used_event, vx->used_seen[1]); /* reaped: interrupt me on the next one */
        ck_assert_uint_eq(call_count(1, 0), 1);
        vfs_lookup("hello.txt");
        ck_assert_uint_eq(call_count(1, 0), 1);
        /* That interrupt is lost: the driver never reaps, used_event stays. */
        ck_assert_uint_ge(call_count(1, 3000), 1);
        smolvm_virtiofs_stats vs;
        smolvm_virtiofs_get_stats(vx->vfs, &vs);
        ck_assert_uint_ge(vs.n_stalled_calls, 1);
        ck_assert_uint_eq(vs.n_stalled_kicks, 0);
        /* Reaped and re-armed: quiet. */
        put_le16(used_event, vx->used_seen[1]);
        call_count(1, 0);
        ck_assert_uint_eq(call_count(1, 2500), 0);
}
END_TEST

static void vfs_setup_event_idx(void)
{
        vfs_features = (1ull << SMOLVM_VIRTIO_F_VERSION_1) | (1ull << SMOLVM_VIRTIO_F_EVENT_IDX);
        vfs_setup();
}

static void vfs_teardown_event_idx(void)
{
        vfs_teardown();
        vfs_features = 1ull << SMOLVM_VIRTIO_F_VERSION_1;
}

int main(void)
{
        Suite *s = suite_create("virtiofs");
        /* The stall tests wait for two of the worker's 1 s looks. */
        TCase *tc = tcase_create("virtiofs");
        tcase_set_timeout(tc, 30);
        tcase_add_checked_fixture(tc, vfs_setup, vfs_teardown);
        tcase_add_test(tc, test_virtiofs_forget_without_reply_buffer);
        tcase_add_test(tc, test_virtiofs_lost_kick);
        suite_add_tcase(s, tc);
        tc = tcase_create("virtiofs_event_idx");
        tcase_set_timeout(tc, 30);
        tcase_add_checked_fixture(tc, vfs_setup_event_idx, vfs_teardown_event_idx);
        tcase_add_test(tc, test_virtiofs_lost_interrupt);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
