/* SPDX-License-Identifier: Apache-2.0 */
/* Private to fs/: the server object, its inode and handle tables, the request
 * cursor and the reply helpers shared by fs_server.c and fs_ops_*.c. */
#pragma once

#include <linux/fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fs_server.h"

/* Table limits follow the host (fs_table.c, smolvm_fs_new): memory for the
 * inode table, fds for the handles; these only cap what a limit may be. */
#define FS_MAX_INODES_CAP (1u << 26)
#define FS_MAX_HANDLES_CAP (1u << 20)
#define FS_MEM_BUDGET_FLOOR (64ull << 20)
#define FS_MEM_BUDGET_MIN (1ull << 20)
/* Slots per chunk of the inode and handle tables (fs_table.c). */
#define FS_CHUNK_SLOTS 4096u
/* The fds worth holding (inode fds past it are evicted, see fs_inode.c): the
 * soft RLIMIT_NOFILE is raised towards this much plus a reserve. */
#define FS_FD_WANT (65536u + 4096u)
#define FS_DEFAULT_MAX_WRITE (1024u * 1024u)
#define FS_MIN_MAX_WRITE 4096u
#define FS_MAX_MAX_WRITE (16u * 1024u * 1024u)

/* Largest request we copy out of guest memory whole: every op but WRITE. The
 * biggest legitimate one is SETXATTR (name <= 255 + value <= 64 KiB). */
#define FS_XATTR_MAX (64u * 1024u)
#define FS_NAME_MAX 255u
#define FS_ARGS_MAX (FS_XATTR_MAX + 1024u)
/* Oldest protocol minor we answer: every struct we use has its current size. */
#define FS_MIN_MINOR 31u
/* Out iovec arrays longer than this are refused (Linux's UIO_MAXIOV). */
#define FS_MAX_IOV 1024
/* Request counters per opcode: 0..FUSE_TMPFILE, then one for anything else. */
#define FS_OP_SLOTS (FUSE_TMPFILE + 2)

/* One known inode: an O_PATH|O_NOFOLLOW fd that pins it, or, when the fd budget
 * ran short and nobody was using it, no fd (-1) but the name it was found under,
 * to re-resolve it (see "Bounded fds" in fs_inode.c). nodeid encodes the slot
 * (low 32 bits, slot+1) and a generation (high 32 bits) so a stale nodeid never
 * reaches a reused slot; a free slot keeps its generation with the low bits 0.
 * Slot 0 is the root (FUSE_ROOT_ID), never freed and never evicted. 64 bytes:
 * there may be millions (fs_table.c). */
typedef struct fs_inode {
        uint64_t nodeid;        /* low 32 bits 0 = slot free */
        uint64_t nlookup;       /* kernel references (LOOKUP etc. minus FORGET) */
        dev_t dev;
        ino_t ino;
        char *name;             /* component under parent_idx (root: NULL) */
        int fd;                 /* O_PATH|O_NOFOLLOW|O_CLOEXEC; -1 = evicted */
        uint32_t refs;          /* in-flight users + open handles */
        uint32_t kids;          /* children whose parent_idx points here */
        uint32_t parent_idx;    /* slot of the directory it was found in (root: 0) */
        uint32_t next;          /* slot+1, 0 = end: in use, the hash bucket's next;
                                 * free, the next free slot */
        uint16_t type;          /* S_IFMT bits: fixed for the inode's life */
        bool recent;            /* used since the eviction clock last passed */
        bool readable;          /* fd is O_RDONLY, not O_PATH (fs_inode_read_fd) */
} fs_inode;

static inline bool fs_inode_used(const fs_inode *e)
{
        return (uint32_t)e->nodeid != 0;
}

