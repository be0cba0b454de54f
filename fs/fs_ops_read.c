/* SPDX-License-Identifier: Apache-2.0 */
/* Operations that never change the tree: LOOKUP, FORGET, GETATTR, READLINK,
 * OPEN, READ, RELEASE, STATFS, FLUSH, xattr reads, ACCESS, LSEEK, FSYNC. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

#include "fs_server_i.h"
#include "util.h"

ssize_t fs_op_lookup(smolvm_fs *fs, fs_req *r)
{
        const char *name;
        size_t next;
        int k = fs_arg_name(r, 0, &name, &next);
        if (k < 0)
                return fs_reply_err(r, k);
        INODE_OR_REPLY(dir, fs, r);
        struct fuse_entry_out e;
        int err = fs_do_lookup(fs, dir.ino, name, false, &e);
        if (err < 0)
                return fs_reply_err(r, err);
        return fs_reply(r, &e, sizeof(e));
}

ssize_t fs_op_forget(smolvm_fs *fs, fs_req *r)
{
        struct fuse_forget_in in;
        memcpy(&in, r->args, sizeof(in));
        if (fs_inode_forget(fs, r->hdr.nodeid, in.nlookup) < 0)
                __atomic_fetch_add(&fs->n_errors, 1, __ATOMIC_RELAXED);
        return 0;
}

ssize_t fs_op_batch_forget(smolvm_fs *fs, fs_req *r)
{
        struct fuse_batch_forget_in in;
        memcpy(&in, r->args, sizeof(in));
        size_t room = (r->args_len - sizeof(in)) / sizeof(struct fuse_forget_one);
        if (in.count > room) {
                /* Truncated: forget what is there, count the lie. */
                __atomic_fetch_add(&fs->n_errors, 1, __ATOMIC_RELAXED);
                in.count = (uint32_t)room;
        }
        for (uint32_t i = 0; i < in.count; i++) {
                struct fuse_forget_one one;
                memcpy(&one, r->args + sizeof(in) + i * sizeof(one), sizeof(one));
                if (fs_inode_forget(fs, one.nodeid, one.nlookup) < 0)
                        __atomic_fetch_add(&fs->n_errors, 1, __ATOMIC_RELAXED);
        }
        return 0;
}

ssize_t fs_op_getattr(smolvm_fs *fs, fs_req *r)
{
        INODE_OR_REPLY(n, fs, r);
        struct stat st;
        int err = fs_stat_fd(n.ino->fd, &st);
        if (err < 0)
                return fs_reply_err(r, err);
        struct fuse_attr_out out = {0};
        fs_set_attr_timeout(fs, &out);
        fs_fill_attr(fs, &st, &out.attr);
        return fs_reply(r, &out, sizeof(out));
}

ssize_t fs_op_readlink(smolvm_fs *fs, fs_req *r)
{
        INODE_OR_REPLY(n, fs, r);
        if (n.ino->type != S_IFLNK)
                return fs_reply_err(r, -EINVAL);
        char buf[PATH_MAX];
        ssize_t len = readlinkat(n.ino->fd, "", buf, sizeof(buf));
        if (len < 0)
                return fs_reply_err(r, negative_errno());
        if ((size_t)len >= sizeof(buf))
                return fs_reply_err(r, -ENAMETOOLONG);
        return fs_reply(r, buf, (size_t)len);
}

/* Which host open flags a guest's OPEN/CREATE flags map to; -EROFS / -EINVAL. */
int fs_open_flags(const smolvm_fs *fs, uint32_t guest_flags, int *ret_flags)
{
        int acc = (int)guest_flags & O_ACCMODE;
        if (acc == O_ACCMODE)
                return -EINVAL;
        if (fs->read_only) {
                /* O_TRUNC truncates even with O_RDONLY; O_CREAT may create. */
                if (acc != O_RDONLY || (guest_flags & (O_TRUNC | O_CREAT)))
                        return -EROFS;
                *ret_flags = O_RDONLY;
                return 0;
        }
        *ret_flags = acc | ((int)guest_flags & (O_APPEND | O_TRUNC | O_SYNC | O_DSYNC));
        return 0;
}

