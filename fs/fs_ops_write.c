/* SPDX-License-Identifier: Apache-2.0 */
/* Mutating operations, reached only when read_only is false (the dispatcher
 * answers EROFS before any of this runs otherwise). Still confined: every name is
 * one validated component relative to a parent's O_PATH fd, symlinks are created
 * but never followed, and some host-side dangers are refused outright:
 *  - no device nodes or sockets (MKNOD: regular files and FIFOs only);
 *  - no set-user/group-ID bits (the server usually runs as root: a guest could
 *    otherwise plant a setuid-root binary on the host), stripped on create/chmod;
 *  - no ownership changes (the guest's uids mean nothing on the host);
 *  - xattrs only in the "user." namespace (security.capability would grant
 *    capabilities to a host binary; trusted.* and ACLs are host policy). */
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "fs_server_i.h"
#include "util.h"

#define PERM_MASK ((mode_t)(S_IRWXU | S_IRWXG | S_IRWXO))

/* The dispatcher already answered EROFS; this second check keeps a future
 * dispatch-table mistake from turning into a write on a read-only share. */
#define REFUSE_IF_READ_ONLY(fs, r)              \
        do {                                    \
                if ((fs)->read_only)            \
                        return fs_erofs((fs), (r)); \
        } while (0)

static ssize_t reply_entry(smolvm_fs *fs, fs_req *r, fs_inode *dir, const char *name)
{
        struct fuse_entry_out e;
        int err = fs_do_lookup(fs, dir, name, false, &e);
        if (err < 0)
                return fs_reply_err(r, err);
        return fs_reply(r, &e, sizeof(e));
}

/* Name at off that must also not be "." or "..": those are never created,
 * removed or renamed through us. */
static int new_name(const fs_req *r, size_t off, const char **name, size_t *next)
{
        int k = fs_arg_name(r, off, name, next);
        if (k < 0)
                return k;
        return fs_is_dot_or_dotdot(*name) ? -EINVAL : k;
}

ssize_t fs_op_write(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_write_in in;
        memcpy(&in, r->args, sizeof(in));
        int err = fs_check_range(fs, in.offset, in.size);
        if (err < 0 || r->hdr.len - r->data_off != in.size) {
                __atomic_fetch_add(&fs->n_errors, 1, __ATOMIC_RELAXED);
                return fs_reply_err(r, -EINVAL);
        }
        _cleanup_(handle_putp) fs_req_handle h = { fs, fs_handle_get(fs, in.fh) };
        if (!h.h || h.h->is_dir || !h.h->writable)
                return fs_reply_err(r, h.h ? -EBADF : fs_handle_missing(fs, in.fh));

        /* The payload stays in the caller's buffers: slice the in iovecs. */
        struct iovec iov[64];
        _cleanup_free_ struct iovec *big = NULL;
        struct iovec *v = iov;
        if (r->in_cnt > (int)ARRAY_SIZE(iov)) {
                big = calloc((size_t)r->in_cnt, sizeof(*big));
                if (!big)
                        return fs_reply_err(r, -ENOMEM);
                v = big;
        }
        int cnt = fs_iov_slice(r->in, r->in_cnt, r->data_off, in.size, v, MAX(r->in_cnt, 1));
        if (cnt < 0)
                return fs_reply_err(r, -EINVAL);
        ssize_t n = cnt > 0 ? pwritev(h.h->fd, v, cnt, (off_t)in.offset) : 0;
        if (n < 0)
                return fs_reply_err(r, negative_errno());
        struct fuse_write_out out = { .size = (uint32_t)n };
        return fs_reply(r, &out, sizeof(out));
}

static int open_beneath(int dirfd, const char *name, int flags, mode_t mode)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY),
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
        return fd < 0 ? negative_errno() : fd;
}

