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
#include <stdio.h>
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

/* Linux 6.6+ (FUSE 7.39): a FOPEN_DIRECT_IO file may still be mmapped shared.
 * Offered in the INIT's flags2 (bits 32..63); older host headers lack it. */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif

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
        /* Without OPEN no server truncates on open: the kernel must send
         * O_TRUNC as a SETATTR (which answers EROFS), not truncate its own
         * cache on the assumption that OPEN did. */
        if (fs->no_open)
                want &= ~(uint32_t)FUSE_ATOMIC_O_TRUNC;
        out.major = FUSE_KERNEL_VERSION;
        out.minor = fs->proto_minor;
        out.flags = in.flags & want;
        /* The kernel keeps the smaller of its window and ours, so ours never
         * shrinks it: at least what one READ may carry. The guest raises the
         * window itself (smolvm-init, mounts.c: the bdi's read_ahead_kb), and a
         * window set before this reply arrives then stays. */
        out.max_readahead = MAX(in.max_readahead, fs->max_write);
        out.max_background = 64;
        out.congestion_threshold = 48;
        out.max_write = fs->max_write;
        out.time_gran = 1;
        if (out.flags & FUSE_MAX_PAGES)
                out.max_pages = (uint16_t)MIN((fs->max_write + 4095u) / 4096u, 65535u);
        /* Direct I/O: shared mmap keeps working where the guest kernel can (6.6+);
         * an older kernel never offers the bit and gets no flags2 (ENODEV there). */
        uint32_t allow_mmap2 = (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32);
        if (fs->direct_io && (in.flags & FUSE_INIT_EXT) && (in.flags2 & allow_mmap2)) {
                out.flags |= FUSE_INIT_EXT;
                out.flags2 = allow_mmap2;
        }
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

static ssize_t op_syncfs(smolvm_fs *fs, fs_req *r)
{
        return fs_reply(r, NULL, 0);
}

/* Every op here is short; there is nothing to interrupt. */
static ssize_t op_interrupt(smolvm_fs *fs, fs_req *r)
{
        return 0;
}

/* The kernel's answer to a NOTIFY_RETRIEVE, which we never send: unsolicited. */
static ssize_t op_notify_reply(smolvm_fs *fs, fs_req *r)
{
        fs_stat_inc(&fs->n_errors);
        return 0;
}

enum {
        OP_MUTATES = 1 << 0,  /* EROFS in read-only mode, before anything else */
        OP_NOREPLY = 1 << 1,  /* no reply: virtio-fs sends it with no writable
                               * buffer at all, a FUSE stream must not see one */
        OP_BEFORE_INIT = 1 << 2, /* served before INIT (INIT itself) */
};

typedef struct op_desc {
        const char *name;     /* for traces: "LOOKUP" */
        ssize_t (*serve)(smolvm_fs *fs, fs_req *r); /* NULL: ENOSYS */
        uint16_t min_args;    /* fixed-size part of the arguments, bytes */
        uint8_t flags;
} op_desc;

#define OP(code, fn, min, fl) [FUSE_##code] = { #code, fn, min, fl }
/* Every opcode we know, indexed by opcode: the one place that says how each
 * is served. Known but not served (serve NULL: ENOSYS, after the read-only
 * check): POLL, COPY_FILE_RANGE (rw: the kernel falls back to read+write),
 * TMPFILE. Not listed (ENOSYS too): locks, ioctl, bmap, DAX mappings and
 * anything unknown. */