/* The open_flags of an OPEN or CREATE reply for a regular file. Read-only:
 * only the host changes files, and AUTO_INVAL_DATA drops what changed, so the
 * guest's cache is kept across opens. direct_io: FOPEN_DIRECT_IO (fs_server.h). */
uint32_t fs_open_reply_flags(const smolvm_fs *fs)
{
        return (fs->read_only ? FOPEN_KEEP_CACHE : 0u) | (fs->direct_io ? FOPEN_DIRECT_IO : 0u);
}

ssize_t fs_op_open(smolvm_fs *fs, fs_req *r)
{
        struct fuse_open_in in;
        memcpy(&in, r->args, sizeof(in));
        int flags;
        int err = fs_open_flags(fs, in.flags, &flags);
        if (err == -EROFS)
                return fs_erofs(fs, r);
        if (err < 0)
                return fs_reply_err(r, err);
        /* Read-only: no OPEN at all. ENOSYS makes the guest kernel open every
         * file without asking (fc->no_open) and send READ with fh 0, served by
         * nodeid (fs_inode_read_fd); no RELEASE either: two round trips less
         * per open(2), what `grep -r` does for every file. */
        if (fs->no_open)
                return fs_reply_err(r, -ENOSYS);
        INODE_OR_REPLY(n, fs, r);
        if (n.ino->type == S_IFDIR)
                return fs_reply_err(r, -EISDIR);
        int fd = fs_reopen(fs, n.ino, flags);
        if (fd < 0)
                return fs_reply_err(r, fd);
        struct fuse_open_out out = {0};
        err = fs_handle_add(fs, n.ino, fd, false, (flags & O_ACCMODE) != O_RDONLY, &out.fh);
        if (err < 0)
                return fs_reply_err(r, err);
        out.open_flags = fs_open_reply_flags(fs);
        return fs_reply(r, &out, sizeof(out));
}

static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
        while (*cnt > 0 && n >= (*iov)->iov_len) {
                n -= (*iov)->iov_len;
                (*iov)++;
                (*cnt)--;
        }
        if (*cnt > 0 && n > 0) {
                (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
                (*iov)->iov_len -= n;
        }
}

/* Validated (offset, size) for READ/WRITE: size <= max_write, no overflow. */
int fs_check_range(const smolvm_fs *fs, uint64_t offset, uint32_t size)
{
        if (size > fs->max_write)
                return -EINVAL;
        if (offset > (uint64_t)INT64_MAX || (uint64_t)INT64_MAX - offset < size)
                return -EINVAL;
        return 0;
}

/* A request with fh 0 on a no-OPEN share: the nodeid's readable fd, with the
 * inode held in *n (and the fd in *own_fd when the caller must close it), or
 * negative errno (-ESTALE: unknown or stale nodeid). */
static int node_read_fd(smolvm_fs *fs, const fs_req *r, fs_req_inode *n, int *own_fd)
{
        n->ino = fs_inode_get(fs, r->hdr.nodeid);
        if (!n->ino)
                return -ESTALE;
        bool own;
        int fd = fs_inode_read_fd(fs, n->ino, &own);
        if (fd >= 0 && own)
                *own_fd = fd;
        return fd;
}

