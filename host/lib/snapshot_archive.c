/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshot export and import (docs/cli.md, "snapshot export"): one smolvm
 * archive (common/archive.h, kind ARCHIVE_KIND_SNAPSHOT) whose content is a
 * sequence of named sparse files (common/archive_entries.h):
 *
 *   export.json    what the snapshot needs besides itself: the image's key
 *                  (its dir name in the image store) and name, rootfs size
 *   snapshot.json  the record (snapshot_record.c)
 *   state          QEMU's device state
 *   disk.qcow2     the disk at the instant, then each lower layer under its
 *                  own name (layer-<id>.qcow2), as the record lists them
 *   ram            the guest RAM, last (the largest; its holes stay holes)
 *
 * Import trusts none of it. The manifest and the record come first, so a
 * missing image, a bad record or a taken name fail before anything is
 * written; the files are unpacked into snapshots/.creating-<new id> (what a
 * kill leaves is swept as snapshot create's staging dirs are), each name
 * one the record expects, each size bounded by the record; the disk chain is
 * read from the qcow2 headers and must be exactly disk.qcow2 -> the record's
 * layers -> one absolute base, which is then pointed at this host's rootfs
 * of the same image. Only when the archive's checksum and trailer matched
 * is the record written and the dir renamed into place, under a new id.
 *
 * QEMU loads the device state: migration streams are not a security
 * boundary in QEMU, so an archive is to be imported only from a source
 * trusted like the VM itself (docs/cli.md says so). */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "archive_entries.h"
#include "guest_tar_i.h"
#include "qemu_img.h"
#include "util.h"
#include "vmdir.h"

#define MANIFEST_NAME "export.json"
#define MANIFEST_VERSION 1
#define META_MAX_BYTES (64u * 1024u)
/* QEMU's device state of a microvm is ~150 KB; video memory would be more. */
#define STATE_MAX_BYTES (256ull << 20)
#define EXPORT_DEFAULT_LEVEL 1

static int xfail(int code, const char *hint, const char *what, const char *shown, const char *why)
{
        if (code == -EBADMSG)
                return vm_error(SMOLVM_ECORRUPT, "nothing was imported; export it again, or check how the file was "
                                "copied", "%s: %s: %s", what, shown, why);
        if (code == -EPROTONOSUPPORT)
                hint = "use a smolvm at least as new as the one that exported it";
        if (code == -ENOSPC && !hint)
                hint = "free some space, or write elsewhere";
        return vm_error(code, hint, "%s: %s: %s", what, shown, *why ? why : strerror(-code));
}

static void tick(void *userdata);

/* ---- export ---- */

typedef struct xport {
        const smolvm_archive_opts *o;
        archive_writer *w;
        archive_reader *r;
} xport;

static void tick(void *userdata)
{
        xport *x = userdata;
        if (!x->o->progress)
                return;
        uint64_t content = 0, file = 0;
        if (x->w)
                archive_writer_progress(x->w, &content, &file);
        else
                archive_reader_progress(x->r, &content, &file);
        x->o->progress(x->o->userdata, content, file);
}

/* The image's identity: its key (the dir name in a store) from image.json,
 * else the dir's name when it looks like a key. */
static int image_identity(const snap_record *rec, char **ret_key, uint64_t *ret_rootfs)
{
        char real[PATH_MAX], p[PATH_MAX + 32];
        struct stat st;
        const char *image = rec->image ? rec->image : "default";
        if (!realpath(rec->image_dir, real) || snprintf(p, sizeof(p), "%s/" IMAGE_ROOTFS, real) < 0 ||
            stat(p, &st) < 0)
                return vm_error(SMOLVM_EIMAGE, "a snapshot whose image is gone cannot be exported: remove it",
                                "snapshot %s needs image '%s' (%s): %s", rec->id, image, rec->image_dir,
                                strerror(errno));
        *ret_rootfs = (uint64_t)st.st_size;
        const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
        json_t *j = NULL;
        if (snprintf(p, sizeof(p), "%s/" IMAGE_JSON, real) > 0)
                j = json_load_file(p, 0, NULL);
        const char *key = json_string_value(json_object_get(j, "key"));
        if (!key)
                key = base;
        int r = 0;
        if (!image_name_valid(key) || strlen(key) != 64)
                r = vm_error(SMOLVM_EINVAL, "export snapshots of VMs on images of the image store (`smolvm image ls`)",
                             "snapshot %s: its image %s has no key an importer could find it by", rec->id, real);
        else if (!(*ret_key = strdup(key)))
                r = vm_error(-ENOMEM, NULL, "out of memory");
        json_decref(j);
        return r;
}

static int open_in(const char *dir, const char *name, int *ret)
{
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        *ret = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (*ret < 0)
                return vm_error(errno == ENOENT ? SMOLVM_ECORRUPT : negative_errno(),
                                errno == ENOENT ? "the snapshot is damaged: remove it with `smolvm snapshot rm`" : NULL,
                                "open %s: %s", p, strerror(errno));
        return 0;
}

static int export_locked(const char *dir, const snap_record *rec, int fd, const char *shown,
                         const smolvm_archive_opts *o, smolvm_archive_result *ret)
{
        static const char what[] = "snapshot export";
        _cleanup_free_ char *key = NULL, *manifest = NULL, *record = NULL;
        uint64_t rootfs_bytes = 0;
        int r = image_identity(rec, &key, &rootfs_bytes);
        if (r < 0)
                return r;
        /* Every file opened before a byte is written: a damaged snapshot fails
         * here, and one removed meanwhile is still read whole. */
        size_t n_files = 3 + rec->n_layers + rec->n_mounts;
        const char *names[3 + SNAPSHOT_MAX_LAYERS + SMOLVM_MAX_MOUNTS];
        char fs_names[SMOLVM_MAX_MOUNTS][32];
        int fds[3 + SNAPSHOT_MAX_LAYERS + SMOLVM_MAX_MOUNTS];
        names[0] = SNAPDIR_STATE;
        names[1] = SNAPDIR_DISK;
        for (size_t i = 0; i < rec->n_layers; i++)
                names[2 + i] = rec->layers[i];
        /* The mounts' file server states (vsock mounts: see SNAPDIR_FS_STATE_FMT). */
        for (size_t i = 0; i < rec->n_mounts; i++) {
                snprintf(fs_names[i], sizeof(fs_names[i]), SNAPDIR_FS_STATE_FMT, i);
                names[2 + rec->n_layers + i] = fs_names[i];
        }
        names[n_files - 1] = SNAPDIR_RAM;
        size_t n_open = 0;
        for (; r == 0 && n_open < n_files; n_open++)
                if ((r = open_in(dir, names[n_open], &fds[n_open])) < 0)
                        break;
        json_t *m = r == 0 ? json_pack("{s:i, s:s, s:s, s:I}", "version", MANIFEST_VERSION, "image",
                                       rec->image ? rec->image : "default", "image_key", key, "rootfs_bytes",
                                       (json_int_t)rootfs_bytes)
                           : NULL;
        manifest = m ? json_dumps(m, JSON_INDENT(2)) : NULL;
        json_decref(m);
        record = r == 0 ? snap_record_format(rec) : NULL;
        if (r == 0 && (!manifest || !record))
                r = vm_error(-ENOMEM, NULL, "out of memory");

        uint64_t start = now_ms();
        archive_write_opts wo;
        archive_write_opts_init(&wo);
        wo.kind = ARCHIVE_KIND_SNAPSHOT;
        wo.level = o->level ? o->level : EXPORT_DEFAULT_LEVEL;
        wo.cancel_fd = o->cancel_fd > 0 ? o->cancel_fd : -1;
        xport x = { .o = o };
        if (r == 0 && (r = archive_writer_new(fd, &wo, &x.w)) < 0)
                r = vm_error(r, NULL, "%s: %s: %s", what, shown, strerror(-r));
        archive_entries_writer ew = { .w = x.w, .tick = tick, .userdata = &x };
        char err[512] = "";
        if (r == 0)
                r = archive_entries_put_mem(&ew, MANIFEST_NAME, manifest, strlen(manifest), err, sizeof(err));
        if (r == 0)
                r = archive_entries_put_mem(&ew, SNAPDIR_RECORD, record, strlen(record), err, sizeof(err));
        for (size_t i = 0; r == 0 && i < n_files; i++)
                r = archive_entries_put_file(&ew, names[i], fds[i], err, sizeof(err));
        if (r == 0)
                r = archive_entries_put_end(&ew, err, sizeof(err));
        archive_stats st;
        if (r == 0 && (r = archive_writer_finish(x.w, &st)) < 0)
                snprintf(err, sizeof(err), "%s", archive_writer_error(x.w));
        if (r < 0 && *err)
                r = xfail(r, NULL, what, shown, err);
        archive_writer_free(x.w);
        for (size_t i = 0; i < n_open; i++)
                safe_close(fds[i]);
        if (r == 0 && ret)
                archive_result_fill(ret, &st, start);
        return r;
}

static int export_to(const char *id_or_name, int fd, const char *shown, const smolvm_archive_opts *o,
                     smolvm_archive_result *ret)
{
        _cleanup_free_ char *home = NULL, *dir = NULL;
        snap_record rec;
        int r = smolvm_home_dir(&home);
        if (r == 0)
                r = snapshot_find(home, id_or_name, &dir, &rec);
        if (r < 0)
                return r;
        r = export_locked(dir, &rec, fd, shown, o, ret);
        snap_record_done(&rec);
        return r;
}

static const smolvm_archive_opts *opts_or_default(const smolvm_archive_opts *o, smolvm_archive_opts *d)
{
        if (o)
                return o;
        smolvm_archive_opts_init(d);
        return d;
}

SMOLVM_EXPORT int smolvm_snapshot_export_fd(const char *id_or_name, int fd, const smolvm_archive_opts *o,
                                            smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!id_or_name || fd < 0)
                return vm_error(-EINVAL, NULL, "smolvm_snapshot_export_fd: no snapshot or fd");
        if (o->level < 0 || o->level > ARCHIVE_LEVEL_MAX)
                return vm_error(-EINVAL, "give a zstd level from 1 to 19", "snapshot export: level %d", o->level);
        return export_to(id_or_name, fd, "the archive stream", o, ret);
}