static const op_desc op_table[] = {
        OP(LOOKUP, fs_op_lookup, 2, 0),
        OP(FORGET, fs_op_forget, sizeof(struct fuse_forget_in), OP_NOREPLY),
        OP(GETATTR, fs_op_getattr, sizeof(struct fuse_getattr_in), 0),
        OP(SETATTR, fs_op_setattr, sizeof(struct fuse_setattr_in), OP_MUTATES),
        OP(READLINK, fs_op_readlink, 0, 0),
        OP(SYMLINK, fs_op_symlink, 4, OP_MUTATES),
        OP(MKNOD, fs_op_mknod, sizeof(struct fuse_mknod_in) + 2, OP_MUTATES),
        OP(MKDIR, fs_op_mkdir, sizeof(struct fuse_mkdir_in) + 2, OP_MUTATES),
        OP(UNLINK, fs_op_unlink, 2, OP_MUTATES),
        OP(RMDIR, fs_op_unlink, 2, OP_MUTATES),
        OP(RENAME, fs_op_rename, sizeof(struct fuse_rename_in) + 4, OP_MUTATES),
        OP(LINK, fs_op_link, sizeof(struct fuse_link_in) + 2, OP_MUTATES),
        OP(OPEN, fs_op_open, sizeof(struct fuse_open_in), 0),
        OP(READ, fs_op_read, sizeof(struct fuse_read_in), 0),
        OP(WRITE, fs_op_write, sizeof(struct fuse_write_in), OP_MUTATES),
        OP(STATFS, fs_op_statfs, 0, 0),
        OP(RELEASE, fs_op_release, sizeof(struct fuse_release_in), 0),
        OP(FSYNC, fs_op_fsync, sizeof(struct fuse_fsync_in), 0),
        OP(SETXATTR, fs_op_setxattr, FUSE_COMPAT_SETXATTR_IN_SIZE + 2, OP_MUTATES),
        OP(GETXATTR, fs_op_getxattr, sizeof(struct fuse_getxattr_in) + 2, 0),
        OP(LISTXATTR, fs_op_listxattr, sizeof(struct fuse_getxattr_in), 0),
        OP(REMOVEXATTR, fs_op_removexattr, 2, OP_MUTATES),
        OP(FLUSH, fs_op_flush, sizeof(struct fuse_flush_in), 0),
        OP(INIT, op_init, 16, OP_BEFORE_INIT), /* major, minor, max_readahead, flags */
        OP(OPENDIR, fs_op_opendir, sizeof(struct fuse_open_in), 0),
        OP(READDIR, fs_op_readdir, sizeof(struct fuse_read_in), 0),
        OP(RELEASEDIR, fs_op_release, sizeof(struct fuse_release_in), 0),
        OP(FSYNCDIR, fs_op_fsync, sizeof(struct fuse_fsync_in), 0),
        OP(ACCESS, fs_op_access, sizeof(struct fuse_access_in), 0),
        OP(CREATE, fs_op_create, sizeof(struct fuse_create_in) + 2, OP_MUTATES),
        OP(INTERRUPT, op_interrupt, 0, OP_NOREPLY),
        OP(DESTROY, op_destroy, 0, 0),
        OP(POLL, NULL, 0, 0),
        OP(BATCH_FORGET, fs_op_batch_forget, sizeof(struct fuse_batch_forget_in), OP_NOREPLY),
        OP(FALLOCATE, fs_op_fallocate, sizeof(struct fuse_fallocate_in), OP_MUTATES),
        OP(READDIRPLUS, fs_op_readdir, sizeof(struct fuse_read_in), 0),
        OP(RENAME2, fs_op_rename, sizeof(struct fuse_rename2_in) + 4, OP_MUTATES),
        OP(LSEEK, fs_op_lseek, sizeof(struct fuse_lseek_in), 0),
        OP(COPY_FILE_RANGE, NULL, 0, OP_MUTATES),
        OP(SYNCFS, op_syncfs, 0, 0),
        OP(TMPFILE, NULL, 0, OP_MUTATES),
        OP(NOTIFY_REPLY, op_notify_reply, 0, OP_NOREPLY),
};
#undef OP

/* What an opcode not in the table gets: ENOSYS once initialized. */
static const op_desc unknown_op = { "?", NULL, 0, 0 };

static const op_desc *op_lookup(uint32_t opcode)
{
        if (opcode < ARRAY_SIZE(op_table) && op_table[opcode].name)
                return &op_table[opcode];
        return &unknown_op;
}

const char *smolvm_fs_opcode_name(uint32_t opcode)
{
        return op_lookup(opcode)->name;
}

uint64_t smolvm_fs_op_count(const smolvm_fs *fs, uint32_t opcode)
{
        return __atomic_load_n(&fs->n_op[MIN(opcode, (uint32_t)FS_OP_SLOTS - 1)], __ATOMIC_RELAXED);
}

