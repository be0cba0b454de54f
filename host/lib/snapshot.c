/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots: create, list, info, rm, and fork (docs/internals.md, "Snapshots").
 *
 * A snapshot is $SMOLVM_HOME/snapshots/<id>/ with snapshot.json, the guest RAM
 * at the instant (ram, sparse), QEMU's device state (state: a migration stream
 * with x-ignore-shared, so no RAM in it) and the disk at the instant
 * (disk.qcow2 plus the lower layers it refers to by relative name). Every disk
 * layer is a hard link: the VM keeps its own link of the layer it now runs
 * over, the snapshot one, each VM made from it one. So removing any of them
 * never breaks another, and no file is copied.
 *
 * The dir is built under snapshots/.creating-<id> and renamed into place once
 * complete, with the create lock held shared (paths.c, as for VM dirs): a kill
 * leaves only a staging dir the next sweep removes. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "agent_call_i.h"
#include "lane.h"
#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

#define MIGRATE_TIMEOUT_MS 120000u

int snapshots_dir(const char *home, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%s/snapshots", home);
        return n > 0 && (size_t)n < size ? 0 : vm_error(-ENAMETOOLONG, NULL, "%s/snapshots: path too long", home);
}

int snapshot_load_record(const char *dir, snap_record *ret)
{
        char path[PATH_MAX];
        pathf(path, sizeof(path), "%s/" SNAPDIR_RECORD, dir);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? vm_error(SMOLVM_ENOTFOUND, NULL, "%s: no such snapshot record", path)
                                       : vm_error(negative_errno(), NULL, "open %s: %s", path, strerror(errno));
        char buf[64 * 1024 + 1];
        ssize_t n = read(fd, buf, sizeof(buf)); /* one read: the record is written whole */
        if (n < 0)
                return vm_error(negative_errno(), NULL, "read %s: %s", path, strerror(errno));
        return snap_record_parse(path, buf, (size_t)n, ret);
}

static uint64_t dir_bytes(const char *dir)
{
        DIR *d = opendir(dir);
        uint64_t sum = 0;
        struct dirent *de;
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                struct stat st;
                if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        sum += (uint64_t)st.st_blocks * 512;
        }
        closedir(d);
        return sum;
}

static void info_from_record(const snap_record *rec, const char *dir, smolvm_snapshot_info *ret)
{
        *ret = (smolvm_snapshot_info){ 0 };
        snprintf(ret->id, sizeof(ret->id), "%s", rec->id);
        snprintf(ret->name, sizeof(ret->name), "%s", rec->name ? rec->name : "");
        snprintf(ret->vm_id, sizeof(ret->vm_id), "%s", rec->vm_id);
        snprintf(ret->image, sizeof(ret->image), "%s", rec->image ? rec->image : "default");
        snprintf(ret->dir, sizeof(ret->dir), "%s", dir);
        ret->created_unix = rec->created_unix;
        ret->vcpus = rec->vcpus;
        ret->mem_mib = rec->mem_mib;
        ret->internal = rec->internal;
        ret->pause_ms = rec->pause_ms;
        ret->ram_bytes = rec->ram_bytes;
        ret->disk_bytes = dir_bytes(dir);
        ret->depth = (unsigned)rec->n_layers + 1;
        ret->n_mounts = (unsigned)rec->n_mounts;
}

/* Each complete snapshot (staging and trash dirs skipped), records loaded. */
typedef int (*snap_visit)(void *userdata, const char *dir, const snap_record *rec);
static int for_each_snapshot(const char *home, snap_visit visit, void *userdata)
{
        char snaps[PATH_MAX];
        int r = snapshots_dir(home, snaps, sizeof(snaps));
        if (r < 0)
                return r;
        DIR *d = opendir(snaps);
        if (!d)
                return errno == ENOENT ? 0 : vm_error(negative_errno(), NULL, "open %s: %s", snaps, strerror(errno));
        struct dirent *de;
        r = 0;
        while (r == 0 && (de = readdir(d))) {
                if (!vm_id_valid(de->d_name))
                        continue;
                char dir[PATH_MAX];
                pathf(dir, sizeof(dir), "%s/%s", snaps, de->d_name);
                snap_record rec;
                if (snapshot_load_record(dir, &rec) < 0)
                        continue; /* listed by nobody; `snapshot rm ID` removes it */
                r = visit(userdata, dir, &rec);
                snap_record_done(&rec);
        }
        closedir(d);
        return r;
}