SMOLVM_EXPORT int smolvm_snapshot_export(const char *id_or_name, const char *host_path, const smolvm_archive_opts *o,
                                         smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!id_or_name || !host_path)
                return vm_error(-EINVAL, NULL, "smolvm_snapshot_export: no snapshot or file");
        if (o->level < 0 || o->level > ARCHIVE_LEVEL_MAX)
                return vm_error(-EINVAL, "give a zstd level from 1 to 19", "snapshot export: level %d", o->level);
        archive_file f;
        char err[512];
        int r = archive_file_create(host_path, &f, err, sizeof(err));
        if (r < 0)
                return vm_error(r, NULL, "snapshot export: %s", err);
        r = export_to(id_or_name, f.fd, host_path, o, ret);
        if (r == 0 && (r = archive_file_commit(&f, err, sizeof(err))) < 0)
                r = vm_error(r, NULL, "snapshot export: %s", err);
        archive_file_discard(&f);
        return r;
}

/* ---- import ---- */

typedef struct import_ctx {
        const char *shown;
        xport x;
        archive_entries_reader er;
        char err[512];
        char *image_dir;       /* this host's dir of the image (realpath) */
        uint64_t rootfs_bytes; /* its rootfs's size */
        snap_record rec;
        bool have_rec;
        int staging_fd;
} import_ctx;

