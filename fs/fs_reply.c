/* SPDX-License-Identifier: Apache-2.0 */
/* What every op of the file server shares (fs_server_i.h, "reply helpers"):
 * writing a reply into the transport's iovecs, reading a name argument, the
 * attribute and cache-timeout fields. The dispatcher (fs_server.c) and the ops
 * (fs_ops_*.c, fs_inode.c) use these; none of them calls back into the
 * dispatcher. */
#include "fs_server_i.h"
#include "util.h"

bool fs_is_dot_or_dotdot(const char *name)
{
        return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

void fs_fill_attr(const smolvm_fs *fs, const struct stat *st, struct fuse_attr *a)
{
        memset(a, 0, sizeof(*a));
        a->ino = st->st_ino;
        a->size = (uint64_t)st->st_size;
        a->blocks = (uint64_t)st->st_blocks;
        a->atime = (uint64_t)st->st_atim.tv_sec;
        a->mtime = (uint64_t)st->st_mtim.tv_sec;
        a->ctime = (uint64_t)st->st_ctim.tv_sec;
        a->atimensec = (uint32_t)st->st_atim.tv_nsec;
        a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
        a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
        a->mode = st->st_mode;
        a->nlink = (uint32_t)st->st_nlink;
        a->uid = st->st_uid;
        a->gid = st->st_gid;
        /* glibc's dev_t layout equals the kernel's new_encode_dev() for 32 bits. */
        a->rdev = (uint32_t)st->st_rdev;
        a->blksize = (uint32_t)st->st_blksize;
        (void)fs;
}

void fs_set_timeouts(const smolvm_fs *fs, struct fuse_entry_out *e)
{
        e->entry_valid = fs->timeout_s;
        e->attr_valid = fs->timeout_s;
}

void fs_set_attr_timeout(const smolvm_fs *fs, struct fuse_attr_out *a)
{
        a->attr_valid = fs->timeout_s;
}

void fs_out_write(const fs_req *r, size_t off, const void *src, size_t len)
{
        const uint8_t *p = src;
        for (int i = 0; i < r->out_cnt && len > 0; i++) {
                size_t l = r->out[i].iov_len;
                if (off >= l) {
                        off -= l;
                        continue;
                }
                size_t n = MIN(l - off, len);
                memcpy((uint8_t *)r->out[i].iov_base + off, p, n);
                p += n;
                len -= n;
                off = 0;
        }
}

int fs_iov_slice(const struct iovec *src, int src_cnt, size_t off, size_t len, struct iovec *ret, int max)
{
        int n = 0;
        for (int i = 0; i < src_cnt && len > 0; i++) {
                size_t l = src[i].iov_len;
                if (off >= l) {
                        off -= l;
                        continue;
                }
                if (n >= max)
                        return -EINVAL;
                size_t take = MIN(l - off, len);
                ret[n].iov_base = (uint8_t *)src[i].iov_base + off;
                ret[n].iov_len = take;
                n++;
                len -= take;
                off = 0;
        }
        return len == 0 ? n : -EINVAL;
}

static ssize_t put_header(fs_req *r, size_t total, int neg_errno)
{
        struct fuse_out_header h = {
                .len = (uint32_t)total,
                .error = neg_errno,
                .unique = r->hdr.unique,
        };
        fs_out_write(r, 0, &h, sizeof(h));
        return (ssize_t)total;
}

ssize_t fs_reply_err(fs_req *r, int neg_errno)
{
        if (neg_errno >= 0 || neg_errno < -4095)
                neg_errno = -EIO;
        return put_header(r, sizeof(struct fuse_out_header), neg_errno);
}

ssize_t fs_reply(fs_req *r, const void *body, size_t body_len)
{
        size_t total = sizeof(struct fuse_out_header) + body_len;
        if (total > r->out_cap)
                return fs_reply_err(r, -EINVAL);
        if (body_len > 0)
                fs_out_write(r, sizeof(struct fuse_out_header), body, body_len);
        return put_header(r, total, 0);
}

ssize_t fs_erofs(smolvm_fs *fs, fs_req *r)
{
        fs_stat_inc(&fs->n_erofs);
        return fs_reply_err(r, -EROFS);
}

int fs_arg_name(const fs_req *r, size_t off, const char **ret_name, size_t *ret_next)
{
        if (off >= r->args_len)
                return -EINVAL;
        const char *start = (const char *)r->args + off;
        const char *nul = memchr(start, '\0', r->args_len - off);
        if (!nul)
                return -EINVAL;
        size_t len = (size_t)(nul - start);
        if (len == 0)
                return -EINVAL;
        if (len > FS_NAME_MAX)
                return -ENAMETOOLONG;
        if (memchr(start, '/', len))
                return -EINVAL;
        *ret_name = start;
        *ret_next = off + len + 1;
        return (int)len;
}