struct find_ctx {
        const char *key;
        char *dir;
        snap_record rec;
        int matches;
};

static int find_visit(void *userdata, const char *dir, const snap_record *rec)
{
        struct find_ctx *c = userdata;
        size_t n = strlen(c->key);
        bool exact = !strcmp(rec->id, c->key) || (rec->name && !strcmp(rec->name, c->key));
        bool prefix = n >= 4 && n < SMOLVM_ID_LEN && !strncmp(rec->id, c->key, n);
        if (!exact && !prefix)
                return 0;
        if (exact)
                c->matches = 0; /* an exact match wins over prefixes */
        if (c->matches++ > 0 && !exact)
                return 0;
        free(c->dir);
        snap_record_done(&c->rec);
        c->dir = strdup(dir);
        if (!c->dir)
                return vm_error(-ENOMEM, NULL, "out of memory");
        /* Re-load: the visitor's record is borrowed. */
        int r = snapshot_load_record(dir, &c->rec);
        return r < 0 ? r : exact ? 1 : 0;
}

int snapshot_find(const char *home, const char *id_or_name, char **ret_dir, snap_record *ret)
{
        struct find_ctx c = { .key = id_or_name };
        int r = for_each_snapshot(home, find_visit, &c);
        if (r < 0 || !c.dir || c.matches > 1) {
                free(c.dir);
                snap_record_done(&c.rec);
                if (r < 0)
                        return r;
                if (c.matches > 1)
                        return vm_error(SMOLVM_EINVAL, "give more of the id, or the name",
                                        "snapshot id prefix '%.64s' is ambiguous", id_or_name);
                return vm_error(SMOLVM_ENOTFOUND, "`smolvm snapshot ls` lists the snapshots", "no snapshot '%.64s'",
                                id_or_name);
        }
        *ret_dir = c.dir;
        *ret = c.rec;
        return 0;
}

int snapshot_link_layers(const char *snap_dir, const snap_record *rec, const char *vm_dir, char **ret_top)
{
        char from[PATH_MAX], to[PATH_MAX];
        for (size_t i = 0; i < rec->n_layers; i++) {
                pathf(from, sizeof(from), "%s/%s", snap_dir, rec->layers[i]);
                pathf(to, sizeof(to), "%s/%s", vm_dir, rec->layers[i]);
                if (link(from, to) < 0)
                        return vm_error(negative_errno(), NULL, "link %s to %s: %s", from, to, strerror(errno));
        }
        char top[64];
        snprintf(top, sizeof(top), "layer-%s.qcow2", rec->id);
        pathf(from, sizeof(from), "%s/" SNAPDIR_DISK, snap_dir);
        pathf(to, sizeof(to), "%s/%s", vm_dir, top);
        if (link(from, to) < 0)
                return vm_error(negative_errno(), NULL, "link %s to %s: %s", from, to, strerror(errno));
        *ret_top = strdup(top);
        return *ret_top ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
}

/* ---- create ---- */

/* from_dir/from_name copied sparse to a new to_dir/to_name; *ret_bytes (may be
 * NULL) gets the data bytes copied. */
static int copy_into(const char *from_dir, const char *from_name, const char *to_dir, const char *to_name,
                     uint64_t *ret_bytes)
{
        char from[PATH_MAX], to[PATH_MAX];
        pathf(from, sizeof(from), "%s/%s", from_dir, from_name);
        pathf(to, sizeof(to), "%s/%s", to_dir, to_name);
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return vm_error(negative_errno(), NULL, "open %s: %s", from, strerror(errno));
        _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0)
                return vm_error(negative_errno(), NULL, "create %s: %s", to, strerror(errno));
        unsigned long long bytes = 0;
        int r = copy_file_sparse(in, out, &bytes);
        if (r < 0)
                return vm_error(r, r == -ENOSPC ? "free some space in $SMOLVM_HOME" : NULL, "copy %s to %s: %s", from,
                                to, strerror(-r));
        if (ret_bytes)
                *ret_bytes = bytes;
        return 0;
}

