/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE file server (fs/fs_server.c) keeps the share confined: every
 * mutation refused in read-only mode (the tree hashed before and after),
 * symlinks never followed, special files never opened, readdir and xattrs,
 * and in read-write mode mutations land while confinement holds. Requests
 * built by hand (fs_test_req.h). */
#include <errno.h>
#include <linux/fuse.h>
#include <sys/xattr.h>

#include "check_main.h"
#include "fs_test_req.h"

/* Every mutating request, with arguments that would succeed in rw mode. */
static void send_all_mutations(uint64_t file, uint64_t dir, uint64_t fh)
{
        req q;
        struct fuse_write_in wi = { .fh = fh, .offset = 0, .size = 5 };
        req_init(&q, FUSE_WRITE, file);
        req_add(&q, &wi, sizeof(wi));
        req_add(&q, "EVIL!", 5);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_create_in ci = { .flags = O_WRONLY | O_CREAT, .mode = S_IFREG | 0644 };
        req_init(&q, FUSE_CREATE, 1);
        req_add(&q, &ci, sizeof(ci));
        req_str(&q, "new.txt");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_mknod_in mi = { .mode = S_IFIFO | 0644 };
        req_init(&q, FUSE_MKNOD, 1);
        req_add(&q, &mi, sizeof(mi));
        req_str(&q, "newfifo");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_mkdir_in mk = { .mode = 0755 };
        req_init(&q, FUSE_MKDIR, 1);
        req_add(&q, &mk, sizeof(mk));
        req_str(&q, "newdir");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        req_init(&q, FUSE_UNLINK, 1);
        req_str(&q, "hello.txt");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        req_init(&q, FUSE_RMDIR, dir);
        req_str(&q, "deeper");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_rename_in rn = { .newdir = dir };
        req_init(&q, FUSE_RENAME, 1);
        req_add(&q, &rn, sizeof(rn));
        req_str(&q, "hello.txt");
        req_str(&q, "moved.txt");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_rename2_in rn2 = { .newdir = 1, .flags = RENAME_EXCHANGE };
        req_init(&q, FUSE_RENAME2, 1);
        req_add(&q, &rn2, sizeof(rn2));
        req_str(&q, "hello.txt");
        req_str(&q, "big.bin");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_link_in li = { .oldnodeid = file };
        req_init(&q, FUSE_LINK, dir);
        req_add(&q, &li, sizeof(li));
        req_str(&q, "hardlink");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        req_init(&q, FUSE_SYMLINK, 1);
        req_str(&q, "newlink");
        req_str(&q, "/etc/shadow");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_MODE, .size = 0, .mode = 04777 };
        req_init(&q, FUSE_SETATTR, file);
        req_add(&q, &sa, sizeof(sa));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        uint32_t sx[2] = { 3, 0 };
        req_init(&q, FUSE_SETXATTR, file);
        req_add(&q, sx, sizeof(sx));
        req_str(&q, "user.evil");
        req_add(&q, "abc", 3);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        req_init(&q, FUSE_REMOVEXATTR, file);
        req_str(&q, "user.keep");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_fallocate_in fa = { .fh = fh, .offset = 0, .length = 1 << 20 };
        req_init(&q, FUSE_FALLOCATE, file);
        req_add(&q, &fa, sizeof(fa));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        struct fuse_copy_file_range_in cf = { .fh_in = fh, .nodeid_out = file, .fh_out = fh, .len = 10 };
        req_init(&q, FUSE_COPY_FILE_RANGE, file);
        req_add(&q, &cf, sizeof(cf));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        req_init(&q, FUSE_TMPFILE, 1);
        req_add(&q, &ci, sizeof(ci));
        req_str(&q, "tmp");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);

        /* Opens that could write or truncate. */
        static const uint32_t bad_flags[] = { O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC, O_WRONLY | O_TRUNC,
                                              O_WRONLY | O_APPEND, O_RDWR | O_APPEND, O_RDONLY | O_CREAT,
                                              O_WRONLY | O_CREAT | O_EXCL };
        for (size_t i = 0; i < ARRAY_SIZE(bad_flags); i++)
                ck_assert_int_eq(open_op(FUSE_OPEN, file, bad_flags[i]), -EROFS);

        struct fuse_access_in ai = { .mask = W_OK };
        req_init(&q, FUSE_ACCESS, file);
        req_add(&q, &ai, sizeof(ai));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);
}

