/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueue, device side. See virtqueue.h for the rules on guest input. */
#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "util.h"

/* Ring layout (virtio 1.2, 2.7): byte offsets inside each part. */
#define DESC_SIZE 16u
#define AVAIL_IDX_OFF 2u
#define AVAIL_RING_OFF 4u
#define USED_IDX_OFF 2u
#define USED_RING_OFF 4u
#define USED_ELEM_SIZE 8u

int smolvm_vq_mem_add(smolvm_vq_mem *mem, uint64_t gpa, uint64_t size_bytes, uint64_t uaddr, void *host)
{
        if (mem->n_regions >= SMOLVM_VQ_MAX_REGIONS)
                return -E2BIG;
        if (size_bytes == 0 || !host)
                return -EINVAL;
        uint64_t last = size_bytes - 1;
        if (gpa > UINT64_MAX - last || uaddr > UINT64_MAX - last || (uintptr_t)host > UINTPTR_MAX - last)
                return -EINVAL;
        for (uint32_t i = 0; i < mem->n_regions; i++) {
                const smolvm_vq_region *r = &mem->regions[i];
                /* Inclusive ends cannot overflow (checked when each was added). */
                if (gpa <= r->gpa + (r->size_bytes - 1) && r->gpa <= gpa + last)
                        return -EINVAL;
        }
        mem->regions[mem->n_regions++] = (smolvm_vq_region){
                .gpa = gpa, .size_bytes = size_bytes, .uaddr = uaddr, .host = host,
        };
        return 0;
}

/* Region containing addr (by guest-physical or VMM address), offset into it. */
static const smolvm_vq_region *find_region(const smolvm_vq_mem *mem, uint64_t addr, bool by_uaddr, uint64_t *ret_off)
{
        for (uint32_t i = 0; i < mem->n_regions && i < SMOLVM_VQ_MAX_REGIONS; i++) {
                const smolvm_vq_region *r = &mem->regions[i];
                uint64_t start = by_uaddr ? r->uaddr : r->gpa;
                if (addr >= start && addr - start < r->size_bytes) {
                        *ret_off = addr - start;
                        return r;
                }
        }
        return NULL;
}

static void *translate(const smolvm_vq_mem *mem, uint64_t addr, uint64_t len_bytes, bool by_uaddr)
{
        uint64_t off;
        const smolvm_vq_region *r = find_region(mem, addr, by_uaddr, &off);
        if (!r || len_bytes > r->size_bytes - off)
                return NULL;
        return r->host + off;
}

void *smolvm_vq_mem_gpa(const smolvm_vq_mem *mem, uint64_t gpa, uint64_t len_bytes)
{
        return translate(mem, gpa, len_bytes, false);
}

void *smolvm_vq_mem_uaddr(const smolvm_vq_mem *mem, uint64_t uaddr, uint64_t len_bytes)
{
        return translate(mem, uaddr, len_bytes, true);
}

int smolvm_vq_mem_gpa_iov(const smolvm_vq_mem *mem, uint64_t gpa, uint64_t len_bytes,
                          struct iovec *iov, unsigned *n_iov, unsigned max_iov)
{
        unsigned n = *n_iov;
        while (len_bytes > 0) {
                uint64_t off;
                const smolvm_vq_region *r = find_region(mem, gpa, false, &off);
                if (!r)
                        return -EFAULT;
                if (n >= max_iov)
                        return -E2BIG;
                uint64_t chunk = MIN(len_bytes, r->size_bytes - off);
                iov[n++] = (struct iovec){ .iov_base = r->host + off, .iov_len = (size_t)chunk };
                len_bytes -= chunk;
                /* A region never ends at UINT64_MAX + 1 (mem_add), so this cannot wrap
                 * while bytes remain. */
                gpa += chunk;
        }
        *n_iov = n;
        return 0;
}

int smolvm_vq_set_broken(smolvm_vq *vq, int err, const char *why)
{
        if (!vq->broken) {
                vq->broken = true;
                vq->err = err < 0 ? err : -EINVAL;
                vq->why = why;
        }
        return vq->err;
}

