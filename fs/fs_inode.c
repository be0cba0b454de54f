/* SPDX-License-Identifier: Apache-2.0 */
/* The inode table: nodeid -> O_PATH fd of that inode, keyed by (st_dev, st_ino)
 * so that looking the same file up twice reuses one entry and counts nlookup.
 *
 * Confinement rests on two rules:
 *  - a name from the guest is resolved one component at a time, beneath the O_PATH
 *    fd of its parent, with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 *    RESOLVE_NO_MAGICLINKS) and O_NOFOLLOW: a symlink yields an O_PATH fd on the
 *    link itself, never its target; ".." is never handed to the host kernel
 *    (see fs_do_lookup);
 *  - mount points inside the share are crossed (no RESOLVE_NO_XDEV): whatever the
 *    host administrator mounted below the shared directory is part of what was
 *    shared, and with ".." never resolved by the host no mount can lead out.
 *
 * Re-opening for I/O (fs_reopen): Linux has no "open this O_PATH fd" call
 * (openat2 has no AT_EMPTY_PATH). Opening by (parent fd, name) again would race
 * with renames: the name could be swapped for a FIFO or a device node between the
 * check and the open, and merely opening a device can have effects. We instead
 * open /proc/self/fd/N through a directory fd on procfs checked at start-up
 * (fstatfs == PROC_SUPER_MAGIC), as virtiofsd does. That path is a magic link,
 * but it names our own fd, which pins exactly the inode we looked up; its type
 * (recorded from fstat at lookup, and an inode never changes type) is checked
 * first, so only regular files are opened this way, and the result is fstat'ed
 * again and compared with the pinned (dev, ino). Directories are re-opened with
 * openat(fd, ".") which stays on the same directory. Nothing here can name an
 * inode the guest did not already reach through a confined lookup.
 *
 * Bounded fds: the guest kernel keeps every inode it looked up until memory
 * pressure makes it FORGET them, so a `find` over a big tree would otherwise pin
 * one host fd per file and run into RLIMIT_NOFILE (QEMU's virtiofsd answers
 * EMFILE there). When the fd budget is spent, an idle inode's O_PATH fd is closed
 * (a clock sweep: each slot has a "recent" bit set on use and cleared as the hand
 * passes) and the slot keeps the name it was found under. Directories are
 * evicted too (a big tree has more directories the guest keeps than a budget
 * has fds); the root never is. Re-resolution is one confined openat2(parent,
 * name) per evicted level (the same call as a lookup, O_PATH: no side effect
 * even on a device node), top-down from the nearest ancestor that has an fd,
 * each checked against the recorded (dev, ino, type). If a name now leads
 * elsewhere (renamed or removed on the host while evicted), the request gets
 * ESTALE: never another inode. An inode in use (refs > 0: a request, an open
 * handle) keeps its fd. Names are charged to the memory budget (fs_table.c). */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "fs_server_i.h"
#include "util.h"

static uint32_t hash_key(const smolvm_fs *fs, dev_t dev, ino_t ino)
{
        uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
        h ^= h >> 29;
        return (uint32_t)h & (fs->n_buckets - 1);
}

static uint64_t make_nodeid(uint32_t idx, uint32_t gen)
{
        return ((uint64_t)gen << 32) | (uint64_t)(idx + 1);
}

uint32_t fs_inode_idx(const smolvm_fs *fs, const fs_inode *ino)
{
        (void)fs;
        return (uint32_t)ino->nodeid - 1; /* in use: the nodeid names its slot */
}

#define MIN_BUCKETS 1024u

int fs_inode_table_init(smolvm_fs *fs, int root_fd, const struct stat *st)
{
        int r = fs_slots_init(&fs->inodes, fs->max_inodes, sizeof(fs_inode));
        if (r < 0)
                return r;
        pthread_mutex_lock(&fs->lock);
        r = fs_slots_reserve_locked(fs, &fs->inodes, 0);
        if (r == 0 && !fs_mem_charge_locked(fs, MIN_BUCKETS * sizeof(*fs->buckets)))
                r = -ENOMEM;
        if (r == 0) {
                fs->buckets = calloc(MIN_BUCKETS, sizeof(*fs->buckets));
                r = fs->buckets ? 0 : -ENOMEM;
        }
        if (r < 0) {
                pthread_mutex_unlock(&fs->lock);
                return r;
        }
        fs->n_buckets = MIN_BUCKETS;

        fs_inode *root = fs_inode_at(fs, 0);
        *root = (fs_inode){
                .nodeid = FUSE_ROOT_ID,
                .fd = root_fd,
                .dev = st->st_dev,
                .ino = st->st_ino,
                .type = (uint16_t)(st->st_mode & S_IFMT),
                .nlookup = 1,
                .parent_idx = 0,
        };
        uint32_t b = hash_key(fs, st->st_dev, st->st_ino);
        fs->buckets[b] = 1;
        fs->inode_unused = 1;
        fs->n_inodes = 1;
        fs->clock_hand = 1;
        (void)fs_fd_budget_take_locked(fs); /* the root fd: counted, never refused */
        pthread_mutex_unlock(&fs->lock);
        return 0;
}

