/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE file server (fs/fs_server.c) fed hand-built requests, as a hostile
 * guest would send them: malformed headers and arguments, hostile names,
 * out-of-range reads, table exhaustion, every mutation in read-only mode (with
 * the tree hashed before and after), symlinks and special files. Requests are
 * split over several iovecs and replies gathered from several, as a virtqueue
 * would hand them over. */
#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sys/xattr.h>

#include "check_main.h"
#include "fs_test_req.h"

/* ---- tests ---- */

START_TEST(test_init_negotiation)
{
        smolvm_fs_free(fs);
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);

        /* Anything before INIT: EIO. */
        req q;
        req_init(&q, FUSE_GETATTR, 1);
        struct fuse_getattr_in ga = {0};
        req_add(&q, &ga, sizeof(ga));
        ck_assert_int_eq(req_send(&q), 16);
        ck_assert_int_eq(reply_error(), -EIO);

        struct fuse_init_out out;
        ck_assert_int_eq(do_init_minor(7, 20, NULL), -EPROTO); /* too old */
        ck_assert_int_eq(do_init_minor(8, 0, &out), 0);          /* newer major: ours back */
        ck_assert_uint_eq(out.major, 7);
        ck_assert_int_eq(do_init_minor(7, 37, &out), 0);
        ck_assert_uint_eq(out.major, 7);
        ck_assert_uint_eq(out.minor, 37);
        ck_assert_uint_eq(out.max_write, 1024 * 1024);
        ck_assert_uint_eq(out.flags & FUSE_WRITEBACK_CACHE, 0);
        ck_assert_uint_eq(out.flags & FUSE_EXPORT_SUPPORT, 0);
        ck_assert_uint_eq(out.flags & FUSE_POSIX_ACL, 0);
        ck_assert_uint_ne(out.flags & FUSE_DO_READDIRPLUS, 0);
        ck_assert_uint_ne(out.flags & FUSE_MAX_PAGES, 0);
        ck_assert_uint_eq(out.max_pages, 256);
        ck_assert_int_eq(do_init_minor(7, 37, NULL), -EPROTO); /* twice */

        /* A newer kernel gets our minor. */
        smolvm_fs_free(fs);
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        ck_assert_int_eq(do_init_minor(7, 99, &out), 0);
        ck_assert_uint_eq(out.minor, FUSE_KERNEL_MINOR_VERSION);
}
END_TEST

/* Opens are served through the guest's page cache by default (shared mmap
 * works); with direct_io every regular file opened or created answers
 * FOPEN_DIRECT_IO (reads and writes go straight between the guest's buffers
 * and the file), and reads still return the file's bytes. */
/* CREATE NAME in the root with O_RDWR; the entry and the open reply. */
static void create_op(const char *name, uint32_t mode, struct fuse_entry_out *e, struct fuse_open_out *o)
{
        req q;
        struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = mode };
        req_init(&q, FUSE_CREATE, 1);
        req_add(&q, &ci, sizeof(ci));
        req_str(&q, name);
        ck_assert_int_eq(req_send(&q), 16 + (ssize_t)(sizeof(*e) + sizeof(*o)));
        memcpy(e, reply_body(), sizeof(*e));
        memcpy(o, (const uint8_t *)reply_body() + sizeof(*e), sizeof(*o));
}

static uint32_t open_flags_of(uint64_t nodeid, uint32_t flags, uint64_t *ret_fh)
{
        req q;
        req_init(&q, FUSE_OPEN, nodeid);
        struct fuse_open_in oi = { .flags = flags };
        req_add(&q, &oi, sizeof(oi));
        ck_assert_int_eq(req_send(&q), 16 + (ssize_t)sizeof(struct fuse_open_out));
        struct fuse_open_out oo;
        memcpy(&oo, reply_body(), sizeof(oo));
        if (ret_fh)
                *ret_fh = oo.fh;
        return oo.open_flags;
}