START_TEST(test_readonly_everything_erofs)
{
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/hello.txt", tree.share);
        bool have_xattr = setxattr(p, "user.keep", "v", 1, 0) == 0;
        uint64_t before = fs_test_tree_hash(&tree);
        int64_t file = lookup(1, "hello.txt", NULL);
        int64_t dir = lookup(1, "dir", NULL);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)file, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        uint64_t erofs = stats().n_erofs;
        send_all_mutations((uint64_t)file, (uint64_t)dir, (uint64_t)fh);
        /* Truncated or garbage mutations are refused just the same. */
        req q;
        req_init(&q, FUSE_WRITE, (uint64_t)file);
        req_add(&q, "x", 1);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EROFS);
        ck_assert_uint_ge(stats().n_erofs, erofs + 25);
        /* O_APPEND alone on a read-only open is harmless and allowed. */
        int64_t ok = open_op(FUSE_OPEN, (uint64_t)file, O_RDONLY | O_APPEND);
        ck_assert_int_gt(ok, 0);
        ck_assert_uint_eq(fs_test_tree_hash(&tree), before);
        if (have_xattr) {
                char v[8];
                ck_assert_int_eq(getxattr(p, "user.keep", v, sizeof(v)), 1);
        }
        /* STATFS: nothing free to write into */
        req_init(&q, FUSE_STATFS, 1);
        ck_assert_int_eq(req_send(&q), 16 + (ssize_t)sizeof(struct fuse_statfs_out));
        struct fuse_statfs_out so;
        memcpy(&so, reply_body(), sizeof(so));
        ck_assert_uint_eq(so.st.bavail, 0);
        ck_assert_uint_eq(so.st.bfree, 0);
        ck_assert_uint_gt(so.st.blocks, 0);
        /* FOPEN_KEEP_CACHE in ro mode */
        req_init(&q, FUSE_OPEN, (uint64_t)file);
        struct fuse_open_in oi = { .flags = O_RDONLY };
        req_add(&q, &oi, sizeof(oi));
        req_send(&q);
        struct fuse_open_out oo;
        memcpy(&oo, reply_body(), sizeof(oo));
        ck_assert_uint_ne(oo.open_flags & FOPEN_KEEP_CACHE, 0);
}
END_TEST

static ssize_t readlink_op(uint64_t nodeid, char *buf, size_t cap)
{
        req q;
        req_init(&q, FUSE_READLINK, nodeid);
        ssize_t n = req_send(&q);
        if (reply_error())
                return reply_error();
        size_t len = (size_t)n - 16;
        ck_assert_uint_lt(len, cap);
        memcpy(buf, reply_body(), len);
        buf[len] = '\0';
        return (ssize_t)len;
}

START_TEST(test_symlinks_never_followed)
{
        static const struct {
                const char *name, *target;
        } links[] = {
                { "link_shadow", "/etc/shadow" }, { "link_up", "../.." },        { "link_secret", "../secret" },
                { "link_abs", "/etc/passwd" },    { "link_magic", "/proc/self/fd/0" }, { "link_root", "/" },
                { "link_hello", "hello.txt" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
                struct fuse_entry_out e;
                int64_t id = lookup(1, links[i].name, &e);
                ck_assert_int_gt(id, 1);
                ck_assert_uint_eq(e.attr.mode & S_IFMT, S_IFLNK);
                ck_assert_uint_eq(e.attr.size, strlen(links[i].target));
                char buf[PATH_MAX];
                ck_assert_int_eq(readlink_op((uint64_t)id, buf, sizeof(buf)), (ssize_t)strlen(links[i].target));
                ck_assert_str_eq(buf, links[i].target);
                ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)id, O_RDONLY), -ELOOP);
                ck_assert_int_eq(open_op(FUSE_OPENDIR, (uint64_t)id, O_RDONLY), -ENOTDIR);
                ck_assert_int_eq(lookup((uint64_t)id, "secret", NULL), -ENOTDIR);
                ck_assert_int_eq(lookup((uint64_t)id, "etc", NULL), -ENOTDIR);
                ck_assert_int_eq(lookup((uint64_t)id, "..", NULL), -ENOTDIR);
                req q;
                req_init(&q, FUSE_GETXATTR, (uint64_t)id);
                struct fuse_getxattr_in gi = { .size = 100 };
                req_add(&q, &gi, sizeof(gi));
                req_str(&q, "user.x");
                req_send(&q);
                ck_assert_int_eq(reply_error(), -ENODATA);
        }
        /* READLINK of a non-link */
        char buf[64];
        ck_assert_int_eq(readlink_op(1, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_special_files_never_opened)
{
        struct fuse_entry_out e;
        int64_t fifo = lookup(1, "fifo", &e);
        ck_assert_int_gt(fifo, 1);
        ck_assert_uint_eq(e.attr.mode & S_IFMT, S_IFIFO);
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)fifo, O_RDONLY), -EACCES);
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)fifo, O_RDONLY | O_NONBLOCK), -EACCES);
        ck_assert_int_eq(open_op(FUSE_OPENDIR, (uint64_t)fifo, O_RDONLY), -ENOTDIR);
        /* Nobody holds the FIFO open for reading: a writer gets ENXIO. */
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/fifo", tree.share);
        int w = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        ck_assert_int_eq(w, -1);
        ck_assert_int_eq(errno, ENXIO);

        if (tree.have_dev) {
                int64_t dev = lookup(1, "devnull", &e);
                ck_assert_int_gt(dev, 1);
                ck_assert_uint_eq(e.attr.mode & S_IFMT, S_IFCHR);
                ck_assert_uint_eq(e.attr.rdev, makedev(1, 3));
                ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)dev, O_RDONLY), -EACCES);
                req q;
                req_init(&q, FUSE_LISTXATTR, (uint64_t)dev);
                struct fuse_getxattr_in gi = { .size = 0 };
                req_add(&q, &gi, sizeof(gi));
                req_send(&q);
                ck_assert_int_eq(reply_error(), 0);
        }
        /* GETATTR works on them */
        req q;
        req_init(&q, FUSE_GETATTR, (uint64_t)fifo);
        struct fuse_getattr_in ga = {0};
        req_add(&q, &ga, sizeof(ga));
        ck_assert_int_eq(req_send(&q), 16 + (ssize_t)sizeof(struct fuse_attr_out));
}
END_TEST