void fs_inode_table_free(smolvm_fs *fs)
{
        if (!fs->inodes.chunks)
                return;
        for (uint32_t i = 0; i < fs->inode_unused; i++) {
                fs_inode *e = fs_inode_at(fs, i);
                if (fs_inode_used(e)) {
                        safe_close(e->fd);
                        free(e->name);
                }
        }
        fs_slots_free(&fs->inodes);
        free(fs->buckets);
        fs->buckets = NULL;
}

static fs_inode *find_locked(smolvm_fs *fs, uint64_t nodeid)
{
        uint64_t low = nodeid & 0xffffffffu;
        if (low == 0 || low > fs->inode_unused)
                return NULL;
        fs_inode *e = fs_inode_at(fs, (uint32_t)low - 1);
        return e->nodeid == nodeid ? e : NULL;
}

/* Close one idle inode's fd (see "Bounded fds"). false if none is idle. */
static bool evict_one_locked(smolvm_fs *fs)
{
        uint32_t n = fs->inode_unused;
        for (uint32_t step = 0; n > 1 && step < 2 * n; step++) {
                uint32_t i = fs->clock_hand;
                fs->clock_hand = i + 1 >= n ? 1 : i + 1;
                fs_inode *e = fs_inode_at(fs, i);
                if (i == 0 || !fs_inode_used(e) || e->fd < 0 || e->refs != 0 || !e->name)
                        continue;
                if (e->recent) {
                        e->recent = false;
                        continue;
                }
                safe_close(e->fd); /* O_PATH, or O_RDONLY on a regular file: cannot block */
                e->fd = -1;
                e->readable = false;
                fs_fd_budget_return_locked(fs);
                fs->n_evictions++;
                return true;
        }
        return false;
}

bool fs_fd_reserve_locked(smolvm_fs *fs)
{
        if (fs_fd_budget_take_locked(fs))
                return true;
        return evict_one_locked(fs) && fs_fd_budget_take_locked(fs);
}

/* Give e, evicted, its fd back: one confined step beneath its parent, which has
 * an fd (the caller saw to it). */
static int reopen_locked(smolvm_fs *fs, fs_inode *e)
{
        fs_inode *parent = fs_inode_at(fs, e->parent_idx);
        if (!e->name || parent->fd < 0)
                return -ESTALE;
        /* The reserve may evict: not the fd we are about to open beneath. */
        parent->refs++;
        int fd = -1, r = fs_fd_reserve_locked(fs) ? 0 : -EMFILE;
        struct stat st;
        if (r == 0) {
                r = fs_open_child(parent, e->name, &fd, &st);
                if (r == 0 && (st.st_dev != e->dev || st.st_ino != e->ino || (st.st_mode & S_IFMT) != e->type)) {
                        safe_close(fd);
                        r = -ESTALE; /* the name leads to another inode now */
                }
                if (r < 0)
                        fs_fd_budget_return_locked(fs);
        }
        parent->refs--;
        if (r < 0)
                return r == -EMFILE || r == -ENFILE ? r : -ESTALE;
        e->fd = fd;
        e->readable = false;
        e->recent = true;
        return 0;
}

/* Evicted levels re-resolved in one go; a deeper evicted path gets ESTALE. */
#define MAX_REOPEN_DEPTH 1024u

/* Make e's fd valid: if it was evicted, re-resolve it and every evicted
 * ancestor, top-down from the nearest one with an fd (the root always has
 * one; parent links never form a cycle, and the walk is bounded anyway). */