ssize_t fs_op_create(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_create_in in;
        memcpy(&in, r->args, sizeof(in));
        const char *name;
        size_t next;
        int err = new_name(r, sizeof(in), &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        if ((in.mode & S_IFMT) != 0 && (in.mode & S_IFMT) != S_IFREG)
                return fs_reply_err(r, -EINVAL);
        int flags;
        err = fs_open_flags(fs, in.flags, &flags);
        if (err < 0)
                return fs_reply_err(r, err);
        INODE_OR_REPLY(dir, fs, r);
        if (dir.ino->type != S_IFDIR)
                return fs_reply_err(r, -ENOTDIR);

        /* O_EXCL first, so an existing FIFO or device is never opened; an
         * existing file (no O_EXCL asked) goes through the confined lookup and
         * the regular-file-only re-open instead. */
        _cleanup_close_ int fd = open_beneath(dir.ino->fd, name, flags | O_CREAT | O_EXCL,
                                              (mode_t)in.mode & PERM_MASK);
        struct fuse_entry_out e;
        if (fd == -EEXIST && !(in.flags & O_EXCL)) {
                err = fs_do_lookup(fs, dir.ino, name, false, &e);
                if (err < 0)
                        return fs_reply_err(r, err);
                _cleanup_(inode_putp) fs_req_inode child = { fs, fs_inode_get(fs, e.nodeid) };
                if (!child.ino)
                        return fs_reply_err(r, -ESTALE);
                fd = fs_reopen(fs, child.ino, flags);
                if (fd < 0) {
                        fs_inode_forget(fs, e.nodeid, 1);
                        return fs_reply_err(r, fd);
                }
        } else if (fd < 0) {
                return fs_reply_err(r, fd);
        } else {
                err = fs_do_lookup(fs, dir.ino, name, false, &e);
                if (err < 0)
                        return fs_reply_err(r, err);
                struct stat st;
                if (fstat(fd, &st) < 0 || st.st_ino != e.attr.ino) {
                        fs_inode_forget(fs, e.nodeid, 1); /* swapped under us */
                        return fs_reply_err(r, -EIO);
                }
        }
        _cleanup_(inode_putp) fs_req_inode child = { fs, fs_inode_get(fs, e.nodeid) };
        if (!child.ino)
                return fs_reply_err(r, -ESTALE);
        struct {
                struct fuse_entry_out e;
                struct fuse_open_out o;
        } out = { .e = e, .o.open_flags = fs_open_reply_flags(fs) };
        err = fs_handle_add(fs, child.ino, TAKE_FD(fd), false, (flags & O_ACCMODE) != O_RDONLY, &out.o.fh);
        if (err < 0) {
                fs_inode_forget(fs, e.nodeid, 1);
                return fs_reply_err(r, err);
        }
        return fs_reply(r, &out, sizeof(out));
}

ssize_t fs_op_mknod(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_mknod_in in;
        memcpy(&in, r->args, sizeof(in));
        const char *name;
        size_t next;
        int err = new_name(r, sizeof(in), &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        mode_t type = (mode_t)in.mode & S_IFMT;
        if (type == 0)
                type = S_IFREG;
        if (type != S_IFREG && type != S_IFIFO)
                return fs_reply_err(r, -EPERM); /* never device nodes or sockets */
        INODE_OR_REPLY(dir, fs, r);
        if (mknodat(dir.ino->fd, name, type | ((mode_t)in.mode & PERM_MASK), 0) < 0)
                return fs_reply_err(r, negative_errno());
        return reply_entry(fs, r, dir.ino, name);
}

ssize_t fs_op_mkdir(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_mkdir_in in;
        memcpy(&in, r->args, sizeof(in));
        const char *name;
        size_t next;
        int err = new_name(r, sizeof(in), &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        INODE_OR_REPLY(dir, fs, r);
        if (mkdirat(dir.ino->fd, name, ((mode_t)in.mode & PERM_MASK) | ((mode_t)in.mode & S_ISVTX)) < 0)
                return fs_reply_err(r, negative_errno());
        return reply_entry(fs, r, dir.ino, name);
}

ssize_t fs_op_symlink(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        const char *name;
        size_t next;
        int err = new_name(r, 0, &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        if (next >= r->args_len)
                return fs_reply_err(r, -EINVAL);
        const char *target = (const char *)r->args + next;
        const char *nul = memchr(target, '\0', r->args_len - next);
        if (!nul || nul == target)
                return fs_reply_err(r, -EINVAL);
        if ((size_t)(nul - target) >= PATH_MAX)
                return fs_reply_err(r, -ENAMETOOLONG);
        INODE_OR_REPLY(dir, fs, r);
        /* The target is stored as text; this server never follows it. */
        if (symlinkat(target, dir.ino->fd, name) < 0)
                return fs_reply_err(r, negative_errno());
        return reply_entry(fs, r, dir.ino, name);
}

ssize_t fs_op_link(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_link_in in;
        memcpy(&in, r->args, sizeof(in));
        const char *name;
        size_t next;
        int err = new_name(r, sizeof(in), &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        _cleanup_(inode_putp) fs_req_inode old = { fs, fs_inode_get(fs, in.oldnodeid) };
        if (!old.ino)
                return fs_reply_err(r, -ESTALE);
        if (old.ino->type == S_IFDIR)
                return fs_reply_err(r, -EPERM);
        INODE_OR_REPLY(dir, fs, r);
        /* AT_EMPTY_PATH links the pinned inode itself (needs CAP_DAC_READ_SEARCH);
         * without it, fall back to our own /proc fd entry for regular files. */
        if (linkat(old.ino->fd, "", dir.ino->fd, name, AT_EMPTY_PATH) < 0) {
                if (errno != ENOENT || old.ino->type != S_IFREG)
                        return fs_reply_err(r, negative_errno());
                char proc_name[16];
                snprintf(proc_name, sizeof(proc_name), "%d", old.ino->fd);
                if (linkat(fs->proc_fd_dir, proc_name, dir.ino->fd, name, AT_SYMLINK_FOLLOW) < 0)
                        return fs_reply_err(r, negative_errno());
        }
        return reply_entry(fs, r, dir.ino, name);
}

ssize_t fs_op_unlink(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        bool is_dir = r->hdr.opcode == FUSE_RMDIR;
        const char *name;
        size_t next;
        int err = new_name(r, 0, &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        INODE_OR_REPLY(dir, fs, r);
        if (unlinkat(dir.ino->fd, name, is_dir ? AT_REMOVEDIR : 0) < 0)
                return fs_reply_err(r, negative_errno());
        return fs_reply(r, NULL, 0);
}

ssize_t fs_op_rename(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        bool v2 = r->hdr.opcode == FUSE_RENAME2;
        uint64_t newdir;
        uint32_t flags = 0;
        size_t off;
        if (v2) {
                struct fuse_rename2_in in;
                memcpy(&in, r->args, sizeof(in));
                newdir = in.newdir;
                flags = in.flags;
                off = sizeof(in);
        } else {
                struct fuse_rename_in in;
                memcpy(&in, r->args, sizeof(in));
                newdir = in.newdir;
                off = sizeof(in);
        }
        if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
                return fs_reply_err(r, -EINVAL); /* RENAME_WHITEOUT makes a device node */
        const char *oldname, *newname;
        size_t next;
        int err = new_name(r, off, &oldname, &next);
        if (err >= 0)
                err = new_name(r, next, &newname, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        INODE_OR_REPLY(olddir, fs, r);
        _cleanup_(inode_putp) fs_req_inode nd = { fs, fs_inode_get(fs, newdir) };
        if (!nd.ino)
                return fs_reply_err(r, -ESTALE);
        if (renameat2(olddir.ino->fd, oldname, nd.ino->fd, newname, flags) < 0)
                return fs_reply_err(r, negative_errno());
        fs_inode_renamed(fs, olddir.ino, oldname, nd.ino, newname, flags & RENAME_EXCHANGE);
        return fs_reply(r, NULL, 0);
}

static int proc_name_of(const fs_inode *ino, char buf[static 16])
{
        return snprintf(buf, 16, "%d", ino->fd);
}

ssize_t fs_op_setattr(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_setattr_in in;
        memcpy(&in, r->args, sizeof(in));
        INODE_OR_REPLY(n, fs, r);
        struct stat st;
        int err = fs_stat_fd(n.ino->fd, &st);
        if (err < 0)
                return fs_reply_err(r, err);
        char pname[16];
        proc_name_of(n.ino, pname);

        if (((in.valid & FATTR_UID) && in.uid != st.st_uid) || ((in.valid & FATTR_GID) && in.gid != st.st_gid))
                return fs_reply_err(r, -EPERM);
        if (in.valid & FATTR_MODE) {
                if (n.ino->type == S_IFLNK)
                        return fs_reply_err(r, -EOPNOTSUPP);
                /* chmod through our own /proc fd entry: no open happens, so this is
                 * safe for every type; set-id bits are never granted. */
                mode_t m = ((mode_t)in.mode & PERM_MASK) | ((mode_t)in.mode & S_ISVTX);
                if (fchmodat(fs->proc_fd_dir, pname, m, 0) < 0)
                        return fs_reply_err(r, negative_errno());
        }
        if (in.valid & FATTR_SIZE) {
                if (n.ino->type != S_IFREG)
                        return fs_reply_err(r, n.ino->type == S_IFDIR ? -EISDIR : -EINVAL);
                if (in.size > (uint64_t)INT64_MAX)
                        return fs_reply_err(r, -EINVAL);
                _cleanup_(handle_putp) fs_req_handle h = { fs, NULL };
                if (in.valid & FATTR_FH)
                        h.h = fs_handle_get(fs, in.fh);
                int rc;
                if (h.h && h.h->writable && !h.h->is_dir) {
                        rc = ftruncate(h.h->fd, (off_t)in.size);
                } else {
                        _cleanup_close_ int fd = fs_reopen(fs, n.ino, O_WRONLY);
                        if (fd < 0)
                                return fs_reply_err(r, fd);
                        rc = ftruncate(fd, (off_t)in.size);
                }
                if (rc < 0)
                        return fs_reply_err(r, negative_errno());
        }
        if (in.valid & (FATTR_ATIME | FATTR_MTIME)) {
                struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
                if (in.valid & FATTR_ATIME)
                        ts[0] = (in.valid & FATTR_ATIME_NOW) ? (struct timespec){ .tv_nsec = UTIME_NOW }
                                                             : (struct timespec){ (time_t)in.atime, in.atimensec % 1000000000u };
                if (in.valid & FATTR_MTIME)
                        ts[1] = (in.valid & FATTR_MTIME_NOW) ? (struct timespec){ .tv_nsec = UTIME_NOW }
                                                             : (struct timespec){ (time_t)in.mtime, in.mtimensec % 1000000000u };
                if (utimensat(n.ino->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
                        return fs_reply_err(r, negative_errno());
        }
        err = fs_stat_fd(n.ino->fd, &st);
        if (err < 0)
                return fs_reply_err(r, err);
        struct fuse_attr_out out = {0};
        fs_set_attr_timeout(fs, &out);
        fs_fill_attr(fs, &st, &out.attr);
        return fs_reply(r, &out, sizeof(out));
}

static int xattr_name(const fs_req *r, size_t off, const char **ret, size_t *next)
{
        if (off >= r->args_len)
                return -EINVAL;
        const char *name = (const char *)r->args + off;
        const char *nul = memchr(name, '\0', r->args_len - off);
        if (!nul || nul == name)
                return -EINVAL;
        if ((size_t)(nul - name) > XATTR_NAME_MAX)
                return -ERANGE;
        if (strncmp(name, "user.", 5) != 0)
                return -EPERM;
        *ret = name;
        *next = off + (size_t)(nul - name) + 1;
        return 0;
}

ssize_t fs_op_setxattr(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        /* FUSE_SETXATTR_EXT is never negotiated: the compat 8-byte header. */
        uint32_t size, flags;
        memcpy(&size, r->args, 4);
        memcpy(&flags, r->args + 4, 4);
        const char *name;
        size_t next;
        int err = xattr_name(r, FUSE_COMPAT_SETXATTR_IN_SIZE, &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        if (size > FS_XATTR_MAX)
                return fs_reply_err(r, -E2BIG);
        if (r->args_len - next != size)
                return fs_reply_err(r, -EINVAL);
        if (flags & ~(uint32_t)(XATTR_CREATE | XATTR_REPLACE))
                return fs_reply_err(r, -EINVAL);
        INODE_OR_REPLY(n, fs, r);
        _cleanup_close_ int fd = fs_xattr_fd(fs, n.ino);
        if (fd < 0)
                return fs_reply_err(r, fd == -ENODATA ? -EPERM : fd);
        if (fsetxattr(fd, name, r->args + next, size, (int)flags) < 0)
                return fs_reply_err(r, negative_errno());
        return fs_reply(r, NULL, 0);
}

ssize_t fs_op_removexattr(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        const char *name;
        size_t next;
        int err = xattr_name(r, 0, &name, &next);
        if (err < 0)
                return fs_reply_err(r, err);
        INODE_OR_REPLY(n, fs, r);
        _cleanup_close_ int fd = fs_xattr_fd(fs, n.ino);
        if (fd < 0)
                return fs_reply_err(r, fd == -ENODATA ? -EPERM : fd);
        if (fremovexattr(fd, name) < 0)
                return fs_reply_err(r, negative_errno());
        return fs_reply(r, NULL, 0);
}

ssize_t fs_op_fallocate(smolvm_fs *fs, fs_req *r)
{
        REFUSE_IF_READ_ONLY(fs, r);
        struct fuse_fallocate_in in;
        memcpy(&in, r->args, sizeof(in));
        if (in.mode & ~(uint32_t)(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
                return fs_reply_err(r, -EOPNOTSUPP);
        if (in.offset > (uint64_t)INT64_MAX || in.length == 0 || in.length > (uint64_t)INT64_MAX - in.offset)
                return fs_reply_err(r, -EINVAL);
        _cleanup_(handle_putp) fs_req_handle h = { fs, fs_handle_get(fs, in.fh) };
        if (!h.h || h.h->is_dir || !h.h->writable)
                return fs_reply_err(r, h.h ? -EBADF : fs_handle_missing(fs, in.fh));
        if (fallocate(h.h->fd, (int)in.mode, (off_t)in.offset, (off_t)in.length) < 0)
                return fs_reply_err(r, negative_errno());
        return fs_reply(r, NULL, 0);
}