int smolvm_vq_init(smolvm_vq *vq, const smolvm_vq_mem *mem, uint16_t num,
                   uint64_t desc_uaddr, uint64_t avail_uaddr, uint64_t used_uaddr,
                   uint16_t last_avail_idx, bool event_idx, bool indirect)
{
        *vq = (smolvm_vq){ .mem = mem, .num = num, .event_idx = event_idx, .indirect = indirect,
                           .last_avail_idx = last_avail_idx };
        if (num == 0 || num > SMOLVM_VQ_MAX_SIZE || (num & (num - 1)) != 0)
                return smolvm_vq_set_broken(vq, -EINVAL, "queue size is not a power of 2 in 1..32768");
        if (desc_uaddr % 16 != 0 || avail_uaddr % 2 != 0 || used_uaddr % 4 != 0)
                return smolvm_vq_set_broken(vq, -EINVAL, "misaligned ring address");
        uint64_t extra = event_idx ? 2 : 0; /* used_event / avail_event */
        vq->desc = smolvm_vq_mem_uaddr(mem, desc_uaddr, (uint64_t)DESC_SIZE * num);
        vq->avail = smolvm_vq_mem_uaddr(mem, avail_uaddr, AVAIL_RING_OFF + 2ull * num + extra);
        vq->used = smolvm_vq_mem_uaddr(mem, used_uaddr, USED_RING_OFF + (uint64_t)USED_ELEM_SIZE * num + extra);
        if (!vq->desc || !vq->avail || !vq->used)
                return smolvm_vq_set_broken(vq, -EFAULT, "ring outside guest memory");
        /* The 16-bit index fields are accessed atomically below: the host
         * mapping must keep the guest's alignment. */
        if ((uintptr_t)vq->avail % 2 != 0 || (uintptr_t)vq->used % 4 != 0)
                return smolvm_vq_set_broken(vq, -EINVAL, "misaligned ring mapping");
        vq->used_idx = get_le16(vq->used + USED_IDX_OFF);
        return 0;
}

/* The driver updates avail->idx concurrently: read it with one 16-bit load
 * (a byte-wise read could tear) and acquire ordering, so ring entries read
 * afterwards are at least as new as the index. */
static uint16_t load_avail_idx(const smolvm_vq *vq)
{
        uint16_t raw = __atomic_load_n((const uint16_t *)(const void *)(vq->avail + AVAIL_IDX_OFF), __ATOMIC_ACQUIRE);
        return le16toh(raw);
}

static void store_le16_release(uint8_t *p, uint16_t v)
{
        __atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELEASE);
}

typedef struct desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
} desc;

/* Copy one descriptor out of guest memory before looking at it. */
static desc read_desc(const uint8_t *table, uint32_t i)
{
        uint8_t raw[DESC_SIZE];
        memcpy(raw, table + (size_t)i * DESC_SIZE, sizeof(raw));
        return (desc){ .addr = get_le64(raw), .len = get_le32(raw + 8),
                       .flags = get_le16(raw + 12), .next = get_le16(raw + 14) };
}

