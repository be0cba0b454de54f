/* SPDX-License-Identifier: Apache-2.0 */
/* The handle table: fh -> fd opened for I/O (OPEN/OPENDIR/CREATE). It grows in
 * chunks (fs_table.c); bounded by max_handles (half the fd budget unless set)
 * and by the fd budget itself. A handle in use by a request (refs > 0) is
 * only closed when its last user puts it, so a RELEASE racing a READ on another
 * thread can never make that READ use a closed (or reused) fd number. */
#include <fcntl.h>

#include "fs_server_i.h"
#include "util.h"

static uint64_t make_fh(uint32_t idx, uint32_t gen)
{
        return ((uint64_t)gen << 32) | (uint64_t)(idx + 1);
}

int fs_handle_table_init(smolvm_fs *fs)
{
        return fs_slots_init(&fs->handles, fs->max_handles, sizeof(fs_handle));
}

void fs_handle_table_free(smolvm_fs *fs)
{
        if (!fs->handles.chunks)
                return;
        for (uint32_t i = 0; i < fs->handle_unused; i++) {
                fs_handle *h = fs_handle_at(fs, i);
                if (h->fh != 0)
                        safe_close(h->fd);
                pthread_mutex_destroy(&h->dir_lock);
        }
        fs_slots_free(&fs->handles);
}

int fs_handle_add(smolvm_fs *fs, fs_inode *ino, int fd, bool is_dir, bool writable, uint64_t *ret_fh)
{
        _cleanup_close_ int owned = fd;
        int r = 0;

        pthread_mutex_lock(&fs->lock);
        uint32_t idx = fs->handle_free != 0 ? fs->handle_free - 1 : fs->handle_unused;
        if (fs->n_handles >= fs->max_handles) {
                r = -EMFILE;
                goto out;
        }
        if (fs->handle_free == 0 && (r = fs_slots_reserve_locked(fs, &fs->handles, idx)) < 0)
                goto out;
        if (!fs_fd_reserve_locked(fs)) {
                r = -EMFILE;
                goto out;
        }
        fs_handle *h = fs_handle_at(fs, idx);
        if (fs->handle_free != 0) {
                fs->handle_free = h->free_next;
        } else {
                /* A slot's lock lives as long as the table (a handle being
                 * finalized may still be unlocking it). */
                pthread_mutex_init(&h->dir_lock, NULL);
                fs->handle_unused++;
        }
        uint32_t gen = h->gen + 1;
        if (gen == 0)
                gen = 1;
        h->fh = make_fh(idx, gen);
        h->gen = gen;
        h->fd = TAKE_FD(owned);
        h->inode_idx = fs_inode_idx(fs, ino);
        h->refs = 0;
        h->released = false;
        h->is_dir = is_dir;
        h->writable = writable;
        h->free_next = 0;
        ino->refs++; /* the handle pins its inode (READDIRPLUS uses it as parent) */
        fs->n_handles++;
        *ret_fh = h->fh;
out:
        pthread_mutex_unlock(&fs->lock);
        return r;
}

static fs_handle *find_locked(smolvm_fs *fs, uint64_t fh)
{
        uint64_t low = fh & 0xffffffffu;
        if (low == 0 || low > fs->handle_unused)
                return NULL;
        fs_handle *h = fs_handle_at(fs, (uint32_t)low - 1);
        return h->fh == fh && !h->released ? h : NULL;
}

fs_handle *fs_handle_get(smolvm_fs *fs, uint64_t fh)
{
        pthread_mutex_lock(&fs->lock);
        fs_handle *h = find_locked(fs, fh);
        if (h && h->fd < 0)
                h = NULL; /* restored stale: fs_handle_missing() says ESTALE */
        if (h)
                h->refs++;
        pthread_mutex_unlock(&fs->lock);
        return h;
}

/* Returns the fd to close (after dropping the lock: closing a file can flush). */
static int finalize_locked(smolvm_fs *fs, fs_handle *h)
{
        int fd = h->fd;
        uint32_t idx = (uint32_t)h->fh - 1; /* in use: the fh names its slot */
        h->fd = -1;
        h->fh = 0;
        h->released = false;
        h->free_next = fs->handle_free;
        fs->handle_free = idx + 1;
        fs->n_handles--;
        if (fd >= 0) /* a stale restored handle (fs_handle_restore_locked) has none */
                fs_fd_budget_return_locked(fs);
        fs_inode_put_locked(fs, h->inode_idx);
        return fd;
}

