/* SPDX-License-Identifier: Apache-2.0 */
/* The server's state across a VM snapshot (fs_server.h, smolvm_fs_state_save /
 * _load; docs/internals.md, "Mounts across snapshots"): what the guest kernel
 * holds of ours, nodeids (with the name and parent each was found under and its
 * (dev, ino, type)) and open handles, plus the INIT it negotiated.
 *
 * The saved bytes live in a snapshot directory that may have come from an
 * imported archive: the loader treats them as hostile. Every count is checked
 * against the buffer and the server's own limits before anything is allocated,
 * every slot, generation, parent, type and name is validated, a slot or an
 * identity given twice, a parent that is not a directory or a chain that never
 * reaches the root refuses the whole state, and a checksum catches damage.
 * Nothing loaded is trusted as an fd: entries come back evicted (no fd), so
 * their first use re-resolves them beneath their parent and checks (dev, ino,
 * type), as fs_inode.c does after an eviction; handles are re-opened that way
 * at load. A file replaced on the host in between gives ESTALE, never another.
 *
 * Format, little-endian:
 *   header  (40): magic "SMVFSST\0", le32 version (1), le32 flags (bit 0: INIT
 *           done), le32 proto_minor, le32 n_inodes, le32 n_handles,
 *           le32 inode_slots, le32 handle_slots, le32 0;
 *   n_inodes entries (40 + name): le32 slot, le32 generation, le32 parent slot,
 *           le16 type (S_IFMT >> 12), le16 name length, le64 nlookup,
 *           le64 dev, le64 ino, then the name (no NUL);
 *   n_handles entries (16): le32 slot, le32 generation, le32 inode slot,
 *           le32 flags (bit 0 directory, bit 1 writable);
 *   trailer (8): le64 FNV-1a of every byte before it. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_server_i.h"
#include "util.h"

#define STATE_MAGIC "SMVFSST"
#define STATE_VERSION 1u
#define HDR_BYTES 40u
#define INODE_BYTES 40u
#define HANDLE_BYTES 16u
#define TRAILER_BYTES 8u
#define FLAG_INIT 1u
#define HFLAG_DIR 1u
#define HFLAG_WRITABLE 2u

static bool type_ok(uint16_t t)
{
        switch ((mode_t)t << 12) {
        case S_IFDIR: case S_IFREG: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
                return true;
        default:
                return false;
        }
}

int smolvm_fs_state_save(smolvm_fs *fs, size_t max_bytes, uint8_t **ret, size_t *ret_len)
{
        pthread_mutex_lock(&fs->lock);
        size_t need = HDR_BYTES + TRAILER_BYTES;
        uint32_t n_inodes = 0, n_handles = 0;
        for (uint32_t i = 1; i < fs->inode_unused; i++) {
                const fs_inode *e = fs_inode_at(fs, i);
                if (!fs_inode_used(e))
                        continue;
                need += INODE_BYTES + (e->name ? strlen(e->name) : 0);
                n_inodes++;
        }
        for (uint32_t i = 0; i < fs->handle_unused; i++) {
                const fs_handle *h = fs_handle_at(fs, i);
                if (h->fh != 0 && !h->released) {
                        need += HANDLE_BYTES;
                        n_handles++;
                }
        }
        if (need > max_bytes) {
                pthread_mutex_unlock(&fs->lock);
                return -EFBIG;
        }
        uint8_t *buf = malloc(need), *p = buf;
        if (!buf) {
                pthread_mutex_unlock(&fs->lock);
                return -ENOMEM;
        }
        memcpy(p, STATE_MAGIC, 8);
        put_le32(p + 8, STATE_VERSION);
        put_le32(p + 12, fs->initialized ? FLAG_INIT : 0);
        put_le32(p + 16, fs->proto_minor);
        put_le32(p + 20, n_inodes);
        put_le32(p + 24, n_handles);
        put_le32(p + 28, fs->inode_unused);
        put_le32(p + 32, fs->handle_unused);
        put_le32(p + 36, 0);
        p += HDR_BYTES;
        for (uint32_t i = 1; i < fs->inode_unused; i++) {
                const fs_inode *e = fs_inode_at(fs, i);
                if (!fs_inode_used(e))
                        continue;
                /* An entry kept without a name (none today but the root) is
                 * saved with an empty one: it comes back stale. */
                size_t nl = e->name ? strlen(e->name) : 0;
                put_le32(p, i);
                put_le32(p + 4, (uint32_t)(e->nodeid >> 32));
                put_le32(p + 8, e->parent_idx);
                put_le16(p + 12, (uint16_t)(e->type >> 12));
                put_le16(p + 14, (uint16_t)nl);
                put_le64(p + 16, e->nlookup);
                put_le64(p + 24, (uint64_t)e->dev);
                put_le64(p + 32, (uint64_t)e->ino);
                if (nl)
                        memcpy(p + INODE_BYTES, e->name, nl);
                p += INODE_BYTES + nl;
        }
        for (uint32_t i = 0; i < fs->handle_unused; i++) {
                const fs_handle *h = fs_handle_at(fs, i);
                if (h->fh == 0 || h->released)
                        continue;
                put_le32(p, i);
                put_le32(p + 4, h->gen);
                put_le32(p + 8, h->inode_idx);
                put_le32(p + 12, (h->is_dir ? HFLAG_DIR : 0) | (h->writable ? HFLAG_WRITABLE : 0));
                p += HANDLE_BYTES;
        }
        pthread_mutex_unlock(&fs->lock);
        put_le64(p, fnv1a64(FNV1A64_INIT, buf, (size_t)(p - buf)));
        *ret = buf;
        *ret_len = need;
        return 0;
}

