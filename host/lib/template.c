/* SPDX-License-Identifier: Apache-2.0 */
/* Warm start: boot templates (docs/internals.md, "Boot templates").
 *
 * A template is a snapshot (snapshot.c's layout: snapshot.json, ram, state,
 * disk.qcow2) of a VM booted cold to agent-ready that ran one command (so the
 * first command of a VM restored from it finds the shell, coreutils and libc
 * in the guest's page cache, not on its disk), kept at
 * $SMOLVM_HOME/templates/<key>/ with template.json: the identity (size, mtime,
 * inode) of each of its files and the SHA-256 of the device state, checked
 * before every use. The key is the SHA-256 of everything that changes the guest
 * at boot: the image's kernel, initramfs (our init) and rootfs (path and file
 * identity), the QEMU binary and our supervisor (which set the device model),
 * vCPUs, memory, accelerator, kernel command line and whether the VM has a
 * network (the guest sets up egress at boot). Anything else differs per VM and
 * is applied after the restore (env, ports, policy; the identity in the
 * channel handshake, host/supervisor/boot.c) or is refused here: such a VM
 * boots cold and says why.
 *
 * A VM created warm links the template's disk as its layer (as --from-snapshot
 * does) and its first start restores it. Building: under templates/<key>.lock
 * (flock: one builder; the others wait for it, then use its template), in a
 * private home templates/.b-<key prefix>/ so the template's own VM shows in no
 * listing: an ephemeral VM booted cold, snapshotted while paused, destroyed; the
 * snapshot dir renamed to templates/<key>. A build that fails leaves nothing,
 * and the VM boots cold. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"
#include "wire.h"

/* 2: warmed before its snapshot (warm_up()); a template of format 1 has a
 * different key, so it is rebuilt and swept as superseded. */
#define TEMPLATE_FORMAT "smolvm-template 2"
#define TEMPLATE_INFO "template.json"
#define TEMPLATE_INFO_MAX 4096
#define TEMPLATE_STATE_MAX (64 * 1024 * 1024)
/* A waiter gives up on another process's build after this, and boots cold. */
#define TEMPLATE_WAIT_MS (180u * 1000u)

static const char *const template_files[] = { SNAPDIR_RAM, SNAPDIR_STATE, SNAPDIR_DISK };