ssize_t fs_op_read(smolvm_fs *fs, fs_req *r)
{
        struct fuse_read_in in;
        memcpy(&in, r->args, sizeof(in));
        int err = fs_check_range(fs, in.offset, in.size);
        if (err < 0) {
                __atomic_fetch_add(&fs->n_errors, 1, __ATOMIC_RELAXED);
                return fs_reply_err(r, err);
        }
        int fd;
        _cleanup_(handle_putp) fs_req_handle h = { fs, NULL };
        _cleanup_(inode_putp) fs_req_inode n = { fs, NULL };
        _cleanup_close_ int own_fd = -1;
        if (in.fh == 0 && fs->no_open) {
                fd = node_read_fd(fs, r, &n, &own_fd);
                if (fd < 0)
                        return fs_reply_err(r, fd);
        } else {
                h.h = fs_handle_get(fs, in.fh);
                if (!h.h)
                        return fs_reply_err(r, fs_handle_missing(fs, in.fh));
                if (h.h->is_dir)
                        return fs_reply_err(r, -EISDIR);
                fd = h.h->fd;
        }

        size_t hdr = sizeof(struct fuse_out_header);
        size_t want = MIN((size_t)in.size, r->out_cap - hdr);
        struct iovec small[64];
        _cleanup_free_ struct iovec *big = NULL;
        struct iovec *iov = small;
        if (r->out_cnt > (int)ARRAY_SIZE(small)) {
                big = calloc((size_t)r->out_cnt, sizeof(*big));
                if (!big)
                        return fs_reply_err(r, -ENOMEM);
                iov = big;
        }
        int cnt = fs_iov_slice(r->out, r->out_cnt, hdr, want, iov, MAX(r->out_cnt, 1));
        if (cnt < 0)
                return fs_reply_err(r, -EINVAL);

        /* Straight into the caller's buffers (guest memory for virtio-fs). A
         * short read means end of file; loop only over partial transfers. */
        size_t done = 0;
        off_t off = (off_t)in.offset;
        while (done < want && cnt > 0) {
                ssize_t got = preadv(fd, iov, cnt, off + (off_t)done);
                if (got < 0) {
                        if (errno == EINTR)
                                continue;
                        if (done == 0)
                                return fs_reply_err(r, negative_errno());
                        break;
                }
                if (got == 0)
                        break;
                done += (size_t)got;
                iov_advance(&iov, &cnt, (size_t)got);
        }
        struct fuse_out_header oh = { .len = (uint32_t)(hdr + done), .error = 0, .unique = r->hdr.unique };
        fs_out_write(r, 0, &oh, sizeof(oh));
        return (ssize_t)(hdr + done);
}

ssize_t fs_op_release(smolvm_fs *fs, fs_req *r)
{
        bool is_dir = r->hdr.opcode == FUSE_RELEASEDIR;
        struct fuse_release_in in;
        memcpy(&in, r->args, sizeof(in));
        int err = fs_handle_release(fs, in.fh, is_dir);
        if (err < 0) {
                __atomic_fetch_add(&fs->n_errors, 1, __ATOMIC_RELAXED);
                return fs_reply_err(r, err);
        }
        return fs_reply(r, NULL, 0);
}

ssize_t fs_op_statfs(smolvm_fs *fs, fs_req *r)
{
        if (fs->log_op_counts) {
                char line[2048];
                smolvm_fs_format_op_counts(fs, line, sizeof(line));
                fprintf(stderr, "smolvm-fs: requests: %s\n", line);
        }
        struct statfs s;
        if (fstatfs(fs_inode_at(fs, 0)->fd, &s) < 0)
                return fs_reply_err(r, negative_errno());
        struct fuse_statfs_out out = {0};
        out.st.blocks = s.f_blocks;
        out.st.bfree = s.f_bfree;
        out.st.bavail = s.f_bavail;
        out.st.files = s.f_files;
        out.st.ffree = s.f_ffree;
        out.st.bsize = (uint32_t)s.f_bsize;
        out.st.namelen = (uint32_t)MIN((unsigned long)s.f_namelen, (unsigned long)FS_NAME_MAX);
        out.st.frsize = (uint32_t)s.f_frsize;
        if (fs->read_only) {
                /* fuse_kstatfs has no flags word, so ST_RDONLY cannot travel in
                 * STATFS (the guest's statvfs f_flag comes from its mount options:
                 * mount the share "ro" in the guest too). Report no free space or
                 * inodes so nothing in the guest plans on writing. */
                out.st.bfree = 0;
                out.st.bavail = 0;
                out.st.ffree = 0;
        }
        return fs_reply(r, &out, sizeof(out));
}