START_TEST(test_direct_io)
{
        int64_t file = lookup(1, "hello.txt", NULL);
        ck_assert_int_gt(file, 0);
        uint32_t fl = open_flags_of((uint64_t)file, O_RDONLY, NULL);
        ck_assert_uint_eq(fl & FOPEN_DIRECT_IO, 0);
        ck_assert_uint_ne(fl & FOPEN_KEEP_CACHE, 0);

        for (int rw = 0; rw < 2; rw++) {
                smolvm_fs_free(fs);
                smolvm_fs_config cfg = { .root = tree.share, .read_only = !rw, .direct_io = true };
                ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
                ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
                file = lookup(1, "hello.txt", NULL);
                ck_assert_int_gt(file, 0);
                uint64_t fh;
                fl = open_flags_of((uint64_t)file, O_RDONLY, &fh);
                ck_assert_uint_ne(fl & FOPEN_DIRECT_IO, 0);
                ck_assert_int_eq(read_op(fh, 0, 4096), (ssize_t)strlen(FS_TEST_HELLO));
                ck_assert_mem_eq(reply_body(), FS_TEST_HELLO, strlen(FS_TEST_HELLO));
                /* Directories are never direct: OPENDIR has its own reply. */
                int64_t dh = open_op(FUSE_OPENDIR, 1, O_RDONLY);
                ck_assert_int_gt(dh, 0);
        }
        /* Read-write: CREATE's open reply too. */
        struct fuse_entry_out e;
        struct fuse_open_out o;
        create_op("direct.txt", S_IFREG | 0644, &e, &o);
        ck_assert_uint_ne(o.open_flags & FOPEN_DIRECT_IO, 0);
}
END_TEST

START_TEST(test_bad_config)
{
        smolvm_fs *x = NULL;
        smolvm_fs_config cfg = { .root = "/nonexistent/smolvm", .read_only = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &x), -ENOENT);
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/hello.txt", tree.share);
        cfg.root = p;
        ck_assert_int_eq(smolvm_fs_new(&cfg, &x), -ENOTDIR);
        ck_assert_ptr_null(x);
        smolvm_fs_free(NULL);
}
END_TEST

START_TEST(test_malformed_headers)
{
        uint64_t errs = stats().n_errors;
        struct fuse_in_header h = { .len = 10, .opcode = FUSE_GETATTR, .nodeid = 1, .unique = 5 };
        struct iovec out = { outbuf, 4096 };
        /* shorter than a header */
        struct iovec in = { &h, 10 };
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, 1, &out, 1), 0);
        /* len says more than there is / less than there is */
        uint8_t buf[64] = {0};
        h.len = 64;
        memcpy(buf, &h, sizeof(h));
        in = (struct iovec){ buf, 40 };
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, 1, &out, 1), 0);
        h.len = 40;
        memcpy(buf, &h, sizeof(h));
        in = (struct iovec){ buf, 64 };
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, 1, &out, 1), 0);
        /* out too small for even a header */
        in = (struct iovec){ buf, 40 };
        struct iovec tiny = { outbuf, 15 };
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, 1, &tiny, 1), 0);
        /* no buffers at all, negative counts, absurd counts */
        ck_assert_int_lt(smolvm_fs_handle(fs, NULL, 0, &out, 1), 0);
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, -1, &out, 1), 0);
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, 1, &out, -5), 0);
        ck_assert_int_lt(smolvm_fs_handle(fs, &in, 100000, &out, 1), 0);
        ck_assert_uint_ge(stats().n_errors, errs + 7);
}
END_TEST

START_TEST(test_truncated_args)
{
        static const uint32_t ops[] = { FUSE_GETATTR, FUSE_OPEN, FUSE_READ, FUSE_RELEASE, FUSE_READDIR,
                                        FUSE_READDIRPLUS, FUSE_GETXATTR, FUSE_LISTXATTR, FUSE_FLUSH,
                                        FUSE_ACCESS, FUSE_LSEEK, FUSE_FSYNC, FUSE_OPENDIR, FUSE_INIT };
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
                req q;
                req_init(&q, ops[i], 1);
                uint8_t junk[3] = { 1, 2, 3 };
                req_add(&q, junk, sizeof(junk));
                ck_assert_int_eq(req_send(&q), 16);
                ck_assert_int_eq(reply_error(), -EINVAL);
        }
        /* FORGET with no argument: no reply, counted. */
        uint64_t errs = stats().n_errors;
        req q;
        req_init(&q, FUSE_FORGET, 1);
        ck_assert_int_eq(req_send(&q), 0);
        ck_assert_uint_eq(stats().n_errors, errs + 1);
}
END_TEST