/* Freeze the disk: a copy of the VM's overlay (holes kept; a reflink where the
 * file system shares extents), taken while the vCPUs are stopped, when QEMU
 * has flushed its caches to the file. The VM keeps its overlay.
 * Why not blockdev-snapshot-sync (the overlay becomes a read-only layer, the VM
 * goes on over a new one: no copy at all): with QEMU 7.2 the migration of the
 * device state that follows then fails ("bdrv_inactivate_all() failed"),
 * measured here. The copy is proportional to what the VM wrote to its disk.
 * flatten: the VM runs over n_layers layers and the snapshot would be deeper
 * than the limit: the copy then takes in what they hold (snapshot_chain.c). */
static int save_disk(const char *vm_dir, const char *staging, size_t n_layers, bool flatten)
{
        int r = copy_into(vm_dir, VMDIR_OVERLAY, staging, SNAPDIR_DISK, NULL);
        if (r < 0 || !flatten)
                return r;
        char disk[PATH_MAX];
        pathf(disk, sizeof(disk), "%s/" SNAPDIR_DISK, staging);
        return snapshot_flatten_disk(vm_dir, n_layers, disk);
}

/* Device state to staging/state: a migration to an fd with x-ignore-shared, so
 * QEMU writes no RAM (it is in the shared file). Waits for the end. */
static int save_state(qmp_conn *q, const char *staging)
{
        char path[PATH_MAX];
        pathf(path, sizeof(path), "%s/" SNAPDIR_STATE, staging);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "create %s: %s", path, strerror(errno));
        json_t *caps = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "x-ignore-shared", "state", 1);
        int r = caps ? qmp_call(q, "migrate-set-capabilities", caps, -1, NULL) : -ENOMEM;
        json_decref(caps);
        if (r < 0)
                return r;
        json_t *a = json_pack("{s:s}", "fdname", "smolvm-snapshot");
        r = a ? qmp_call(q, "getfd", a, fd, NULL) : -ENOMEM;
        json_decref(a);
        if (r < 0)
                return r;
        a = json_pack("{s:s}", "uri", "fd:smolvm-snapshot");
        r = a ? qmp_call(q, "migrate", a, -1, NULL) : -ENOMEM;
        json_decref(a);
        if (r < 0)
                return r;
        uint64_t deadline = now_ms() + MIGRATE_TIMEOUT_MS;
        for (unsigned delay_us = 1000;; delay_us = MIN(delay_us * 2, 50000u)) {
                json_t *st = NULL;
                r = qmp_call(q, "query-migrate", NULL, -1, &st);
                if (r < 0)
                        return r;
                json_t *sv = json_object_get(st, "status"), *ev = json_object_get(st, "error-desc");
                const char *status = json_is_string(sv) ? json_string_value(sv) : "";
                if (!strcmp(status, "completed")) {
                        json_decref(st);
                        return 0;
                }
                if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
                        char why[256];
                        snprintf(why, sizeof(why), "%s", json_is_string(ev) ? json_string_value(ev) : status);
                        json_decref(st);
                        bool full = strstr(why, "No space") != NULL;
                        return vm_error(full ? -ENOSPC : SMOLVM_EBACKEND,
                                        full ? "free some space in $SMOLVM_HOME" : NULL,
                                        "saving the device state to %s: %s", path, why);
                }
                json_decref(st);
                if (now_ms() >= deadline)
                        return vm_error(SMOLVM_ETIMEDOUT, NULL, "saving the device state: QEMU did not finish in %u s",
                                        MIGRATE_TIMEOUT_MS / 1000);
                usleep(delay_us);
        }
}

/* Freeze the RAM: the shared file, copied while the vCPUs are stopped. */
static int save_ram(const char *vm_dir, const char *staging, uint64_t *ret_bytes)
{
        return copy_into(vm_dir, VMDIR_RAM, staging, SNAPDIR_RAM, ret_bytes);
}

struct name_ctx {
        const char *name;
};