/* A name as the guest could have looked it up: 1..255 bytes, no '/' or NUL,
 * not "." or "..". Copied NUL-terminated into out. */
static bool name_ok(const uint8_t *p, size_t len, char out[FS_NAME_MAX + 1])
{
        if (len == 0 || len > FS_NAME_MAX || memchr(p, '/', len) || memchr(p, '\0', len))
                return false;
        memcpy(out, p, len);
        out[len] = '\0';
        return !fs_is_dot_or_dotdot(out);
}

/* Returns code from load_locked() with the message in err. */
#define FAIL(code, ...) return errbuf_fail((code), err, err_len, __VA_ARGS__)

static int load_locked(smolvm_fs *fs, const uint8_t *buf, size_t len, char *err, size_t err_len)
{
        int r = 0;
        if (len < HDR_BYTES + TRAILER_BYTES || memcmp(buf, STATE_MAGIC, 8) != 0)
                FAIL(-EINVAL, "not a file server state (bad magic or too short)");
        if (get_le32(buf + 8) != STATE_VERSION)
                FAIL(-EPROTONOSUPPORT, "file server state version %u (this build reads %u)", get_le32(buf + 8),
                     STATE_VERSION);
        if (get_le64(buf + len - TRAILER_BYTES) != fnv1a64(FNV1A64_INIT, buf, len - TRAILER_BYTES))
                FAIL(-EBADMSG, "file server state checksum mismatch (damaged)");
        uint32_t flags = get_le32(buf + 12), minor = get_le32(buf + 16);
        uint32_t n_inodes = get_le32(buf + 20), n_handles = get_le32(buf + 24);
        uint32_t inode_slots = get_le32(buf + 28), handle_slots = get_le32(buf + 32);
        if ((flags & ~FLAG_INIT) || get_le32(buf + 36) != 0)
                FAIL(-EINVAL, "file server state: unknown flags");
        if ((flags & FLAG_INIT) && (minor < FS_MIN_MINOR || minor > FUSE_KERNEL_MINOR_VERSION))
                FAIL(-EINVAL, "file server state: protocol minor %u out of range", minor);
        /* Counts against the bytes there are and our limits, before any allocation. */
        size_t body = len - HDR_BYTES - TRAILER_BYTES;
        if (inode_slots == 0 || inode_slots > fs->max_inodes || n_inodes >= inode_slots ||
            (uint64_t)n_inodes * INODE_BYTES > body || handle_slots > fs->max_handles || n_handles > handle_slots ||
            (uint64_t)n_inodes * INODE_BYTES + (uint64_t)n_handles * HANDLE_BYTES > body)
                FAIL(-E2BIG, "file server state: %u inodes in %u slots, %u handles in %u slots: over this "
                     "server's limits (%u inodes, %u handles) or the file's size", n_inodes, inode_slots, n_handles,
                     handle_slots, fs->max_inodes, fs->max_handles);
        for (uint32_t i = 1; i < inode_slots; i++)
                if ((r = fs_slots_reserve_locked(fs, &fs->inodes, i)) < 0)
                        FAIL(r, "file server state: %u inode slots: %s", inode_slots, strerror(-r));
        fs->inode_unused = inode_slots;

        const uint8_t *p = buf + HDR_BYTES, *end = buf + len - TRAILER_BYTES;
        char name[FS_NAME_MAX + 1];
        for (uint32_t k = 0; k < n_inodes; k++) {
                if ((size_t)(end - p) < INODE_BYTES)
                        FAIL(-EINVAL, "file server state: truncated at inode %u", k);
                uint32_t slot = get_le32(p), gen = get_le32(p + 4), parent = get_le32(p + 8);
                uint16_t type = get_le16(p + 12), nl = get_le16(p + 14);
                if ((size_t)(end - p) - INODE_BYTES < nl)
                        FAIL(-EINVAL, "file server state: truncated at inode %u", k);
                if (slot == 0 || parent >= inode_slots || !type_ok(type) || !name_ok(p + INODE_BYTES, nl, name))
                        FAIL(-EINVAL, "file server state: inode %u (slot %u) is invalid", k, slot);
                r = fs_inode_restore_locked(fs, slot, gen, parent, (uint16_t)(type << 12), get_le64(p + 16),
                                            (dev_t)get_le64(p + 24), (ino_t)get_le64(p + 32), name);
                if (r < 0)
                        FAIL(r, "file server state: inode %u (slot %u): %s", k, slot,
                             r == -EEXIST ? "given twice" : strerror(-r));
                p += INODE_BYTES + nl;
        }
        if ((r = fs_inode_restore_finish_locked(fs)) < 0)
                FAIL(r, "file server state: the inodes do not form a tree under the root");
        if ((size_t)(end - p) != (size_t)n_handles * HANDLE_BYTES)
                FAIL(-EINVAL, "file server state: %zu bytes where %u handles were announced", (size_t)(end - p),
                     n_handles);
        if ((r = fs_handle_restore_prepare_locked(fs, handle_slots)) < 0)
                FAIL(r, "file server state: %u handle slots: %s", handle_slots, strerror(-r));
        for (uint32_t k = 0; k < n_handles; k++, p += HANDLE_BYTES) {
                uint32_t slot = get_le32(p), gen = get_le32(p + 4), islot = get_le32(p + 8), hf = get_le32(p + 12);
                fs_inode *ino = islot < inode_slots ? fs_inode_at(fs, islot) : NULL;
                if (!ino || !fs_inode_used(ino) || (hf & ~(HFLAG_DIR | HFLAG_WRITABLE)))
                        FAIL(-EINVAL, "file server state: handle %u (slot %u) is invalid", k, slot);
                r = fs_handle_restore_locked(fs, slot, gen, ino, hf & HFLAG_DIR, hf & HFLAG_WRITABLE);
                if (r < 0)
                        FAIL(r, "file server state: handle %u (slot %u): %s", k, slot,
                             r == -EEXIST ? "given twice" : "invalid");
        }
        fs_handle_restore_finish_locked(fs);
        fs_inode_restore_trim_locked(fs);
        fs->initialized = flags & FLAG_INIT;
        fs->proto_minor = fs->initialized ? minor : 0;
        return 0;
}

int smolvm_fs_state_load(smolvm_fs *fs, const uint8_t *buf, size_t len, char *err, size_t err_len)
{
        pthread_mutex_lock(&fs->lock);
        int r;
        if (fs->initialized || fs->n_inodes != 1 || fs->n_handles != 0 || fs->inode_unused != 1 ||
            fs->handle_unused != 0) {
                r = errbuf_fail(-EBUSY, err, err_len,
                                "the file server has served already: a state loads into a fresh one");
        } else {
                r = load_locked(fs, buf, len, err, err_len);
        }
        pthread_mutex_unlock(&fs->lock);
        return r;
}