START_TEST(test_names)
{
        req q;
        /* no NUL anywhere */
        req_init(&q, FUSE_LOOKUP, 1);
        req_add(&q, "hello.txt", 9);
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        /* empty */
        ck_assert_int_eq(lookup(1, "", NULL), -EINVAL);
        /* slashes: never a path */
        ck_assert_int_eq(lookup(1, "dir/sub.txt", NULL), -EINVAL);
        ck_assert_int_eq(lookup(1, "/etc", NULL), -EINVAL);
        ck_assert_int_eq(lookup(1, "../secret", NULL), -EINVAL);
        /* too long */
        char lng[300];
        memset(lng, 'a', sizeof(lng));
        lng[256] = '\0';
        ck_assert_int_eq(lookup(1, lng, NULL), -ENAMETOOLONG);
        lng[255] = '\0';
        ck_assert_int_eq(lookup(1, lng, NULL), -ENOENT);
        /* fine */
        ck_assert_int_gt(lookup(1, "hello.txt", NULL), 1);
        ck_assert_int_eq(lookup(1, "secret", NULL), -ENOENT);
        /* unknown parent, file as parent */
        ck_assert_int_eq(lookup(0x12345678abcull, "hello.txt", NULL), -ESTALE);
        int64_t f = lookup(1, "hello.txt", NULL);
        ck_assert_int_eq(lookup((uint64_t)f, "x", NULL), -ENOTDIR);
}
END_TEST

START_TEST(test_dotdot)
{
        struct fuse_entry_out e;
        ck_assert_int_eq(lookup(1, "..", &e), 1); /* root's parent is the root */
        ck_assert_uint_eq(e.attr.mode & S_IFMT, S_IFDIR);
        ck_assert_int_eq(lookup(1, ".", NULL), 1);
        int64_t dir = lookup(1, "dir", NULL);
        ck_assert_int_gt(dir, 1);
        int64_t deeper = lookup((uint64_t)dir, "deeper", NULL);
        ck_assert_int_gt(deeper, 1);
        ck_assert_int_eq(lookup((uint64_t)deeper, "..", NULL), dir);
        ck_assert_int_eq(lookup((uint64_t)dir, "..", NULL), 1);
        ck_assert_int_eq(lookup((uint64_t)deeper, ".", NULL), deeper);
        /* Forgetting the parent first keeps it alive for the child's "..". */
        forget((uint64_t)dir, 100);
        ck_assert_int_eq(lookup((uint64_t)deeper, "..", NULL), dir);
        int64_t f = lookup(1, "hello.txt", NULL);
        ck_assert_int_eq(lookup((uint64_t)f, "..", NULL), -ENOTDIR);
}
END_TEST

START_TEST(test_read)
{
        int64_t big = lookup(1, "big.bin", NULL);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)big, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        /* full-size read, data checked byte by byte across the split out iovecs */
        ssize_t n = read_op((uint64_t)fh, 1000, 128 * 1024);
        ck_assert_int_eq(n, 128 * 1024);
        const uint8_t *d = reply_body();
        for (size_t i = 0; i < 128 * 1024; i++)
                ck_assert_uint_eq(d[i], fs_test_big_byte(1000 + i));
        /* at EOF: short, then empty */
        ck_assert_int_eq(read_op((uint64_t)fh, FS_TEST_BIG_BYTES - 10, 4096), 10);
        ck_assert_int_eq(read_op((uint64_t)fh, FS_TEST_BIG_BYTES + 5, 4096), 0);
        /* oversized / overflowing / negative */
        uint64_t errs = stats().n_errors;
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 128 * 1024 + 1), -EINVAL);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 0xffffffffu), -EINVAL);
        ck_assert_int_eq(read_op((uint64_t)fh, (uint64_t)-1, 10), -EINVAL);
        ck_assert_int_eq(read_op((uint64_t)fh, (uint64_t)INT64_MAX - 5, 10), -EINVAL);
        ck_assert_int_eq(read_op((uint64_t)fh, 1ull << 63, 1), -EINVAL);
        ck_assert_uint_eq(stats().n_errors, errs + 5);
        /* a reply buffer smaller than the read: clamped, never overrun */
        req q;
        req_init(&q, FUSE_READ, 1);
        struct fuse_read_in in = { .fh = (uint64_t)fh, .offset = 0, .size = 4096 };
        req_add(&q, &in, sizeof(in));
        ck_assert_int_eq(req_send_cap(&q, 16 + 100), 16 + 100);
        ck_assert_uint_eq(((uint8_t *)reply_body())[99], fs_test_big_byte(99));
        /* wrong and stale handles */
        ck_assert_int_eq(read_op(0, 0, 10), -EBADF);
        ck_assert_int_eq(read_op((uint64_t)fh + (1ull << 32), 0, 10), -EBADF);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 10), -EBADF);
        /* a directory handle is not a file handle */
        int64_t dh = open_op(FUSE_OPENDIR, 1, O_RDONLY);
        ck_assert_int_gt(dh, 0);
        ck_assert_int_eq(read_op((uint64_t)dh, 0, 10), -EISDIR);
}
END_TEST

