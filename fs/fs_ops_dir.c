/* SPDX-License-Identifier: Apache-2.0 */
/* OPENDIR, READDIR, READDIRPLUS. The directory offset the guest passes back is
 * the d_off cookie getdents64 gave us, used with lseek on the handle's own fd;
 * lseek + getdents run under the handle's dir_lock (never fs->lock). Read-only
 * shares answer OPENDIR with ENOSYS (fs->no_open): the guest kernel then opens
 * directories without asking and caches their entries (FOPEN_CACHE_DIR is its
 * default without OPENDIR), and each READDIR with fh 0 reads a directory fd of
 * its own, opened for that request and positioned at the cookie. */
#include <dirent.h>
#include <fcntl.h>

#include "fs_server_i.h"
#include "util.h"

#define DENTS_BUF_BYTES (32u * 1024u)
/* READDIR sizes the kernel uses are a page or a few; more is wasted work. */
#define READDIR_MAX_BYTES (128u * 1024u)

ssize_t fs_op_opendir(smolvm_fs *fs, fs_req *r)
{
        if (fs->no_open)
                return fs_reply_err(r, -ENOSYS); /* no RELEASEDIR either */
        INODE_OR_REPLY(n, fs, r);
        if (n.ino->type != S_IFDIR)
                return fs_reply_err(r, -ENOTDIR);
        int fd = fs_reopen(fs, n.ino, O_RDONLY);
        if (fd < 0)
                return fs_reply_err(r, fd);
        struct fuse_open_out out = {0};
        int err = fs_handle_add(fs, n.ino, fd, true, false, &out.fh);
        if (err < 0)
                return fs_reply_err(r, err);
        return fs_reply(r, &out, sizeof(out));
}

typedef struct dir_ctx {
        smolvm_fs *fs;
        fs_inode *dir;
        uint8_t *buf;
        size_t used;
        size_t size;
        bool plus;
        bool full;
        bool no_room;           /* the inode table refused one: plain entries from here */
} dir_ctx;

/* Append one entry; false when it does not fit (nothing written, no lookup). */
static bool emit(dir_ctx *c, const struct dirent64 *d)
{
        size_t namelen = strnlen(d->d_name, FS_NAME_MAX + 1);
        if (namelen == 0 || namelen > FS_NAME_MAX)
                return true; /* cannot be expressed: skip */
        size_t rec = c->plus ? FUSE_DIRENTPLUS_SIZE((&(struct fuse_direntplus){ .dirent.namelen = (uint32_t)namelen }))
                             : FUSE_DIRENT_SIZE((&(struct fuse_dirent){ .namelen = (uint32_t)namelen }));
        if (rec > c->size - c->used) {
                c->full = true;
                return false;
        }

        uint8_t *p = c->buf + c->used;
        memset(p, 0, rec);
        struct fuse_dirent de = {
                .ino = d->d_ino,
                .off = (uint64_t)d->d_off,
                .namelen = (uint32_t)namelen,
                .type = d->d_type,
        };
        if (c->plus) {
                struct fuse_entry_out e = {0};
                /* Each entry we return a nodeid for counts as one LOOKUP: the
                 * kernel links it (or forgets it). "." and ".." get nodeid 0 and
                 * no count, as the kernel ignores them; a failed lookup (gone, or
                 * the table is near a limit) also gets nodeid 0 and costs
                 * nothing: the kernel lists the name and LOOKUPs it when it is
                 * used. Near a limit the rest of the reply skips the attempt. */
                int r = -ENOENT;
                if (!fs_is_dot_or_dotdot(d->d_name) && !c->no_room) {
                        r = fs_do_lookup(c->fs, c->dir, d->d_name, true, &e);
                        if (r == -ENFILE || r == -ENOMEM || r == -EMFILE)
                                c->no_room = true;
                }
                if (r < 0) {
                        memset(&e, 0, sizeof(e));
                        e.attr.ino = d->d_ino;
                        e.attr.mode = (uint32_t)d->d_type << 12;
                }
                memcpy(p, &e, sizeof(e));
                p += sizeof(e);
        }
        memcpy(p, &de, sizeof(de));
        memcpy(p + sizeof(de), d->d_name, namelen);
        c->used += rec;
        return true;
}

ssize_t fs_op_readdir(smolvm_fs *fs, fs_req *r)
{
        bool plus = r->hdr.opcode == FUSE_READDIRPLUS;
        struct fuse_read_in in;
        memcpy(&in, r->args, sizeof(in));
        if (in.offset > (uint64_t)INT64_MAX)
                return fs_reply_err(r, -EINVAL);
        _cleanup_(handle_putp) fs_req_handle h = { fs, NULL };
        _cleanup_(inode_putp) fs_req_inode n = { fs, NULL };
        _cleanup_close_ int own_fd = -1;
        fs_inode *dir;
        int fd;
        if (in.fh == 0 && fs->no_open) {
                n.ino = fs_inode_get(fs, r->hdr.nodeid);
                if (!n.ino)
                        return fs_reply_err(r, -ESTALE);
                if (n.ino->type != S_IFDIR)
                        return fs_reply_err(r, -ENOTDIR);
                own_fd = fs_reopen(fs, n.ino, O_RDONLY);
                if (own_fd < 0)
                        return fs_reply_err(r, own_fd);
                dir = n.ino;
                fd = own_fd;
        } else {
                h.h = fs_handle_get(fs, in.fh);
                if (!h.h)
                        return fs_reply_err(r, fs_handle_missing(fs, in.fh));
                if (!h.h->is_dir)
                        return fs_reply_err(r, -ENOTDIR);
                dir = fs_inode_at(fs, h.h->inode_idx); /* pinned by the handle */
                fd = h.h->fd;
        }

        size_t size = MIN((size_t)in.size, (size_t)READDIR_MAX_BYTES);
        size = MIN(size, r->out_cap - sizeof(struct fuse_out_header));
        if (size == 0)
                return fs_reply(r, NULL, 0);
        _cleanup_free_ uint8_t *buf = malloc(size);
        _cleanup_free_ uint8_t *dents = malloc(DENTS_BUF_BYTES);
        if (!buf || !dents)
                return fs_reply_err(r, -ENOMEM);

        dir_ctx c = {
                .fs = fs,
                .dir = dir,
                .buf = buf,
                .size = size,
                .plus = plus,
        };
        int err = 0;
        /* A handle's fd is shared by the guest's requests on it; ours is not. */
        if (h.h)
                pthread_mutex_lock(&h.h->dir_lock);
        if (lseek(fd, (off_t)in.offset, SEEK_SET) < 0) {
                err = negative_errno();
                goto unlock;
        }
        while (!c.full) {
                ssize_t got = getdents64(fd, dents, DENTS_BUF_BYTES);
                if (got < 0) {
                        err = negative_errno();
                        break;
                }
                if (got == 0)
                        break;
                for (ssize_t pos = 0; pos < got;) {
                        struct dirent64 *d = (struct dirent64 *)(dents + pos);
                        if (d->d_reclen == 0 || d->d_reclen > got - pos)
                                break; /* host kernel data; never happens */
                        if (!emit(&c, d))
                                break;
                        pos += d->d_reclen;
                }
        }
unlock:
        if (h.h)
                pthread_mutex_unlock(&h.h->dir_lock);
        if (c.used == 0 && err < 0)
                return fs_reply_err(r, err);
        if (c.used == 0 && c.full)
                return fs_reply_err(r, -EINVAL); /* an empty reply would mean "end" */
        return fs_reply(r, buf, c.used);
}