static int walk_chain(smolvm_vq *vq, uint16_t head, smolvm_vq_elem *elem)
{
        const uint8_t *table = vq->desc;
        uint32_t table_n = vq->num;  /* entries in the current table */
        uint32_t in_table = 0;       /* descriptors taken from the current table */
        uint32_t total = 0;          /* descriptors in the whole chain */
        bool indirect = false;
        bool seen_write = false;
        uint64_t rd_len = 0, wr_len = 0;
        unsigned n_iov = 0;
        uint32_t i = head;

        elem->head = head;
        elem->n_rd = elem->n_wr = 0;
        for (;;) {
                /* A loop in next pointers revisits an entry, so more steps than
                 * entries is exactly the loop (and over-long chain) check. */
                if (++in_table > table_n)
                        return smolvm_vq_set_broken(vq, -ELOOP, "descriptor chain longer than its table (loop?)");
                if (++total > SMOLVM_VQ_MAX_CHAIN)
                        return smolvm_vq_set_broken(vq, -E2BIG, "descriptor chain too long");
                desc d = read_desc(table, i);

                if (d.flags & SMOLVM_VRING_DESC_F_INDIRECT) {
                        if (!vq->indirect)
                                return smolvm_vq_set_broken(vq, -EINVAL, "indirect descriptor not negotiated");
                        if (indirect)
                                return smolvm_vq_set_broken(vq, -EINVAL, "nested indirect descriptor");
                        /* virtio 1.2 2.7.5.3.1: never with NEXT; we also accept it only
                         * as the head, as every driver builds it. */
                        if (total != 1 || (d.flags & SMOLVM_VRING_DESC_F_NEXT))
                                return smolvm_vq_set_broken(vq, -EINVAL, "indirect descriptor inside a chain");
                        if (d.len == 0 || d.len % DESC_SIZE != 0)
                                return smolvm_vq_set_broken(vq, -EINVAL, "indirect table size not a multiple of 16");
                        if (d.len / DESC_SIZE > SMOLVM_VQ_MAX_CHAIN)
                                return smolvm_vq_set_broken(vq, -E2BIG, "indirect table too large");
                        table = smolvm_vq_mem_gpa(vq->mem, d.addr, d.len);
                        if (!table)
                                return smolvm_vq_set_broken(vq, -EFAULT, "indirect table outside guest memory");
                        table_n = d.len / DESC_SIZE;
                        in_table = 0;
                        total = 0;
                        indirect = true;
                        i = 0;
                        continue;
                }

                if (d.flags & SMOLVM_VRING_DESC_F_WRITE) {
                        seen_write = true;
                        wr_len += d.len;
                        if (wr_len > UINT32_MAX)
                                return smolvm_vq_set_broken(vq, -EOVERFLOW, "writable length overflows");
                        unsigned before = n_iov;
                        int r = smolvm_vq_mem_gpa_iov(vq->mem, d.addr, d.len, elem->iov, &n_iov, SMOLVM_VQ_MAX_IOV);
                        if (r < 0)
                                return smolvm_vq_set_broken(vq, r, "descriptor buffer outside guest memory");
                        elem->n_wr += n_iov - before;
                } else {
                        /* virtio 1.2 2.7.4.2: readable descriptors come first. */
                        if (seen_write)
                                return smolvm_vq_set_broken(vq, -EINVAL, "readable descriptor after writable");
                        rd_len += d.len;
                        if (rd_len > UINT32_MAX)
                                return smolvm_vq_set_broken(vq, -EOVERFLOW, "readable length overflows");
                        unsigned before = n_iov;
                        int r = smolvm_vq_mem_gpa_iov(vq->mem, d.addr, d.len, elem->iov, &n_iov, SMOLVM_VQ_MAX_IOV);
                        if (r < 0)
                                return smolvm_vq_set_broken(vq, r, "descriptor buffer outside guest memory");
                        elem->n_rd += n_iov - before;
                }

                if (!(d.flags & SMOLVM_VRING_DESC_F_NEXT))
                        break;
                i = d.next;
                if (i >= table_n)
                        return smolvm_vq_set_broken(vq, -EINVAL, "next descriptor index out of range");
        }
        elem->rd_len_bytes = (uint32_t)rd_len;
        elem->wr_len_bytes = (uint32_t)wr_len;
        return 1;
}

int smolvm_vq_pop(smolvm_vq *vq, smolvm_vq_elem *elem)
{
        if (vq->broken)
                return vq->err;
        uint16_t avail_idx = load_avail_idx(vq);
        uint16_t pending = (uint16_t)(avail_idx - vq->last_avail_idx);
        if (pending > vq->num)
                return smolvm_vq_set_broken(vq, -EINVAL, "avail idx moved by more than the queue size");
        if (pending == 0)
                return 0;
        uint16_t slot = (uint16_t)(vq->last_avail_idx & (vq->num - 1));
        uint16_t head = get_le16(vq->avail + AVAIL_RING_OFF + 2u * slot);
        if (head >= vq->num)
                return smolvm_vq_set_broken(vq, -EINVAL, "head descriptor index out of range");
        int r = walk_chain(vq, head, elem);
        if (r < 0)
                return r;
        vq->last_avail_idx++;
        return 1;
}