START_TEST(test_forget_release)
{
        uint32_t base = stats().n_inodes;
        uint64_t errs = stats().n_errors;
        forget(0xdead0000beefull, 1); /* unknown: no reply, counted */
        forget(0, 1);
        ck_assert_uint_eq(stats().n_errors, errs + 2);

        int64_t a = lookup(1, "hello.txt", NULL);
        ck_assert_int_eq(lookup(1, "hello.txt", NULL), a); /* reused, nlookup 2 */
        ck_assert_uint_eq(stats().n_inodes, base + 1);
        forget((uint64_t)a, 1);
        ck_assert_uint_eq(stats().n_inodes, base + 1);
        forget((uint64_t)a, 1);
        ck_assert_uint_eq(stats().n_inodes, base);
        req q;
        req_init(&q, FUSE_GETATTR, (uint64_t)a);
        struct fuse_getattr_in ga = {0};
        req_add(&q, &ga, sizeof(ga));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -ESTALE);
        int64_t b = lookup(1, "hello.txt", NULL);
        ck_assert_int_ne(b, a); /* the slot is reused under a new generation */

        /* BATCH_FORGET that claims more entries than it carries */
        int64_t c = lookup(1, "big.bin", NULL);
        req_init(&q, FUSE_BATCH_FORGET, 0);
        struct fuse_batch_forget_in bf = { .count = 1000000 };
        req_add(&q, &bf, sizeof(bf));
        struct fuse_forget_one ones[2] = { { (uint64_t)b, 1 }, { (uint64_t)c, 1 } };
        req_add(&q, ones, sizeof(ones));
        ck_assert_int_eq(req_send(&q), 0);
        ck_assert_uint_eq(stats().n_inodes, base);

        /* root is never forgotten */
        forget(1, 1000);
        ck_assert_int_gt(lookup(1, "dir", NULL), 1);

        /* double RELEASE, RELEASEDIR of a file handle */
        int64_t f = lookup(1, "hello.txt", NULL);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        ck_assert_int_eq(release_op(FUSE_RELEASEDIR, (uint64_t)fh), -EBADF);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), -EBADF);
        ck_assert_int_eq(release_op(FUSE_RELEASE, 0), -EBADF);
        ck_assert_uint_eq(stats().n_handles, 0);
        /* an open handle pins its inode past FORGET */
        fh = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
        forget((uint64_t)f, 1);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 5), 5);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
}
END_TEST

/* Send a request with no reply buffer at all (virtio-fs's hiprio queue). */
static ssize_t send_noreply(req *q)
{
        struct fuse_in_header h;
        memcpy(&h, q->buf, sizeof(h));
        h.len = (uint32_t)q->len;
        memcpy(q->buf, &h, sizeof(h));
        struct iovec in = { q->buf, q->len };
        return smolvm_fs_handle(fs, &in, 1, NULL, 0);
}

START_TEST(test_noreply_without_buffer)
{
        uint32_t base = stats().n_inodes;
        int64_t a = lookup(1, "hello.txt", NULL), b = lookup(1, "big.bin", NULL);
        ck_assert_uint_eq(stats().n_inodes, base + 2);
        req q;
        req_init(&q, FUSE_FORGET, (uint64_t)a);
        struct fuse_forget_in fi = { .nlookup = 1 };
        req_add(&q, &fi, sizeof(fi));
        ck_assert_int_eq(send_noreply(&q), 0);
        ck_assert_uint_eq(stats().n_inodes, base + 1);
        req_init(&q, FUSE_BATCH_FORGET, 0);
        struct fuse_batch_forget_in bf = { .count = 1 };
        struct fuse_forget_one one = { (uint64_t)b, 1 };
        req_add(&q, &bf, sizeof(bf));
        req_add(&q, &one, sizeof(one));
        ck_assert_int_eq(send_noreply(&q), 0);
        ck_assert_uint_eq(stats().n_inodes, base);
        req_init(&q, FUSE_INTERRUPT, 0);
        struct fuse_interrupt_in ii = { .unique = 12345 };
        req_add(&q, &ii, sizeof(ii));
        ck_assert_int_eq(send_noreply(&q), 0);
        req_init(&q, FUSE_NOTIFY_REPLY, 1);
        ck_assert_int_eq(send_noreply(&q), 0);
        /* A request that needs a reply and has no room for one: refused. */
        req_init(&q, FUSE_LOOKUP, 1);
        req_str(&q, "dir");
        uint64_t errs = stats().n_errors;
        ck_assert_int_lt(send_noreply(&q), 0);
        ck_assert_uint_eq(stats().n_errors, errs + 1);
        ck_assert_uint_eq(stats().n_inodes, base);
        /* With a reply buffer after all: still not a byte written back, even
         * for a malformed one (too short, unknown nodeid). */
        a = lookup(1, "hello.txt", NULL);
        static const uint32_t ops[] = { FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT, FUSE_NOTIFY_REPLY };
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
                req_init(&q, ops[i], i == 0 ? 0xdead0000beefull : (uint64_t)a);
                req_add(&q, &fi, i == 0 ? sizeof(fi) : 3);
                ck_assert_int_eq(req_send(&q), 0);
                for (size_t k = 0; k < 4096; k++)
                        ck_assert_uint_eq(outbuf[k], 0xa5);
        }
        ck_assert_uint_eq(stats().n_inodes, base + 1);
}
END_TEST