static int name_visit(void *userdata, const char *dir, const snap_record *rec)
{
        struct name_ctx *c = userdata;
        if (rec->name && !strcmp(rec->name, c->name))
                return vm_error(SMOLVM_EEXIST, "choose another --name, or remove it with `smolvm snapshot rm`",
                                "a snapshot named '%s' already exists", c->name);
        return 0;
}

int snapshot_name_check(const char *home, const char *name)
{
        struct name_ctx c = { .name = name };
        return for_each_snapshot(home, name_visit, &c);
}

int snapshot_names_lock(const char *home)
{
        char lock_path[PATH_MAX];
        pathf(lock_path, sizeof(lock_path), "%s/snapshots.lock", home);
        return vm_lock_path(lock_path, VM_LOCK_TIMEOUT_MS);
}

/* The lock-held part: pause, disk, state, RAM, record, rename, resume. */
static int create_locked(smolvm_vm *vm, const char *name, bool internal, const char *snaps, const char *staging,
                         const char *id, unsigned flags, smolvm_snapshot_info *ret)
{
        char path[PATH_MAX], hint[256];
        if (vm->rec.n_mounts && vm->rec.mount_transport != SMOLVM_MOUNT_VSOCK)
                return vm_error(SMOLVM_EINVAL,
                                "create the VM with `--mount-transport vsock` to snapshot it: its FUSE mounts are "
                                "carried by snapshots; virtio-fs (vhost-user) devices are not migratable in QEMU 7.2",
                                "VM %s has virtio-fs host directory mounts: it cannot be snapshotted", vm->id);
        smolvm_state st = vm_derive_state(vm->dir, NULL);
        if (st != SMOLVM_STATE_RUNNING && st != SMOLVM_STATE_PAUSED) {
                snprintf(hint, sizeof(hint), "start it with `smolvm start %s`", vm->rec.name ? vm->rec.name : vm->id);
                return vm_error(SMOLVM_ENOTRUNNING, hint, "VM %s is not running (%s): only a running or paused VM can "
                                "be snapshotted", vm->id, smolvm_state_name(st));
        }
        pathf(path, sizeof(path), "%s/" VMDIR_RAM, vm->dir);
        if (access(path, F_OK) < 0)
                return vm_error(SMOLVM_EINVAL, "stop and start it (a cold boot), or snapshot the VM it came from",
                                "VM %s runs on the copy-on-write RAM of the snapshot it was restored from: a "
                                "snapshot of it is not supported yet", vm->id);

        /* The layers the VM's overlay goes over (a VM made from a snapshot has
         * them): linked beside the copy under their names (the qcow2 files refer
         * to each other by relative name), or flattened into it past the limit. */
        unsigned max_depth;
        char **layers = NULL;
        size_t n_layers = 0;
        int r = snapshot_max_depth(&max_depth);
        if (r == 0)
                r = vm_layers(vm->dir, &layers, &n_layers);
        if (r < 0)
                return r;
        bool flatten = n_layers + 1 > max_depth;
        qmp_conn *q = NULL;
        r = qmp_open(vm->dir, &q);
        if (r < 0) {
                vm_layers_free(layers);
                return r;
        }
        bool was_paused = st == SMOLVM_STATE_PAUSED, stopped = false;
        uint64_t t0 = now_ms(), ram_bytes = 0;
        char paused[PATH_MAX];
        pathf(paused, sizeof(paused), "%s/" VMDIR_PAUSED, vm->dir);
        if (!was_paused) {
                /* The marker first, as smolvm_pause() does: a CLI killed mid-snapshot
                 * leaves a VM that says "paused" (and `smolvm resume` works). */
                r = vm_write_file_atomic(paused, "", 0);
                if (r == 0)
                        r = qmp_call(q, "stop", NULL, -1, NULL);
                stopped = r == 0;
                if (!stopped)
                        (void)unlink(paused);
        }
        if (r == 0)
                r = save_disk(vm->dir, staging, n_layers, flatten);
        if (r == 0)
                r = save_state(q, staging);
        if (r == 0)
                r = save_ram(vm->dir, staging, &ram_bytes);
        if (r == 0)
                r = vm_mounts_save_states(vm, staging);

        snap_record rec = {
                .name = (char *)name,
                .created_unix = (int64_t)time(NULL),
                .image = vm->rec.image,
                .image_dir = vm->rec.image_dir,
                .accel = vm->rec.accel,
                .kernel_cmdline = vm->rec.kernel_cmdline,
                .vcpus = vm->rec.vcpus,
                .mem_mib = vm->rec.mem_mib,
                .disk_mib = vm->rec.disk_mib,
                .internal = internal,
                .net = vm->rec.net != NULL,
                .lane = vm_lane_device(vm),
                .ram_bytes = ram_bytes,
                .mounts = vm->rec.mounts,
                .n_mounts = vm->rec.n_mounts,
        };
        memcpy(rec.id, id, SMOLVM_ID_LEN + 1);
        memcpy(rec.vm_id, vm->id, SMOLVM_ID_LEN + 1);
        char *lower[SNAPSHOT_MAX_LAYERS + 1] = { 0 };
        for (size_t i = 0; r == 0 && !flatten && i < n_layers; i++) {
                char from[PATH_MAX], to[PATH_MAX];
                pathf(from, sizeof(from), "%s/%s", vm->dir, layers[i]);
                pathf(to, sizeof(to), "%s/%s", staging, layers[i]);
                if (link(from, to) < 0)
                        r = vm_error(negative_errno(), NULL, "link %s to %s: %s", from, to, strerror(errno));
                else
                        lower[rec.n_layers++] = layers[i];
        }
        rec.layers = lower;
        rec.pause_ms = now_ms() - t0;
        if (r == 0) {
                char *text = snap_record_format(&rec);
                pathf(path, sizeof(path), "%s/" SNAPDIR_RECORD, staging);
                r = text ? vm_write_file_atomic(path, text, strlen(text)) : vm_error(-ENOMEM, NULL, "out of memory");
                free(text);
        }
        char final[PATH_MAX];
        pathf(final, sizeof(final), "%s/%s", snaps, id);
        if (r == 0 && rename(staging, final) < 0)
                r = vm_error(negative_errno(), NULL, "rename %s to %s: %s", staging, final, strerror(errno));
        rec.pause_ms = now_ms() - t0;
        if (r == 0 && ret)
                info_from_record(&rec, final, ret);
        vm_layers_free(layers);

        /* The VM carries on whatever happened (a failed migration leaves it
         * paused, a completed one in "postmigrate": cont resumes both). */
        if (stopped && !(flags & (SMOLVM_SNAPSHOT_STOP | SNAPSHOT_LEAVE_PAUSED))) {
                vm_error_saved e;
                vm_error_save(&e);
                int k = qmp_call(q, "cont", NULL, -1, NULL);
                if (k == 0)
                        (void)unlink(paused);
                vm_error_restore(&e);
                if (k < 0 && r == 0)
                        r = k;
        }
        qmp_close(q);
        if (ret && r == 0)
                ret->pause_ms = rec.pause_ms;
        return r;
}