static int ensure_fd_locked(smolvm_fs *fs, fs_inode *e)
{
        e->recent = true;
        if (e->fd >= 0)
                return 0;
        uint32_t path[MAX_REOPEN_DEPTH];
        uint32_t depth = 0;
        for (fs_inode *a = e; a->fd < 0; a = fs_inode_at(fs, a->parent_idx)) {
                if (depth == MAX_REOPEN_DEPTH)
                        return -ESTALE;
                path[depth++] = fs_inode_idx(fs, a);
        }
        while (depth > 0) {
                int r = reopen_locked(fs, fs_inode_at(fs, path[--depth]));
                if (r < 0)
                        return r;
        }
        return 0;
}

fs_inode *fs_inode_get(smolvm_fs *fs, uint64_t nodeid)
{
        pthread_mutex_lock(&fs->lock);
        fs_inode *e = find_locked(fs, nodeid);
        if (e && ensure_fd_locked(fs, e) < 0)
                e = NULL;
        if (e)
                e->refs++;
        pthread_mutex_unlock(&fs->lock);
        return e;
}

static void unhash_locked(smolvm_fs *fs, uint32_t idx)
{
        fs_inode *e = fs_inode_at(fs, idx);
        uint32_t *link = &fs->buckets[hash_key(fs, e->dev, e->ino)];
        while (*link != 0) {
                if (*link == idx + 1) {
                        *link = e->next;
                        return;
                }
                link = &fs_inode_at(fs, *link - 1)->next;
        }
}

static void set_name_locked(smolvm_fs *fs, fs_inode *e, char *name)
{
        if (e->name)
                fs_mem_uncharge_locked(fs, fs_name_cost(strlen(e->name)));
        free(e->name);
        e->name = name;
}

/* Free the slot when nobody refers to it any more; a freed child drops its pin on
 * the parent, which may cascade up the tree (iteratively: no recursion depth for a
 * guest to grow). */
static void maybe_free_locked(smolvm_fs *fs, uint32_t idx)
{
        while (idx != 0) {
                fs_inode *e = fs_inode_at(fs, idx);
                if (!fs_inode_used(e) || e->nlookup != 0 || e->refs != 0 || e->kids != 0)
                        return;
                uint32_t parent = e->parent_idx;
                unhash_locked(fs, idx);
                if (e->fd >= 0) {
                        safe_close(e->fd); /* O_PATH, or O_RDONLY on a regular file */
                        fs_fd_budget_return_locked(fs);
                }
                e->fd = -1;
                e->readable = false;
                set_name_locked(fs, e, NULL);
                e->nodeid &= ~(uint64_t)0xffffffffu; /* free; the generation stays */
                e->next = fs->inode_free;
                fs->inode_free = idx + 1;
                fs->n_inodes--;
                fs_inode *p = fs_inode_at(fs, parent);
                if (p->kids > 0)
                        p->kids--;
                idx = parent;
        }
}

void fs_inode_put_locked(smolvm_fs *fs, uint32_t idx)
{
        fs_inode *e = fs_inode_at(fs, idx);
        if (e->refs > 0)
                e->refs--;
        maybe_free_locked(fs, idx);
}

void fs_inode_put(smolvm_fs *fs, fs_inode *ino)
{
        if (!ino)
                return;
        pthread_mutex_lock(&fs->lock);
        fs_inode_put_locked(fs, fs_inode_idx(fs, ino));
        pthread_mutex_unlock(&fs->lock);
}

static fs_inode *find_by_key_locked(smolvm_fs *fs, dev_t dev, ino_t ino)
{
        for (uint32_t i = fs->buckets[hash_key(fs, dev, ino)]; i != 0;) {
                fs_inode *e = fs_inode_at(fs, i - 1);
                if (e->dev == dev && e->ino == ino)
                        return e;
                i = e->next;
        }
        return NULL;
}

/* Keep chains short: double the buckets once there are more inodes than
 * buckets. Best effort: without memory, chains just get longer. */
static void maybe_grow_buckets_locked(smolvm_fs *fs)
{
        if (fs->n_inodes <= fs->n_buckets || fs->n_buckets >= FS_MAX_INODES_CAP)
                return;
        uint32_t nb = fs->n_buckets * 2;
        size_t bytes = (size_t)nb * sizeof(*fs->buckets);
        if (!fs_mem_charge_locked(fs, bytes))
                return;
        uint32_t *nbk = calloc(nb, sizeof(*nbk));
        if (!nbk) {
                fs_mem_uncharge_locked(fs, bytes);
                return;
        }
        fs_mem_uncharge_locked(fs, (size_t)fs->n_buckets * sizeof(*fs->buckets));
        free(fs->buckets);
        fs->buckets = nbk;
        fs->n_buckets = nb;
        for (uint32_t i = 0; i < fs->inode_unused; i++) {
                fs_inode *e = fs_inode_at(fs, i);
                if (!fs_inode_used(e))
                        continue;
                uint32_t b = hash_key(fs, e->dev, e->ino);
                e->next = nbk[b];
                nbk[b] = i + 1;
        }
}

