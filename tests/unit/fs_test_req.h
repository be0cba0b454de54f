/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the fs server suites that speak FUSE to smolvm_fs_handle
 * directly (test_fs_server*.c, test_fs_scale.c): one server over the
 * fs_test_tree share, requests built by hand, split over several iovecs as a
 * virtqueue would hand them over, replies checked for length and canaries. */
#pragma once

#include <errno.h>
#include <linux/fuse.h>
#include <sys/uio.h>

#include "check_main.h"
#include "fs_server.h"
#include "fs_test_tree.h"
#include "util.h"

#define REQ_MAX (80u * 1024u)
#define OUT_MAX (2u * 1024u * 1024u)

static fs_test_tree tree;
static smolvm_fs *fs;
static uint8_t *outbuf;

typedef struct req {
        uint8_t buf[REQ_MAX];
        size_t len;
} req;

static uint64_t next_unique = 1;

static inline void req_init(req *q, uint32_t opcode, uint64_t nodeid)
{
        struct fuse_in_header h = { .opcode = opcode, .nodeid = nodeid, .unique = next_unique++ };
        memcpy(q->buf, &h, sizeof(h));
        q->len = sizeof(h);
}

static inline void req_add(req *q, const void *p, size_t len)
{
        ck_assert_uint_le(q->len + len, REQ_MAX);
        memcpy(q->buf + q->len, p, len);
        q->len += len;
}

static inline void req_str(req *q, const char *s)
{
        req_add(q, s, strlen(s) + 1);
}

/* Send with in split in three and out split in two; returns smolvm_fs_handle's
 * value. The reply lands in outbuf. */
static inline ssize_t req_send_cap(req *q, size_t out_cap)
{
        struct fuse_in_header h;
        memcpy(&h, q->buf, sizeof(h));
        h.len = (uint32_t)q->len;
        memcpy(q->buf, &h, sizeof(h));
        size_t a = q->len / 3, b = q->len / 2;
        struct iovec in[3] = {
                { q->buf, a }, { q->buf + a, b - a }, { q->buf + b, q->len - b },
        };
        size_t o = MIN(out_cap, (size_t)24);
        struct iovec out[2] = { { outbuf, o }, { outbuf + o, out_cap - o } };
        /* Poison the start (headers) and a canary zone just past out_cap. */
        memset(outbuf, 0xa5, MIN(out_cap, (size_t)4096));
        if (out_cap + 64 <= OUT_MAX)
                memset(outbuf + out_cap, 0xa5, 64);
        ssize_t n = smolvm_fs_handle(fs, in, 3, out, 2);
        if (n >= (ssize_t)sizeof(struct fuse_out_header)) {
                struct fuse_out_header oh;
                memcpy(&oh, outbuf, sizeof(oh));
                ck_assert_uint_eq(oh.len, (uint64_t)n);
                ck_assert_uint_eq(oh.unique, h.unique);
                ck_assert_uint_le((size_t)n, out_cap);
        }
        /* Never a byte past what we offered. */
        if (out_cap + 64 <= OUT_MAX)
                for (size_t i = out_cap; i < out_cap + 64; i++)
                        ck_assert_uint_eq(outbuf[i], 0xa5);
        return n;
}

static inline ssize_t req_send(req *q)
{
        return req_send_cap(q, OUT_MAX - 64);
}

static inline int reply_error(void)
{
        struct fuse_out_header oh;
        memcpy(&oh, outbuf, sizeof(oh));
        return oh.error;
}

static inline const void *reply_body(void)
{
        return outbuf + sizeof(struct fuse_out_header);
}

static inline int do_init_minor(uint32_t major, uint32_t minor, struct fuse_init_out *ret)
{
        req q;
        req_init(&q, FUSE_INIT, 0);
        struct fuse_init_in in = { .major = major, .minor = minor, .max_readahead = 131072,
                                   .flags = 0xffffffffu, .flags2 = 0 };
        req_add(&q, &in, sizeof(in));
        ssize_t n = req_send(&q);
        ck_assert_int_ge(n, 16);
        if (ret && reply_error() == 0) {
                ck_assert_int_eq(n, 16 + (ssize_t)sizeof(*ret));
                memcpy(ret, reply_body(), sizeof(*ret));
        }
        return reply_error();
}

/* keep_open: these fixtures serve OPEN/OPENDIR with handles in read-only mode
 * too, to test the handle paths; make_fs_no_open() is the read-only default. */
static inline void make_fs_fds(bool read_only, uint32_t max_inodes, uint32_t max_handles, uint32_t max_fds)
{
        smolvm_fs_free(fs);
        fs = NULL;
        smolvm_fs_config cfg = { .root = tree.share, .read_only = read_only, .max_inodes = max_inodes,
                                 .max_handles = max_handles, .max_write = 128 * 1024, .max_fds = max_fds,
                                 .keep_open = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
}

/* Read-only as shares run it: OPEN and OPENDIR answer ENOSYS, READ and
 * READDIR come with fh 0. */
static inline void make_fs_no_open(uint32_t max_fds)
{
        smolvm_fs_free(fs);
        fs = NULL;
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true, .max_write = 128 * 1024, .max_fds = max_fds };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
}