static const char import_what[] = "snapshot import";

static int ifail(import_ctx *c, int r)
{
        return xfail(r, NULL, import_what, c->shown, c->err);
}

/* A small JSON entry that must come next, into buf (NUL-terminated). */
static int read_meta(import_ctx *c, const char *name, char *buf, size_t *ret_len)
{
        archive_entry e;
        int r = archive_entries_next(&c->er, &e, c->err, sizeof(c->err));
        if (r == 0) {
                snprintf(c->err, sizeof(c->err), "damaged: it has no %s", name);
                r = -EBADMSG;
        }
        if (r > 0 && strcmp(e.name, name)) {
                snprintf(c->err, sizeof(c->err), "not a snapshot export: its entry %llu is '%s', not %s",
                         (unsigned long long)c->er.n_entries + 1, e.name, name);
                r = -EBADMSG;
        }
        if (r > 0)
                r = archive_entries_extract_mem(&c->er, &e, buf, META_MAX_BYTES, c->err, sizeof(c->err));
        if (r == -EFBIG)
                r = -EBADMSG;
        if (r < 0)
                return ifail(c, r);
        buf[e.size] = '\0';
        *ret_len = (size_t)e.size;
        return 0;
}

/* The manifest: find the image on this host, or say which one is missing. */
static int take_manifest(import_ctx *c, const char *home, char *buf)
{
        _cleanup_free_ char *entry = NULL;
        size_t len;
        int r = read_meta(c, MANIFEST_NAME, buf, &len);
        if (r < 0)
                return r;
        json_t *m = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *v = json_object_get(m, "version");
        const char *key = json_string_value(json_object_get(m, "image_key"));
        const char *image = json_string_value(json_object_get(m, "image"));
        json_t *rb = json_object_get(m, "rootfs_bytes");
        if (!json_is_integer(v) || json_integer_value(v) != MANIFEST_VERSION) {
                r = json_is_integer(v) && json_integer_value(v) > MANIFEST_VERSION
                            ? vm_error(-EPROTONOSUPPORT, "use a smolvm at least as new as the one that exported it",
                                       "%s: %s: made by a newer smolvm (export version %lld)", import_what, c->shown,
                                       (long long)json_integer_value(v))
                            : vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: its %s is not valid", import_what, c->shown,
                                       MANIFEST_NAME);
                goto out;
        }
        if (!key || !image_name_valid(key) || !image || !image_name_valid(image) || !json_is_integer(rb) ||
            json_integer_value(rb) <= 0) {
                r = vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: its %s is not valid", import_what, c->shown,
                             MANIFEST_NAME);
                goto out;
        }
        image_store store;
        char real[PATH_MAX], rootfs[PATH_MAX + 32];
        struct stat st;
        r = image_store_entry(home, key, &entry, &store);
        bool ok = r == 0 && realpath(entry, real) && image_dir_check(real, NULL) == 0 &&
                  snprintf(rootfs, sizeof(rootfs), "%s/" IMAGE_ROOTFS, real) > 0 && stat(rootfs, &st) == 0;
        if (ok && (uint64_t)st.st_size != (uint64_t)json_integer_value(rb)) {
                r = vm_error(SMOLVM_EIMAGE, "the image store entry is not what its key says: rebuild it with "
                             "`smolvm image build`", "%s: %s: image %s here has a %llu-byte rootfs, the snapshot's "
                             "had %lld bytes", import_what, c->shown, key, (unsigned long long)st.st_size,
                             (long long)json_integer_value(rb));
                goto out;
        }
        if (!ok) {
                char hint[512];
                snprintf(hint, sizeof(hint), "build that image here first: `smolvm image build%s%s` with the same "
                         "smolvm build and image options as where it was exported (its key is of the kernel, init "
                         "and rootfs)", strcmp(image, "default") ? " --name " : "",
                         strcmp(image, "default") ? image : "");
                r = vm_error(SMOLVM_EIMAGE, hint, "%s: %s: the snapshot needs image '%s' (key %s), which is not in "
                             "%s/images nor in %s/images", import_what, c->shown, image, key, home,
                             smolvm_system_store());
                goto out;
        }
        c->rootfs_bytes = (uint64_t)st.st_size;
        c->image_dir = strdup(real);
        r = c->image_dir ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