/* Reads a whole directory with READDIR(PLUS) in chunks of `size` bytes; returns
 * the number of entries, checks no name repeats, returns nodeids for plus. */
static int read_dir(uint64_t dirnode, bool plus, uint32_t size, char names[][64], uint64_t *nodeids)
{
        int64_t dh = open_op(FUSE_OPENDIR, dirnode, O_RDONLY);
        ck_assert_int_gt(dh, 0);
        uint64_t off = 0;
        int count = 0;
        for (int round = 0; round < 1000; round++) {
                req q;
                req_init(&q, plus ? FUSE_READDIRPLUS : FUSE_READDIR, dirnode);
                struct fuse_read_in in = { .fh = (uint64_t)dh, .offset = off, .size = size };
                req_add(&q, &in, sizeof(in));
                ssize_t n = req_send(&q);
                ck_assert_int_eq(reply_error(), 0);
                if (n == 16)
                        break;
                ck_assert_uint_le((size_t)n - 16, size);
                const uint8_t *p = reply_body(), *end = outbuf + n;
                while (p < end) {
                        struct fuse_entry_out e = {0};
                        if (plus) {
                                memcpy(&e, p, sizeof(e));
                                p += sizeof(e);
                        }
                        struct fuse_dirent de;
                        memcpy(&de, p, sizeof(de));
                        ck_assert_uint_lt(de.namelen, 64);
                        ck_assert_int_lt(count, 64);
                        memcpy(names[count], p + sizeof(de), de.namelen);
                        names[count][de.namelen] = '\0';
                        for (int i = 0; i < count; i++)
                                ck_assert_str_ne(names[i], names[count]);
                        if (plus) {
                                bool dots = !strcmp(names[count], ".") || !strcmp(names[count], "..");
                                ck_assert(dots ? e.nodeid == 0 : e.nodeid > 1);
                                if (!dots)
                                        ck_assert_uint_eq(e.attr.ino, de.ino);
                                nodeids[count] = e.nodeid;
                        }
                        count++;
                        off = de.off;
                        p += FUSE_DIRENT_ALIGN(sizeof(de) + de.namelen);
                }
        }
        ck_assert_int_eq(release_op(FUSE_RELEASEDIR, (uint64_t)dh), 0);
        return count;
}

