/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE file server (fs/fs_server.c) fed hand-built requests, as a hostile
 * guest would send them: malformed headers and arguments, hostile names,
 * out-of-range reads, forget and release, unknown opcodes. Requests are split
 * over several iovecs and replies gathered from several, as a virtqueue would
 * hand them over (fs_test_req.h). Table and fd limits: test_fs_server_limits.c;
 * read-only mode, symlinks, special files, read-write confinement:
 * test_fs_server_security.c. */
#include <errno.h>
#include <linux/fuse.h>

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

/* Opens are served through the guest's page cache by default (shared mmap
 * works); with direct_io every regular file opened or created answers
 * FOPEN_DIRECT_IO (reads and writes go straight between the guest's buffers
 * and the file), and reads still return the file's bytes. */
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

/* INIT with the guest's flags2 (fs_test_req.h's do_init_minor sends none). */
static struct fuse_init_out init_with(bool direct_io, uint32_t flags, uint32_t flags2)
{
        smolvm_fs_free(fs);
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true, .direct_io = direct_io };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        req q;
        req_init(&q, FUSE_INIT, 0);
        struct fuse_init_in in = { .major = 7, .minor = 41, .max_readahead = 131072, .flags = flags,
                                   .flags2 = flags2 };
        req_add(&q, &in, sizeof(in));
        struct fuse_init_out out;
        ck_assert_int_eq(req_send(&q), 16 + (ssize_t)sizeof(out));
        memcpy(&out, reply_body(), sizeof(out));
        return out;
}

/* Direct I/O keeps shared mmap on a 6.6+ guest: the server answers
 * FUSE_DIRECT_IO_ALLOW_MMAP (bit 36: flags2 bit 4, with FUSE_INIT_EXT) when the
 * guest offers it, and nothing else of flags2; not without direct_io, not to a
 * guest that does not offer it (6.1), not without FUSE_INIT_EXT. */
START_TEST(test_direct_io_allow_mmap)
{
        const uint32_t allow = 1u << 4, ext = FUSE_INIT_EXT;
        struct fuse_init_out out = init_with(true, 0xffffffffu, 0xffffffffu);
        ck_assert_uint_ne(out.flags & ext, 0);
        ck_assert_uint_eq(out.flags2, allow);
        ck_assert_uint_ne(out.flags & FUSE_MAX_PAGES, 0); /* the rest as before */

        out = init_with(false, 0xffffffffu, 0xffffffffu);
        ck_assert_uint_eq(out.flags & ext, 0);
        ck_assert_uint_eq(out.flags2, 0);
        out = init_with(true, 0xffffffffu, ~allow);
        ck_assert_uint_eq(out.flags & ext, 0);
        ck_assert_uint_eq(out.flags2, 0);
        out = init_with(true, ~ext, 0xffffffffu);
        ck_assert_uint_eq(out.flags & ext, 0);
        ck_assert_uint_eq(out.flags2, 0);
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

int main(void)
{
        Suite *s = suite_create("fs_server");
        TCase *tc = tcase_create("protocol");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_init_negotiation);
        tcase_add_test(tc, test_bad_config);
        tcase_add_test(tc, test_direct_io);
        tcase_add_test(tc, test_direct_io_allow_mmap);
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
        return run_suite(s);
}