size_t smolvm_fs_format_op_counts(const smolvm_fs *fs, char *buf, size_t len)
{
        size_t want = 0;
        if (len)
                buf[0] = '\0';
        for (uint32_t op = 0; op < FS_OP_SLOTS; op++) {
                uint64_t n = __atomic_load_n(&fs->n_op[op], __ATOMIC_RELAXED);
                if (!n)
                        continue;
                const char *name = op == FS_OP_SLOTS - 1 ? "?" : op_lookup(op)->name;
                char num[16];
                if (op < FS_OP_SLOTS - 1 && strcmp(name, "?") == 0) {
                        snprintf(num, sizeof(num), "OP%u", op);
                        name = num;
                }
                int k = snprintf(buf ? buf + MIN(want, len) : NULL, len - MIN(want, len), "%s%s %llu",
                                 want ? ", " : "", name, (unsigned long long)n);
                if (k > 0)
                        want += (size_t)k;
        }
        return want;
}

static ssize_t dispatch(smolvm_fs *fs, fs_req *r, const op_desc *d)
{
        bool noreply = d->flags & OP_NOREPLY;
        if (!(d->flags & OP_BEFORE_INIT)) {
                pthread_mutex_lock(&fs->lock);
                bool initialized = fs->initialized;
                pthread_mutex_unlock(&fs->lock);
                if (!initialized)
                        return noreply ? 0 : fs_reply_err(r, -EIO);
        }
        if ((d->flags & OP_MUTATES) && fs->read_only)
                return fs_erofs(fs, r);
        if (r->args_len < d->min_args) {
                fs_stat_inc(&fs->n_errors);
                return noreply ? 0 : fs_reply_err(r, -EINVAL);
        }
        if (!d->serve)
                return fs_reply_err(r, -ENOSYS);
        return d->serve(fs, r);
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
        fs_stat_inc(&fs->n_requests);
        if (iov_total(in, in_cnt, &in_len) < 0 || iov_total(out, out_cnt, &out_cap) < 0 ||
            in_len < sizeof(struct fuse_in_header)) {
                fs_stat_inc(&fs->n_errors);
                return -EINVAL;
        }

        /* Copy first, validate the copy: the guest can rewrite its buffers while
         * we work. Only WRITE's payload stays in place (it is just data). */
        uint8_t small[4096];
        _cleanup_free_ uint8_t *big = NULL;
        struct fuse_in_header hdr;
        iov_copy_out(in, in_cnt, &hdr, sizeof(hdr));
        const op_desc *d = op_lookup(hdr.opcode);
        fs_stat_inc(&fs->n_op[MIN(hdr.opcode, (uint32_t)FS_OP_SLOTS - 1)]);
        bool noreply = d->flags & OP_NOREPLY;
        if (hdr.len != in_len || (!noreply && out_cap < sizeof(struct fuse_out_header))) {
                fs_stat_inc(&fs->n_errors);
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
                fs_stat_inc(&fs->n_errors);
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
        ssize_t n = dispatch(fs, &r, d);
        return noreply ? 0 : n;
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
        fs->direct_io = cfg->direct_io;
        fs->log_op_counts = cfg->log_op_counts;
        fs->no_open = cfg->read_only && !cfg->direct_io && !cfg->keep_open;
        uint32_t mw = cfg->max_write ? cfg->max_write : FS_DEFAULT_MAX_WRITE;
        fs->max_write = MIN(MAX(mw, FS_MIN_MAX_WRITE), FS_MAX_MAX_WRITE);
        fs->timeout_s = fs->read_only ? FS_TIMEOUT_RO_S : FS_TIMEOUT_RW_S;
        /* Limits from the host (docs/internals.md, "File server limits"): fds
         * from RLIMIT_NOFILE, handles from the fds (half: lookups keep the
         * rest to evict into), inodes from the memory budget at the smallest
         * an entry can cost. An inode table may hold far more entries than
         * fds: idle inode fds are evicted (fs_inode.c). */
        fs->fd_budget = fs_fd_budget_from_rlimit(FS_FD_WANT);
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
