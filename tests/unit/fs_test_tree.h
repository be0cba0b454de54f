/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the fs server suites: build a hostile share tree in a private
 * temp dir, hash a whole tree (every name, type, mode, owner, size, mtime,
 * symlink target and every byte of content) to prove it unchanged, and remove it. */
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <unistd.h>

typedef struct fs_test_tree {
        char base[256];        /* private work dir */
        char share[512];       /* base/share: what is served */
        char secret[512];      /* base/secret: outside the share */
        bool have_dev;         /* a char device node could be made (root) */
} fs_test_tree;

#define FS_TEST_SECRET "TOP-SECRET-OUTSIDE-THE-SHARE\n"
#define FS_TEST_HELLO "hello, world\n"
#define FS_TEST_BIG_BYTES (1024u * 1024u + 123u)

static inline uint8_t fs_test_big_byte(size_t i)
{
        return (uint8_t)((i * 2654435761u) >> 13);
}

static inline int fs_test_write_file(const char *dir, const char *name, const void *data, size_t len)
{
        char p[2 * PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -1;
        ssize_t n = write(fd, data, len);
        close(fd);
        return n == (ssize_t)len ? 0 : -1;
}

static inline int fs_test_tree_make(fs_test_tree *t)
{
        snprintf(t->base, sizeof(t->base), "/tmp/smolvm-fs-test-XXXXXX");
        if (!mkdtemp(t->base))
                return -1;
        snprintf(t->share, sizeof(t->share), "%s/share", t->base);
        snprintf(t->secret, sizeof(t->secret), "%s/secret", t->base);
        if (mkdir(t->share, 0755) < 0)
                return -1;
        if (fs_test_write_file(t->base, "secret", FS_TEST_SECRET, strlen(FS_TEST_SECRET)) < 0)
                return -1;
        if (fs_test_write_file(t->share, "hello.txt", FS_TEST_HELLO, strlen(FS_TEST_HELLO)) < 0)
                return -1;
        uint8_t *big = malloc(FS_TEST_BIG_BYTES);
        if (!big)
                return -1;
        for (size_t i = 0; i < FS_TEST_BIG_BYTES; i++)
                big[i] = fs_test_big_byte(i);
        int r = fs_test_write_file(t->share, "big.bin", big, FS_TEST_BIG_BYTES);
        free(big);
        if (r < 0)
                return -1;
        char p[1024];
        snprintf(p, sizeof(p), "%s/dir", t->share);
        if (mkdir(p, 0755) < 0 || fs_test_write_file(p, "sub.txt", "sub\n", 4) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/dir/deeper", t->share);
        if (mkdir(p, 0755) < 0)
                return -1;
        static const struct {
                const char *name, *target;
        } links[] = {
                { "link_shadow", "/etc/shadow" },
                { "link_up", "../.." },
                { "link_secret", "../secret" },
                { "link_abs", "/etc/passwd" },
                { "link_magic", "/proc/self/fd/0" },
                { "link_root", "/" },
                { "link_hello", "hello.txt" },
        };
        for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
                snprintf(p, sizeof(p), "%s/%s", t->share, links[i].name);
                if (symlink(links[i].target, p) < 0)
                        return -1;
        }
        snprintf(p, sizeof(p), "%s/fifo", t->share);
        if (mkfifo(p, 0644) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/devnull", t->share);
        t->have_dev = mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0;
        return 0;
}

static inline uint64_t fs_test_fnv(uint64_t h, const void *data, size_t len)
{
        const uint8_t *p = data;
        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

/* Order-independent hash of everything below dirfd/rel (a directory). */
static inline uint64_t fs_test_hash_dir(int dirfd, const char *rel, int depth)
{
        uint64_t sum = 0;
        int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || depth > 16)
                return 0xdeadull;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return 0xdeadull;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                struct stat st;
                uint64_t h = 0xcbf29ce484222325ull;
                h = fs_test_fnv(h, e->d_name, strlen(e->d_name));
                if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        sum += 0xbadull;
                        continue;
                }
                uint64_t meta[] = { st.st_mode, st.st_uid, st.st_gid, (uint64_t)st.st_size,
                                    (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec,
                                    st.st_rdev, st.st_nlink };
                h = fs_test_fnv(h, meta, sizeof(meta));
                if (S_ISLNK(st.st_mode)) {
                        char buf[PATH_MAX];
                        ssize_t n = readlinkat(fd, e->d_name, buf, sizeof(buf));
                        h = fs_test_fnv(h, buf, n > 0 ? (size_t)n : 0);
                } else if (S_ISREG(st.st_mode)) {
                        int f = openat(fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                        char buf[65536];
                        ssize_t n;
                        while (f >= 0 && (n = read(f, buf, sizeof(buf))) > 0)
                                h = fs_test_fnv(h, buf, (size_t)n);
                        if (f >= 0)
                                close(f);
                } else if (S_ISDIR(st.st_mode)) {
                        uint64_t sub = fs_test_hash_dir(fd, e->d_name, depth + 1);
                        h = fs_test_fnv(h, &sub, sizeof(sub));
                }
                sum += h * 0x9e3779b97f4a7c15ull + (h >> 17);
        }
        closedir(d);
        return sum;
}

/* Hash of the whole work dir: the share and what lies next to it. */
static inline uint64_t fs_test_tree_hash(const fs_test_tree *t)
{
        return fs_test_hash_dir(AT_FDCWD, t->base, 0);
}

static inline void fs_test_rm_rf_at(int dirfd, const char *name)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
                DIR *d = fdopendir(fd);
                struct dirent *e;
                while (d && (e = readdir(d))) {
                        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                                fs_test_rm_rf_at(fd, e->d_name);
                }
                if (d)
                        closedir(d);
                else
                        close(fd);
                unlinkat(dirfd, name, AT_REMOVEDIR);
        } else {
                unlinkat(dirfd, name, 0);
        }
}

static inline void fs_test_tree_remove(fs_test_tree *t)
{
        if (t->base[0])
                fs_test_rm_rf_at(AT_FDCWD, t->base);
        t->base[0] = '\0';
}

/* A failed assertion ends a forked Check test with _exit(), skipping teardown.
 * Fork a guard that waits for this process to go away (EOF on a pipe), then
 * detaches mnt (may be NULL) and removes the work dir. Fork it before opening
 * /dev/fuse: a guard holding that fd would keep a dead mount alive. */
static inline void fs_test_tree_guard(fs_test_tree *t, const char *mnt)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return;
        /* Its own process group, set on both sides of the fork: Check kills
         * the test's process group once the test ends. */
        pid_t pid = fork();
        if (pid == 0) {
                setpgid(0, 0);
                close(p[1]);
                char c;
                while (read(p[0], &c, 1) > 0)
                        ;
                if (mnt && mnt[0])
                        umount2(mnt, MNT_DETACH);
                fs_test_tree_remove(t);
                _exit(0);
        }
        if (pid > 0)
                setpgid(pid, pid);
        close(p[0]);
        /* p[1] stays open (and leaks on purpose) until this process ends. */
}