START_TEST(test_handle_exhaustion)
{
        make_fs(true, 0, 8);
        int64_t f = lookup(1, "hello.txt", NULL);
        int64_t fhs[8];
        for (int i = 0; i < 8; i++) {
                fhs[i] = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
                ck_assert_int_gt(fhs[i], 0);
        }
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY), -EMFILE);
        ck_assert_int_eq(open_op(FUSE_OPENDIR, 1, O_RDONLY), -EMFILE);
        ck_assert_uint_eq(stats().n_handles, 8);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fhs[3]), 0);
        int64_t again = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
        ck_assert_int_gt(again, 0);
        ck_assert_int_ne(again, fhs[3]);
        /* 20k more opens: all refused cleanly, no fd leak (100k below) */
        int before = 0;
        for (int fd = 0; fd < 4096; fd++)
                before += fcntl(fd, F_GETFD) >= 0;
        for (int i = 0; i < 20000; i++)
                ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY), -EMFILE);
        int after = 0;
        for (int fd = 0; fd < 4096; fd++)
                after += fcntl(fd, F_GETFD) >= 0;
        ck_assert_int_eq(before, after);
}
END_TEST

START_TEST(test_default_handle_limit)
{
        /* Defaults: half of the fd budget (3/4 of RLIMIT_NOFILE). */
        int64_t f = lookup(1, "hello.txt", NULL);
        int ok = 0;
        for (int i = 0; i < 100000; i++) {
                int64_t r = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
                if (r > 0)
                        ok++;
                else
                        ck_assert(r == -EMFILE);
        }
        smolvm_fs_stats s = stats();
        ck_assert_int_gt(ok, 100);
        ck_assert_uint_eq(s.max_handles, s.max_fds / 2);
        ck_assert_int_eq(ok, (int)s.max_handles);
        ck_assert_uint_eq(s.n_handles, (uint32_t)ok);
        ck_assert_uint_le(s.n_fds, s.max_fds);
        /* the process still has fds to spare */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        close(fd);
}
END_TEST

START_TEST(test_inode_exhaustion)
{
        make_fs(true, 4, 0); /* root + 3 */
        int64_t a = lookup(1, "hello.txt", NULL), b = lookup(1, "big.bin", NULL), c = lookup(1, "dir", NULL);
        ck_assert_int_gt(a, 1);
        ck_assert_int_gt(b, 1);
        ck_assert_int_gt(c, 1);
        ck_assert_int_eq(lookup(1, "fifo", NULL), -ENFILE);
        ck_assert_int_eq(lookup(1, "hello.txt", NULL), a); /* known ones still work */
        /* a FORGET frees a slot for the next name */
        forget((uint64_t)a, 2);
        ck_assert_int_gt(lookup(1, "fifo", NULL), 1);
        ck_assert_uint_eq(stats().n_inodes, 4);
}
END_TEST

#define EVICT_FILES 200
#define EVICT_FDS 16

static void make_many(char ret_dir[static PATH_MAX])
{
        snprintf(ret_dir, PATH_MAX, "%s/many", tree.share);
        ck_assert_int_eq(mkdir(ret_dir, 0755), 0);
        for (int i = 0; i < EVICT_FILES; i++) {
                char name[32], body[32];
                snprintf(name, sizeof(name), "f%d", i);
                snprintf(body, sizeof(body), "file-%d", i);
                ck_assert_int_eq(fs_test_write_file(ret_dir, name, body, strlen(body)), 0);
        }
}