out:
        json_decref(m);
        return r;
}

static int take_record(import_ctx *c, const char *home, const char *name, char *buf)
{
        size_t len;
        int r = read_meta(c, SNAPDIR_RECORD, buf, &len);
        if (r < 0)
                return r;
        char shown[PATH_MAX];
        snprintf(shown, sizeof(shown), "%s:" SNAPDIR_RECORD, c->shown);
        r = snap_record_parse(shown, buf, len, &c->rec);
        if (r < 0)
                return r == SMOLVM_ECORRUPT ? vm_error_set_code(SMOLVM_ECORRUPT) : r;
        c->have_rec = true;
        if (name) {
                char *n = strdup(name);
                if (!n)
                        return vm_error(-ENOMEM, NULL, "out of memory");
                free(c->rec.name);
                c->rec.name = n;
        }
        /* Early, so a taken name costs no unpacking (checked again at the end). */
        if (c->rec.name && (r = snapshot_name_check(home, c->rec.name)) < 0)
                return vm_error(r, "give it another name with --name, or remove the other one with `smolvm "
                                "snapshot rm`", "%s: a snapshot named '%s' already exists", import_what,
                                c->rec.name);
        return 0;
}

/* How large the entry called name may be, or 0 when the record has no such
 * file. *ret_slot: which one (for "at most once"). */
