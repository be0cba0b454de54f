/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the split-virtqueue walker over fuzzer-controlled guest
 * memory. Two exactly-sized heap regions (ASan catches any access outside
 * them) hold the rings, descriptor tables and buffers; the input's first bytes
 * choose queue size, features and start index, the rest is memory contents.
 * Every popped chain is checked for in-bounds iovecs and pushed back.
 *
 *   fuzz_virtqueue -max_len=12288 -workers=1 corpus/ */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "virtqueue.h"

#define R0_GPA 0x0ull
#define R0_SIZE 0x2000u        /* rings + data */
#define R1_GPA 0x2000ull        /* adjacent: chains may cross into it */
#define R1_SIZE 0x800u
#define R2_GPA 0x10000ull       /* with a hole before it */
#define R2_SIZE 0x1000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_in(const smolvm_vq_region *r, unsigned n, const struct iovec *iov)
{
        const uint8_t *b = iov->iov_base;
        for (unsigned i = 0; i < n; i++)
                if (b >= r[i].host && b + iov->iov_len <= r[i].host + r[i].size_bytes)
                        return;
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 4)
                return 0;
        uint8_t cfg = data[0];
        uint16_t start = get_le16(data + 1);
        uint8_t npops = data[3];
        data += 4;
        size -= 4;

        uint8_t *r0 = malloc(R0_SIZE), *r1 = malloc(R1_SIZE), *r2 = malloc(R2_SIZE);
        memset(r0, 0, R0_SIZE);
        memset(r1, 0, R1_SIZE);
        memset(r2, 0, R2_SIZE);
        size_t n0 = MIN(size, (size_t)R0_SIZE);
        memcpy(r0, data, n0);
        size_t n1 = MIN(size - n0, (size_t)R1_SIZE);
        memcpy(r1, data + n0, n1);
        memcpy(r2, data + n0 + n1, MIN(size - n0 - n1, (size_t)R2_SIZE));

        smolvm_vq_mem mem = { 0 };
        smolvm_vq_mem_add(&mem, R0_GPA, R0_SIZE, 0x7f0000000000ull, r0);
        smolvm_vq_mem_add(&mem, R1_GPA, R1_SIZE, 0x7f0000100000ull, r1);
        smolvm_vq_mem_add(&mem, R2_GPA, R2_SIZE, 0x7f0000200000ull, r2);

        /* num 1..128; rings at fixed spots in region 0 (desc 0, avail 0x800, used 0xc00). */
        uint16_t num = (uint16_t)(1u << (cfg & 7));
        bool event_idx = cfg & 0x8, indirect = cfg & 0x10;
        smolvm_vq vq;
        smolvm_vq_elem *elem = malloc(sizeof(*elem));
        if (smolvm_vq_init(&vq, &mem, num, 0x7f0000000000ull, 0x7f0000000800ull, 0x7f0000000c00ull,
                           start, event_idx, indirect) == 0) {
                for (unsigned i = 0; i < (unsigned)npops + 1; i++) {
                        int r = smolvm_vq_pop(&vq, elem);
                        if (r <= 0) {
                                if (r < 0 && !vq.broken)
                                        __builtin_trap();
                                break;
                        }
                        if (elem->head >= num || elem->n_rd + elem->n_wr > SMOLVM_VQ_MAX_IOV)
                                __builtin_trap();
                        uint64_t rd = 0, wr = 0;
                        for (unsigned k = 0; k < elem->n_rd + elem->n_wr; k++) {
                                check_in(mem.regions, mem.n_regions, &elem->iov[k]);
                                /* Touch both ends: ASan proves the mapping is real. */
                                if (elem->iov[k].iov_len) {
                                        volatile uint8_t *b = elem->iov[k].iov_base;
                                        (void)b[0];
                                        (void)b[elem->iov[k].iov_len - 1];
                                }
                                if (k < elem->n_rd)
                                        rd += elem->iov[k].iov_len;
                                else
                                        wr += elem->iov[k].iov_len;
                        }
                        if (rd != elem->rd_len_bytes || wr != elem->wr_len_bytes)
                                __builtin_trap();
                        smolvm_vq_push(&vq, elem, (uint32_t)(cfg * 977u));
                        smolvm_vq_should_notify(&vq);
                        smolvm_vq_check_stall(&vq); /* reads used_event from the guest */
                }
                smolvm_vq_arm_kick(&vq);
                unsigned stall = smolvm_vq_check_stall(&vq);
                if (stall & ~(SMOLVM_VQ_STALL_KICK | SMOLVM_VQ_STALL_CALL) || (vq.broken && stall))
                        __builtin_trap();
        }
        free(elem);
        free(r0);
        free(r1);
        free(r2);
        return 0;
}