/* A guest that looks up more files than the fd budget: idle inode fds are
 * closed and re-resolved on use; the server never holds more than max_fds, every
 * file stays readable, and a name replaced on the host while evicted yields
 * ESTALE, never the other inode. */
START_TEST(test_fd_eviction)
{
        char dir[PATH_MAX];
        make_many(dir);
        make_fs_fds(true, 0, 0, EVICT_FDS);
        int64_t many = lookup(1, "many", NULL);
        ck_assert_int_gt(many, 1);
        uint64_t node[EVICT_FILES], ino[EVICT_FILES];
        for (int i = 0; i < EVICT_FILES; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d", i);
                struct fuse_entry_out e;
                int64_t n = lookup((uint64_t)many, name, &e);
                ck_assert_int_gt(n, 1);
                node[i] = (uint64_t)n;
                ino[i] = e.attr.ino;
                ck_assert_uint_le(stats().n_fds, EVICT_FDS);
        }
        ck_assert_uint_eq(stats().n_inodes, EVICT_FILES + 2);
        ck_assert_uint_ge(stats().n_evictions, EVICT_FILES - EVICT_FDS);
        /* Every one still works, in an order that defeats any recency. */
        for (int k = 0; k < 2 * EVICT_FILES; k++) {
                int i = (k * 37) % EVICT_FILES;
                uint64_t got;
                ck_assert_int_eq(getattr_ino(node[i], &got), 0);
                ck_assert_uint_eq(got, ino[i]);
                int64_t fh = open_op(FUSE_OPEN, node[i], O_RDONLY);
                ck_assert_int_gt(fh, 0);
                char want[32];
                snprintf(want, sizeof(want), "file-%d", i);
                ck_assert_int_eq(read_op((uint64_t)fh, 0, 64), (ssize_t)strlen(want));
                ck_assert_int_eq(memcmp(reply_body(), want, strlen(want)), 0);
                ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
                ck_assert_uint_le(stats().n_fds, EVICT_FDS);
        }
        /* Swap every name on the host for a new inode. */
        for (int i = 0; i < EVICT_FILES; i++) {
                char from[PATH_MAX + 32], to[PATH_MAX + 32];
                snprintf(from, sizeof(from), "%s/f%d", dir, i);
                snprintf(to, sizeof(to), "%s/moved%d", dir, i);
                ck_assert_int_eq(rename(from, to), 0);
                ck_assert_int_eq(fs_test_write_file(dir, from + strlen(dir) + 1, "impostor", 8), 0);
        }
        int stale = 0;
        for (int i = 0; i < EVICT_FILES; i++) {
                uint64_t got;
                int err = getattr_ino(node[i], &got);
                if (err == -ESTALE)
                        stale++;
                else
                        ck_assert_uint_eq(got, ino[i]); /* still pinned: the original inode */
                ck_assert_int_eq(err == 0 || err == -ESTALE, 1);
        }
        ck_assert_int_ge(stale, EVICT_FILES - EVICT_FDS);
        /* A fresh lookup of a moved file finds it under its new name and revives
         * the old nodeid there. */
        struct fuse_entry_out e;
        ck_assert_uint_eq((uint64_t)lookup((uint64_t)many, "moved7", &e), node[7]);
        uint64_t got;
        ck_assert_int_eq(getattr_ino(node[7], &got), 0);
        ck_assert_uint_eq(got, ino[7]);
}
END_TEST

/* In rw mode a RENAME through the server moves the entry with it: the evicted
 * inode is re-resolved under its new name. */
START_TEST(test_fd_eviction_rename)
{
        char dir[PATH_MAX];
        make_many(dir);
        make_fs_fds(false, 0, 0, EVICT_FDS);
        int64_t many = lookup(1, "many", NULL);
        struct fuse_entry_out e;
        int64_t f0 = lookup((uint64_t)many, "f0", &e);
        ck_assert_int_gt(f0, 1);
        req q;
        struct fuse_rename_in ri = { .newdir = 1 };
        req_init(&q, FUSE_RENAME, (uint64_t)many);
        req_add(&q, &ri, sizeof(ri));
        req_str(&q, "f0");
        req_str(&q, "renamed");
        ck_assert_int_eq(req_send(&q), 16);
        ck_assert_int_eq(reply_error(), 0);
        uint64_t evictions = stats().n_evictions;
        for (int i = 1; i < EVICT_FILES; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d", i);
                ck_assert_int_gt(lookup((uint64_t)many, name, NULL), 1);
        }
        ck_assert_uint_gt(stats().n_evictions, evictions);
        uint64_t got;
        ck_assert_int_eq(getattr_ino((uint64_t)f0, &got), 0);
        ck_assert_uint_eq(got, e.attr.ino);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)f0, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 64), 6);
        ck_assert_int_eq(memcmp(reply_body(), "file-0", 6), 0);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
        ck_assert_uint_le(stats().n_fds, EVICT_FDS);
}
END_TEST

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