/* A copy of name charged to the memory budget (set_name_locked uncharges it). */
static char *charged_strdup_locked(smolvm_fs *fs, const char *name)
{
        size_t cost = fs_name_cost(strlen(name));
        if (!fs_mem_charge_locked(fs, cost))
                return NULL;
        char *copy = strdup(name);
        if (!copy)
                fs_mem_uncharge_locked(fs, cost);
        return copy;
}

/* Record that e is now known as name under pidx (it was found or moved there).
 * The old parent loses a child and may be freed. */
static int relink_locked(smolvm_fs *fs, fs_inode *e, uint32_t pidx, const char *name)
{
        uint32_t idx = fs_inode_idx(fs, e);
        if (idx == 0 || idx == pidx || (e->parent_idx == pidx && e->name && strcmp(e->name, name) == 0))
                return 0;
        char *copy = charged_strdup_locked(fs, name);
        if (!copy)
                return -ENOMEM;
        set_name_locked(fs, e, copy);
        uint32_t old = e->parent_idx;
        if (old != pidx) {
                fs_inode_at(fs, pidx)->kids++;
                e->parent_idx = pidx;
                fs_inode *o = fs_inode_at(fs, old);
                if (o->kids > 0)
                        o->kids--;
                maybe_free_locked(fs, old);
        }
        return 0;
}

/* Room for one more inode with a name of name_len bytes? 0, -ENFILE or -ENOMEM.
 * A speculative add leaves the last 1/16 of each limit to LOOKUPs. */
static int check_room_locked(const smolvm_fs *fs, size_t name_len, bool speculative)
{
        uint32_t max_inodes = fs->max_inodes;
        uint64_t max_mem = fs->max_mem_bytes;
        if (speculative) {
                max_inodes -= max_inodes / 16;
                max_mem -= max_mem / 16;
        }
        if (fs->n_inodes >= max_inodes)
                return -ENFILE;
        uint64_t need = fs_name_cost(name_len);
        if (fs->inode_free == 0 && fs->inode_unused % FS_CHUNK_SLOTS == 0)
                need += (uint64_t)FS_CHUNK_SLOTS * sizeof(fs_inode);
        if (fs->mem_bytes + need > max_mem)
                return -ENOMEM;
        return 0;
}

int fs_inode_add(smolvm_fs *fs, fs_inode *parent, const char *name, int fd, const struct stat *st,
                 bool speculative, uint64_t *ret_nodeid)
{
        _cleanup_close_ int owned = fd;
        _cleanup_free_ char *name_copy = NULL;
        size_t name_cost = 0;
        uint64_t nodeid;
        int r = 0;

        pthread_mutex_lock(&fs->lock);
        uint32_t pidx = fs_inode_idx(fs, parent);
        fs_inode *found = find_by_key_locked(fs, st->st_dev, st->st_ino);
        if (found) {
                found->nlookup++;
                found->recent = true;
                nodeid = found->nodeid;
                /* A file seen under a new name (renamed on the host, or another
                 * hard link) is re-resolved there if evicted. Directories keep
                 * their first parent: ".." and the kids pins follow it, and a
                 * bind mount could otherwise make a directory its own ancestor. */
                if (found->type != S_IFDIR)
                        (void)relink_locked(fs, found, pidx, name);
                if (found->fd < 0 && fs_fd_budget_take_locked(fs)) {
                        found->fd = TAKE_FD(owned); /* the same inode: checked by key */
                        found->readable = false;
                }
                goto out;
        }
        r = check_room_locked(fs, strlen(name), speculative);
        if (r < 0)
                goto out;
        name_cost = fs_name_cost(strlen(name));
        name_copy = strdup(name);
        if (!name_copy || !fs_mem_charge_locked(fs, name_cost)) {
                r = -ENOMEM;
                goto out;
        }
        uint32_t idx = fs->inode_free != 0 ? fs->inode_free - 1 : fs->inode_unused;
        if (fs->inode_free == 0 && (r = fs_slots_reserve_locked(fs, &fs->inodes, idx)) < 0)
                goto uncharge;
        if (!fs_fd_reserve_locked(fs)) {
                r = -EMFILE;
                goto uncharge;
        }
        if (fs->inode_free != 0)
                fs->inode_free = fs_inode_at(fs, idx)->next;
        else
                fs->inode_unused++;
        fs_inode *e = fs_inode_at(fs, idx);
        uint32_t gen = (uint32_t)(e->nodeid >> 32) + 1;
        if (gen == 0)
                gen = 1;
        uint32_t b = hash_key(fs, st->st_dev, st->st_ino);
        *e = (fs_inode){
                .nodeid = make_nodeid(idx, gen),
                .fd = TAKE_FD(owned),
                .name = TAKE_PTR(name_copy),
                .recent = true,
                .dev = st->st_dev,
                .ino = st->st_ino,
                .type = (uint16_t)(st->st_mode & S_IFMT),
                .nlookup = 1,
                .parent_idx = pidx,
                .next = fs->buckets[b],
        };
        fs->buckets[b] = idx + 1;
        fs_inode_at(fs, pidx)->kids++;
        fs->n_inodes++;
        nodeid = e->nodeid;
        maybe_grow_buckets_locked(fs);
        goto out;
uncharge:
        fs_mem_uncharge_locked(fs, name_cost);
out:
        pthread_mutex_unlock(&fs->lock);
        if (r == 0)
                *ret_nodeid = nodeid;
        return r;
}