typedef struct fs_handle {
        uint64_t fh;            /* 0 = slot free */
        int fd;
        uint32_t inode_idx;     /* holds one ref on that inode */
        uint32_t refs;          /* in-flight users; close when released and 0 */
        bool released;          /* RELEASE seen: no new users */
        bool is_dir;
        bool writable;
        uint32_t free_next;
        uint32_t gen;
        pthread_mutex_t dir_lock; /* serializes lseek+getdents on dir handles */
} fs_handle;

/* Slots in chunks that never move (fs_table.c). */
typedef struct fs_slots {
        uint8_t **chunks;       /* [max_chunks], allocated once */
        uint32_t n_chunks;      /* allocated so far, protected by fs->lock */
        uint32_t max_chunks;
        uint32_t slot_bytes;
} fs_slots;

/* Slot idx of a table; idx must lie in an allocated chunk (it came from the
 * table, under fs->lock, so the chunk pointer is visible). */
static inline void *fs_slot(const fs_slots *t, uint32_t idx)
{
        return t->chunks[idx / FS_CHUNK_SLOTS] + (size_t)(idx % FS_CHUNK_SLOTS) * t->slot_bytes;
}

struct smolvm_fs {
        bool read_only;
        bool direct_io;         /* smolvm_fs_config.direct_io */
        bool no_open;           /* read-only, not direct_io: OPEN and OPENDIR answer
                                 * ENOSYS, the guest sends fh 0 (fs_inode_read_fd) */
        uint32_t max_inodes;
        uint32_t max_handles;
        uint32_t max_write;
        uint32_t fd_budget;     /* fds this instance may hold (from RLIMIT_NOFILE) */
        int proc_fd_dir;        /* /proc/self/fd, for re-opening pinned inodes */
        uint32_t timeout_s;     /* entry and attribute cache timeouts */

        uint64_t max_mem_bytes; /* what mem_bytes may reach (fs_table.c) */

        pthread_mutex_t lock;
        uint64_t mem_bytes;     /* charged: slot chunks, buckets, names; fs->lock */
        fs_slots inodes;        /* fs_inode slots, protected by fs->lock */
        uint32_t *buckets;      /* [n_buckets] slot+1, protected by fs->lock */
        uint32_t n_buckets;     /* power of two, grows with n_inodes, fs->lock */
        uint32_t inode_free;    /* slot+1 free list head, protected by fs->lock */
        uint32_t inode_unused;  /* first never-used slot, protected by fs->lock */
        uint32_t n_inodes;      /* protected by fs->lock */
        fs_slots handles;       /* fs_handle slots, protected by fs->lock */
        uint32_t handle_free;   /* protected by fs->lock */
        uint32_t handle_unused; /* protected by fs->lock */
        uint32_t n_handles;     /* protected by fs->lock */
        uint32_t n_fds;         /* fds held by the tables, protected by fs->lock */
        uint32_t clock_hand;    /* next slot the eviction clock looks at, fs->lock */
        uint64_t n_evictions;   /* inode fds closed to stay in budget, fs->lock */

        /* Negotiated in INIT, protected by fs->lock (read unlocked after INIT). */
        bool initialized;
        uint32_t proto_minor;

        /* Statistics: atomics, no lock. */
        uint64_t n_requests;
        uint64_t n_erofs;
        uint64_t n_errors;
        uint64_t n_op[FS_OP_SLOTS]; /* per opcode; the last slot: unknown ones */
        bool log_op_counts;     /* smolvm_fs_config.log_op_counts */
};

/* A request copied out of guest memory (all but WRITE's payload). */
typedef struct fs_req {
        struct fuse_in_header hdr;
        const uint8_t *args;    /* after the header, in our own copy */
        size_t args_len;
        /* WRITE only: the payload, still in the caller's iovecs. */
        const struct iovec *in;
        int in_cnt;
        size_t data_off;        /* offset of the payload in the request */
        /* Reply buffers. */
        const struct iovec *out;
        int out_cnt;
        size_t out_cap;
} fs_req;