static void note(smolvm_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(smolvm_vm *vm, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(vm->start_note, sizeof(vm->start_note), fmt, ap);
        va_end(ap);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void sha_printf(struct sha256_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sha_printf(struct sha256_ctx *c, const char *fmt, ...)
{
        char buf[PATH_MAX + 256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n > 0)
                sha256_update(c, (size_t)MIN(n, (int)sizeof(buf) - 1), (const uint8_t *)buf);
}

/* name's identity into the key: a changed file (a rebuilt initramfs, a new
 * QEMU) is a new key. Missing: -errno. */
static int sha_file(struct sha256_ctx *c, const char *what, const char *path)
{
        struct stat st;
        if (stat(path, &st) < 0)
                return negative_errno();
        sha_printf(c, "%s %s %llu %llu %lld %lld.%09ld\n", what, path, (unsigned long long)st.st_dev,
                   (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                   st.st_mtim.tv_nsec);
        return 0;
}

/* The QEMU the supervisor runs ($SMOLVM_QEMU or qemu-system-x86_64 on PATH). */
static int qemu_path(char *buf, size_t size)
{
        const char *e = getenv("SMOLVM_QEMU");
        const char *name = e && *e ? e : "qemu-system-x86_64";
        if (strchr(name, '/')) {
                snprintf(buf, size, "%s", name);
                return 0;
        }
        const char *path = getenv("PATH");
        for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
                size_t n = strcspn(p, ":");
                snprintf(buf, size, "%.*s/%s", (int)n, p, name);
                if (n && access(buf, X_OK) == 0)
                        return 0;
                p += n + (p[n] == ':');
        }
        return -ENOENT;
}

static bool net_wanted(const vm_record *rec)
{
        return rec->net != NULL;
}

static int template_key(const vm_record *rec, char key[VM_TEMPLATE_KEY_LEN + 1])
{
        struct sha256_ctx c;
        char path[PATH_MAX];
        sha256_init(&c);
        sha_printf(&c, "%s\n", TEMPLATE_FORMAT);
        static const char *const image_files[] = { IMAGE_KERNEL, IMAGE_INITRD, IMAGE_ROOTFS };
        for (size_t i = 0; i < ARRAY_SIZE(image_files); i++) {
                pathf(path, sizeof(path), "%s/%s", rec->image_dir, image_files[i]);
                int r = sha_file(&c, image_files[i], path);
                if (r < 0)
                        return r;
        }
        int r = qemu_path(path, sizeof(path));
        if (r == 0)
                r = sha_file(&c, "qemu", path);
        if (r < 0)
                return r;
        pathf(path, sizeof(path), "%s/smolvm-supervisor", smolvm_libexec_dir());
        r = sha_file(&c, "supervisor", path);
        if (r < 0)
                return r;
        sha_printf(&c, "vcpus %u\nmem %u\naccel %s\nnet %d\ncmdline %s\n", rec->vcpus, rec->mem_mib,
                   rec->accel ? rec->accel : "auto", net_wanted(rec), rec->kernel_cmdline ? rec->kernel_cmdline : "");
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_digest(&c, sizeof(d), d);
        hex(d, sizeof(d), key);
        return 0;
}

/* false when the image's image.json says its init cannot take a restored VM's
 * identity (made by an older smolvm: no "init_features", or without the bit).
 * An image without image.json (brought by hand) is tried: a failed restore
 * then says why and boots cold (vm_template_drop). Asked only before a build:
 * a template that exists was built (and restored) with this very initramfs,
 * which is in its key, so a warm create never parses image.json. */
static bool init_restorable(const char *image_dir)
{
        char p[PATH_MAX];
        pathf(p, sizeof(p), "%s/" IMAGE_JSON, image_dir);
        json_t *o = json_load_file(p, JSON_REJECT_DUPLICATES, NULL);
        if (!o)
                return true;
        json_t *f = json_object_get(json_object_get(o, "initramfs"), "init_features");
        bool ok = json_is_integer(f) && (json_integer_value(f) & SMOLVM_HELLO_F_IDENTITY);
        json_decref(o);
        return ok;
}

/* Why rec cannot start from a template, or NULL. */
static const char *cannot_serve(const vm_record *rec)
{
        /* vsock mounts are mounted after the restore as after a boot (the
         * supervisor's "fresh_mounts"); a virtio-fs device cannot be added. */
        if (rec->n_mounts && rec->mount_transport != SMOLVM_MOUNT_VSOCK)
                return "virtio-fs mounts need their devices at boot (QEMU 7.2 cannot add one to a restored VM): "
                       "--mount-transport vsock starts warm";
        if (rec->disk_mib) {
                char p[PATH_MAX];
                struct stat st;
                pathf(p, sizeof(p), "%s/" IMAGE_ROOTFS, rec->image_dir);
                if (stat(p, &st) == 0 && (uint64_t)rec->disk_mib * 1024 * 1024 > (uint64_t)st.st_size)
                        return "--disk grows the root file system at boot";
        }
        /* A restore keeps the devices its snapshot had, and a template has the
         * lane's. A template of its own would be swept as superseded by the
         * next warm VM of the same shape (and sweep that one's in turn): a
         * test and benchmark switch is not worth keeping two. */
        if (getenv("SMOLVM_NO_LANE"))
                return "SMOLVM_NO_LANE is set (boot templates have the lane's device)";
        return NULL;
}

/* ---- template.json: the files as they were written ---- */

static int state_sha(const char *path, char out[2 * SHA256_DIGEST_SIZE + 1])
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* QEMU's device state without RAM: ~150 KB; a bigger one is not ours. */
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size <= 0 || st.st_size > TEMPLATE_STATE_MAX)
                return -EFBIG;
        _cleanup_free_ uint8_t *buf = malloc((size_t)st.st_size);
        if (!buf)
                return -ENOMEM;
        int r = read_all(fd, buf, (size_t)st.st_size);
        if (r < 0)
                return r;
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, (size_t)st.st_size, buf);
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_digest(&c, sizeof(d), d);
        hex(d, sizeof(d), out);
        return 0;
}