int fs_inode_forget(smolvm_fs *fs, uint64_t nodeid, uint64_t nlookup)
{
        int r = 0;
        pthread_mutex_lock(&fs->lock);
        fs_inode *e = find_locked(fs, nodeid);
        if (!e) {
                r = -ENOENT;
        } else if (nodeid != FUSE_ROOT_ID) {
                /* A guest forgetting more than it looked up is lying; clamp. */
                e->nlookup = nlookup >= e->nlookup ? 0 : e->nlookup - nlookup;
                maybe_free_locked(fs, fs_inode_idx(fs, e));
        }
        pthread_mutex_unlock(&fs->lock);
        return r;
}

void fs_inode_forget_all(smolvm_fs *fs)
{
        pthread_mutex_lock(&fs->lock);
        for (uint32_t i = 1; i < fs->inode_unused; i++) {
                fs_inode *e = fs_inode_at(fs, i);
                if (fs_inode_used(e))
                        e->nlookup = 0;
        }
        for (uint32_t i = fs->inode_unused; i-- > 1;)
                maybe_free_locked(fs, i);
        pthread_mutex_unlock(&fs->lock);
}

int fs_stat_fd(int fd, struct stat *ret)
{
        if (fstatat(fd, "", ret, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
                return negative_errno();
        return 0;
}

int fs_open_child(const fs_inode *dir, const char *name, int *ret_fd, struct stat *ret_st)
{
        if (dir->type != S_IFDIR)
                return -ENOTDIR;
        struct open_how how = {
                .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        _cleanup_close_ int fd = -1;
        for (int tries = 0; tries < 8; tries++) {
                fd = (int)syscall(SYS_openat2, dir->fd, name, &how, sizeof(how));
                if (fd >= 0 || errno != EAGAIN)
                        break;
        }
        if (fd < 0)
                return negative_errno();
        int r = fs_stat_fd(fd, ret_st);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int fs_reopen(smolvm_fs *fs, const fs_inode *ino, int flags)
{
        _cleanup_close_ int fd = -1;
        flags &= ~(O_CREAT | O_EXCL | O_PATH | O_TMPFILE | O_NOFOLLOW | O_DIRECTORY);
        if (fs->read_only && ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND))))
                return -EROFS; /* in read-only mode the server only ever opens O_RDONLY */
        if (ino->type == S_IFDIR) {
                if ((flags & O_ACCMODE) != O_RDONLY)
                        return -EISDIR;
                fd = openat(ino->fd, ".", flags | O_DIRECTORY | O_CLOEXEC);
        } else if (ino->type == S_IFREG) {
                char name[16];
                snprintf(name, sizeof(name), "%d", ino->fd);
                fd = openat(fs->proc_fd_dir, name, flags | O_CLOEXEC | O_NOCTTY);
        } else if (ino->type == S_IFLNK) {
                return -ELOOP;
        } else {
                return -EACCES; /* FIFOs, sockets, devices: never opened on the host */
        }
        if (fd < 0)
                return negative_errno();
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_dev != ino->dev || st.st_ino != ino->ino || (st.st_mode & S_IFMT) != ino->type)
                return -EIO;
        return TAKE_FD(fd);
}

