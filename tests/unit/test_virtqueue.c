/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueue (common/virtqueue.c) against hand-built rings in a fake guest
 * memory: every protocol violation must end in the broken state, never a crash. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include "check_main.h"
#include "util.h"
#include "virtqueue.h"

#define MEM_SIZE 0x10000u
#define GPA_BASE 0x100000ull
#define UADDR_BASE 0x7f0000000000ull   /* the VMM's view: differs from GPA on purpose */
#define NUM 8u
#define DESC_OFF 0x0u
#define AVAIL_OFF 0x100u
#define USED_OFF 0x200u
#define IND_OFF 0x800u
#define DATA_OFF 0x1000u

typedef struct fixture {
        uint8_t *ram;
        smolvm_vq_mem mem;
        smolvm_vq vq;
        smolvm_vq_elem elem;
        uint16_t avail_idx;
} fixture;

static fixture *fx;

static void setup(void)
{
        fx = calloc(1, sizeof(*fx));
        ck_assert_ptr_nonnull(fx);
        fx->ram = aligned_alloc(4096, MEM_SIZE);
        ck_assert_ptr_nonnull(fx->ram);
        memset(fx->ram, 0, MEM_SIZE);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, GPA_BASE, MEM_SIZE, UADDR_BASE, fx->ram), 0);
}

static void teardown(void)
{
        free(fx->ram);
        free(fx);
}

static void init_vq(bool event_idx, bool indirect)
{
        ck_assert_int_eq(smolvm_vq_init(&fx->vq, &fx->mem, NUM, UADDR_BASE + DESC_OFF, UADDR_BASE + AVAIL_OFF,
                                        UADDR_BASE + USED_OFF, 0, event_idx, indirect), 0);
}

static void set_desc_in(uint32_t table_off, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        uint8_t *d = fx->ram + table_off + 16u * i;
        put_le64(d, addr);
        put_le32(d + 8, len);
        put_le16(d + 12, flags);
        put_le16(d + 14, next);
}

static void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        set_desc_in(DESC_OFF, i, addr, len, flags, next);
}

static void publish(uint16_t head)
{
        put_le16(fx->ram + AVAIL_OFF + 4 + 2u * (fx->avail_idx % NUM), head);
        fx->avail_idx++;
        put_le16(fx->ram + AVAIL_OFF + 2, fx->avail_idx);
}

static int pop(void)
{
        return smolvm_vq_pop(&fx->vq, &fx->elem);
}

/* A violation is sticky: the next pop fails the same way. */
static void assert_broken(int r, int err)
{
        ck_assert_int_eq(r, err);
        ck_assert(fx->vq.broken);
        ck_assert_ptr_nonnull(fx->vq.why);
        ck_assert_int_eq(pop(), err);
}

#define DATA(n) (GPA_BASE + DATA_OFF + (n))

START_TEST(test_mem_translate)
{
        ck_assert_ptr_eq(smolvm_vq_mem_gpa(&fx->mem, GPA_BASE, MEM_SIZE), fx->ram);
        ck_assert_ptr_eq(smolvm_vq_mem_gpa(&fx->mem, GPA_BASE + 10, 6), fx->ram + 10);
        ck_assert_ptr_null(smolvm_vq_mem_gpa(&fx->mem, GPA_BASE, MEM_SIZE + 1));
        ck_assert_ptr_null(smolvm_vq_mem_gpa(&fx->mem, GPA_BASE - 1, 2));
        ck_assert_ptr_null(smolvm_vq_mem_gpa(&fx->mem, GPA_BASE + MEM_SIZE, 1));
        ck_assert_ptr_null(smolvm_vq_mem_gpa(&fx->mem, UINT64_MAX, 2));
        ck_assert_ptr_null(smolvm_vq_mem_gpa(&fx->mem, GPA_BASE + 1, UINT64_MAX));
        ck_assert_ptr_eq(smolvm_vq_mem_uaddr(&fx->mem, UADDR_BASE + 4, 4), fx->ram + 4);
        ck_assert_ptr_null(smolvm_vq_mem_uaddr(&fx->mem, GPA_BASE, 4));
        /* Region table validation. */
        uint8_t other[16];
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, GPA_BASE + MEM_SIZE - 1, 16, 0, other), -EINVAL);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, GPA_BASE - 8, 16, 0, other), -EINVAL);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, UINT64_MAX - 4, 16, 0, other), -EINVAL);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, 0, 16, UINT64_MAX - 4, other), -EINVAL);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, 0, 0, 0, other), -EINVAL);
        ck_assert_int_eq(fx->mem.n_regions, 1);
        for (uint32_t i = 1; i < SMOLVM_VQ_MAX_REGIONS; i++)
                ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, 16ull * i, 16, 0, other), 0);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, 1ull << 40, 16, 0, other), -E2BIG);
}
END_TEST