static json_t *file_ident(const char *dir, const char *name)
{
        char p[PATH_MAX];
        struct stat st;
        pathf(p, sizeof(p), "%s/%s", dir, name);
        if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode))
                return NULL;
        return json_pack("{s:I, s:I, s:I, s:I}", "size", (json_int_t)st.st_size, "ino", (json_int_t)st.st_ino,
                         "mtime_s", (json_int_t)st.st_mtim.tv_sec, "mtime_ns", (json_int_t)st.st_mtim.tv_nsec);
}

/* The "net" of dir's template.json: -1 if unreadable. */
static int info_net(const char *dir)
{
        char p[PATH_MAX];
        pathf(p, sizeof(p), "%s/" TEMPLATE_INFO, dir);
        json_t *o = json_load_file(p, 0, NULL);
        json_t *v = json_object_get(o, "net");
        int r = json_is_boolean(v) ? json_is_true(v) : -1;
        json_decref(o);
        return r;
}

static int write_info(const char *dir, const char *key, bool net)
{
        char p[PATH_MAX], sha[2 * SHA256_DIGEST_SIZE + 1];
        pathf(p, sizeof(p), "%s/" SNAPDIR_STATE, dir);
        int r = state_sha(p, sha);
        if (r < 0)
                return vm_error(r, NULL, "read %s: %s", p, strerror(-r));
        json_t *files = json_object();
        for (size_t i = 0; files && i < ARRAY_SIZE(template_files); i++) {
                json_t *f = file_ident(dir, template_files[i]);
                if (!f || json_object_set_new(files, template_files[i], f) < 0) {
                        json_decref(files);
                        files = NULL;
                }
        }
        json_t *o = files ? json_pack("{s:s, s:s, s:o, s:s, s:b}", "format", TEMPLATE_FORMAT, "key", key, "files",
                                      files, "state_sha256", sha, "net", net)
                          : NULL;
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
                return vm_error(-ENOMEM, NULL, "template %s: cannot describe its files", dir);
        pathf(p, sizeof(p), "%s/" TEMPLATE_INFO, dir);
        r = vm_write_file_atomic(p, text, strlen(text));
        free(text);
        return r;
}

/* The template in dir is whole and unchanged since it was written, and made for
 * rec. Returns 0 and *ret (its record), or -EBADMSG with why set. */
static int check_template(const char *dir, const char *key, const vm_record *rec, snap_record *ret, char *why,
                          size_t why_len)
{
        char p[PATH_MAX];
        pathf(p, sizeof(p), "%s/" TEMPLATE_INFO, dir);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        char text[TEMPLATE_INFO_MAX + 1];
        ssize_t n = fd >= 0 ? read(fd, text, TEMPLATE_INFO_MAX + 1) : -1;
        json_t *o = n > 0 && n <= TEMPLATE_INFO_MAX ? json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, NULL) : NULL;
        json_t *files = json_object_get(o, "files"), *kv = json_object_get(o, "key");
        json_t *sv = json_object_get(o, "state_sha256");
        int r = -EBADMSG;
        if (!json_is_object(files) || !json_is_string(kv) || strcmp(json_string_value(kv), key) ||
            !json_is_string(sv)) {
                snprintf(why, why_len, "%.400s is missing or damaged", p);
                goto out;
        }
        for (size_t i = 0; i < ARRAY_SIZE(template_files); i++) {
                json_t *want = json_object_get(files, template_files[i]);
                json_t *have = file_ident(dir, template_files[i]);
                bool same = want && have && json_equal(want, have);
                json_decref(have);
                if (!same) {
                        snprintf(why, why_len, "%.400s/%s changed or is missing since the template was built", dir,
                                 template_files[i]);
                        goto out;
                }
        }
        char sha[2 * SHA256_DIGEST_SIZE + 1];
        pathf(p, sizeof(p), "%s/" SNAPDIR_STATE, dir);
        if (state_sha(p, sha) < 0 || strcmp(sha, json_string_value(sv))) {
                snprintf(why, why_len, "%.400s does not match its checksum", p);
                goto out;
        }
        vm_error_saved e;
        vm_error_save(&e);
        r = snapshot_load_record(dir, ret);
        vm_error_restore(&e);
        if (r < 0) {
                snprintf(why, why_len, "%.400s/" SNAPDIR_RECORD " is missing or damaged", dir);
                r = -EBADMSG;
                goto out;
        }
        if (ret->vcpus != rec->vcpus || ret->mem_mib != rec->mem_mib || ret->n_layers ||
            strcmp(ret->image_dir, rec->image_dir)) {
                snprintf(why, why_len, "template %.400s was made for another VM shape", dir);
                snap_record_done(ret);
                r = -EBADMSG;
                goto out;
        }
        r = 0;