START_TEST(test_readdir)
{
        char names[64][64];
        uint64_t ids[64];
        int expect = 13 + (tree.have_dev ? 1 : 0); /* incl. . and .. */
        ck_assert_int_eq(read_dir(1, false, 4096, names, ids), expect);
        ck_assert_int_eq(read_dir(1, false, 64, names, ids), expect); /* one entry at a time */
        uint32_t base = stats().n_inodes;
        ck_assert_int_eq(read_dir(1, true, 4096, names, ids), expect);
        ck_assert_uint_eq(stats().n_inodes, base + (uint32_t)expect - 2);
        /* each non-dot entry counted exactly one lookup: one FORGET frees it */
        for (int i = 0; i < expect; i++)
                if (ids[i])
                        forget(ids[i], 1);
        ck_assert_uint_eq(stats().n_inodes, base);
        ck_assert_int_eq(read_dir(1, true, 300, names, ids), expect);
        /* a buffer too small for one entry: an error, not a false end */
        int64_t dh = open_op(FUSE_OPENDIR, 1, O_RDONLY);
        req q;
        req_init(&q, FUSE_READDIRPLUS, 1);
        struct fuse_read_in in = { .fh = (uint64_t)dh, .size = 100 };
        req_add(&q, &in, sizeof(in));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        /* bad offset */
        req_init(&q, FUSE_READDIR, 1);
        in = (struct fuse_read_in){ .fh = (uint64_t)dh, .size = 4096, .offset = 1ull << 63 };
        req_add(&q, &in, sizeof(in));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        /* a file handle is not a dir handle */
        int64_t f = lookup(1, "hello.txt", NULL);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
        req_init(&q, FUSE_READDIR, 1);
        in = (struct fuse_read_in){ .fh = (uint64_t)fh, .size = 4096 };
        req_add(&q, &in, sizeof(in));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -ENOTDIR);
}
END_TEST