static uint64_t entry_limit(const import_ctx *c, const char *name, size_t *ret_slot)
{
        /* A qcow2 file holds at most its virtual size plus metadata (L2 and
         * refcount tables: well under 1/64 of it). */
        uint64_t virt = MAX((uint64_t)c->rec.disk_mib << 20, c->rootfs_bytes);
        uint64_t disk = virt + virt / 64 + (64ull << 20);
        if (!strcmp(name, SNAPDIR_STATE))
                return *ret_slot = 0, STATE_MAX_BYTES;
        if (!strcmp(name, SNAPDIR_RAM))
                return *ret_slot = 1, (uint64_t)c->rec.mem_mib << 20;
        if (!strcmp(name, SNAPDIR_DISK))
                return *ret_slot = 2, disk;
        for (size_t i = 0; i < c->rec.n_layers; i++)
                if (!strcmp(name, c->rec.layers[i]))
                        return *ret_slot = 3 + i, disk;
        for (size_t i = 0; i < c->rec.n_mounts; i++) {
                char fs_name[32];
                snprintf(fs_name, sizeof(fs_name), SNAPDIR_FS_STATE_FMT, i);
                if (!strcmp(name, fs_name))
                        return *ret_slot = 3 + SNAPSHOT_MAX_LAYERS + i, SNAPDIR_FS_STATE_MAX_BYTES;
        }
        return 0;
}

static int take_files(import_ctx *c)
{
        bool seen[3 + SNAPSHOT_MAX_LAYERS + SMOLVM_MAX_MOUNTS] = { false };
        size_t n_seen = 0;
        for (;;) {
                archive_entry e;
                int r = archive_entries_next(&c->er, &e, c->err, sizeof(c->err));
                if (r < 0)
                        return ifail(c, r);
                if (r == 0)
                        break;
                size_t slot = 0;
                uint64_t limit = entry_limit(c, e.name, &slot);
                if (!limit || seen[slot])
                        return vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: damaged: an entry '%s' that its record %s",
                                        import_what, c->shown, e.name, limit ? "has once" : "does not list");
                if (e.size > limit)
                        return vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: damaged: its %s has %llu bytes, more than "
                                        "the record allows (%llu)", import_what, c->shown, e.name,
                                        (unsigned long long)e.size, (unsigned long long)limit);
                seen[slot] = true;
                n_seen++;
                _cleanup_close_ int fd = openat(c->staging_fd, e.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                O_CLOEXEC, 0600);
                if (fd < 0)
                        return vm_error(negative_errno(), NULL, "%s: create %s: %s", import_what, e.name,
                                        strerror(errno));
                r = archive_entries_extract_fd(&c->er, &e, fd, c->err, sizeof(c->err));
                if (r < 0)
                        return ifail(c, r);
        }
        if (n_seen != 3 + c->rec.n_layers + c->rec.n_mounts)
                return vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: damaged: %zu of the snapshot's %zu files are there",
                                import_what, c->shown, n_seen, 3 + c->rec.n_layers + c->rec.n_mounts);
        int r = archive_entries_finish(&c->er, c->err, sizeof(c->err));
        return r < 0 ? ifail(c, r) : 0;
}

/* The disk chain from the qcow2 headers: disk.qcow2 over the record's layers,
 * each once, down to one absolute base (the exporter's rootfs). Each file is
 * then rebased (no data touched) onto what it must be here: its layer by
 * name, the bottom onto this host's rootfs, with the formats spelled out. */
