/* SPDX-License-Identifier: Apache-2.0 */
/* Grow the root filesystem to its disk. The host may create the per-VM overlay
 * larger than the base image (to honour --disk); the ext4 inside still has the
 * base image's size until resize2fs grows it, online, while mounted. The
 * common case (sizes equal) costs one ioctl and one 1 KiB read: no exec. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

#define RESIZE2FS "/sbin/resize2fs"
#define EXT4_SB_OFFSET 1024
#define EXT4_SB_SIZE 1024
#define EXT4_SB_MAGIC 0xEF53
#define EXT4_FEATURE_INCOMPAT_64BIT 0x80u
/* resize2fs leaves a tail too small for a block group unused, so a disk a
 * little larger than its filesystem stays that way: only grow for more. */
#define GROW_MIN_BYTES (16ull * 1024 * 1024)
/* Growing by many GiB takes a while under TCG; boot goes on after this and
 * PID 1's reaper collects resize2fs later. */
#define RESIZE_WAIT_MS 60000

int ext4_superblock_fs_bytes(const uint8_t *sb, size_t sb_len, uint64_t *ret_bytes)
{
        if (sb_len < 0x158 || get_le16(sb + 0x38) != EXT4_SB_MAGIC)
                return -EINVAL;
        uint32_t log_block = get_le32(sb + 0x18); /* block size = 1024 << log */
        if (log_block > 6)
                return -EINVAL;
        uint64_t blocks = get_le32(sb + 0x4);
        if (get_le32(sb + 0x60) & EXT4_FEATURE_INCOMPAT_64BIT)
                blocks |= (uint64_t)get_le32(sb + 0x150) << 32;
        if (blocks > (UINT64_MAX >> (10 + log_block)))
                return -EINVAL;
        *ret_bytes = blocks << (10 + log_block);
        return 0;
}

static int sizes(const char *dev, uint64_t *ret_dev, uint64_t *ret_fs)
{
        uint8_t sb[EXT4_SB_SIZE];
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, BLKGETSIZE64, ret_dev) < 0)
                return negative_errno();
        ssize_t n = pread(fd, sb, sizeof(sb), EXT4_SB_OFFSET);
        if (n < 0)
                return negative_errno();
        return ext4_superblock_fs_bytes(sb, (size_t)n, ret_fs);
}

void grow_root_fs(const char *dev)
{
        uint64_t dev_bytes = 0, fs_bytes = 0;
        int r = sizes(dev, &dev_bytes, &fs_bytes);
        if (r < 0) {
                init_log("grow root: %s: %s (not growing)", dev, strerror(-r));
                return;
        }
        if (dev_bytes < fs_bytes + GROW_MIN_BYTES)
                return;
        init_log("growing the root filesystem from %llu to %llu MiB", (unsigned long long)(fs_bytes >> 20),
                 (unsigned long long)(dev_bytes >> 20));

        pid_t pid = fork();
        if (pid < 0) {
                init_log("grow root: fork: %m");
                return;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        (void)dup2(null, 0);
                        (void)dup2(null, 1); /* its banner is noise; errors go to the console */
                }
                char *const argv[] = { "resize2fs", (char *)dev, NULL };
                char *const envp[] = { "PATH=" AGENT_DEFAULT_PATH, "LANG=C", NULL };
                execve(RESIZE2FS, argv, envp);
                init_log("grow root: exec " RESIZE2FS ": %m");
                _exit(127);
        }
        uint64_t deadline = now_ms() + RESIZE_WAIT_MS;
        for (;;) {
                int status;
                pid_t p = waitpid(pid, &status, WNOHANG);
                if (p < 0 && errno == EINTR)
                        continue;
                if (p < 0) {
                        init_log("grow root: waitpid: %m");
                        return;
                }
                if (p == pid) {
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                                init_log("grow root: " RESIZE2FS " %s failed (status 0x%x); the disk keeps its size",
                                         dev, (unsigned)status);
                        return;
                }
                if (now_ms() >= deadline) {
                        init_log("grow root: " RESIZE2FS " still running after %d ms; booting on", RESIZE_WAIT_MS);
                        return;
                }
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}