START_TEST(test_xattr)
{
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/hello.txt", tree.share);
        if (setxattr(p, "user.test", "value123", 8, 0) < 0)
                return; /* filesystem without user xattrs */
        int64_t f = lookup(1, "hello.txt", NULL);
        req q;
        struct fuse_getxattr_in gi = { .size = 0 };
        req_init(&q, FUSE_GETXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        req_str(&q, "user.test");
        ck_assert_int_eq(req_send(&q), 16 + 8);
        struct fuse_getxattr_out go;
        memcpy(&go, reply_body(), sizeof(go));
        ck_assert_uint_eq(go.size, 8);
        gi.size = 3;
        req_init(&q, FUSE_GETXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        req_str(&q, "user.test");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -ERANGE);
        gi.size = 0xffffffffu; /* absurd: bounded */
        req_init(&q, FUSE_GETXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        req_str(&q, "user.test");
        ck_assert_int_eq(req_send(&q), 16 + 8);
        ck_assert_int_eq(memcmp(reply_body(), "value123", 8), 0);
        /* reply buffer too small for the value: ERANGE, no overflow */
        gi.size = 100;
        req_init(&q, FUSE_GETXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        req_str(&q, "user.test");
        ck_assert_int_eq(req_send_cap(&q, 16 + 4), 16);
        ck_assert_int_eq(reply_error(), -ERANGE);
        /* missing name NUL, missing attribute */
        req_init(&q, FUSE_GETXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        req_add(&q, "user.test", 9);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        req_init(&q, FUSE_GETXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        req_str(&q, "user.nope");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -ENODATA);
        /* LISTXATTR */
        gi.size = 4096;
        req_init(&q, FUSE_LISTXATTR, (uint64_t)f);
        req_add(&q, &gi, sizeof(gi));
        ssize_t n = req_send(&q);
        ck_assert_int_eq(reply_error(), 0);
        ck_assert_ptr_nonnull(memmem(reply_body(), (size_t)n - 16, "user.test", 10));
}
END_TEST

/* ---- read-write mode: mutations land, confinement holds ---- */

START_TEST(test_rw_mode)
{
        make_fs(false, 0, 0);
        req q;
        struct fuse_entry_out e;
        struct fuse_open_out o;
        create_op("new.txt", S_IFREG | 06755, &e, &o);
        ck_assert_uint_eq(e.attr.mode & 07000, 0); /* set-id bits stripped */
        struct fuse_write_in wi = { .fh = o.fh, .offset = 3, .size = 5 };
        req_init(&q, FUSE_WRITE, e.nodeid);
        req_add(&q, &wi, sizeof(wi));
        req_add(&q, "abcde", 5);
        ck_assert_int_eq(req_send(&q), 16 + 8);
        ck_assert_int_eq(reply_error(), 0);
        /* WRITE whose payload length disagrees with size */
        wi.size = 100;
        req_init(&q, FUSE_WRITE, e.nodeid);
        req_add(&q, &wi, sizeof(wi));
        req_add(&q, "abcde", 5);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        char p[PATH_MAX], buf[32] = {0};
        snprintf(p, sizeof(p), "%s/new.txt", tree.share);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(read(fd, buf, sizeof(buf)), 8);
        close(fd);
        ck_assert_int_eq(memcmp(buf, "\0\0\0abcde", 8), 0);
        struct stat st;
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07000, 0);

        /* CREATE on an existing FIFO without O_EXCL: never opened */
        struct fuse_create_in ci = { .flags = O_WRONLY | O_CREAT, .mode = S_IFREG | 06755 };
        req_init(&q, FUSE_CREATE, 1);
        req_add(&q, &ci, sizeof(ci));
        req_str(&q, "fifo");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EACCES);
        /* Names that are paths or dots */
        static const char *bad[] = { "..", ".", "a/b", "/etc/x" };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct fuse_mkdir_in mk = { .mode = 0755 };
                req_init(&q, FUSE_MKDIR, 1);
                req_add(&q, &mk, sizeof(mk));
                req_str(&q, bad[i]);
                req_send(&q);
                ck_assert_int_eq(reply_error(), -EINVAL);
        }
        /* Device nodes never; FIFOs fine */
        struct fuse_mknod_in mi = { .mode = S_IFCHR | 0666, .rdev = makedev(1, 3) };
        req_init(&q, FUSE_MKNOD, 1);
        req_add(&q, &mi, sizeof(mi));
        req_str(&q, "dev2");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EPERM);
        mi.mode = S_IFBLK | 0666;
        req_init(&q, FUSE_MKNOD, 1);
        req_add(&q, &mi, sizeof(mi));
        req_str(&q, "dev3");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EPERM);
        mi.mode = S_IFIFO | 0644;
        req_init(&q, FUSE_MKNOD, 1);
        req_add(&q, &mi, sizeof(mi));
        req_str(&q, "fifo2");
        req_send(&q);
        ck_assert_int_eq(reply_error(), 0);
        /* Rename through a symlinked dir is not a thing: link_up is a link */
        int64_t up = lookup(1, "link_up", NULL);
        struct fuse_rename_in rn = { .newdir = (uint64_t)up };
        req_init(&q, FUSE_RENAME, 1);
        req_add(&q, &rn, sizeof(rn));
        req_str(&q, "new.txt");
        req_str(&q, "escaped");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -ENOTDIR);
        snprintf(p, sizeof(p), "%s/escaped", tree.base);
        ck_assert_int_eq(access(p, F_OK), -1);
        /* chown refused, chmod strips set-id */
        struct fuse_setattr_in sa = { .valid = FATTR_UID, .uid = 12345 };
        req_init(&q, FUSE_SETATTR, e.nodeid);
        req_add(&q, &sa, sizeof(sa));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EPERM);
        sa = (struct fuse_setattr_in){ .valid = FATTR_MODE | FATTR_SIZE, .mode = 04777, .size = 2 };
        req_init(&q, FUSE_SETATTR, e.nodeid);
        req_add(&q, &sa, sizeof(sa));
        req_send(&q);
        ck_assert_int_eq(reply_error(), 0);
        snprintf(p, sizeof(p), "%s/new.txt", tree.share);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0777);
        ck_assert_int_eq(st.st_size, 2);
        /* security.* xattrs refused, user.* lands */
        uint32_t sx[2] = { 3, 0 };
        req_init(&q, FUSE_SETXATTR, e.nodeid);
        req_add(&q, sx, sizeof(sx));
        req_str(&q, "security.capability");
        req_add(&q, "abc", 3);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EPERM);
        /* Symlinks are created as text */
        req_init(&q, FUSE_SYMLINK, 1);
        req_str(&q, "newlink");
        req_str(&q, "/etc/shadow");
        req_send(&q);
        ck_assert_int_eq(reply_error(), 0);
        memcpy(&e, reply_body(), sizeof(e));
        ck_assert_int_eq(open_op(FUSE_OPEN, e.nodeid, O_RDONLY), -ELOOP);
        /* RENAME_WHITEOUT would make a device node */
        struct fuse_rename2_in rn2 = { .newdir = 1, .flags = RENAME_WHITEOUT };
        req_init(&q, FUSE_RENAME2, 1);
        req_add(&q, &rn2, sizeof(rn2));
        req_str(&q, "new.txt");
        req_str(&q, "w.txt");
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        /* secret outside untouched */
        fd = open(tree.secret, O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(read(fd, buf, sizeof(buf)), (ssize_t)strlen(FS_TEST_SECRET));
        close(fd);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fs_server_security");
        TCase *tc = tcase_create("security");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_readonly_everything_erofs);
        tcase_add_test(tc, test_symlinks_never_followed);
        tcase_add_test(tc, test_special_files_never_opened);
        tcase_add_test(tc, test_readdir);
        tcase_add_test(tc, test_xattr);
        tcase_add_test(tc, test_rw_mode);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