static int fix_chain(import_ctx *c, const char *staging)
{
        char cur[64] = SNAPDIR_DISK, rootfs[PATH_MAX + 32], path[PATH_MAX + 80], qerr[512];
        bool used[SNAPSHOT_MAX_LAYERS] = { false };
        snprintf(rootfs, sizeof(rootfs), "%s/" IMAGE_ROOTFS, c->image_dir);
        for (size_t depth = 0;; depth++) {
                char backing[1024];
                _cleanup_close_ int fd = openat(c->staging_fd, cur, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                int r = fd < 0 ? negative_errno() : qcow2_backing_name(fd, backing, sizeof(backing));
                if (r < 0)
                        return vm_error(r == -ENOENT ? SMOLVM_ECORRUPT : r == -EBADMSG || r == -EXDEV ||
                                                        r == -ENAMETOOLONG ? SMOLVM_ECORRUPT : r, NULL,
                                        "%s: %s: its disk layer %s is not a qcow2 file we can use: %s", import_what,
                                        c->shown, cur, r == -EXDEV ? "its data is in an external file"
                                                                   : strerror(-r));
                if (r == 0)
                        return vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: its disk layer %s has no base", import_what,
                                        c->shown, cur);
                snprintf(path, sizeof(path), "%s/%s", staging, cur);
                if (backing[0] == '/') {
                        if (depth != c->rec.n_layers)
                                return vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: its disk chain ends after %zu of "
                                                "%zu layers", import_what, c->shown, depth + 1,
                                                c->rec.n_layers + 1);
                        r = qemu_img_rebase(path, rootfs, "raw", false, qerr, sizeof(qerr));
                        return r < 0 ? vm_error(r, NULL, "%s: qemu-img rebase %s: %s", import_what, cur, qerr) : 0;
                }
                size_t i = 0;
                while (i < c->rec.n_layers && strcmp(backing, c->rec.layers[i]))
                        i++;
                if (i == c->rec.n_layers || used[i])
                        return vm_error(SMOLVM_ECORRUPT, NULL, "%s: %s: its disk layer %s refers to '%.64s', not "
                                        "a layer of the snapshot's chain", import_what, c->shown, cur, backing);
                used[i] = true;
                r = qemu_img_rebase(path, backing, "qcow2", false, qerr, sizeof(qerr));
                if (r < 0)
                        return vm_error(r, NULL, "%s: qemu-img rebase %s: %s", import_what, cur, qerr);
                snprintf(cur, sizeof(cur), "%s", c->rec.layers[i]);
        }
}

/* Record, name check under the names lock, rename into place. */
static int commit(import_ctx *c, const char *home, const char *snaps, const char *staging, const char *id)
{
        memcpy(c->rec.id, id, SMOLVM_ID_LEN + 1);
        free(c->rec.image_dir);
        c->rec.image_dir = TAKE_PTR(c->image_dir);
        c->rec.internal = false;
        char path[PATH_MAX + 32], final[PATH_MAX + 32];
        _cleanup_free_ char *text = snap_record_format(&c->rec);
        if (!text)
                return vm_error(-ENOMEM, NULL, "out of memory");
        snprintf(path, sizeof(path), "%s/" SNAPDIR_RECORD, staging);
        int r = vm_write_file_atomic(path, text, strlen(text));
        if (r < 0)
                return r;
        _cleanup_close_ int names_lock = -1;
        if (c->rec.name) {
                names_lock = snapshot_names_lock(home);
                if (names_lock < 0)
                        return names_lock;
                if ((r = snapshot_name_check(home, c->rec.name)) < 0)
                        return r;
        }
        snprintf(final, sizeof(final), "%s/%s", snaps, id);
        if (rename(staging, final) < 0)
                return vm_error(negative_errno(), NULL, "rename %s to %s: %s", staging, final, strerror(errno));
        return 0;
}