/* A record without "lane" (an older smolvm's): the device state is searched
 * for the lane's MAC address (in virtio-net's state), not merely for a
 * virtio-net device (a QEMU wrapper may add one of its own: bench/net.sh's
 * slirp peer). Errors count as "no": the restore then goes without it and
 * QEMU says what is wrong with the state. */
#define STATE_SCAN_MAX (64u << 20)
bool snapshot_restores_lane(const char *dir, const snap_record *rec)
{
        if (rec->lane >= 0)
                return rec->lane;
        char path[PATH_MAX];
        pathf(path, sizeof(path), "%s/" SNAPDIR_STATE, dir);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        const uint8_t *needle = smolvm_lane_guest_mac;
        const size_t nlen = sizeof(smolvm_lane_guest_mac);
        char buf[64 * 1024];
        size_t keep = 0, total = 0;
        while (total < STATE_SCAN_MAX) {
                ssize_t n = read(fd, buf + keep, sizeof(buf) - keep);
                if (n <= 0)
                        return false;
                total += (size_t)n;
                size_t len = keep + (size_t)n;
                if (memmem(buf, len, needle, nlen))
                        return true;
                keep = MIN(len, nlen - 1);
                memmove(buf, buf + len - keep, keep);
        }
        return false;
}

int snapshot_take(smolvm_vm *vm, const char *name, bool internal, unsigned flags, smolvm_snapshot_info *ret)
{
        if (name && !vm_name_valid(name))
                return vm_error(SMOLVM_EINVAL, "1..63 of [A-Za-z0-9_.-], starting with a letter or digit",
                                "invalid snapshot name '%.64s'", name);
        char snaps[PATH_MAX];
        int r = snapshots_dir(vm->home, snaps, sizeof(snaps));
        if (r < 0)
                return r;
        r = mkdir_p(snaps, 0700);
        if (r < 0)
                return vm_error(r, NULL, "mkdir %s: %s", snaps, strerror(-r));
        (void)vm_trash_sweep(snaps, NULL);

        _cleanup_close_ int names_lock = -1;
        if (name) {
                names_lock = snapshot_names_lock(vm->home);
                if (names_lock < 0)
                        return names_lock;
                r = snapshot_name_check(vm->home, name);
                if (r < 0)
                        return r;
        }
        _cleanup_close_ int creating = vm_create_lock(snaps);
        if (creating < 0)
                return creating;
        char id[SMOLVM_ID_LEN + 1], staging[PATH_MAX];
        for (int attempt = 0;; attempt++) {
                r = random_id(id);
                if (r < 0)
                        return r;
                pathf(staging, sizeof(staging), "%s/" VM_NEW_PREFIX "%s", snaps, id);
                if (mkdir(staging, 0700) == 0)
                        break;
                if (errno != EEXIST || attempt >= 8)
                        return vm_error(negative_errno(), NULL, "mkdir %s: %s", staging, strerror(errno));
        }
        _cleanup_close_ int lock = vm_lock(vm);
        if (lock < 0) {
                (void)rm_rf(staging);
                return lock;
        }
        r = create_locked(vm, name, internal, snaps, staging, id, flags, ret);
        if (r < 0) {
                vm_error_saved e;
                vm_error_save(&e);
                (void)rm_rf(staging);
                vm_error_restore(&e);
                return r;
        }
        lock = safe_close(lock);
        if (flags & SMOLVM_SNAPSHOT_STOP)
                r = smolvm_stop(vm);
        return r;
}