/* --- fs_table.c --- */
int fs_slots_init(fs_slots *t, uint32_t max_slots, uint32_t slot_bytes);
void fs_slots_free(fs_slots *t);
/* Make slot idx usable: allocates (and charges) its chunk when idx is the
 * first slot past the allocated ones. -ENFILE past the limit, -ENOMEM. */
int fs_slots_reserve_locked(smolvm_fs *fs, fs_slots *t, uint32_t idx);
/* Charge bytes against max_mem_bytes; false (nothing charged) if over. */
bool fs_mem_charge_locked(smolvm_fs *fs, size_t bytes);
void fs_mem_uncharge_locked(smolvm_fs *fs, size_t bytes);
/* Bytes charged for keeping a name of len bytes. */
size_t fs_name_cost(size_t len);
/* The default max_mem_bytes, from the host's RAM and rlimits. */
uint64_t fs_default_mem_budget(void);

static inline fs_inode *fs_inode_at(const smolvm_fs *fs, uint32_t idx)
{
        return fs_slot(&fs->inodes, idx);
}

static inline fs_handle *fs_handle_at(const smolvm_fs *fs, uint32_t idx)
{
        return fs_slot(&fs->handles, idx);
}

/* --- fs_inode.c --- */
int fs_inode_table_init(smolvm_fs *fs, int root_fd, const struct stat *st);
void fs_inode_table_free(smolvm_fs *fs);
/* Take an in-flight reference on a live nodeid, re-resolving its fd if it was
 * evicted: while the reference is held, ino->fd is valid. NULL if unknown, stale,
 * or the inode can no longer be found where it was (renamed or removed behind
 * our back while evicted). */
fs_inode *fs_inode_get(smolvm_fs *fs, uint64_t nodeid);
void fs_inode_put(smolvm_fs *fs, fs_inode *ino);
/* Drop one in-flight ref by slot; fs->lock held. */
void fs_inode_put_locked(smolvm_fs *fs, uint32_t idx);
uint32_t fs_inode_idx(const smolvm_fs *fs, const fs_inode *ino);
/* Register fd (consumed on every path) found as name under parent; adds one
 * nlookup. speculative (READDIRPLUS): a new entry is refused while the table
 * is within 1/16 of a limit, which keeps that much for LOOKUPs. Returns 0 with
 * *ret_nodeid, or -ENFILE (table full) / -ENOMEM (memory budget) / -EMFILE. */
int fs_inode_add(smolvm_fs *fs, fs_inode *parent, const char *name, int fd, const struct stat *st,
                 bool speculative, uint64_t *ret_nodeid);
/* After a successful rename, point the moved inode(s) at their new names so an
 * evicted one is re-resolved where it now lives. Best effort: a miss costs an
 * ESTALE later, never a wrong inode (re-resolution checks dev and ino). */
void fs_inode_renamed(smolvm_fs *fs, fs_inode *olddir, const char *oldname, fs_inode *newdir,
                      const char *newname, bool exchange);
/* Take one fd of budget, evicting an idle inode's fd if the budget is spent. */
bool fs_fd_reserve_locked(smolvm_fs *fs);
/* Returns 0, or -ENOENT for an unknown nodeid. */
int fs_inode_forget(smolvm_fs *fs, uint64_t nodeid, uint64_t nlookup);
/* DESTROY: drop every kernel reference. */
void fs_inode_forget_all(smolvm_fs *fs);
/* Resolve one validated component beneath dir: O_PATH|O_NOFOLLOW fd and its stat. */
int fs_open_child(const fs_inode *dir, const char *name, int *ret_fd, struct stat *ret_st);
/* Re-open a pinned regular file or directory for I/O (see fs_inode.c). */
int fs_reopen(smolvm_fs *fs, const fs_inode *ino, int flags);
/* An O_RDONLY fd of ino (held by the caller) for a request that names no
 * handle (fs->no_open). Returns the fd and sets *ret_own when the caller must
 * close it; negative errno (-EISDIR, -EINVAL for a non-regular file). */