out:
        json_decref(o);
        return r;
}

/* ---- build ---- */

/* Move dir out of the way and remove it (VMs made from it hold hard links of
 * its disk and map its RAM: they keep running). */
static void discard(const char *tdir, const char *key)
{
        char from[PATH_MAX], to[PATH_MAX], id[SMOLVM_ID_LEN + 1];
        /* Its spares would never be claimed again (their tag names it): they
         * go now rather than when their idle time ends. */
        pathf(from, sizeof(from), "%s/../vms", tdir);
        vm_spare_sweep(from, key);
        pathf(from, sizeof(from), "%s/%s", tdir, key);
        if (random_id(id) < 0)
                return;
        pathf(to, sizeof(to), "%s/.old-%s", tdir, id);
        if (rename(from, to) == 0)
                (void)rm_rf(to);
}

/* Templates superseded by key's: made for the same image dir and shape (so
 * their image files, QEMU or supervisor changed since), or for an image dir
 * that is gone. Each under its own lock, skipped when busy. */
static void sweep_superseded(const char *tdir, const char *key, const vm_record *rec)
{
        DIR *d = opendir(tdir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!vm_template_key_valid(de->d_name) || !strcmp(de->d_name, key))
                        continue;
                char dir[PATH_MAX], lock_path[PATH_MAX];
                pathf(dir, sizeof(dir), "%s/%s", tdir, de->d_name);
                pathf(lock_path, sizeof(lock_path), "%s/%s.lock", tdir, de->d_name);
                snap_record snap;
                _cleanup_close_ int lock = vm_lock_path(lock_path, 0);
                if (lock < 0 || snapshot_load_record(dir, &snap) < 0)
                        continue;
                bool same = snap.image_dir && !strcmp(snap.image_dir, rec->image_dir) && snap.vcpus == rec->vcpus &&
                            snap.mem_mib == rec->mem_mib && !strcmp(snap.accel ? snap.accel : "auto",
                                                                    rec->accel ? rec->accel : "auto") &&
                            !strcmp(snap.kernel_cmdline ? snap.kernel_cmdline : "",
                                    rec->kernel_cmdline ? rec->kernel_cmdline : "") &&
                            info_net(dir) == net_wanted(rec);
                bool gone = !snap.image_dir || access(snap.image_dir, F_OK) < 0;
                snap_record_done(&snap);
                if (same || gone)
                        discard(tdir, de->d_name); /* the lock file stays: a waiter may hold it open */
        }
        closedir(d);
}

/* Before the snapshot: one command through the normal exec path, so what
 * every first command needs is in the guest's page cache at the template's
 * instant (the shell, a PATH search, coreutils, ld.so and libc; each restored
 * VM would otherwise read them through virtio-blk, ~3 MB, before its first
 * output). A failed warm-up only costs that time later: ignored, unless the
 * user cancelled. */