static int import_from(int fd, const char *shown, const char *name, const smolvm_archive_opts *o,
                       smolvm_snapshot_info *ret_info, smolvm_archive_result *ret)
{
        if (name && !vm_name_valid(name))
                return vm_error(SMOLVM_EINVAL, "1..63 of [A-Za-z0-9_.-], starting with a letter or digit",
                                "invalid snapshot name '%.64s'", name);
        _cleanup_free_ char *home = NULL, *buf = malloc(META_MAX_BYTES + 1);
        if (!buf)
                return vm_error(-ENOMEM, NULL, "out of memory");
        int r = smolvm_home_dir(&home);
        if (r < 0)
                return r;
        uint64_t start = now_ms();
        import_ctx c = { .shown = shown, .x = { .o = o }, .staging_fd = -1 };
        archive_read_opts ro;
        archive_read_opts_init(&ro);
        ro.require_trailer = true;
        ro.cancel_fd = o->cancel_fd > 0 ? o->cancel_fd : -1;
        r = archive_reader_new(fd, &ro, &c.x.r, c.err, sizeof(c.err));
        if (r < 0)
                return ifail(&c, r);
        c.er = (archive_entries_reader){ .r = c.x.r, .tick = tick, .userdata = &c.x };
        archive_stats st = { 0 };
        char snaps[PATH_MAX], staging[PATH_MAX + 32], id[SMOLVM_ID_LEN + 1];
        staging[0] = '\0';
        _cleanup_close_ int creating = -1;
        archive_reader_stats(c.x.r, &st);
        r = take_manifest(&c, home, buf);
        if (r == 0)
                r = take_record(&c, home, name, buf);
        if (r == 0)
                r = snapshots_dir(home, snaps, sizeof(snaps));
        if (r == 0 && (r = mkdir_p(snaps, 0700)) < 0)
                r = vm_error(r, NULL, "mkdir %s: %s", snaps, strerror(-r));
        if (r == 0) {
                (void)vm_trash_sweep(snaps, NULL);
                creating = vm_create_lock(snaps);
                r = creating < 0 ? creating : 0;
        }
        for (int attempt = 0; r == 0; attempt++) {
                if ((r = random_id(id)) < 0)
                        break;
                snprintf(staging, sizeof(staging), "%s/" VM_NEW_PREFIX "%s", snaps, id);
                if (mkdir(staging, 0700) == 0)
                        break;
                if (errno != EEXIST || attempt >= 8) {
                        r = vm_error(negative_errno(), NULL, "mkdir %s: %s", staging, strerror(errno));
                        staging[0] = '\0';
                }
        }
        if (r == 0 && (c.staging_fd = open(staging, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                r = vm_error(negative_errno(), NULL, "open %s: %s", staging, strerror(errno));
        if (r == 0)
                r = take_files(&c);
        if (r == 0)
                archive_reader_stats(c.x.r, &st);
        if (r == 0)
                r = fix_chain(&c, staging);
        if (r == 0)
                r = commit(&c, home, snaps, staging, id);
        if (r < 0 && staging[0]) {
                vm_error_saved e;
                vm_error_save(&e);
                (void)rm_rf(staging);
                vm_error_restore(&e);
        }
        safe_close(c.staging_fd);
        archive_reader_free(c.x.r);
        free(c.image_dir);
        if (c.have_rec)
                snap_record_done(&c.rec);
        if (r == 0 && ret)
                archive_result_fill(ret, &st, start);
        if (r == 0 && ret_info)
                r = smolvm_snapshot_info_get(id, ret_info);
        return r;
}

SMOLVM_EXPORT int smolvm_snapshot_import_fd(int fd, const char *name, const smolvm_archive_opts *o,
                                            smolvm_snapshot_info *ret_info, smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (fd < 0)
                return vm_error(-EINVAL, NULL, "smolvm_snapshot_import_fd: no fd");
        return import_from(fd, "the archive stream", name, o, ret_info, ret);
}

SMOLVM_EXPORT int smolvm_snapshot_import(const char *host_path, const char *name, const smolvm_archive_opts *o,
                                         smolvm_snapshot_info *ret_info, smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!host_path)
                return vm_error(-EINVAL, NULL, "smolvm_snapshot_import: no file");
        _cleanup_close_ int fd = open(host_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "snapshot import: open %s: %s", host_path, strerror(errno));
        return import_from(fd, host_path, name, o, ret_info, ret);
}