/* Reads without OPEN (fs->no_open: read-only shares) read a regular file by
 * its nodeid. The inode's own O_PATH fd is swapped once for an O_RDONLY one
 * from fs_reopen (the same inode: /proc/self/fd/N of the pinned fd, its (dev,
 * ino, type) checked again), so the fd budget counts it as before and later
 * READs cost no open. The swap happens only while the caller's reference is
 * the only one (no other request can be using the old fd); otherwise the
 * reopened fd serves this request alone. An evicted and re-resolved inode
 * (fs_inode_get: ESTALE if its name now leads to another file) starts again
 * from an O_PATH fd. */
int fs_inode_read_fd(smolvm_fs *fs, fs_inode *ino, bool *ret_own)
{
        *ret_own = false;
        if (ino->type == S_IFDIR)
                return -EISDIR;
        if (ino->type != S_IFREG)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        int fd = ino->readable ? ino->fd : -1;
        pthread_mutex_unlock(&fs->lock);
        if (fd >= 0)
                return fd;
        fd = fs_reopen(fs, ino, O_RDONLY | O_NONBLOCK);
        if (fd < 0)
                return fd;
        int old = -1;
        pthread_mutex_lock(&fs->lock);
        if (!ino->readable && ino->refs == 1 && ino->fd >= 0) {
                old = ino->fd;
                ino->fd = fd;
                ino->readable = true;
        }
        pthread_mutex_unlock(&fs->lock);
        if (old < 0) {
                *ret_own = true;
                return fd;
        }
        safe_close(old);
        return fd;
}

int fs_do_lookup(smolvm_fs *fs, fs_inode *dir, const char *name, bool speculative,
                 struct fuse_entry_out *ret_entry)
{
        struct stat st;
        uint64_t nodeid;
        int r;

        if (fs_is_dot_or_dotdot(name)) {
                /* Never let the host resolve "..": map it to the directory this one
                 * was found in (the root is its own parent). The child pins its
                 * parent's slot (kids), so parent_idx is always a live entry. */
                if (dir->type != S_IFDIR)
                        return -ENOTDIR;
                pthread_mutex_lock(&fs->lock);
                fs_inode *target = name[1] == '.' ? fs_inode_at(fs, dir->parent_idx) : dir;
                r = ensure_fd_locked(fs, target); /* the parent may be evicted */
                if (r == 0) {
                        target->nlookup++;
                        target->refs++;
                        nodeid = target->nodeid;
                }
                pthread_mutex_unlock(&fs->lock);
                if (r < 0)
                        return r;
                r = fs_stat_fd(target->fd, &st);
                if (r < 0) {
                        pthread_mutex_lock(&fs->lock);
                        target->nlookup--;
                        fs_inode_put_locked(fs, fs_inode_idx(fs, target));
                        pthread_mutex_unlock(&fs->lock);
                        return r;
                }
                fs_inode_put(fs, target);
        } else {
                int fd;
                r = fs_open_child(dir, name, &fd, &st);
                if (r < 0)
                        return r;
                r = fs_inode_add(fs, dir, name, fd, &st, speculative, &nodeid);
                if (r < 0)
                        return r;
        }
        memset(ret_entry, 0, sizeof(*ret_entry));
        ret_entry->nodeid = nodeid;
        fs_set_timeouts(fs, ret_entry);
        fs_fill_attr(fs, &st, &ret_entry->attr);
        return 0;
}

void fs_inode_renamed(smolvm_fs *fs, fs_inode *olddir, const char *oldname, fs_inode *newdir,
                      const char *newname, bool exchange)
{
        struct stat moved, swapped;
        bool have_moved = fstatat(newdir->fd, newname, &moved, AT_SYMLINK_NOFOLLOW) == 0;
        bool have_swapped = exchange && fstatat(olddir->fd, oldname, &swapped, AT_SYMLINK_NOFOLLOW) == 0;

        pthread_mutex_lock(&fs->lock);
        uint32_t oidx = fs_inode_idx(fs, olddir), nidx = fs_inode_idx(fs, newdir);
        fs_inode *e = have_moved ? find_by_key_locked(fs, moved.st_dev, moved.st_ino) : NULL;
        fs_inode *x = have_swapped ? find_by_key_locked(fs, swapped.st_dev, swapped.st_ino) : NULL;
        /* Only entries that were known under the old name: a hard link found
         * elsewhere keeps its own. */
        if (e && e->parent_idx == oidx && e->name && strcmp(e->name, oldname) == 0)
                (void)relink_locked(fs, e, nidx, newname);
        if (x && x != e && x->parent_idx == nidx && x->name && strcmp(x->name, newname) == 0)
                (void)relink_locked(fs, x, oidx, oldname);
        pthread_mutex_unlock(&fs->lock);
}