static int warm_up(smolvm_vm *vm, int cancel_fd)
{
        static const char *const argv[] = { "sh", "-c", "env true", NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.timeout_ms = 30000;
        o.cancel_fd = cancel_fd;
        smolvm_result res;
        int r = smolvm_run(vm, &o, &res);
        if (r == 0)
                smolvm_result_free(&res);
        return r == -ECANCELED ? r : 0;
}

static int build(smolvm_vm *user, const char *tdir, const char *key)
{
        char bhome[PATH_MAX], final[PATH_MAX];
        /* Short: the VM's sockets live under it (sun_path holds 108 bytes). */
        pathf(bhome, sizeof(bhome), "%s/.b-%.12s", tdir, key);
        pathf(final, sizeof(final), "%s/%s", tdir, key);
        (void)rm_rf(bhome); /* a killed builder's */
        int r = mkdir_p(bhome, 0700);
        if (r < 0)
                return vm_error(r, NULL, "mkdir %s: %s", bhome, strerror(-r));
        const vm_record *rec = &user->rec;
        smolvm_net no_names = { 0 };
        smolvm_config c;
        smolvm_config_init(&c);
        c.image = rec->image_dir;
        c.vcpus = rec->vcpus;
        c.mem_mib = rec->mem_mib;
        c.accel = rec->accel;
        c.kernel_cmdline = rec->kernel_cmdline ? rec->kernel_cmdline : "";
        c.boot_timeout_ms = user->boot_timeout_ms;
        c.cancel_fd = user->cancel_fd;
        c.ephemeral = true;
        c.cold = true;
        c.net = net_wanted(rec) ? &no_names : NULL; /* the guest's half is the same; the policy is per VM */
        smolvm_vm *vm = NULL;
        smolvm_snapshot_info info;
        r = vm_create_in(bhome, &c, &vm);
        if (r == 0)
                r = smolvm_start(vm);
        if (r == 0)
                r = warm_up(vm, user->cancel_fd);
        if (r == 0)
                r = snapshot_take(vm, NULL, true, SNAPSHOT_LEAVE_PAUSED, &info);
        if (vm) {
                vm_error_saved e;
                vm_error_save(&e);
                (void)smolvm_destroy(vm);
                smolvm_free(vm);
                vm_error_restore(&e);
        }
        if (r == 0)
                r = write_info(info.dir, key, net_wanted(rec));
        if (r == 0) {
                discard(tdir, key);
                if (rename(info.dir, final) < 0)
                        r = vm_error(negative_errno(), NULL, "rename %s to %s: %s", info.dir, final, strerror(errno));
        }
        (void)rm_rf(bhome);
        if (r == 0)
                sweep_superseded(tdir, key, rec);
        return r;
}

/* ---- attach: the VM being created in staging ---- */

int vm_template_attach(smolvm_vm *vm, const char *staging)
{
        vm_record *rec = &vm->rec;
        const char *env = getenv("SMOLVM_COLD");
        if (env && *env && strcmp(env, "0"))
                return 0; /* asked for: nothing to say */
        const char *no = cannot_serve(rec);
        if (no) {
                note(vm, "cold start: %s", no);
                return 0;
        }
        char key[VM_TEMPLATE_KEY_LEN + 1], tdir[PATH_MAX], dir[PATH_MAX], lock_path[PATH_MAX], why[512];
        int r = template_key(rec, key);
        if (r < 0) {
                note(vm, "cold start: the template key could not be computed (%s)", strerror(-r));
                return 0;
        }
        pathf(tdir, sizeof(tdir), "%s/templates", vm->home);
        pathf(dir, sizeof(dir), "%s/%s", tdir, key);
        pathf(lock_path, sizeof(lock_path), "%s/%s.lock", tdir, key);
        r = mkdir_p(tdir, 0700);
        if (r < 0) {
                note(vm, "cold start: mkdir %s: %s", tdir, strerror(-r));
                return 0;
        }

        vm_error_saved e;
        vm_error_save(&e);
        /* Exclusive for the check and the links too: a rebuild never swaps the
         * template between them. The check is cheap (stat, a 150 KB hash). */
        _cleanup_close_ int lock = vm_lock_path(lock_path, TEMPLATE_WAIT_MS);
        if (lock < 0) {
                vm_error_restore(&e);
                note(vm, "cold start: another process has been building the boot template for over %u s",
                     TEMPLATE_WAIT_MS / 1000);
                return 0;
        }
        snap_record snap = { 0 };
        bool built = false;
        r = check_template(dir, key, rec, &snap, why, sizeof(why));
        if (r < 0 && !init_restorable(rec->image_dir)) {
                vm_error_restore(&e);
                note(vm, "cold start: the image was built for an older smolvm-init, which cannot take a restored "
                         "VM's identity: `smolvm image build` rebuilds it with this smolvm's init");
                return 0;
        }
        if (r < 0) {
                bool existed = access(dir, F_OK) == 0;
                r = build(vm, tdir, key);
                if (r == -ECANCELED)
                        return r; /* the user's Ctrl-C: the create stops */
                if (r < 0) {
                        vm_error_saved b;
                        vm_error_save(&b);
                        vm_error_restore(&e);
                        note(vm, "cold start: building the boot template failed: %s", b.message);
                        return 0;
                }
                if (existed)
                        note(vm, "the boot template was rebuilt: %s", why);
                built = true;
                r = check_template(dir, key, rec, &snap, why, sizeof(why));
                if (r < 0) {
                        vm_error_restore(&e);
                        note(vm, "cold start: the new boot template does not check: %s", why);
                        return 0;
                }
        }
        _cleanup_free_ char *top = NULL;
        r = snapshot_link_layers(dir, &snap, staging, &top);
        if (r == 0) {
                rec->from_snapshot = strdup(snap.id);
                rec->from_template = strdup(key);
                if (!rec->from_snapshot || !rec->from_template)
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                /* For the supervisor's config: the record is not read twice. */
                vm->restore_lane = snapshot_restores_lane(dir, &snap);
                vm->restore_lane_known = true;
        }
        snap_record_done(&snap);
        if (r < 0) {
                vm_error_saved b;
                vm_error_save(&b);
                vm_error_restore(&e);
                free(rec->from_snapshot);
                free(rec->from_template);
                rec->from_snapshot = rec->from_template = NULL;
                note(vm, "cold start: %s", b.message);
                return 0;
        }
        vm_error_restore(&e);
        if (!built)
                vm->start_note[0] = '\0';
        return 1;
}

/* ---- start ---- */

int vm_template_go_cold(smolvm_vm *vm, const char *why)
{
        vm_record *rec = &vm->rec;
        char p[PATH_MAX];
        if (rec->from_snapshot) {
                pathf(p, sizeof(p), "%s/" VMDIR_LAYER_PREFIX "%s" VMDIR_LAYER_SUFFIX, vm->dir, rec->from_snapshot);
                (void)unlink(p);
        }
        pathf(p, sizeof(p), "%s/" VMDIR_OVERLAY, vm->dir);
        (void)unlink(p);
        free(rec->from_snapshot);
        free(rec->from_template);
        rec->from_snapshot = rec->from_template = NULL;
        note(vm, "cold start: %s", why);
        int r = vm_record_save(vm->dir, rec);
        return r < 0 ? r : vm_write_supervisor_config(vm);
}

int vm_template_precheck(smolvm_vm *vm)
{
        if (!vm->rec.from_template || !vm_start_restores(vm))
                return 0;
        char dir[PATH_MAX], why[512];
        snap_record snap;
        pathf(dir, sizeof(dir), "%s/templates/%s", vm->home, vm->rec.from_template);
        int r = check_template(dir, vm->rec.from_template, &vm->rec, &snap, why, sizeof(why));
        if (r == 0) {
                if (strcmp(snap.id, vm->rec.from_snapshot)) {
                        snprintf(why, sizeof(why), "the boot template was rebuilt after the VM was created");
                        r = -EBADMSG;
                }
                snap_record_done(&snap);
        }
        return r < 0 ? vm_template_go_cold(vm, why) : 0;
}

void vm_template_drop(smolvm_vm *vm)
{
        if (!vm->rec.from_template)
                return;
        char tdir[PATH_MAX], dir[PATH_MAX], lock_path[PATH_MAX];
        pathf(tdir, sizeof(tdir), "%s/templates", vm->home);
        pathf(dir, sizeof(dir), "%s/%s", tdir, vm->rec.from_template);
        pathf(lock_path, sizeof(lock_path), "%s/%s.lock", tdir, vm->rec.from_template);
        vm_error_saved e;
        vm_error_save(&e);
        _cleanup_close_ int lock = vm_lock_path(lock_path, 10000);
        snap_record snap;
        /* Only the template this VM used: a rebuilt one is another's to judge. */
        if (lock >= 0 && snapshot_load_record(dir, &snap) == 0) {
                if (!strcmp(snap.id, vm->rec.from_snapshot))
                        discard(tdir, vm->rec.from_template);
                snap_record_done(&snap);
        }
        vm_error_restore(&e);
}
