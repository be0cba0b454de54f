/* SPDX-License-Identifier: Apache-2.0 */
/* Read-only shares without OPEN (fs/fs_server.c, fs->no_open): OPEN and
 * OPENDIR answer ENOSYS, so the guest kernel sends READ, READDIR, LSEEK and
 * FLUSH with fh 0, served by nodeid. What must hold: only regular files are
 * read, only what the nodeid names (a file replaced on the host while evicted
 * gives ESTALE), within the fd budget, and nothing is ever written. Requests
 * built by hand (fs_test_req.h). */
#include <errno.h>
#include <linux/fuse.h>
#include <unistd.h>

#include "check_main.h"
#include "fs_test_req.h"

#define FILES 64
#define FDS 12

static void make_many(char ret_dir[static PATH_MAX])
{
        make_many_n(ret_dir, FILES);
}

/* READ with fh 0 of nodeid. */
static ssize_t read_node(uint64_t nodeid, uint64_t off, uint32_t size)
{
        return read_op_node(nodeid, 0, off, size);
}

/* READDIRPLUS (or READDIR) with fh 0 from off: the entries' names appended to
 * names (NUL-separated), the last entry's offset in *ret_next; returns the count
 * or the error; 0 at the end. */
static int readdir_node(uint32_t opcode, uint64_t nodeid, uint64_t off, uint64_t *ret_next)
{
        req q;
        req_init(&q, opcode, nodeid);
        struct fuse_read_in in = { .fh = 0, .offset = off, .size = 1024 };
        req_add(&q, &in, sizeof(in));
        ssize_t n = req_send(&q);
        ck_assert_int_ge(n, 16);
        if (reply_error())
                return reply_error();
        const uint8_t *p = reply_body();
        size_t pos = 0, len = (size_t)n - 16;
        int count = 0;
        while (pos < len) {
                const struct fuse_dirent *d;
                if (opcode == FUSE_READDIRPLUS) {
                        const struct fuse_direntplus *dp = (const void *)(p + pos);
                        d = &dp->dirent;
                        pos += FUSE_DIRENTPLUS_SIZE(dp);
                } else {
                        d = (const void *)(p + pos);
                        pos += FUSE_DIRENT_SIZE(d);
                }
                *ret_next = d->off;
                count++;
        }
        return count;
}

static int simple_op(uint32_t opcode, uint64_t nodeid, const void *in, size_t len)
{
        req q;
        req_init(&q, opcode, nodeid);
        req_add(&q, in, len);
        ck_assert_int_ge(req_send(&q), 16);
        return reply_error();
}