void fs_handle_put(smolvm_fs *fs, fs_handle *h)
{
        int fd = -1;
        if (!h)
                return;
        pthread_mutex_lock(&fs->lock);
        if (h->refs > 0)
                h->refs--;
        if (h->released && h->refs == 0)
                fd = finalize_locked(fs, h);
        pthread_mutex_unlock(&fs->lock);
        safe_close(fd);
}

int fs_handle_release(smolvm_fs *fs, uint64_t fh, bool is_dir)
{
        int fd = -1, r = 0;
        pthread_mutex_lock(&fs->lock);
        fs_handle *h = find_locked(fs, fh);
        if (!h || h->is_dir != is_dir) {
                r = -EBADF;
        } else {
                h->released = true;
                if (h->refs == 0)
                        fd = finalize_locked(fs, h);
        }
        pthread_mutex_unlock(&fs->lock);
        safe_close(fd);
        return r;
}

void fs_handle_release_all(smolvm_fs *fs)
{
        pthread_mutex_lock(&fs->lock);
        uint32_t n = fs->handle_unused;
        pthread_mutex_unlock(&fs->lock);
        for (uint32_t i = 0; i < n; i++) {
                int fd = -1;
                pthread_mutex_lock(&fs->lock);
                fs_handle *h = fs_handle_at(fs, i);
                if (h->fh != 0 && !h->released) {
                        h->released = true;
                        if (h->refs == 0)
                                fd = finalize_locked(fs, h);
                }
                pthread_mutex_unlock(&fs->lock);
                safe_close(fd);
        }
}

int fs_handle_missing(smolvm_fs *fs, uint64_t fh)
{
        pthread_mutex_lock(&fs->lock);
        uint64_t low = fh & 0xffffffffu;
        bool stale = low != 0 && low <= fs->handle_unused && fs_handle_at(fs, (uint32_t)low - 1)->fh == fh &&
                     fs_handle_at(fs, (uint32_t)low - 1)->fd < 0;
        pthread_mutex_unlock(&fs->lock);
        return stale ? -ESTALE : -EBADF;
}

int fs_handle_restore_prepare_locked(smolvm_fs *fs, uint32_t n_slots)
{
        if (n_slots > fs->max_handles)
                return -E2BIG;
        for (uint32_t i = 0; i < n_slots; i++) {
                int r = fs_slots_reserve_locked(fs, &fs->handles, i);
                if (r < 0)
                        return r;
                pthread_mutex_init(&fs_handle_at(fs, i)->dir_lock, NULL);
                fs->handle_unused = i + 1;
        }
        return 0;
}

int fs_handle_restore_locked(smolvm_fs *fs, uint32_t idx, uint32_t gen, fs_inode *ino, bool is_dir, bool writable)
{
        if (idx >= fs->handle_unused || gen == 0)
                return -EINVAL;
        fs_handle *h = fs_handle_at(fs, idx);
        if (h->fh != 0)
                return -EEXIST;
        if (is_dir != (ino->type == S_IFDIR) || (is_dir && writable))
                return -EINVAL;
        /* Re-opened now, through the confined re-resolution of its inode (checked
         * against the saved dev, ino and type) and the same re-open as OPEN: a
         * file replaced on the host since leaves the handle stale (ESTALE on
         * use), never open on the new file. Read-only servers never reopen for
         * writing: such a handle stays stale too. */
        int fd = -1;
        if (fs_inode_ensure_fd_locked(fs, ino) == 0 && !(writable && fs->read_only) &&
            fs_fd_reserve_locked(fs)) {
                fd = fs_reopen(fs, ino, writable ? O_RDWR : O_RDONLY);
                if (fd == -EACCES && writable)
                        fd = fs_reopen(fs, ino, O_WRONLY);
                if (fd < 0)
                        fs_fd_budget_return_locked(fs);
        }
        *h = (fs_handle){ .fh = make_fh(idx, gen), .fd = fd < 0 ? -1 : fd, .inode_idx = fs_inode_idx(fs, ino),
                          .is_dir = is_dir, .writable = writable, .gen = gen, .dir_lock = h->dir_lock };
        ino->refs++;
        fs->n_handles++;
        return 0;
}

void fs_handle_restore_finish_locked(smolvm_fs *fs)
{
        fs->handle_free = 0;
        for (uint32_t i = fs->handle_unused; i-- > 0;) {
                fs_handle *h = fs_handle_at(fs, i);
                if (h->fh != 0)
                        continue;
                h->free_next = fs->handle_free;
                fs->handle_free = i + 1;
        }
}