SMOLVM_EXPORT int smolvm_snapshot_create(smolvm_vm *vm, const char *name, unsigned flags, smolvm_snapshot_info *ret)
{
        if (vm->ephemeral)
                return vm_error(SMOLVM_EINVAL, "create the VM with `smolvm create` to snapshot it",
                                "VM %s is ephemeral: its disk dies with it", vm->id);
        return snapshot_take(vm, name, false, flags, ret);
}

/* ---- list, info, rm ---- */

struct list_ctx {
        smolvm_snapshot_info *v;
        size_t n, cap;
};

static int list_visit(void *userdata, const char *dir, const snap_record *rec)
{
        struct list_ctx *c = userdata;
        if (c->n == c->cap) {
                size_t cap = c->cap ? 2 * c->cap : 8;
                smolvm_snapshot_info *v = realloc(c->v, cap * sizeof(*v));
                if (!v)
                        return vm_error(-ENOMEM, NULL, "out of memory");
                c->v = v;
                c->cap = cap;
        }
        info_from_record(rec, dir, &c->v[c->n++]);
        return 0;
}

static int by_created(const void *a, const void *b)
{
        const smolvm_snapshot_info *x = a, *y = b;
        return x->created_unix < y->created_unix ? -1 : x->created_unix > y->created_unix ? 1 : strcmp(x->id, y->id);
}

