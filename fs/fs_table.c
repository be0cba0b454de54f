/* SPDX-License-Identifier: Apache-2.0 */
/* Storage for the inode and handle tables, and the memory they are charged.
 *
 * Slots live in fixed-size chunks that are allocated as the table grows and
 * never move, so a pointer to a slot stays valid while another thread grows
 * the table: the chunk directory is sized for the table's limit up front
 * (8 bytes per FS_CHUNK_SLOTS slots) and a chunk pointer is written under
 * fs->lock before any index into that chunk is handed out. Chunks are kept
 * until the server is freed: the table's footprint is its high-water mark.
 *
 * Memory accounting (fs->mem_bytes against fs->max_mem_bytes) covers what a
 * guest can make us allocate per entry: slot chunks, the hash buckets and the
 * names kept for re-resolution. It is what the guest's LOOKUPs are refused
 * against (ENOMEM for that one request), not a process-wide malloc limit. */
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include "fs_server_i.h"
#include "util.h"

int fs_slots_init(fs_slots *t, uint32_t max_slots, uint32_t slot_bytes)
{
        uint32_t max_chunks = (uint32_t)(((uint64_t)max_slots + FS_CHUNK_SLOTS - 1) / FS_CHUNK_SLOTS);
        *t = (fs_slots){ .max_chunks = max_chunks, .slot_bytes = slot_bytes };
        t->chunks = calloc(max_chunks, sizeof(*t->chunks));
        return t->chunks ? 0 : -ENOMEM;
}

void fs_slots_free(fs_slots *t)
{
        for (uint32_t i = 0; t->chunks && i < t->n_chunks; i++)
                free(t->chunks[i]);
        free(t->chunks);
        t->chunks = NULL;
        t->n_chunks = 0;
}

int fs_slots_reserve_locked(smolvm_fs *fs, fs_slots *t, uint32_t idx)
{
        uint32_t c = idx / FS_CHUNK_SLOTS;
        if (c < t->n_chunks)
                return 0;
        if (c != t->n_chunks || c >= t->max_chunks)
                return -ENFILE; /* slots are taken in order; past the limit */
        size_t bytes = (size_t)FS_CHUNK_SLOTS * t->slot_bytes;
        if (!fs_mem_charge_locked(fs, bytes))
                return -ENOMEM;
        uint8_t *chunk = calloc(FS_CHUNK_SLOTS, t->slot_bytes);
        if (!chunk) {
                fs_mem_uncharge_locked(fs, bytes);
                return -ENOMEM;
        }
        t->chunks[c] = chunk;
        t->n_chunks++;
        return 0;
}

bool fs_mem_charge_locked(smolvm_fs *fs, size_t bytes)
{
        if (bytes > fs->max_mem_bytes || fs->mem_bytes > fs->max_mem_bytes - bytes)
                return false;
        fs->mem_bytes += bytes;
        return true;
}

void fs_mem_uncharge_locked(smolvm_fs *fs, size_t bytes)
{
        fs->mem_bytes = bytes > fs->mem_bytes ? 0 : fs->mem_bytes - bytes;
}

size_t fs_name_cost(size_t len)
{
        /* What glibc's malloc spends on strdup(name): the bytes plus its 8-byte
         * header, in 16-byte steps, at least 32. */
        size_t n = (len + 1 + 8 + 15) & ~(size_t)15;
        return MAX(n, (size_t)32);
}

uint64_t fs_default_mem_budget(void)
{
        /* One back-end per mount: each may use 1/16 of the host's RAM for its
         * tables (and at most half of an address-space or data limit). A guest
         * that forgets as Linux does never gets near: its kernel spends several
         * times more per inode than we do, so its own memory runs out first. */
        uint64_t budget = FS_MEM_BUDGET_FLOOR;
        struct sysinfo si;
        if (sysinfo(&si) == 0 && si.mem_unit > 0)
                budget = MAX(budget, (uint64_t)si.totalram * si.mem_unit / 16);
        static const int limits[] = { RLIMIT_AS, RLIMIT_DATA };
        for (size_t i = 0; i < ARRAY_SIZE(limits); i++) {
                struct rlimit rl;
                if (getrlimit(limits[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                        budget = MIN(budget, (uint64_t)rl.rlim_cur / 2);
        }
        return MAX(budget, (uint64_t)FS_MEM_BUDGET_MIN);
}