int smolvm_vq_push(smolvm_vq *vq, const smolvm_vq_elem *elem, uint32_t len_bytes)
{
        if (vq->broken)
                return vq->err;
        uint16_t slot = (uint16_t)(vq->used_idx & (vq->num - 1));
        uint8_t *e = vq->used + USED_RING_OFF + (size_t)USED_ELEM_SIZE * slot;
        put_le32(e, elem->head);
        put_le32(e + 4, MIN(len_bytes, elem->wr_len_bytes));
        vq->used_idx++;
        /* Release: the entry is visible before the index that publishes it. */
        store_le16_release(vq->used + USED_IDX_OFF, vq->used_idx);
        return 0;
}

bool smolvm_vq_should_notify(smolvm_vq *vq)
{
        if (vq->broken)
                return false;
        /* Our used->idx store must be visible before we read the driver's
         * suppression fields, or both sides may decide not to notify. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!vq->event_idx)
                return !(get_le16(vq->avail) & SMOLVM_VRING_AVAIL_F_NO_INTERRUPT);
        uint16_t old = vq->signalled_used, cur = vq->used_idx;
        bool valid = vq->signalled_used_valid;
        vq->signalled_used = cur;
        vq->signalled_used_valid = true;
        if (!valid)
                return true;
        uint16_t used_event = get_le16(vq->avail + AVAIL_RING_OFF + 2u * vq->num);
        /* virtio 1.2 2.7.10: notify when used_event lies in (old, cur]. */
        return (uint16_t)(cur - used_event - 1) < (uint16_t)(cur - old);
}

bool smolvm_vq_arm_kick(smolvm_vq *vq)
{
        if (vq->broken)
                return false;
        if (vq->event_idx)
                store_le16_release(vq->used + USED_RING_OFF + (size_t)USED_ELEM_SIZE * vq->num, vq->last_avail_idx);
        /* The avail_event store must be visible before we re-read avail->idx,
         * or a buffer added in between would get neither a kick nor a look. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return load_avail_idx(vq) != vq->last_avail_idx;
}

unsigned smolvm_vq_check_stall(smolvm_vq *vq)
{
        if (vq->broken)
                return 0;
        uint16_t avail = load_avail_idx(vq);
        uint16_t used_event = 0;
        if (vq->event_idx) {
                /* Only compared, never trusted: one 16-bit load, no tearing. */
                uint16_t raw = __atomic_load_n((const uint16_t *)(const void *)(vq->avail + AVAIL_RING_OFF + 2u * vq->num),
                                               __ATOMIC_RELAXED);
                used_event = le16toh(raw);
        }
        unsigned stall = 0;
        /* Nothing taken or completed by us since the previous look. */
        bool still = vq->watch_valid && vq->watch_last_avail == vq->last_avail_idx && vq->watch_used == vq->used_idx;
        if (still && vq->watch_avail != vq->watch_last_avail)
                stall |= SMOLVM_VQ_STALL_KICK;
        /* used_event in [used - num, used - 1]: the index passed the point where
         * the driver asked for an interrupt. (Linux parks used_event at 0 while
         * it reaps with interrupts off; that reads as far behind, not in range,
         * until it re-arms at its last used index.) */
        uint16_t behind = (uint16_t)(vq->used_idx - vq->watch_used_event);
        if (still && vq->event_idx && used_event == vq->watch_used_event && behind >= 1 && behind <= vq->num)
                stall |= SMOLVM_VQ_STALL_CALL;
        vq->watch_valid = true;
        vq->watch_last_avail = vq->last_avail_idx;
        vq->watch_avail = avail;
        vq->watch_used = vq->used_idx;
        vq->watch_used_event = used_event;
        return stall;
}