START_TEST(test_init_checks)
{
        smolvm_vq *vq = &fx->vq;
        ck_assert_int_eq(smolvm_vq_init(vq, &fx->mem, 6, UADDR_BASE, UADDR_BASE + AVAIL_OFF, UADDR_BASE + USED_OFF, 0, false, false), -EINVAL);
        ck_assert(vq->broken);
        ck_assert_int_eq(smolvm_vq_init(vq, &fx->mem, 0, UADDR_BASE, UADDR_BASE + AVAIL_OFF, UADDR_BASE + USED_OFF, 0, false, false), -EINVAL);
        ck_assert_int_eq(smolvm_vq_init(vq, &fx->mem, NUM, UADDR_BASE + 8, UADDR_BASE + AVAIL_OFF, UADDR_BASE + USED_OFF, 0, false, false), -EINVAL);
        ck_assert_int_eq(smolvm_vq_init(vq, &fx->mem, NUM, UADDR_BASE, UADDR_BASE + AVAIL_OFF + 1, UADDR_BASE + USED_OFF, 0, false, false), -EINVAL);
        /* Used ring ends past the region. */
        ck_assert_int_eq(smolvm_vq_init(vq, &fx->mem, NUM, UADDR_BASE, UADDR_BASE + AVAIL_OFF, UADDR_BASE + MEM_SIZE - 16, 0, false, false), -EFAULT);
        /* Rings are in the VMM's address space, not guest-physical. */
        ck_assert_int_eq(smolvm_vq_init(vq, &fx->mem, NUM, GPA_BASE, GPA_BASE + AVAIL_OFF, GPA_BASE + USED_OFF, 0, false, false), -EFAULT);
        ck_assert_int_eq(pop(), -EFAULT);
        /* Re-initialising clears the broken state. */
        init_vq(false, false);
        ck_assert(!vq->broken);
        ck_assert_int_eq(pop(), 0);
}
END_TEST