START_TEST(test_unknown_and_misc)
{
        static const uint32_t ops[] = { 0, 7, 19, FUSE_POLL, FUSE_GETLK, FUSE_SETLK, FUSE_IOCTL, FUSE_BMAP,
                                        FUSE_SETUPMAPPING, 52, 999, CUSE_INIT, 0xffffffffu };
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
                req q;
                req_init(&q, ops[i], 1);
                uint8_t pad[64] = {0};
                req_add(&q, pad, sizeof(pad));
                ck_assert_int_eq(req_send(&q), 16);
                ck_assert_int_eq(reply_error(), -ENOSYS);
        }
        req q;
        req_init(&q, FUSE_INTERRUPT, 1);
        struct fuse_interrupt_in ii = { .unique = 3 };
        req_add(&q, &ii, sizeof(ii));
        ck_assert_int_eq(req_send(&q), 0);
        /* over-long non-WRITE request */
        req_init(&q, FUSE_LOOKUP, 1);
        static uint8_t junk[REQ_MAX - 100];
        memset(junk, 'a', sizeof(junk));
        req_add(&q, junk, sizeof(junk));
        ck_assert_int_eq(req_send(&q), 16);
        ck_assert_int_eq(reply_error(), -EINVAL);
        /* LSEEK */
        int64_t f = lookup(1, "big.bin", NULL);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
        struct fuse_lseek_in li = { .fh = (uint64_t)fh, .offset = 10, .whence = SEEK_DATA };
        req_init(&q, FUSE_LSEEK, (uint64_t)f);
        req_add(&q, &li, sizeof(li));
        ck_assert_int_eq(req_send(&q), 16 + 8);
        struct fuse_lseek_out lo;
        memcpy(&lo, reply_body(), sizeof(lo));
        ck_assert_uint_eq(lo.offset, 10);
        li.whence = 77;
        req_init(&q, FUSE_LSEEK, (uint64_t)f);
        req_add(&q, &li, sizeof(li));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EINVAL);
        /* FLUSH / FSYNC */
        struct fuse_flush_in fi = { .fh = (uint64_t)fh };
        req_init(&q, FUSE_FLUSH, (uint64_t)f);
        req_add(&q, &fi, sizeof(fi));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -ENOSYS); /* "nothing to flush, don't ask again" */
        fi.fh = 12345;
        req_init(&q, FUSE_FLUSH, (uint64_t)f);
        req_add(&q, &fi, sizeof(fi));
        req_send(&q);
        ck_assert_int_eq(reply_error(), -EBADF);
        /* ACCESS R_OK fine, bad mask refused */
        struct fuse_access_in ai = { .mask = R_OK };
        req_init(&q, FUSE_ACCESS, (uint64_t)f);
        req_add(&q, &ai, sizeof(ai));
        req_send(&q);
        ck_assert_int_eq(reply_error(), 0);
        /* DESTROY drops every handle and inode, then INIT may come again */
        req_init(&q, FUSE_DESTROY, 0);
        ck_assert_int_eq(req_send(&q), 16);
        ck_assert_uint_eq(stats().n_handles, 0);
        ck_assert_uint_eq(stats().n_inodes, 1);
        ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
}
END_TEST

/* Names for traces come from the same opcode table that serves the requests:
 * an opcode served has its name, one answered ENOSYS above has "?" unless
 * the table knows it (POLL: known, not served). */
START_TEST(test_opcode_names)
{
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_LOOKUP), "LOOKUP");
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_READDIRPLUS), "READDIRPLUS");
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_RMDIR), "RMDIR");
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_RENAME2), "RENAME2");
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_INIT), "INIT");
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_NOTIFY_REPLY), "NOTIFY_REPLY");
        ck_assert_str_eq(smolvm_fs_opcode_name(FUSE_POLL), "POLL");
        static const uint32_t unknown[] = { 0, 7, 19, FUSE_GETLK, FUSE_IOCTL, FUSE_SETUPMAPPING, 52, 999,
                                            CUSE_INIT, 0xffffffffu };
        for (size_t i = 0; i < ARRAY_SIZE(unknown); i++)
                ck_assert_str_eq(smolvm_fs_opcode_name(unknown[i]), "?");
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