int fs_inode_read_fd(smolvm_fs *fs, fs_inode *ino, bool *ret_own);
/* Lookup name in dir and register it (speculative: see fs_inode_add); fills entry. */
int fs_do_lookup(smolvm_fs *fs, fs_inode *dir, const char *name, bool speculative,
                 struct fuse_entry_out *ret_entry);

/* --- fs_handle.c --- */
int fs_handle_table_init(smolvm_fs *fs);
void fs_handle_table_free(smolvm_fs *fs);
/* Register fd (consumed on every path). The handle holds a ref on ino. */
int fs_handle_add(smolvm_fs *fs, fs_inode *ino, int fd, bool is_dir, bool writable, uint64_t *ret_fh);
fs_handle *fs_handle_get(smolvm_fs *fs, uint64_t fh);
void fs_handle_put(smolvm_fs *fs, fs_handle *h);
/* Returns 0, or -EBADF for an unknown / already released fh or wrong kind. */
int fs_handle_release(smolvm_fs *fs, uint64_t fh, bool is_dir);
void fs_handle_release_all(smolvm_fs *fs);
/* What a request naming an fh that fs_handle_get() refused gets: -ESTALE for a
 * handle restored stale (its file changed on the host), else -EBADF. */
int fs_handle_missing(smolvm_fs *fs, uint64_t fh);

/* --- rebuilding from a saved state (fs_state.c; fs->lock held, fresh server) ---
 * inode slots [0, n) are reserved and inode_unused = n by fs_state.c; then one
 * fs_inode_restore_locked() per saved entry (no fd: re-resolved by name on
 * first use, as after an eviction), fs_inode_restore_finish_locked() (parents
 * checked, free list built), the handles, fs_inode_restore_trim_locked(). */
int fs_inode_restore_locked(smolvm_fs *fs, uint32_t idx, uint32_t gen, uint32_t parent_idx, uint16_t type,
                            uint64_t nlookup, dev_t dev, ino_t ino, const char *name);
int fs_inode_restore_finish_locked(smolvm_fs *fs);
void fs_inode_restore_trim_locked(smolvm_fs *fs);
int fs_inode_ensure_fd_locked(smolvm_fs *fs, fs_inode *e);
int fs_handle_restore_prepare_locked(smolvm_fs *fs, uint32_t n_slots);
int fs_handle_restore_locked(smolvm_fs *fs, uint32_t idx, uint32_t gen, fs_inode *ino, bool is_dir, bool writable);
void fs_handle_restore_finish_locked(smolvm_fs *fs);

/* --- fs_fd_budget.c --- */
/* The budget for an instance wanting want fds: the soft RLIMIT_NOFILE is raised
 * towards want plus a reserve where the hard limit allows; a quarter of it (at
 * least 64) is left to the rest of the process. */
uint32_t fs_fd_budget_from_rlimit(uint32_t want);
/* Reserve / return one fd of budget (fs->lock must be held). */
bool fs_fd_budget_take_locked(smolvm_fs *fs);
void fs_fd_budget_return_locked(smolvm_fs *fs);
/* smolvm_fs_free: give back everything this instance held. */
void fs_fd_budget_release_all(smolvm_fs *fs);