START_TEST(test_valid_chain)
{
        init_vq(false, false);
        memcpy(fx->ram + DATA_OFF, "hello", 5);
        set_desc(3, DATA(0), 5, SMOLVM_VRING_DESC_F_NEXT, 5);
        set_desc(5, DATA(0x100), 7, SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, DATA(0x200), 64, SMOLVM_VRING_DESC_F_WRITE, 0);
        publish(3);
        ck_assert_int_eq(pop(), 1);
        smolvm_vq_elem *e = &fx->elem;
        ck_assert_int_eq(e->head, 3);
        ck_assert_uint_eq(e->n_rd, 2);
        ck_assert_uint_eq(e->n_wr, 1);
        ck_assert_uint_eq(e->rd_len_bytes, 12);
        ck_assert_uint_eq(e->wr_len_bytes, 64);
        ck_assert_ptr_eq(e->iov[0].iov_base, fx->ram + DATA_OFF);
        ck_assert_uint_eq(e->iov[0].iov_len, 5);
        ck_assert_mem_eq(e->iov[0].iov_base, "hello", 5);
        ck_assert_ptr_eq(e->iov[1].iov_base, fx->ram + DATA_OFF + 0x100);
        ck_assert_ptr_eq(e->iov[2].iov_base, fx->ram + DATA_OFF + 0x200);
        ck_assert_uint_eq(e->iov[2].iov_len, 64);
        ck_assert_int_eq(pop(), 0);

        /* Reply length is clamped to the writable room. */
        ck_assert_int_eq(smolvm_vq_push(&fx->vq, e, 1000), 0);
        ck_assert_uint_eq(get_le16(fx->ram + USED_OFF + 2), 1);
        ck_assert_uint_eq(get_le32(fx->ram + USED_OFF + 4), 3);
        ck_assert_uint_eq(get_le32(fx->ram + USED_OFF + 8), 64);
        ck_assert(smolvm_vq_should_notify(&fx->vq));
        /* The driver asked for no interrupts. */
        put_le16(fx->ram + AVAIL_OFF, SMOLVM_VRING_AVAIL_F_NO_INTERRUPT);
        ck_assert(!smolvm_vq_should_notify(&fx->vq));
        ck_assert(!smolvm_vq_arm_kick(&fx->vq));
        /* A chain of exactly the queue size is fine; zero-length buffers are skipped. */
        for (uint16_t i = 0; i < NUM; i++)
                set_desc(i, DATA(16u * i), i == 2 ? 0 : 16, i + 1u < NUM ? SMOLVM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
        publish(0);
        ck_assert(smolvm_vq_arm_kick(&fx->vq));
        ck_assert_int_eq(pop(), 1);
        ck_assert_uint_eq(fx->elem.n_rd, NUM - 1);
        ck_assert_uint_eq(fx->elem.rd_len_bytes, 16 * (NUM - 1));
}
END_TEST

START_TEST(test_avail_idx_wraps)
{
        ck_assert_int_eq(smolvm_vq_init(&fx->vq, &fx->mem, NUM, UADDR_BASE + DESC_OFF, UADDR_BASE + AVAIL_OFF,
                                        UADDR_BASE + USED_OFF, 65534, false, false), 0);
        fx->avail_idx = 65534;
        set_desc(0, DATA(0), 4, 0, 0);
        for (int i = 0; i < 4; i++)
                publish(0);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(pop(), 1);
        ck_assert_int_eq(pop(), 0);
        ck_assert_uint_eq(fx->vq.last_avail_idx, 2);
}
END_TEST

START_TEST(test_out_of_bounds_buffer)
{
        init_vq(false, false);
        set_desc(0, GPA_BASE + MEM_SIZE - 4, 8, 0, 0);   /* runs off the end */
        publish(0);
        assert_broken(pop(), -EFAULT);
}
END_TEST

START_TEST(test_wrapping_address)
{
        init_vq(false, false);
        set_desc(0, UINT64_MAX - 2, 16, 0, 0);
        publish(0);
        assert_broken(pop(), -EFAULT);
}
END_TEST

START_TEST(test_loop)
{
        init_vq(false, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, DATA(0), 4, SMOLVM_VRING_DESC_F_NEXT, 0);
        publish(0);
        assert_broken(pop(), -ELOOP);
}
END_TEST

START_TEST(test_self_loop)
{
        init_vq(false, false);
        set_desc(2, DATA(0), 4, SMOLVM_VRING_DESC_F_NEXT | SMOLVM_VRING_DESC_F_WRITE, 2);
        publish(2);
        assert_broken(pop(), -ELOOP);
}
END_TEST

START_TEST(test_next_out_of_range)
{
        init_vq(false, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_NEXT, NUM);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_head_out_of_range)
{
        init_vq(false, false);
        publish(NUM + 3);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_order_violation)
{
        init_vq(false, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_WRITE | SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, DATA(8), 4, 0, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_order_violation_zero_len)
{
        init_vq(false, false);
        set_desc(0, DATA(0), 0, SMOLVM_VRING_DESC_F_WRITE | SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, DATA(8), 4, 0, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_avail_idx_jump)
{
        init_vq(false, false);
        set_desc(0, DATA(0), 4, 0, 0);
        put_le16(fx->ram + AVAIL_OFF + 2, NUM + 1);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_len_overflow)
{
        /* A large, never-touched region so the lengths themselves pass translation. */
        size_t big = 5ull << 30;
        void *p = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, 1ull << 40, big, 1ull << 41, p), 0);
        init_vq(false, false);
        set_desc(0, 1ull << 40, 0xfffffff0u, SMOLVM_VRING_DESC_F_WRITE | SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, (1ull << 40) + 0x100000000ull, 0x20, SMOLVM_VRING_DESC_F_WRITE, 0);
        publish(0);
        assert_broken(pop(), -EOVERFLOW);

        init_vq(false, false);
        fx->avail_idx = 0;
        set_desc(0, 1ull << 40, 0xffffffffu, SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, (1ull << 40) + 0x100000000ull, 1, 0, 0);
        publish(0);
        assert_broken(pop(), -EOVERFLOW);
        munmap(p, big);
}
END_TEST

START_TEST(test_region_split)
{
        /* Two regions adjacent in guest-physical space, apart in ours. */
        uint8_t *second = calloc(1, 4096);
        ck_assert_int_eq(smolvm_vq_mem_add(&fx->mem, GPA_BASE + MEM_SIZE, 4096, 1ull << 45, second), 0);
        init_vq(false, false);
        set_desc(0, GPA_BASE + MEM_SIZE - 16, 32, SMOLVM_VRING_DESC_F_WRITE, 0);
        publish(0);
        ck_assert_int_eq(pop(), 1);
        ck_assert_uint_eq(fx->elem.n_wr, 2);
        ck_assert_ptr_eq(fx->elem.iov[0].iov_base, fx->ram + MEM_SIZE - 16);
        ck_assert_uint_eq(fx->elem.iov[0].iov_len, 16);
        ck_assert_ptr_eq(fx->elem.iov[1].iov_base, second);
        ck_assert_uint_eq(fx->elem.iov[1].iov_len, 16);
        ck_assert_uint_eq(fx->elem.wr_len_bytes, 32);
        free(second);
}
END_TEST

START_TEST(test_indirect_valid)
{
        init_vq(false, true);
        set_desc_in(IND_OFF, 0, DATA(0), 10, SMOLVM_VRING_DESC_F_NEXT, 2);
        set_desc_in(IND_OFF, 2, DATA(0x40), 20, SMOLVM_VRING_DESC_F_NEXT | SMOLVM_VRING_DESC_F_WRITE, 1);
        set_desc_in(IND_OFF, 1, DATA(0x80), 30, SMOLVM_VRING_DESC_F_WRITE, 0);
        set_desc(4, GPA_BASE + IND_OFF, 3 * 16, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(4);
        ck_assert_int_eq(pop(), 1);
        ck_assert_int_eq(fx->elem.head, 4);
        ck_assert_uint_eq(fx->elem.n_rd, 1);
        ck_assert_uint_eq(fx->elem.n_wr, 2);
        ck_assert_uint_eq(fx->elem.wr_len_bytes, 50);
        ck_assert_ptr_eq(fx->elem.iov[2].iov_base, fx->ram + DATA_OFF + 0x80);
        ck_assert_int_eq(smolvm_vq_push(&fx->vq, &fx->elem, 50), 0);
        ck_assert_uint_eq(get_le32(fx->ram + USED_OFF + 4), 4);
}
END_TEST

START_TEST(test_indirect_not_negotiated)
{
        init_vq(false, false);
        set_desc_in(IND_OFF, 0, DATA(0), 10, 0, 0);
        set_desc(0, GPA_BASE + IND_OFF, 16, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_indirect_misaligned_len)
{
        init_vq(false, true);
        set_desc(0, GPA_BASE + IND_OFF, 24, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_indirect_empty)
{
        init_vq(false, true);
        set_desc(0, GPA_BASE + IND_OFF, 0, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_indirect_too_large)
{
        init_vq(false, true);
        set_desc(0, GPA_BASE, 16 * (SMOLVM_VQ_MAX_CHAIN + 1), SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -E2BIG);
}
END_TEST

START_TEST(test_indirect_out_of_bounds)
{
        init_vq(false, true);
        set_desc(0, GPA_BASE + MEM_SIZE - 16, 32, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EFAULT);
}
END_TEST

START_TEST(test_indirect_nested)
{
        init_vq(false, true);
        set_desc_in(IND_OFF, 0, GPA_BASE + IND_OFF, 16, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        set_desc(0, GPA_BASE + IND_OFF, 16, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_indirect_with_next)
{
        init_vq(false, true);
        set_desc_in(IND_OFF, 0, DATA(0), 10, 0, 0);
        set_desc(0, GPA_BASE + IND_OFF, 16, SMOLVM_VRING_DESC_F_INDIRECT | SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, DATA(0), 4, 0, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_indirect_not_head)
{
        init_vq(false, true);
        set_desc_in(IND_OFF, 0, DATA(0), 10, 0, 0);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc(1, GPA_BASE + IND_OFF, 16, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_indirect_loop)
{
        init_vq(false, true);
        set_desc_in(IND_OFF, 0, DATA(0), 10, SMOLVM_VRING_DESC_F_NEXT, 1);
        set_desc_in(IND_OFF, 1, DATA(0), 10, SMOLVM_VRING_DESC_F_NEXT, 0);
        set_desc(0, GPA_BASE + IND_OFF, 32, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -ELOOP);
}
END_TEST

START_TEST(test_indirect_next_out_of_table)
{
        init_vq(false, true);
        set_desc_in(IND_OFF, 0, DATA(0), 10, SMOLVM_VRING_DESC_F_NEXT, 2);  /* table has 2 entries */
        set_desc(0, GPA_BASE + IND_OFF, 32, SMOLVM_VRING_DESC_F_INDIRECT, 0);
        publish(0);
        assert_broken(pop(), -EINVAL);
}
END_TEST

START_TEST(test_event_idx)
{
        init_vq(true, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_WRITE, 0);
        uint8_t *used_event = fx->ram + AVAIL_OFF + 4 + 2 * NUM;
        uint8_t *avail_event = fx->ram + USED_OFF + 4 + 8 * NUM;
        /* First notification always goes out. */
        publish(0);
        ck_assert_int_eq(pop(), 1);
        smolvm_vq_push(&fx->vq, &fx->elem, 0);
        ck_assert(smolvm_vq_should_notify(&fx->vq));
        /* used_event = 2: the driver wants an interrupt once used idx passes 2. */
        put_le16(used_event, 2);
        publish(0);
        ck_assert_int_eq(pop(), 1);
        smolvm_vq_push(&fx->vq, &fx->elem, 0);          /* used idx 2 */
        ck_assert(!smolvm_vq_should_notify(&fx->vq));
        publish(0);
        ck_assert_int_eq(pop(), 1);
        smolvm_vq_push(&fx->vq, &fx->elem, 0);          /* used idx 3: crossed */
        ck_assert(smolvm_vq_should_notify(&fx->vq));
        ck_assert(!smolvm_vq_arm_kick(&fx->vq));
        ck_assert_uint_eq(get_le16(avail_event), 3);
}
END_TEST

/* One writable 4-byte chain at head 0, made available, taken and used. */
static void serve_one(void)
{
        publish(0);
        ck_assert_int_eq(pop(), 1);
        ck_assert_int_eq(smolvm_vq_push(&fx->vq, &fx->elem, 0), 0);
}

/* A chain nobody kicked for: seen on the second look that finds it untaken. */
START_TEST(test_stall_kick)
{
        init_vq(true, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_WRITE, 0);
        smolvm_vq *vq = &fx->vq;
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0); /* idle is not stalled */
        publish(0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0); /* its kick may be on the way */
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), SMOLVM_VQ_STALL_KICK);
        ck_assert_int_eq(pop(), 1);
        smolvm_vq_push(vq, &fx->elem, 0);
        put_le16(fx->ram + AVAIL_OFF + 4 + 2 * NUM, fx->vq.used_idx); /* reaped, re-armed */
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        /* Taken between two looks: not a stall, however long the queue stays busy. */
        for (int i = 0; i < 3 * (int)NUM; i++) {
                publish(0);
                ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
                ck_assert_int_eq(pop(), 1);
                smolvm_vq_push(vq, &fx->elem, 0);
                put_le16(fx->ram + AVAIL_OFF + 4 + 2 * NUM, fx->vq.used_idx);
        }
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        /* A broken queue is not watched: pop reported it. */
        put_le16(fx->ram + AVAIL_OFF + 4 + 2u * (fx->avail_idx % NUM), NUM);
        fx->avail_idx++;
        put_le16(fx->ram + AVAIL_OFF + 2, fx->avail_idx);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        assert_broken(pop(), -EINVAL);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
}
END_TEST

/* Event idx: the used index passed the driver's used_event and nothing moved
 * since the last look: its interrupt went missing. */
START_TEST(test_stall_call)
{
        init_vq(true, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_WRITE, 0);
        smolvm_vq *vq = &fx->vq;
        uint8_t *used_event = fx->ram + AVAIL_OFF + 4 + 2 * NUM;
        serve_one();                                     /* used idx 1, used_event 0 */
        ck_assert(smolvm_vq_should_notify(vq));
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), SMOLVM_VQ_STALL_CALL);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), SMOLVM_VQ_STALL_CALL); /* until it reaps */
        put_le16(used_event, 1);                         /* reaped, re-armed at 1 */
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        /* used_event moved between looks: the driver is reaping, not stuck. */
        serve_one();
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        put_le16(used_event, 2);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        /* Linux parks used_event at 0 while it reaps with interrupts off: far
         * behind once the index is past the ring size, not a stall. */
        for (int i = 0; i < (int)NUM + 2; i++)
                serve_one();
        put_le16(used_event, 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        /* Asked for an interrupt later than now (delayed callbacks): not a stall. */
        put_le16(used_event, (uint16_t)(vq->used_idx + 3));
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        /* The index wraps: 65535 -> 0 passes used_event 65535. */
        put_le16(used_event, 65535);
        while (vq->used_idx != 0)
                serve_one();
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(vq), SMOLVM_VQ_STALL_CALL);
}
END_TEST

/* Without event idx nothing says what the driver reaped: never a CALL. */
START_TEST(test_stall_call_needs_event_idx)
{
        init_vq(false, false);
        set_desc(0, DATA(0), 4, SMOLVM_VRING_DESC_F_WRITE, 0);
        serve_one();
        ck_assert_uint_eq(smolvm_vq_check_stall(&fx->vq), 0);
        ck_assert_uint_eq(smolvm_vq_check_stall(&fx->vq), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("virtqueue");
        TCase *tc = tcase_create("virtqueue");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_mem_translate);
        tcase_add_test(tc, test_init_checks);
        tcase_add_test(tc, test_valid_chain);
        tcase_add_test(tc, test_avail_idx_wraps);
        tcase_add_test(tc, test_out_of_bounds_buffer);
        tcase_add_test(tc, test_wrapping_address);
        tcase_add_test(tc, test_loop);
        tcase_add_test(tc, test_self_loop);
        tcase_add_test(tc, test_next_out_of_range);
        tcase_add_test(tc, test_head_out_of_range);
        tcase_add_test(tc, test_order_violation);
        tcase_add_test(tc, test_order_violation_zero_len);
        tcase_add_test(tc, test_avail_idx_jump);
        tcase_add_test(tc, test_len_overflow);
        tcase_add_test(tc, test_region_split);
        tcase_add_test(tc, test_indirect_valid);
        tcase_add_test(tc, test_indirect_not_negotiated);
        tcase_add_test(tc, test_indirect_misaligned_len);
        tcase_add_test(tc, test_indirect_empty);
        tcase_add_test(tc, test_indirect_too_large);
        tcase_add_test(tc, test_indirect_out_of_bounds);
        tcase_add_test(tc, test_indirect_nested);
        tcase_add_test(tc, test_indirect_with_next);
        tcase_add_test(tc, test_indirect_not_head);
        tcase_add_test(tc, test_indirect_loop);
        tcase_add_test(tc, test_indirect_next_out_of_table);
        tcase_add_test(tc, test_event_idx);
        tcase_add_test(tc, test_stall_kick);
        tcase_add_test(tc, test_stall_call);
        tcase_add_test(tc, test_stall_call_needs_event_idx);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
