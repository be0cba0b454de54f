/* SPDX-License-Identifier: Apache-2.0 */
/* The fd budget: how many fds the file server's tables may hold (inode O_PATH
 * fds and open handles), derived from RLIMIT_NOFILE, and the count of those
 * held. Every smolvm_fs of a process shares one fd table, so the count is
 * process-wide; each instance's limit is fs->fd_budget. When the budget is
 * spent an inode fd is evicted (fs_fd_reserve_locked, fs_inode.c) or the
 * request fails with EMFILE. */
#include <stdatomic.h>
#include <sys/resource.h>

#include "fs_server_i.h"
#include "util.h"

uint32_t fs_fd_budget_from_rlimit(uint32_t want)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 256;
        /* Like virtiofsd, raise the soft limit towards what the tables may hold:
         * process-wide, but every user of this library polls with epoll. */
        rlim_t need = (rlim_t)want + 1024;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
                struct rlimit nrl = rl;
                nrl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need) ? need : rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
                        rl = nrl;
        }
        rlim_t cur = rl.rlim_cur == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_cur;
        /* Keep a quarter (at least 64) for the rest of the process. */
        rlim_t reserve = MAX(cur / 4, (rlim_t)64);
        if (cur <= reserve + 16)
                return 16;
        rlim_t budget = cur - reserve;
        return budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
}

/* fds held by every smolvm_fs of the process. */
static _Atomic uint32_t g_fds_held;

bool fs_fd_budget_take_locked(smolvm_fs *fs)
{
        uint32_t cur = atomic_load(&g_fds_held);
        do {
                if (cur >= fs->fd_budget)
                        return false;
        } while (!atomic_compare_exchange_weak(&g_fds_held, &cur, cur + 1));
        fs->n_fds++;
        return true;
}

void fs_fd_budget_return_locked(smolvm_fs *fs)
{
        if (fs->n_fds > 0) {
                fs->n_fds--;
                atomic_fetch_sub(&g_fds_held, 1);
        }
}

void fs_fd_budget_release_all(smolvm_fs *fs)
{
        atomic_fetch_sub(&g_fds_held, fs->n_fds);
        fs->n_fds = 0;
}
