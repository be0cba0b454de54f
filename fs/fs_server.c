/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE request entry point: copies the request out of guest memory,
 * validates the header, negotiates INIT, refuses mutations in read-only mode and
 * dispatches to fs_ops_*.c. Replies are scattered into the caller's iovecs.
 *
 * Byte order: FUSE (and virtio-fs) use the guest's native order; smolvm only
 * pairs little-endian hosts with little-endian guests, so the linux/fuse.h
 * structs are used as they are. */
#include <fcntl.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/vfs.h>

#include "fs_server_i.h"
#include "util.h"

/* Cache timeouts. Read-only: nothing but the host changes the tree, and a guest
 * that caches names and attributes for a few seconds runs much faster (a build
 * stat()s the same headers thousands of times); the price is that a change made
 * on the host may be seen by the guest up to that long after. Read-write: the
 * guest's own changes come through us, so only host-side changes lag, by 1 s. */
#define FS_TIMEOUT_RO_S 5u
#define FS_TIMEOUT_RW_S 1u

static void stat_inc(uint64_t *counter)
{
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

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
        stat_inc(&fs->n_erofs);
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

static ssize_t op_init(smolvm_fs *fs, fs_req *r)
{
        struct fuse_init_in in = {0};
        memcpy(&in, r->args, MIN(r->args_len, sizeof(in)));
        struct fuse_init_out out = {0};

        if (in.major < 7)
                return fs_reply_err(r, -EPROTO);
        if (in.major > 7) {
                /* Protocol: answer with our major only; the kernel retries INIT. */
                out.major = FUSE_KERNEL_VERSION;
                out.minor = FUSE_KERNEL_MINOR_VERSION;
                return fs_reply(r, &out, sizeof(out));
        }
        if (in.minor < FS_MIN_MINOR)
                return fs_reply_err(r, -EPROTO);

        pthread_mutex_lock(&fs->lock);
        bool again = fs->initialized;
        if (!again) {
                fs->initialized = true;
                fs->proto_minor = MIN(in.minor, (uint32_t)FUSE_KERNEL_MINOR_VERSION);
        }
        pthread_mutex_unlock(&fs->lock);
        if (again)
                return fs_reply_err(r, -EPROTO);

        /* Only what is implemented. Deliberately absent: WRITEBACK_CACHE (a guest
         * would see writes "succeed" into its cache; also off in rw mode to keep
         * one code path), EXPORT_SUPPORT (would make ".." lookups routine),
         * POSIX_ACL, HANDLE_KILLPRIV, SETXATTR_EXT, SPLICE_*, locks, DAX. */
        uint32_t want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ATOMIC_O_TRUNC | FUSE_DO_READDIRPLUS |
                        FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_AUTO_INVAL_DATA;
        out.major = FUSE_KERNEL_VERSION;
        out.minor = fs->proto_minor;
        out.flags = in.flags & want;
        out.max_readahead = in.max_readahead;
        out.max_background = 64;
        out.congestion_threshold = 48;
        out.max_write = fs->max_write;
        out.time_gran = 1;
        if (out.flags & FUSE_MAX_PAGES)
                out.max_pages = (uint16_t)MIN((fs->max_write + 4095u) / 4096u, 65535u);
        return fs_reply(r, &out, sizeof(out));
}

static ssize_t op_destroy(smolvm_fs *fs, fs_req *r)
{
        fs_handle_release_all(fs);
        fs_inode_forget_all(fs);
        pthread_mutex_lock(&fs->lock);
        fs->initialized = false;
        pthread_mutex_unlock(&fs->lock);
        return fs_reply(r, NULL, 0);
}

enum {
        OP_MUTATES = 1 << 0, /* EROFS in read-only mode, before anything else */
        OP_NOREPLY = 1 << 1,
};

typedef struct op_desc {
        uint16_t min_args;   /* fixed-size part of the arguments */
        uint8_t flags;
} op_desc;

/* Indexed by opcode; a zero entry with no handler means ENOSYS. */
static const op_desc op_table[] = {
        [FUSE_LOOKUP] = { 2, 0 },
        [FUSE_FORGET] = { sizeof(struct fuse_forget_in), OP_NOREPLY },
        [FUSE_GETATTR] = { sizeof(struct fuse_getattr_in), 0 },
        [FUSE_SETATTR] = { sizeof(struct fuse_setattr_in), OP_MUTATES },
        [FUSE_READLINK] = { 0, 0 },
        [FUSE_SYMLINK] = { 4, OP_MUTATES },
        [FUSE_MKNOD] = { sizeof(struct fuse_mknod_in) + 2, OP_MUTATES },
        [FUSE_MKDIR] = { sizeof(struct fuse_mkdir_in) + 2, OP_MUTATES },
        [FUSE_UNLINK] = { 2, OP_MUTATES },
        [FUSE_RMDIR] = { 2, OP_MUTATES },
        [FUSE_RENAME] = { sizeof(struct fuse_rename_in) + 4, OP_MUTATES },
        [FUSE_LINK] = { sizeof(struct fuse_link_in) + 2, OP_MUTATES },
        [FUSE_OPEN] = { sizeof(struct fuse_open_in), 0 },
        [FUSE_READ] = { sizeof(struct fuse_read_in), 0 },
        [FUSE_WRITE] = { sizeof(struct fuse_write_in), OP_MUTATES },
        [FUSE_STATFS] = { 0, 0 },
        [FUSE_RELEASE] = { sizeof(struct fuse_release_in), 0 },
        [FUSE_FSYNC] = { sizeof(struct fuse_fsync_in), 0 },
        [FUSE_SETXATTR] = { FUSE_COMPAT_SETXATTR_IN_SIZE + 2, OP_MUTATES },
        [FUSE_GETXATTR] = { sizeof(struct fuse_getxattr_in) + 2, 0 },
        [FUSE_LISTXATTR] = { sizeof(struct fuse_getxattr_in), 0 },
        [FUSE_REMOVEXATTR] = { 2, OP_MUTATES },
        [FUSE_FLUSH] = { sizeof(struct fuse_flush_in), 0 },
        [FUSE_INIT] = { 16, 0 }, /* major, minor, max_readahead, flags */
        [FUSE_OPENDIR] = { sizeof(struct fuse_open_in), 0 },
        [FUSE_READDIR] = { sizeof(struct fuse_read_in), 0 },
        [FUSE_RELEASEDIR] = { sizeof(struct fuse_release_in), 0 },
        [FUSE_FSYNCDIR] = { sizeof(struct fuse_fsync_in), 0 },
        [FUSE_ACCESS] = { sizeof(struct fuse_access_in), 0 },
        [FUSE_CREATE] = { sizeof(struct fuse_create_in) + 2, OP_MUTATES },
        [FUSE_INTERRUPT] = { 0, OP_NOREPLY },
        [FUSE_DESTROY] = { 0, 0 },
        [FUSE_POLL] = { 0, 0 },
        [FUSE_BATCH_FORGET] = { sizeof(struct fuse_batch_forget_in), OP_NOREPLY },
        [FUSE_FALLOCATE] = { sizeof(struct fuse_fallocate_in), OP_MUTATES },
        [FUSE_READDIRPLUS] = { sizeof(struct fuse_read_in), 0 },
        [FUSE_RENAME2] = { sizeof(struct fuse_rename2_in) + 4, OP_MUTATES },
        [FUSE_LSEEK] = { sizeof(struct fuse_lseek_in), 0 },
        [FUSE_COPY_FILE_RANGE] = { 0, OP_MUTATES },
        [FUSE_SYNCFS] = { 0, 0 },
        [FUSE_TMPFILE] = { 0, OP_MUTATES },
        /* The kernel's answer to a NOTIFY_RETRIEVE, which we never send. */
        [FUSE_NOTIFY_REPLY] = { 0, OP_NOREPLY },
};

/* FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY take no reply: virtio-fs
 * sends them with no writable buffer at all, a FUSE stream must not see one. */
static bool op_noreply(uint32_t op)
{
        return op < ARRAY_SIZE(op_table) && (op_table[op].flags & OP_NOREPLY);
}

static ssize_t dispatch(smolvm_fs *fs, fs_req *r)
{
        uint32_t op = r->hdr.opcode;
        const op_desc *d = op < ARRAY_SIZE(op_table) ? &op_table[op] : NULL;

        if (op == FUSE_INIT) {
                if (r->args_len < d->min_args)
                        goto bad;
                return op_init(fs, r);
        }
        bool initialized;
        pthread_mutex_lock(&fs->lock);
        initialized = fs->initialized;
        pthread_mutex_unlock(&fs->lock);

        bool noreply = d && (d->flags & OP_NOREPLY);
        if (!initialized)
                return noreply ? 0 : fs_reply_err(r, -EIO);
        if (d && (d->flags & OP_MUTATES) && fs->read_only)
                return fs_erofs(fs, r);
        if (d && r->args_len < d->min_args) {
                if (noreply) {
                        stat_inc(&fs->n_errors);
                        return 0;
                }
                goto bad;
        }

        switch (op) {
        case FUSE_LOOKUP: return fs_op_lookup(fs, r);
        case FUSE_FORGET: return fs_op_forget(fs, r);
        case FUSE_BATCH_FORGET: return fs_op_batch_forget(fs, r);
        case FUSE_GETATTR: return fs_op_getattr(fs, r);
        case FUSE_READLINK: return fs_op_readlink(fs, r);
        case FUSE_OPEN: return fs_op_open(fs, r);
        case FUSE_READ: return fs_op_read(fs, r);
        case FUSE_RELEASE: return fs_op_release(fs, r, false);
        case FUSE_RELEASEDIR: return fs_op_release(fs, r, true);
        case FUSE_STATFS: return fs_op_statfs(fs, r);
        case FUSE_FLUSH: return fs_op_flush(fs, r);
        case FUSE_GETXATTR: return fs_op_getxattr(fs, r);
        case FUSE_LISTXATTR: return fs_op_listxattr(fs, r);
        case FUSE_OPENDIR: return fs_op_opendir(fs, r);
        case FUSE_READDIR: return fs_op_readdir(fs, r, false);
        case FUSE_READDIRPLUS: return fs_op_readdir(fs, r, true);
        case FUSE_ACCESS: return fs_op_access(fs, r);
        case FUSE_LSEEK: return fs_op_lseek(fs, r);
        case FUSE_FSYNC: return fs_op_fsync(fs, r, false);
        case FUSE_FSYNCDIR: return fs_op_fsync(fs, r, true);
        case FUSE_INTERRUPT: return 0; /* every op here is short; nothing to interrupt */
        case FUSE_NOTIFY_REPLY:
                stat_inc(&fs->n_errors); /* unsolicited */
                return 0;
        case FUSE_DESTROY: return op_destroy(fs, r);
        case FUSE_SYNCFS: return fs_reply(r, NULL, 0);
        case FUSE_WRITE: return fs_op_write(fs, r);
        case FUSE_CREATE: return fs_op_create(fs, r);
        case FUSE_MKNOD: return fs_op_mknod(fs, r);
        case FUSE_MKDIR: return fs_op_mkdir(fs, r);
        case FUSE_UNLINK: return fs_op_unlink(fs, r, false);
        case FUSE_RMDIR: return fs_op_unlink(fs, r, true);
        case FUSE_RENAME: return fs_op_rename(fs, r, false);
        case FUSE_RENAME2: return fs_op_rename(fs, r, true);
        case FUSE_LINK: return fs_op_link(fs, r);
        case FUSE_SYMLINK: return fs_op_symlink(fs, r);
        case FUSE_SETATTR: return fs_op_setattr(fs, r);
        case FUSE_SETXATTR: return fs_op_setxattr(fs, r);
        case FUSE_REMOVEXATTR: return fs_op_removexattr(fs, r);
        case FUSE_FALLOCATE: return fs_op_fallocate(fs, r);
        default:
                /* POLL, COPY_FILE_RANGE (rw: the kernel falls back to read+write),
                 * TMPFILE, locks, ioctl, bmap, DAX mappings and anything unknown. */
                return fs_reply_err(r, -ENOSYS);
        }
bad:
        stat_inc(&fs->n_errors);
        return fs_reply_err(r, -EINVAL);
}

static int iov_total(const struct iovec *iov, int cnt, size_t *ret)
{
        size_t total = 0;
        if (cnt < 0 || cnt > FS_MAX_IOV || (cnt > 0 && !iov))
                return -EINVAL;
        for (int i = 0; i < cnt; i++) {
                if (iov[i].iov_len > SIZE_MAX - total)
                        return -EINVAL;
                total += iov[i].iov_len;
        }
        *ret = total;
        return 0;
}

static void iov_copy_out(const struct iovec *iov, int cnt, void *dst, size_t len)
{
        uint8_t *p = dst;
        for (int i = 0; i < cnt && len > 0; i++) {
                size_t n = MIN(iov[i].iov_len, len);
                memcpy(p, iov[i].iov_base, n);
                p += n;
                len -= n;
        }
}

ssize_t smolvm_fs_handle(smolvm_fs *fs, const struct iovec *in, int in_cnt, const struct iovec *out, int out_cnt)
{
        size_t in_len, out_cap;
        stat_inc(&fs->n_requests);
        if (iov_total(in, in_cnt, &in_len) < 0 || iov_total(out, out_cnt, &out_cap) < 0 ||
            in_len < sizeof(struct fuse_in_header)) {
                stat_inc(&fs->n_errors);
                return -EINVAL;
        }

        /* Copy first, validate the copy: the guest can rewrite its buffers while
         * we work. Only WRITE's payload stays in place (it is just data). */
        uint8_t small[4096];
        _cleanup_free_ uint8_t *big = NULL;
        struct fuse_in_header hdr;
        iov_copy_out(in, in_cnt, &hdr, sizeof(hdr));
        bool noreply = op_noreply(hdr.opcode);
        if (hdr.len != in_len || (!noreply && out_cap < sizeof(struct fuse_out_header))) {
                stat_inc(&fs->n_errors);
                return -EINVAL;
        }
        if (noreply) {
                /* Whatever happens below, not a byte is written back. */
                out_cnt = 0;
                out_cap = 0;
        }
        fs_req r = {
                .hdr = hdr,
                .in = in,
                .in_cnt = in_cnt,
                .out = out,
                .out_cnt = out_cnt,
                .out_cap = out_cap,
        };
        size_t copy_len = in_len;
        if (hdr.opcode == FUSE_WRITE) {
                copy_len = MIN(in_len, sizeof(hdr) + sizeof(struct fuse_write_in));
                r.data_off = copy_len;
        } else if (in_len > sizeof(hdr) + FS_ARGS_MAX) {
                stat_inc(&fs->n_errors);
                return noreply ? 0 : fs_reply_err(&r, -EINVAL);
        }
        uint8_t *buf = small;
        if (copy_len > sizeof(small)) {
                big = malloc(copy_len);
                if (!big)
                        return noreply ? 0 : fs_reply_err(&r, -ENOMEM);
                buf = big;
        }
        iov_copy_out(in, in_cnt, buf, copy_len);
        r.args = buf + sizeof(hdr);
        r.args_len = copy_len - sizeof(hdr);
        ssize_t n = dispatch(fs, &r);
        return noreply ? 0 : n;
}

static uint32_t fd_budget_from_rlimit(uint32_t want)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 256;
        /* Like virtiofsd, raise the soft limit towards what the tables may hold:
         * process-wide, but every user of this library polls with epoll. */
        rlim_t need = (rlim_t)want + 1024;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
                struct rlimit nrl = rl;
                nrl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need) ? need : rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
                        rl = nrl;
        }
        rlim_t cur = rl.rlim_cur == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_cur;
        /* Keep a quarter (at least 64) for the rest of the process. */
        rlim_t reserve = MAX(cur / 4, (rlim_t)64);
        if (cur <= reserve + 16)
                return 16;
        rlim_t budget = cur - reserve;
        return budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
}