START_TEST(test_no_open_protocol)
{
        make_fs_no_open(0);
        /* INIT leaves ATOMIC_O_TRUNC out: no OPEN truncates. */
        struct fuse_init_out io;
        smolvm_fs_free(fs);
        fs = NULL;
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true, .max_write = 128 * 1024 };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        ck_assert_int_eq(do_init_minor(7, 37, &io), 0);
        ck_assert_uint_eq(io.flags & FUSE_ATOMIC_O_TRUNC, 0);

        int64_t big = lookup(1, "big.bin", NULL);
        ck_assert_int_gt(big, 1);
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)big, O_RDONLY), -ENOSYS);
        ck_assert_int_eq(open_op(FUSE_OPENDIR, 1, O_RDONLY), -ENOSYS);
        /* still EROFS for a write open: refused before anything else */
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)big, O_WRONLY), -EROFS);
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)big, O_RDONLY | O_TRUNC), -EROFS);
        ck_assert_uint_eq(stats().n_handles, 0);

        /* READ by nodeid: the data, at any offset, clamped at EOF */
        uint32_t fds = stats().n_fds;
        for (uint64_t off = 0; off < FS_TEST_BIG_BYTES; off += 77777) {
                ssize_t n = read_node((uint64_t)big, off, 4096);
                ck_assert_int_eq(n, (ssize_t)MIN(4096u, FS_TEST_BIG_BYTES - off));
                const uint8_t *d = reply_body();
                for (ssize_t i = 0; i < n; i++)
                        ck_assert_uint_eq(d[i], fs_test_big_byte(off + (uint64_t)i));
        }
        ck_assert_int_eq(read_node((uint64_t)big, FS_TEST_BIG_BYTES + 5, 4096), 0);
        /* the inode's own fd serves it: no fd more than after its lookup */
        ck_assert_uint_eq(stats().n_fds, fds);
        ck_assert_int_eq(read_node((uint64_t)big, 0, 128 * 1024 + 1), -EINVAL);
        ck_assert_int_eq(read_node((uint64_t)big, (uint64_t)-1, 10), -EINVAL);
        /* only regular files, only known nodeids */
        ck_assert_int_eq(read_node(1, 0, 10), -EISDIR);
        int64_t fifo = lookup(1, "fifo", NULL);
        ck_assert_int_eq(read_node((uint64_t)fifo, 0, 10), -EINVAL);
        int64_t link = lookup(1, "link_hello", NULL);
        ck_assert_int_eq(read_node((uint64_t)link, 0, 10), -EINVAL);
        ck_assert_int_eq(read_node(0xdead0000beefull, 0, 10), -ESTALE);
        ck_assert_int_eq(read_node((uint64_t)big + (1ull << 32), 0, 10), -ESTALE);
        /* a handle that was never given out is still refused */
        ck_assert_int_eq(read_op(7, 0, 10), -EBADF);

        /* FLUSH: ENOSYS (the kernel stops sending it); FSYNC: nothing to do */
        struct fuse_flush_in fi = { .fh = 0 };
        ck_assert_int_eq(simple_op(FUSE_FLUSH, (uint64_t)big, &fi, sizeof(fi)), -ENOSYS);
        struct fuse_fsync_in si = { .fh = 0 };
        ck_assert_int_eq(simple_op(FUSE_FSYNC, (uint64_t)big, &si, sizeof(si)), 0);
        ck_assert_int_eq(simple_op(FUSE_FSYNCDIR, 1, &si, sizeof(si)), 0);
        /* LSEEK without a cursor: SEEK_DATA / SEEK_END yes, SEEK_CUR no */
        struct fuse_lseek_in li = { .fh = 0, .offset = 10, .whence = SEEK_DATA };
        ck_assert_int_eq(simple_op(FUSE_LSEEK, (uint64_t)big, &li, sizeof(li)), 0);
        li.whence = SEEK_CUR;
        ck_assert_int_eq(simple_op(FUSE_LSEEK, (uint64_t)big, &li, sizeof(li)), -EINVAL);
        li.whence = SEEK_DATA;
        ck_assert_int_eq(simple_op(FUSE_LSEEK, 1, &li, sizeof(li)), -EINVAL);
        /* nothing mutates */
        struct fuse_write_in wi = { .fh = 0, .offset = 0, .size = 1 };
        req q;
        req_init(&q, FUSE_WRITE, (uint64_t)big);
        req_add(&q, &wi, sizeof(wi));
        req_add(&q, "x", 1);
        ck_assert_int_eq(req_send(&q), 16);
        ck_assert_int_eq(reply_error(), -EROFS);
        ck_assert_uint_eq(stats().n_handles, 0);
}
END_TEST

/* READDIR and READDIRPLUS with fh 0: a whole listing across several replies,
 * each continuing at the previous cookie, equals the directory. */
