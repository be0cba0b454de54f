/* SPDX-License-Identifier: Apache-2.0 */
/* mkdir -p, rm -rf, atomic writes (fileutil.h). */
#include "fileutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Each level holds one directory fd while it is emptied. */
#define RM_RF_MAX_DEPTH 256u

static int mkdir_p_impl(const char *path, mode_t mode, bool exact)
{
        if (!*path)
                return -ENOENT;
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        _cleanup_close_ int cur = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return negative_errno();
        bool created = false;
        char *save = NULL;
        for (char *comp = strtok_r(p, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
                int next = -1;
                /* What exists is the caller's path: resolved as usual, symlinks included. */
                if (!created)
                        next = openat(cur, comp, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (next < 0 && (created || errno == ENOENT)) {
                        bool made = mkdirat(cur, comp, mode) == 0;
                        if (!made && errno != EEXIST)
                                return negative_errno();
                        /* What we create is ours: never go through a symlink raced into its place. */
                        created = true;
                        if (made && exact) {
                                next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                if (next >= 0 && fchmod(next, mode) < 0) {
                                        int r = negative_errno();
                                        safe_close(next);
                                        return r;
                                }
                        } else
                                next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (next < 0)
                        return negative_errno();
                safe_close(cur);
                cur = next;
        }
        return TAKE_FD(cur);
}

int mkdir_p_open(const char *path, mode_t mode)
{
        return mkdir_p_impl(path, mode, false);
}

int mkdir_p(const char *path, mode_t mode)
{
        int fd = mkdir_p_impl(path, mode, false);
        safe_close(fd);
        return fd < 0 ? fd : 0;
}

int mkdir_p_exact(const char *path, mode_t mode)
{
        int fd = mkdir_p_impl(path, mode, true);
        safe_close(fd);
        return fd < 0 ? fd : 0;
}

/* Remove name in parent_fd; in a directory, the entry called last (NULL: none)
 * goes after all the others. dev: the file system it must stay on (0: the one
 * name is on, the top level). */
static int rm_rf_at(int parent_fd, const char *name, const char *last, dev_t dev, unsigned depth)
{
        if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return negative_errno();
        if (depth >= RM_RF_MAX_DEPTH)
                return -ELOOP;
        int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        if (depth > 0 && st.st_dev != dev) {
                /* A mount point (a killed debootstrap's /proc): its content is not ours. */
                safe_close(fd);
                return -EBUSY;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || (last && !strcmp(de->d_name, last)))
                        continue;
                int k = rm_rf_at(dirfd(d), de->d_name, NULL, st.st_dev, depth + 1);
                if (k < 0 && r == 0)
                        r = k;
        }
        if (last && r == 0 && unlinkat(dirfd(d), last, 0) < 0 && errno != ENOENT)
                r = negative_errno();
        closedir(d);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = negative_errno();
        return r;
}

int rm_rf(const char *path)
{
        return rm_rf_at(AT_FDCWD, path, NULL, 0, 0);
}

int rm_rf_last(const char *path, const char *last)
{
        return rm_rf_at(AT_FDCWD, path, last, 0, 0);
}

static int replace_file(const char *path, const void *data, size_t len, mode_t mode, bool durable)
{
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        if (!*base)
                return -EISDIR;
        _cleanup_free_ char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        if (!dir)
                return -ENOMEM;
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        /* Hidden, short enough for NAME_MAX whatever base is, and one per thread. */
        char tmp[256];
        snprintf(tmp, sizeof(tmp), ".%.200s.tmp-%d", base, (int)gettid());
        (void)unlinkat(dfd, tmp, 0); /* a leftover of a crash with the same id */
        _cleanup_close_ int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return negative_errno();
        int r = write_all(fd, data, len);
        if (r == 0 && fchmod(fd, mode) < 0)
                r = negative_errno();
        if (r == 0 && durable && fsync(fd) < 0)
                r = negative_errno();
        /* Never retried: on EINTR Linux has closed it already. */
        if (r == 0 && close(TAKE_FD(fd)) < 0 && errno != EINTR)
                r = negative_errno();
        if (r == 0 && renameat(dfd, tmp, dfd, base) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The rename itself reaches the disk with the directory. */
        if (durable)
                (void)fsync(dfd);
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
        return replace_file(path, data, len, mode, true);
}

int write_file_replace(const char *path, const void *data, size_t len, mode_t mode)
{
        return replace_file(path, data, len, mode, false);
}

int write_file_overwrite(const char *path, const void *data, size_t len, mode_t mode)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len &&
            (st.st_mode & 07777) == mode)
                return pwrite_all(fd, data, len, 0);
        return write_file_replace(path, data, len, mode);
}

int pwrite_all(int fd, const void *data, size_t len, off_t off)
{
        const char *buf = data;
        while (len > 0) {
                ssize_t n = pwrite(fd, buf, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                buf += n;
                len -= (size_t)n;
                off += n;
        }
        return 0;
}

int copy_file_sparse(int in_fd, int out_fd, unsigned long long *ret_data_bytes)
{
        struct stat st;
        unsigned long long copied = 0;

        if (fstat(in_fd, &st) < 0)
                return negative_errno();
        if (ioctl(out_fd, FICLONE, in_fd) == 0) {
                if (ret_data_bytes)
                        *ret_data_bytes = 0;
                return 0;
        }
        off_t pos = 0;
        bool use_read = false;
        while (pos < st.st_size) {
                off_t data = lseek(in_fd, pos, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO)
                                break; /* only a hole is left */
                        return negative_errno();
                }
                off_t hole = lseek(in_fd, data, SEEK_HOLE);
                if (hole < 0)
                        return negative_errno();
                loff_t in_off = data, out_off = data;
                while (in_off < hole) {
                        size_t want = (size_t)(hole - in_off);
                        ssize_t n = use_read ? -1 : copy_file_range(in_fd, &in_off, out_fd, &out_off, want, 0);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && !use_read && (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS ||
                                                   errno == EINVAL)) {
                                use_read = true; /* across file systems, or not offered */
                                continue;
                        }
                        if (use_read) {
                                char buf[64 * 1024];
                                n = pread(in_fd, buf, MIN(want, sizeof(buf)), in_off);
                                int w = n > 0 ? pwrite_all(out_fd, buf, (size_t)n, out_off) : 0;
                                if (w < 0)
                                        return w;
                                if (n > 0) {
                                        in_off += n;
                                        out_off += n;
                                }
                        }
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return negative_errno();
                        if (n == 0)
                                return -EIO; /* the file shrank under us */
                        copied += (unsigned long long)n;
                }
                pos = hole;
        }
        if (ftruncate(out_fd, st.st_size) < 0)
                return negative_errno();
        if (ret_data_bytes)
                *ret_data_bytes = copied;
        return 0;
}