int smolvm_fs_new(const smolvm_fs_config *cfg, smolvm_fs **ret)
{
        if (!cfg || !cfg->root || !ret)
                return -EINVAL;
        _cleanup_close_ int root_fd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return negative_errno();
        struct stat st;
        if (fstat(root_fd, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;

        _cleanup_close_ int proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0)
                return negative_errno();
        struct statfs sfs;
        if (fstatfs(proc_fd, &sfs) < 0)
                return negative_errno();
        if (sfs.f_type != PROC_SUPER_MAGIC)
                return -ENODEV;

        smolvm_fs *fs = calloc(1, sizeof(*fs));
        if (!fs)
                return -ENOMEM;
        fs->read_only = cfg->read_only;
        uint32_t mw = cfg->max_write ? cfg->max_write : FS_DEFAULT_MAX_WRITE;
        fs->max_write = MIN(MAX(mw, FS_MIN_MAX_WRITE), FS_MAX_MAX_WRITE);
        fs->timeout_s = fs->read_only ? FS_TIMEOUT_RO_S : FS_TIMEOUT_RW_S;
        /* Limits from the host (docs/internals.md, "File server limits"): fds
         * from RLIMIT_NOFILE, handles from the fds (half: lookups keep the
         * rest to evict into), inodes from the memory budget at the smallest
         * an entry can cost. An inode table may hold far more entries than
         * fds: idle inode fds are evicted (fs_inode.c). */
        fs->fd_budget = fd_budget_from_rlimit(FS_FD_WANT);
        if (cfg->max_fds)
                fs->fd_budget = MIN(fs->fd_budget, MAX(cfg->max_fds, 4u));
        fs->max_mem_bytes = cfg->max_mem_bytes ? MAX(cfg->max_mem_bytes, FS_MEM_BUDGET_MIN) : fs_default_mem_budget();
        uint64_t by_mem = fs->max_mem_bytes / (sizeof(fs_inode) + fs_name_cost(1) + sizeof(uint32_t));
        fs->max_inodes = cfg->max_inodes ? cfg->max_inodes : (uint32_t)MIN(by_mem, (uint64_t)FS_MAX_INODES_CAP);
        fs->max_inodes = MIN(MAX(fs->max_inodes, 2u), FS_MAX_INODES_CAP);
        fs->max_handles = cfg->max_handles ? cfg->max_handles : MAX(fs->fd_budget / 2, 16u);
        fs->max_handles = MIN(fs->max_handles, FS_MAX_HANDLES_CAP);
        fs->proc_fd_dir = -1;
        pthread_mutex_init(&fs->lock, NULL);

        int r = fs_handle_table_init(fs);
        if (r >= 0)
                r = fs_inode_table_init(fs, root_fd, &st);
        if (r < 0) {
                smolvm_fs_free(fs);
                return r;
        }
        TAKE_FD(root_fd);
        fs->proc_fd_dir = TAKE_FD(proc_fd);
        *ret = fs;
        return 0;
}

void smolvm_fs_free(smolvm_fs *fs)
{
        if (!fs)
                return;
        fs_handle_table_free(fs);
        fs_inode_table_free(fs);
        fs_fd_budget_release_all(fs);
        safe_close(fs->proc_fd_dir);
        pthread_mutex_destroy(&fs->lock);
        free(fs);
}

void smolvm_fs_get_stats(const smolvm_fs *fs, smolvm_fs_stats *ret)
{
        smolvm_fs *m = (smolvm_fs *)fs; /* the lock is not part of the value */
        pthread_mutex_lock(&m->lock);
        ret->n_inodes = fs->n_inodes;
        ret->n_handles = fs->n_handles;
        ret->n_fds = fs->n_fds;
        ret->n_evictions = fs->n_evictions;
        ret->mem_bytes = fs->mem_bytes;
        ret->max_inodes = fs->max_inodes;
        ret->max_handles = fs->max_handles;
        ret->max_fds = fs->fd_budget;
        ret->max_mem_bytes = fs->max_mem_bytes;
        pthread_mutex_unlock(&m->lock);
        ret->n_requests = __atomic_load_n(&fs->n_requests, __ATOMIC_RELAXED);
        ret->n_erofs = __atomic_load_n(&fs->n_erofs, __ATOMIC_RELAXED);
        ret->n_errors = __atomic_load_n(&fs->n_errors, __ATOMIC_RELAXED);
}