static inline void make_fs(bool read_only, uint32_t max_inodes, uint32_t max_handles)
{
        make_fs_fds(read_only, max_inodes, max_handles, 0);
}

static inline void setup(void)
{
        outbuf = malloc(OUT_MAX);
        ck_assert_ptr_nonnull(outbuf);
        ck_assert_int_eq(fs_test_tree_make(&tree), 0);
        fs_test_tree_guard(&tree, NULL);
        make_fs(true, 0, 0);
}

static inline void teardown(void)
{
        smolvm_fs_free(fs);
        fs = NULL;
        fs_test_tree_remove(&tree);
        free(outbuf);
}

/* ---- op helpers: return negative errno or a value ---- */

static inline int64_t lookup(uint64_t parent, const char *name, struct fuse_entry_out *ret)
{
        if (ret)
                memset(ret, 0, sizeof(*ret));
        req q;
        req_init(&q, FUSE_LOOKUP, parent);
        req_str(&q, name);
        ssize_t n = req_send(&q);
        ck_assert_int_ge(n, 16);
        if (reply_error())
                return reply_error();
        ck_assert_int_eq(n, 16 + (ssize_t)sizeof(struct fuse_entry_out));
        struct fuse_entry_out e;
        memcpy(&e, reply_body(), sizeof(e));
        if (ret)
                *ret = e;
        return (int64_t)e.nodeid;
}

static inline int64_t open_op(uint32_t opcode, uint64_t nodeid, uint32_t flags)
{
        req q;
        req_init(&q, opcode, nodeid);
        struct fuse_open_in in = { .flags = flags };
        req_add(&q, &in, sizeof(in));
        ssize_t n = req_send(&q);
        ck_assert_int_ge(n, 16);
        if (reply_error())
                return reply_error();
        struct fuse_open_out o;
        memcpy(&o, reply_body(), sizeof(o));
        return (int64_t)o.fh;
}

static inline int release_op(uint32_t opcode, uint64_t fh)
{
        req q;
        req_init(&q, opcode, 1);
        struct fuse_release_in in = { .fh = fh };
        req_add(&q, &in, sizeof(in));
        ck_assert_int_eq(req_send(&q), 16);
        return reply_error();
}

static inline ssize_t read_op_node(uint64_t nodeid, uint64_t fh, uint64_t off, uint32_t size)
{
        req q;
        req_init(&q, FUSE_READ, nodeid);
        struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
        req_add(&q, &in, sizeof(in));
        ssize_t n = req_send(&q);
        ck_assert_int_ge(n, 16);
        if (reply_error())
                return reply_error();
        return n - 16;
}

static inline ssize_t read_op(uint64_t fh, uint64_t off, uint32_t size)
{
        return read_op_node(1, fh, off, size);
}

/* n files "f0".. in share/many, holding "file-0"...; the directory's path. */
static inline void make_many_n(char ret_dir[static PATH_MAX], int n)
{
        snprintf(ret_dir, PATH_MAX, "%s/many", tree.share);
        ck_assert_int_eq(mkdir(ret_dir, 0755), 0);
        for (int i = 0; i < n; i++) {
                char name[32], body[32];
                snprintf(name, sizeof(name), "f%d", i);
                snprintf(body, sizeof(body), "file-%d", i);
                ck_assert_int_eq(fs_test_write_file(ret_dir, name, body, strlen(body)), 0);
        }
}

static inline void forget(uint64_t nodeid, uint64_t n)
{
        req q;
        req_init(&q, FUSE_FORGET, nodeid);
        struct fuse_forget_in in = { .nlookup = n };
        req_add(&q, &in, sizeof(in));
        ck_assert_int_eq(req_send(&q), 0);
}

static inline smolvm_fs_stats stats(void)
{
        smolvm_fs_stats s;
        smolvm_fs_get_stats(fs, &s);
        return s;
}

/* GETATTR: 0 with *ret_ino, or the error. */
static inline int getattr_ino(uint64_t nodeid, uint64_t *ret_ino)
{
        req q;
        req_init(&q, FUSE_GETATTR, nodeid);
        struct fuse_getattr_in gi = { 0 };
        req_add(&q, &gi, sizeof(gi));
        ck_assert_int_ge(req_send(&q), 16);
        if (reply_error())
                return reply_error();
        struct fuse_attr_out ao;
        memcpy(&ao, reply_body(), sizeof(ao));
        *ret_ino = ao.attr.ino;
        return 0;
}

/* CREATE NAME in the root with O_RDWR; the entry and the open reply. */
static inline void create_op(const char *name, uint32_t mode, struct fuse_entry_out *e, struct fuse_open_out *o)
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