START_TEST(test_no_open_readdir)
{
        char dir[PATH_MAX];
        make_many(dir);
        make_fs_no_open(0);
        int64_t many = lookup(1, "many", NULL);
        ck_assert_int_gt(many, 1);
        for (int plus = 0; plus < 2; plus++) {
                uint32_t op = plus ? FUSE_READDIRPLUS : FUSE_READDIR;
                uint64_t off = 0;
                int total = 0, replies = 0, n;
                while ((n = readdir_node(op, (uint64_t)many, off, &off)) > 0) {
                        total += n;
                        replies++;
                        ck_assert_int_lt(replies, 100);
                }
                ck_assert_int_eq(n, 0);
                ck_assert_int_eq(total, FILES + 2); /* and "." and ".." */
                ck_assert_int_gt(replies, 1);
        }
        int64_t hello = lookup(1, "hello.txt", NULL);
        uint64_t off;
        ck_assert_int_eq(readdir_node(FUSE_READDIR, (uint64_t)hello, 0, &off), -ENOTDIR);
        ck_assert_int_eq(readdir_node(FUSE_READDIR, 0xdead0000beefull, 0, &off), -ESTALE);
        ck_assert_uint_eq(stats().n_handles, 0);
}
END_TEST

/* More files read than fds: the read fds are evicted like any inode fd, the
 * budget holds, every file reads right; a file replaced on the host while its
 * fd was evicted gives ESTALE, never the impostor's bytes. */
START_TEST(test_no_open_eviction_and_replacement)
{
        char dir[PATH_MAX];
        make_many(dir);
        make_fs_no_open(FDS);
        int64_t many = lookup(1, "many", NULL);
        uint64_t node[FILES];
        for (int round = 0; round < 2; round++) {
                for (int k = 0; k < FILES; k++) {
                        int i = (k * 37) % FILES;
                        char name[32], want[32];
                        snprintf(name, sizeof(name), "f%d", i);
                        snprintf(want, sizeof(want), "file-%d", i);
                        if (round == 0)
                                node[i] = (uint64_t)lookup((uint64_t)many, name, NULL);
                        ck_assert_int_eq(read_node(node[i], 0, 64), (ssize_t)strlen(want));
                        ck_assert_int_eq(memcmp(reply_body(), want, strlen(want)), 0);
                        ck_assert_uint_le(stats().n_fds, FDS);
                }
        }
        ck_assert_uint_gt(stats().n_evictions, 0);
        /* Replace every file on the host (a new inode under the old name). */
        for (int i = 0; i < FILES; i++) {
                char from[PATH_MAX + 32], to[PATH_MAX + 32];
                snprintf(from, sizeof(from), "%s/f%d", dir, i);
                snprintf(to, sizeof(to), "%s/old%d", dir, i);
                ck_assert_int_eq(rename(from, to), 0);
                ck_assert_int_eq(fs_test_write_file(dir, from + strlen(dir) + 1, "impostor", 8), 0);
        }
        int stale = 0;
        for (int i = 0; i < FILES; i++) {
                char want[32];
                snprintf(want, sizeof(want), "file-%d", i);
                ssize_t n = read_node(node[i], 0, 64);
                if (n == -ESTALE) {
                        stale++;
                        continue;
                }
                /* still pinned: the original inode, never the impostor */
                ck_assert_int_eq(n, (ssize_t)strlen(want));
                ck_assert_int_eq(memcmp(reply_body(), want, strlen(want)), 0);
        }
        ck_assert_int_ge(stale, FILES - FDS);
        ck_assert_uint_le(stats().n_fds, FDS);
}
END_TEST

/* rw and direct_io keep OPEN: handles as before. */
START_TEST(test_open_kept)
{
        make_fs_fds(false, 0, 0, 0);
        int64_t f = lookup(1, "hello.txt", NULL);
        ck_assert_int_gt(open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY), 0);
        ck_assert_int_gt(open_op(FUSE_OPENDIR, 1, O_RDONLY), 0);
        smolvm_fs_free(fs);
        fs = NULL;
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true, .direct_io = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
        f = lookup(1, "hello.txt", NULL);
        ck_assert_int_gt(open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fs_server_noopen");
        TCase *tc = tcase_create("no_open");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_no_open_protocol);
        tcase_add_test(tc, test_no_open_readdir);
        tcase_add_test(tc, test_no_open_eviction_and_replacement);
        tcase_add_test(tc, test_open_kept);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