/* ---- threads ---- */

static void *hammer(void *arg)
{
        (void)arg;
        uint8_t inb[256], *ob = malloc(256 * 1024);
        for (int i = 0; i < 3000; i++) {
                struct {
                        struct fuse_in_header h;
                        char name[16];
                } lk = { .h = { .opcode = FUSE_LOOKUP, .nodeid = 1, .unique = 1 } };
                strcpy(lk.name, (i & 1) ? "big.bin" : "dir");
                lk.h.len = (uint32_t)(sizeof(lk.h) + strlen(lk.name) + 1);
                struct iovec in = { &lk, lk.h.len }, out = { ob, 256 * 1024 };
                if (smolvm_fs_handle(fs, &in, 1, &out, 1) != 16 + (ssize_t)sizeof(struct fuse_entry_out))
                        continue;
                struct fuse_entry_out e;
                memcpy(&e, ob + 16, sizeof(e));
                struct fuse_in_header h = { .len = 16 + sizeof(struct fuse_open_in), .nodeid = e.nodeid,
                                            .unique = 2, .opcode = (i & 1) ? FUSE_OPEN : FUSE_OPENDIR };
                struct fuse_open_in oi = {0};
                memcpy(inb, &h, 16);
                memcpy(inb + 16, &oi, sizeof(oi));
                in = (struct iovec){ inb, h.len };
                uint64_t fh = 0;
                if (smolvm_fs_handle(fs, &in, 1, &out, 1) == 32) {
                        memcpy(&fh, ob + 16, 8);
                        struct fuse_read_in ri = { .fh = fh, .size = 64 * 1024, .offset = (uint64_t)i * 7 };
                        h = (struct fuse_in_header){ .len = 16 + sizeof(ri), .unique = 3,
                                                     .opcode = (i & 1) ? FUSE_READ : FUSE_READDIRPLUS };
                        memcpy(inb, &h, 16);
                        memcpy(inb + 16, &ri, sizeof(ri));
                        in = (struct iovec){ inb, h.len };
                        smolvm_fs_handle(fs, &in, 1, &out, 1);
                        struct fuse_release_in rl = { .fh = fh };
                        h = (struct fuse_in_header){ .len = 16 + sizeof(rl), .unique = 4,
                                                     .opcode = (i & 1) ? FUSE_RELEASE : FUSE_RELEASEDIR };
                        memcpy(inb, &h, 16);
                        memcpy(inb + 16, &rl, sizeof(rl));
                        in = (struct iovec){ inb, h.len };
                        smolvm_fs_handle(fs, &in, 1, &out, 1);
                }
                struct fuse_forget_in fi = { .nlookup = 1 };
                h = (struct fuse_in_header){ .len = 16 + sizeof(fi), .nodeid = e.nodeid, .unique = 5,
                                             .opcode = FUSE_FORGET };
                memcpy(inb, &h, 16);
                memcpy(inb + 16, &fi, sizeof(fi));
                in = (struct iovec){ inb, h.len };
                smolvm_fs_handle(fs, &in, 1, &out, 1);
        }
        free(ob);
        return NULL;
}

START_TEST(test_threads)
{
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        smolvm_fs_stats s = stats();
        ck_assert_uint_eq(s.n_handles, 0);
        /* READDIRPLUS lookups are not forgotten by the hammer: only root, dir,
         * big.bin and root's entries may remain. */
        ck_assert_uint_le(s.n_inodes, 20);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fs_server");
        TCase *tc = tcase_create("protocol");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_init_negotiation);
        tcase_add_test(tc, test_bad_config);
        tcase_add_test(tc, test_direct_io);
        tcase_add_test(tc, test_malformed_headers);
        tcase_add_test(tc, test_truncated_args);
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_dotdot);
        tcase_add_test(tc, test_read);
        tcase_add_test(tc, test_forget_release);
        tcase_add_test(tc, test_noreply_without_buffer);
        tcase_add_test(tc, test_unknown_and_misc);
        tcase_add_test(tc, test_opcode_names);
        suite_add_tcase(s, tc);

        tc = tcase_create("limits");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 280);
        tcase_add_test(tc, test_handle_exhaustion);
        tcase_add_test(tc, test_default_handle_limit);
        tcase_add_test(tc, test_inode_exhaustion);
        tcase_add_test(tc, test_threads);
        tcase_add_test(tc, test_fd_eviction);
        tcase_add_test(tc, test_fd_eviction_rename);
        suite_add_tcase(s, tc);

        tc = tcase_create("security");
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