/* FLUSH (sent on every close(2)) has nothing to do here: no write-back state, no
 * POSIX locks. ENOSYS makes the guest kernel treat this and every later flush as
 * done without asking (fuse_flush sets no_flush): one round trip less per close. */
ssize_t fs_op_flush(smolvm_fs *fs, fs_req *r)
{
        struct fuse_flush_in in;
        memcpy(&in, r->args, sizeof(in));
        if (in.fh == 0 && fs->no_open)
                return fs_reply_err(r, -ENOSYS);
        _cleanup_(handle_putp) fs_req_handle h = { fs, fs_handle_get(fs, in.fh) };
        if (!h.h)
                return fs_reply_err(r, fs_handle_missing(fs, in.fh));
        return fs_reply_err(r, -ENOSYS);
}

ssize_t fs_op_fsync(smolvm_fs *fs, fs_req *r)
{
        bool is_dir = r->hdr.opcode == FUSE_FSYNCDIR;
        struct fuse_fsync_in in;
        memcpy(&in, r->args, sizeof(in));
        if (in.fh == 0 && fs->no_open)
                return fs_reply(r, NULL, 0); /* read-only: nothing to make durable */
        _cleanup_(handle_putp) fs_req_handle h = { fs, fs_handle_get(fs, in.fh) };
        if (!h.h || h.h->is_dir != is_dir)
                return fs_reply_err(r, h.h ? -EBADF : fs_handle_missing(fs, in.fh));
        if (fs->read_only)
                return fs_reply(r, NULL, 0); /* nothing of ours to make durable */
        int rc = (in.fsync_flags & FUSE_FSYNC_FDATASYNC) ? fdatasync(h.h->fd) : fsync(h.h->fd);
        if (rc < 0)
                return fs_reply_err(r, negative_errno());
        return fs_reply(r, NULL, 0);
}

/* An fd on which f*xattr works: O_PATH fds do not support them. Only regular
 * files and directories are re-opened; other types have no xattrs to show. */
int fs_xattr_fd(smolvm_fs *fs, const fs_inode *ino)
{
        if (ino->type != S_IFREG && ino->type != S_IFDIR)
                return -ENODATA;
        return fs_reopen(fs, ino, O_RDONLY | O_NONBLOCK);
}

static ssize_t reply_xattr(fs_req *r, uint32_t size, bool list, int fd, const char *name)
{
        if (size == 0) {
                ssize_t n = list ? flistxattr(fd, NULL, 0) : fgetxattr(fd, name, NULL, 0);
                if (n < 0)
                        return fs_reply_err(r, negative_errno());
                struct fuse_getxattr_out out = { .size = (uint32_t)n };
                return fs_reply(r, &out, sizeof(out));
        }
        size = MIN(size, FS_XATTR_MAX);
        if (sizeof(struct fuse_out_header) + size > r->out_cap)
                size = (uint32_t)(r->out_cap - sizeof(struct fuse_out_header));
        _cleanup_free_ char *buf = malloc(size ? size : 1);
        if (!buf)
                return fs_reply_err(r, -ENOMEM);
        ssize_t n = list ? flistxattr(fd, buf, size) : fgetxattr(fd, name, buf, size);
        if (n < 0)
                return fs_reply_err(r, negative_errno()); /* ERANGE when too small */
        return fs_reply(r, buf, (size_t)n);
}