SMOLVM_EXPORT int smolvm_snapshot_list(smolvm_snapshot_info **ret, size_t *ret_n)
{
        _cleanup_free_ char *home = NULL;
        int r = smolvm_home_dir(&home);
        if (r < 0)
                return r;
        struct list_ctx c = { 0 };
        r = for_each_snapshot(home, list_visit, &c);
        if (r < 0) {
                free(c.v);
                return r;
        }
        if (c.n)
                qsort(c.v, c.n, sizeof(*c.v), by_created);
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

SMOLVM_EXPORT int smolvm_snapshot_info_get(const char *id_or_name, smolvm_snapshot_info *ret)
{
        _cleanup_free_ char *home = NULL, *dir = NULL;
        snap_record rec;
        int r = smolvm_home_dir(&home);
        if (r < 0)
                return r;
        r = snapshot_find(home, id_or_name, &dir, &rec);
        if (r < 0)
                return r;
        info_from_record(&rec, dir, ret);
        snap_record_done(&rec);
        return 0;
}

SMOLVM_EXPORT int smolvm_snapshot_rm(const char *id_or_name)
{
        _cleanup_free_ char *home = NULL, *dir = NULL;
        char snaps[PATH_MAX], id[SMOLVM_ID_LEN + 1];
        snap_record rec;
        int r = smolvm_home_dir(&home);
        if (r < 0)
                return r;
        r = snapshots_dir(home, snaps, sizeof(snaps));
        if (r < 0)
                return r;
        if (vm_id_valid(id_or_name)) {
                /* By full id also when the record is damaged. */
                char p[PATH_MAX];
                pathf(p, sizeof(p), "%s/%s", snaps, id_or_name);
                if (access(p, F_OK) < 0)
                        return vm_error(SMOLVM_ENOTFOUND, "`smolvm snapshot ls` lists the snapshots",
                                        "no snapshot '%s'", id_or_name);
                snprintf(id, sizeof(id), "%s", id_or_name);
        } else {
                r = snapshot_find(home, id_or_name, &dir, &rec);
                if (r < 0)
                        return r;
                memcpy(id, rec.id, sizeof(id));
                snap_record_done(&rec);
        }
        /* Hard links keep every layer its VMs use: nothing to ask them. */
        return vm_dir_remove(snaps, id);
}

/* ---- the guest after a restore ---- */

bool vm_start_restores(const smolvm_vm *vm)
{
        char p[PATH_MAX];
        pathf(p, sizeof(p), "%s/" VMDIR_OVERLAY, vm->dir);
        return vm->rec.from_snapshot && access(p, F_OK) < 0;
}

/* ---- fork ---- */

SMOLVM_EXPORT int smolvm_fork(smolvm_vm *vm, unsigned n, char (*ret_ids)[16])
{
        if (n == 0 || n > SMOLVM_FORK_MAX)
                return vm_error(SMOLVM_EINVAL, NULL, "fork: -n must be 1..%u", SMOLVM_FORK_MAX);
        if (vm->ephemeral)
                return vm_error(SMOLVM_EINVAL, "create the VM with `smolvm create` to fork it",
                                "VM %s is ephemeral", vm->id);
        smolvm_snapshot_info snap;
        int r = snapshot_take(vm, NULL, true, 0, &snap);
        if (r < 0)
                return r;
        smolvm_vm **kids = calloc(n, sizeof(*kids));
        if (!kids)
                r = vm_error(-ENOMEM, NULL, "out of memory");
        for (unsigned i = 0; r == 0 && i < n; i++) {
                smolvm_config cfg;
                smolvm_config_init(&cfg);
                cfg.from_snapshot = snap.id;
                r = smolvm_create(&cfg, &kids[i]);
                /* The child's guest goes on with the parent's egress set-up: it
                 * gets the parent's policy too (not its port forwards: their host
                 * ports are the parent's). */
                if (r == 0 && vm->rec.net)
                        r = vm_net_inherit(kids[i], vm->rec.net);
                if (r == 0)
                        r = smolvm_start(kids[i]);
        }
        vm_error_saved e;
        vm_error_save(&e);
        for (unsigned i = 0; kids && i < n; i++) {
                if (!kids[i])
                        continue;
                if (r < 0)
                        (void)smolvm_delete(kids[i], SMOLVM_DELETE_FORCE);
                else
                        snprintf(ret_ids[i], 16, "%s", smolvm_id(kids[i]));
                smolvm_free(kids[i]);
        }
        free(kids);
        /* Every child has started: each holds its layers (hard links) and maps
         * the RAM; the snapshot itself is no longer needed. */
        (void)smolvm_snapshot_rm(snap.id);
        vm_error_restore(&e);
        return r;
}