static inline void fs_stat_inc(uint64_t *counter)
{
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* --- fs_reply.c: reply helpers --- */
/* Reply with header + body (body may be NULL/0). Returns total length or an
 * error reply when out is too small. */
ssize_t fs_reply(fs_req *r, const void *body, size_t body_len);
ssize_t fs_reply_err(fs_req *r, int neg_errno);
/* Scatter len bytes at byte offset off of the out iovecs. */
void fs_out_write(const fs_req *r, size_t off, const void *src, size_t len);
/* Build in ret (room for max) an iovec array covering bytes [off, off+len) of
 * src: the READ reply buffers, the WRITE payload. Returns the count, or -EINVAL
 * when src is too short or the slice needs more than max entries. */
int fs_iov_slice(const struct iovec *src, int src_cnt, size_t off, size_t len, struct iovec *ret, int max);
/* Validate a NUL-terminated component at args+off; returns its length (1..255)
 * and sets *ret_next to the byte after the NUL, or negative errno. */
int fs_arg_name(const fs_req *r, size_t off, const char **ret_name, size_t *ret_next);
bool fs_is_dot_or_dotdot(const char *name);
void fs_fill_attr(const smolvm_fs *fs, const struct stat *st, struct fuse_attr *ret);
void fs_set_timeouts(const smolvm_fs *fs, struct fuse_entry_out *e);
void fs_set_attr_timeout(const smolvm_fs *fs, struct fuse_attr_out *a);
int fs_stat_fd(int fd, struct stat *ret);
ssize_t fs_erofs(smolvm_fs *fs, fs_req *r);

/* --- fs_ops_read.c / fs_ops_dir.c / fs_ops_write.c ---
 * One per opcode (fs_server.c's table says which, how long its fixed
 * arguments are and whether it mutates); an op serving two opcodes tells them
 * apart by r->hdr.opcode. */
ssize_t fs_op_lookup(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_forget(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_batch_forget(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_getattr(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_readlink(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_open(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_read(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_release(smolvm_fs *fs, fs_req *r); /* RELEASE, RELEASEDIR */
ssize_t fs_op_statfs(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_flush(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_getxattr(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_listxattr(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_access(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_lseek(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_fsync(smolvm_fs *fs, fs_req *r);   /* FSYNC, FSYNCDIR */
ssize_t fs_op_opendir(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_readdir(smolvm_fs *fs, fs_req *r); /* READDIR, READDIRPLUS */
ssize_t fs_op_write(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_create(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_mknod(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_mkdir(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_unlink(smolvm_fs *fs, fs_req *r);  /* UNLINK, RMDIR */
ssize_t fs_op_rename(smolvm_fs *fs, fs_req *r);  /* RENAME, RENAME2 */
ssize_t fs_op_link(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_symlink(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_setattr(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_setxattr(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_removexattr(smolvm_fs *fs, fs_req *r);
ssize_t fs_op_fallocate(smolvm_fs *fs, fs_req *r);

/* Which host open flags a guest's OPEN/CREATE flags map to; -EROFS / -EINVAL. */
int fs_open_flags(const smolvm_fs *fs, uint32_t guest_flags, int *ret_flags);
/* The open_flags of an OPEN/CREATE reply: FOPEN_KEEP_CACHE, FOPEN_DIRECT_IO. */
uint32_t fs_open_reply_flags(const smolvm_fs *fs);
/* Validated (offset, size) for READ/WRITE: size <= max_write, no overflow. */
int fs_check_range(const smolvm_fs *fs, uint64_t offset, uint32_t size);
/* An fd on which f*xattr works (O_PATH fds do not): regular files and
 * directories are re-opened; other types have none to show (-ENODATA). */
int fs_xattr_fd(smolvm_fs *fs, const fs_inode *ino);

/* In-flight references released at scope exit. */
#define INODE_OR_REPLY(var, fs, r)                                      \
        _cleanup_(inode_putp) fs_req_inode var = { (fs), fs_inode_get((fs), (r)->hdr.nodeid) }; \
        if (!var.ino)                                                   \
                return fs_reply_err((r), -ESTALE)

typedef struct fs_req_inode {
        smolvm_fs *fs;
        fs_inode *ino;
} fs_req_inode;

static inline void inode_putp(fs_req_inode *p)
{
        fs_inode_put(p->fs, p->ino);
}

typedef struct fs_req_handle {
        smolvm_fs *fs;
        fs_handle *h;
} fs_req_handle;

static inline void handle_putp(fs_req_handle *p)
{
        fs_handle_put(p->fs, p->h);
}