ssize_t fs_op_getxattr(smolvm_fs *fs, fs_req *r)
{
        struct fuse_getxattr_in in;
        memcpy(&in, r->args, sizeof(in));
        const char *name = (const char *)r->args + sizeof(in);
        size_t max = r->args_len - sizeof(in);
        const char *nul = memchr(name, '\0', max);
        if (!nul || nul == name || (size_t)(nul - name) > XATTR_NAME_MAX)
                return fs_reply_err(r, nul && nul != name ? -ERANGE : -EINVAL);
        INODE_OR_REPLY(n, fs, r);
        _cleanup_close_ int fd = fs_xattr_fd(fs, n.ino);
        if (fd < 0)
                return fs_reply_err(r, fd);
        return reply_xattr(r, in.size, false, fd, name);
}

ssize_t fs_op_listxattr(smolvm_fs *fs, fs_req *r)
{
        struct fuse_getxattr_in in;
        memcpy(&in, r->args, sizeof(in));
        INODE_OR_REPLY(n, fs, r);
        _cleanup_close_ int fd = fs_xattr_fd(fs, n.ino);
        if (fd == -ENODATA) {
                struct fuse_getxattr_out out = { .size = 0 };
                return in.size == 0 ? fs_reply(r, &out, sizeof(out)) : fs_reply(r, NULL, 0);
        }
        if (fd < 0)
                return fs_reply_err(r, fd);
        return reply_xattr(r, in.size, true, fd, NULL);
}

ssize_t fs_op_access(smolvm_fs *fs, fs_req *r)
{
        struct fuse_access_in in;
        memcpy(&in, r->args, sizeof(in));
        if (in.mask & ~(uint32_t)(R_OK | W_OK | X_OK))
                return fs_reply_err(r, -EINVAL);
        if (fs->read_only && (in.mask & W_OK))
                return fs_erofs(fs, r);
        INODE_OR_REPLY(n, fs, r);
        if (in.mask != F_OK && faccessat(n.ino->fd, "", (int)in.mask, AT_EMPTY_PATH | AT_EACCESS) < 0 &&
            errno != EINVAL && errno != ENOSYS)
                return fs_reply_err(r, negative_errno());
        return fs_reply(r, NULL, 0);
}

ssize_t fs_op_lseek(smolvm_fs *fs, fs_req *r)
{
        struct fuse_lseek_in in;
        memcpy(&in, r->args, sizeof(in));
        if (in.offset > (uint64_t)INT64_MAX)
                return fs_reply_err(r, -EINVAL);
        if (in.whence != SEEK_SET && in.whence != SEEK_CUR && in.whence != SEEK_END && in.whence != SEEK_DATA &&
            in.whence != SEEK_HOLE)
                return fs_reply_err(r, -EINVAL);
        int fd;
        _cleanup_(handle_putp) fs_req_handle h = { fs, NULL };
        _cleanup_(inode_putp) fs_req_inode n = { fs, NULL };
        _cleanup_close_ int own_fd = -1;
        if (in.fh == 0 && fs->no_open) {
                /* No handle, no cursor: only what does not depend on one (the
                 * kernel sends LSEEK for SEEK_DATA and SEEK_HOLE only). */
                if (in.whence == SEEK_CUR)
                        return fs_reply_err(r, -EINVAL);
                fd = node_read_fd(fs, r, &n, &own_fd);
                if (fd < 0)
                        return fs_reply_err(r, fd == -EISDIR ? -EINVAL : fd);
        } else {
                h.h = fs_handle_get(fs, in.fh);
                if (!h.h)
                        return fs_reply_err(r, fs_handle_missing(fs, in.fh));
                if (h.h->is_dir)
                        return fs_reply_err(r, -EINVAL); /* would move READDIR's cursor */
                fd = h.h->fd;
        }
        off_t o = lseek(fd, (off_t)in.offset, (int)in.whence);
        if (o < 0)
                return fs_reply_err(r, negative_errno());
        struct fuse_lseek_out out = { .offset = (uint64_t)o };
        return fs_reply(r, &out, sizeof(out));
}