/* ---- rebuilding the table from a saved state (fs_state.c) ---- */

int fs_inode_restore_locked(smolvm_fs *fs, uint32_t idx, uint32_t gen, uint32_t parent_idx, uint16_t type,
                            uint64_t nlookup, dev_t dev, ino_t ino, const char *name)
{
        if (idx == 0 || idx >= fs->inode_unused || gen == 0)
                return -EINVAL;
        fs_inode *e = fs_inode_at(fs, idx);
        if (fs_inode_used(e) || find_by_key_locked(fs, dev, ino))
                return -EEXIST; /* a slot or an identity twice */
        if (fs->n_inodes >= fs->max_inodes)
                return -ENFILE;
        char *copy = charged_strdup_locked(fs, name);
        if (!copy)
                return -ENOMEM;
        uint32_t b = hash_key(fs, dev, ino);
        /* No fd: an evicted entry, re-resolved by name and checked against
         * (dev, ino, type) on first use, exactly as after an eviction. */
        *e = (fs_inode){
                .nodeid = make_nodeid(idx, gen),
                .fd = -1,
                .name = copy,
                .dev = dev,
                .ino = ino,
                .type = type,
                .nlookup = nlookup,
                .parent_idx = parent_idx,
                .next = fs->buckets[b],
        };
        fs->buckets[b] = idx + 1;
        fs->n_inodes++;
        maybe_grow_buckets_locked(fs);
        return 0;
}

/* Every parent must be a live directory and every chain must reach the root:
 * state[] marks 0 unseen, 1 on the walk being checked, 2 known good. */
static int check_parents_locked(smolvm_fs *fs, uint8_t *state)
{
        state[0] = 2;
        for (uint32_t i = 1; i < fs->inode_unused; i++) {
                uint32_t j = i;
                while (fs_inode_used(fs_inode_at(fs, j)) && state[j] == 0) {
                        state[j] = 1;
                        uint32_t p = fs_inode_at(fs, j)->parent_idx;
                        if (p >= fs->inode_unused || !fs_inode_used(fs_inode_at(fs, p)) ||
                            fs_inode_at(fs, p)->type != S_IFDIR)
                                return -EINVAL;
                        j = p;
                }
                if (fs_inode_used(fs_inode_at(fs, j)) && state[j] == 1)
                        return -ELOOP; /* a cycle that never reaches the root */
                for (j = i; fs_inode_used(fs_inode_at(fs, j)) && state[j] == 1; j = fs_inode_at(fs, j)->parent_idx)
                        state[j] = 2;
        }
        return 0;
}

int fs_inode_restore_finish_locked(smolvm_fs *fs)
{
        _cleanup_free_ uint8_t *state = calloc(fs->inode_unused, 1);
        if (!state)
                return -ENOMEM;
        int r = check_parents_locked(fs, state);
        if (r < 0)
                return r;
        fs->inode_free = 0;
        for (uint32_t i = fs->inode_unused; i-- > 1;) {
                fs_inode *e = fs_inode_at(fs, i);
                if (fs_inode_used(e)) {
                        fs_inode_at(fs, e->parent_idx)->kids++;
                        continue;
                }
                e->nodeid = 0;
                e->next = fs->inode_free;
                fs->inode_free = i + 1;
        }
        return 0;
}

void fs_inode_restore_trim_locked(smolvm_fs *fs)
{
        /* Entries the kernel no longer refers to (nlookup 0, no handle, no
         * child) go, as they would have after their FORGET. */
        for (uint32_t i = fs->inode_unused; i-- > 1;)
                maybe_free_locked(fs, i);
}

int fs_inode_ensure_fd_locked(smolvm_fs *fs, fs_inode *e)
{
        return ensure_fd_locked(fs, e);
}
