/* SPDX-License-Identifier: Apache-2.0 */
/* Creating a VM (directory + record + supervisor config) and opening one by id
 * or name. Starting, stopping and the rest: lifecycle.c. */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

SMOLVM_EXPORT void smolvm_config_init(smolvm_config *cfg)
{
        *cfg = (smolvm_config){ .cancel_fd = -1 };
}

static int validate_config(const smolvm_config *cfg)
{
        if (cfg->vcpus > 64)
                return vm_error(-EINVAL, "use 1 to 64 vCPUs", "invalid vCPU count %u", cfg->vcpus);
        if (cfg->mem_mib != 0 && (cfg->mem_mib < 64 || cfg->mem_mib > 262144))
                return vm_error(-EINVAL, "use 64 to 262144 MiB", "invalid memory size %u MiB", cfg->mem_mib);
        if (cfg->accel && strcmp(cfg->accel, "auto") && strcmp(cfg->accel, "kvm") && strcmp(cfg->accel, "tcg"))
                return vm_error(-EINVAL, "use auto, kvm or tcg", "invalid accelerator '%s'", cfg->accel);
        if (cfg->kernel_cmdline && (strlen(cfg->kernel_cmdline) > 2048 || strpbrk(cfg->kernel_cmdline, "\n\r")))
                return vm_error(-EINVAL, NULL, "invalid kernel command line (one line, at most 2048 bytes)");
        if (cfg->boot_timeout_ms > 3600u * 1000u)
                return vm_error(-EINVAL, "use at most one hour", "invalid boot timeout %u ms",
                                cfg->boot_timeout_ms);
        if (cfg->name && !vm_name_valid(cfg->name))
                return vm_error(-EINVAL,
                                "use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit "
                                "(and not 12 hex digits, which look like an id)",
                                "invalid VM name '%s'", cfg->name);
        if (cfg->disk_mib > 64u * 1024 * 1024)
                return vm_error(-EINVAL, "use at most 64 TiB", "invalid disk size %u MiB", cfg->disk_mib);
        /* What the guest would refuse at the first boot (env_set), refused now. */
        return vm_env_check("environment", cfg->env);
}

/* DIR/config.json for the supervisor (docs/internals.md), derived from the record. */
int vm_write_supervisor_config(smolvm_vm *vm)
{
        const vm_record *rec = &vm->rec;
        char kernel[4096], initrd[4096], rootfs[4096], path[4096];
        snprintf(kernel, sizeof(kernel), "%s/" IMAGE_KERNEL, rec->image_dir);
        snprintf(initrd, sizeof(initrd), "%s/" IMAGE_INITRD, rec->image_dir);
        snprintf(rootfs, sizeof(rootfs), "%s/" IMAGE_ROOTFS, rec->image_dir);
        snprintf(path, sizeof(path), "%s/" VMDIR_CONFIG, vm->dir);

        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:b}",
                              "id", vm->id, "image", rec->image ? rec->image : "default",
                              "kernel", kernel, "initrd", initrd, "rootfs", rootfs,
                              "mem_mib", (json_int_t)rec->mem_mib,
                              "cpus", (json_int_t)rec->vcpus,
                              "accel", rec->accel ? rec->accel : "auto",
                              "boot_timeout_ms", (json_int_t)vm->boot_timeout_ms,
                              "disk_mib", (json_int_t)rec->disk_mib,
                              "ephemeral", rec->ephemeral);
        if (o && rec->machine_id[0] && json_object_set_new(o, "machine_id", json_string(rec->machine_id)) < 0) {
                json_decref(o);
                o = NULL;
        }
        if (o && rec->kernel_cmdline && *rec->kernel_cmdline &&
            json_object_set_new(o, "cmdline", json_string(rec->kernel_cmdline)) < 0) {
                json_decref(o);
                o = NULL;
        }
        if (o && rec->n_mounts &&
            (json_object_set_new(o, "mounts", vm_mounts_to_json(rec, true)) < 0 ||
             json_object_set_new(o, "mount_transport", json_string(vm_mount_transport_name(rec->mount_transport))) < 0)) {
                json_decref(o);
                o = NULL;
        }
        if (o && rec->from_snapshot) {
                char snap[4096], layer[64];
                if (rec->from_template)
                        snprintf(snap, sizeof(snap), "%s/templates/%s", vm->home, rec->from_template);
                else
                        snprintf(snap, sizeof(snap), "%s/snapshots/%s", vm->home, rec->from_snapshot);
                snprintf(layer, sizeof(layer), "layer-%s.qcow2", rec->from_snapshot);
                /* Its restore has the lane's device exactly when the snapshot's
                 * VM had it (the record says). No record (the snapshot is gone
                 * since the VM's first start): no restore either. */
                bool lane = vm->restore_lane;
                snap_record sr;
                vm_error_saved e;
                vm_error_save(&e);
                if (!vm->restore_lane_known && snapshot_load_record(snap, &sr) == 0) {
                        lane = snapshot_restores_lane(snap, &sr);
                        snap_record_done(&sr);
                }
                vm_error_restore(&e);
                /* A persistent VM started warm gets its own copy of the template's
                 * RAM (so that it can be snapshotted, as a cold one); a run's VM
                 * maps it privately (copy-on-write: nothing copied). */
                if (json_object_set_new(o, "snapshot_dir", json_string(snap)) < 0 ||
                    json_object_set_new(o, "disk_layer", json_string(layer)) < 0 ||
                    json_object_set_new(o, "lane", json_boolean(lane)) < 0 ||
                    (rec->from_template && !rec->ephemeral &&
                     json_object_set_new(o, "ram_copy", json_true()) < 0) ||
                    /* A template carries no mounts: vsock ones are mounted fresh. */
                    (rec->from_template && rec->n_mounts &&
                     json_object_set_new(o, "fresh_mounts", json_true()) < 0)) {
                        json_decref(o);
                        o = NULL;
                }
        }
        if (!o)
                return vm_error(-EINVAL, NULL,
                                "cannot encode " VMDIR_CONFIG " (paths, mount paths and kernel command line must be "
                                "UTF-8)");
        char *s = json_dumps(o, JSON_INDENT(2));
        json_decref(o);
        if (!s)
                return vm_error(-ENOMEM, NULL, "out of memory");
        size_t len = strlen(s);
        int r = vm_write_file(path, s, len, !rec->ephemeral);
        free(s);
        return r < 0 ? r : vm_net_write_policy(vm->dir, rec);
}

void vm_free_fields(smolvm_vm *vm)
{
        if (vm->spare_claimed)
                safe_close(vm->spare_fd);
        free(vm->home);
        free(vm->dir);
        free(vm->image_dir);
        vm_record_done(&vm->rec);
        pthread_mutex_destroy(&vm->lock);
        free(vm);
}

static int record_from_config(const smolvm_config *cfg, smolvm_vm *vm)
{
        vm_record *rec = &vm->rec;
        const char *append = cfg->kernel_cmdline ? cfg->kernel_cmdline : getenv("SMOLVM_KERNEL_APPEND");
        rec->created_unix = (int64_t)time(NULL);
        rec->vcpus = cfg->vcpus ? cfg->vcpus : SMOLVM_DEFAULT_VCPUS;
        rec->mem_mib = cfg->mem_mib ? cfg->mem_mib : SMOLVM_DEFAULT_MEM_MIB;
        rec->disk_mib = cfg->disk_mib;
        rec->boot_timeout_ms = cfg->boot_timeout_ms;
        rec->ephemeral = cfg->ephemeral;
        rec->name = cfg->name ? strdup(cfg->name) : NULL;
        rec->image = strdup(cfg->image ? cfg->image : "default");
        rec->image_dir = strdup(vm->image_dir);
        rec->accel = strdup(cfg->accel ? cfg->accel : "auto");
        rec->kernel_cmdline = append && *append ? strdup(append) : NULL;
        /* The host owns the machine-id: given to the guest on every boot and restore. */
        int k = random_hex(rec->machine_id, 16);
        if (k < 0)
                return k;
        if ((cfg->name && !rec->name) || !rec->image || !rec->image_dir || !rec->accel ||
            (append && *append && !rec->kernel_cmdline))
                return vm_error(-ENOMEM, NULL, "out of memory");
        size_t n = 0;
        while (cfg->env && cfg->env[n])
                n++;
        if (n) {
                rec->env = calloc(n + 1, sizeof(char *));
                if (!rec->env)
                        return vm_error(-ENOMEM, NULL, "out of memory");
                for (size_t i = 0; i < n; i++)
                        if (!(rec->env[i] = strdup(cfg->env[i])))
                                return vm_error(-ENOMEM, NULL, "out of memory");
        }
        return 0;
}

/* Is name taken by another VM? Called with vms/.lock held. */
static int name_taken(const char *vms, const char *name)
{
        smolvm_vm_info *v = NULL;
        size_t n = 0;
        int r = vm_list_dir(vms, &v, &n);
        if (r < 0)
                return r;
        bool taken = false;
        for (size_t i = 0; i < n && !taken; i++)
                taken = !strcmp(v[i].name, name);
        free(v);
        if (taken)
                return vm_error(SMOLVM_EEXIST, "choose another --name, or remove the VM with `smolvm rm`",
                                "a VM named '%s' already exists", name);
        return 0;
}

SMOLVM_EXPORT int smolvm_create(const smolvm_config *cfg, smolvm_vm **ret_vm)
{
        return vm_create_in(NULL, cfg, ret_vm);
}

int vm_create_in(const char *home, const smolvm_config *cfg, smolvm_vm **ret_vm)
{
        smolvm_config defaults;
        if (!cfg) {
                smolvm_config_init(&defaults);
                cfg = &defaults;
        }
        int r = validate_config(cfg);
        if (r < 0)
                return r;

        smolvm_vm *vm = calloc(1, sizeof(*vm));
        if (!vm)
                return vm_error(-ENOMEM, NULL, "out of memory");
        pthread_mutex_init(&vm->lock, NULL);
        vm->state = VM_CREATED;
        vm->ephemeral = cfg->ephemeral;
        vm->cancel_fd = cfg->cancel_fd;
        vm->boot_timeout_ms = cfg->boot_timeout_ms ? cfg->boot_timeout_ms : SMOLVM_DEFAULT_BOOT_TIMEOUT_MS;
        _cleanup_close_ int names_lock = -1, creating = -1;
        _cleanup_free_ char *staging = NULL, *snap_dir = NULL;
        snap_record snap = { 0 };
        bool have_snap = false;

        /* Before the image: a bad --mount is the user's to fix first. */
        r = vm_mounts_from_config(cfg, &vm->rec);
        if (r == 0)
                r = vm_net_from_config(cfg, &vm->rec);
        if (r == 0)
                r = vm_ports_check_config(cfg);
        if (r < 0)
                goto fail;
        if (home && !(vm->home = strdup(home)))
                r = vm_error(-ENOMEM, NULL, "out of memory");
        else if (!home)
                r = smolvm_home_dir(&vm->home);
        if (r < 0)
                goto fail;
        if (cfg->from_snapshot) {
                if (cfg->n_mounts || cfg->image || cfg->vcpus || cfg->mem_mib || cfg->disk_mib || cfg->kernel_cmdline) {
                        r = vm_error(SMOLVM_EINVAL, "leave them out: they come from the snapshot",
                                     "--from-snapshot takes the image, vCPUs, memory, disk size, kernel command "
                                     "line and mounts of the snapshot");
                        goto fail;
                }
                r = snapshot_find(vm->home, cfg->from_snapshot, &snap_dir, &snap);
                if (r < 0)
                        goto fail;
                have_snap = true;
                if (vm->rec.net && !snap.net) {
                        r = vm_error(SMOLVM_EINVAL,
                                     "give the VM its network (--allow-host or --net open) before taking the snapshot, "
                                     "or leave these options out",
                                     "snapshot %s was taken of a VM without a network: its guest never set up egress "
                                     "(that happens at boot), so --allow-host/--net open cannot work in a VM restored "
                                     "from it", snap.id);
                        goto fail;
                }
        }
        r = resolve_image(vm->home, have_snap ? snap.image_dir : cfg->image, &vm->image_dir, NULL);
        if (r < 0 && have_snap) {
                vm_error_saved e;
                vm_error_save(&e);
                r = vm_error(SMOLVM_EIMAGE, "the snapshot cannot be restored without it: remove it with `smolvm snapshot rm`",
                             "snapshot %s was taken of a VM on image '%s' (%s), which is gone: %s", snap.id,
                             snap.image ? snap.image : "default", snap.image_dir, e.message);
                goto fail;
        }
        if (r < 0) {
                /* Keep the message and hint; the code says "image error" (an
                 * invalid name stays an invalid argument). */
                if (r != -EINVAL)
                        r = vm_error_set_code(SMOLVM_EIMAGE);
                goto fail;
        }
        r = record_from_config(cfg, vm);
        if (r < 0)
                goto fail;
        if (have_snap) {
                vm_record *rec = &vm->rec;
                free(rec->image);
                free(rec->accel);
                free(rec->kernel_cmdline);
                rec->image = strdup(snap.image ? snap.image : "default");
                rec->accel = strdup(snap.accel ? snap.accel : "auto");
                rec->kernel_cmdline = snap.kernel_cmdline ? strdup(snap.kernel_cmdline) : NULL;
                rec->from_snapshot = strdup(snap.id);
                rec->vcpus = snap.vcpus;
                rec->mem_mib = snap.mem_mib;
                rec->disk_mib = snap.disk_mib;
                /* Its mounts continue (vsock: the guest kernel holds them). */
                vm_mounts_free(rec->mounts, rec->n_mounts);
                rec->mounts = snap.mounts;
                rec->n_mounts = snap.n_mounts;
                rec->mount_transport = snap.n_mounts ? SMOLVM_MOUNT_VSOCK : rec->mount_transport;
                snap.mounts = NULL;
                snap.n_mounts = 0;
                if (!rec->image || !rec->accel || (snap.kernel_cmdline && !rec->kernel_cmdline) || !rec->from_snapshot) {
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto fail;
                }
        }

        char vms[4096];
        snprintf(vms, sizeof(vms), "%s/vms", vm->home);
        r = mkdir_p(vms, 0700);
        if (r < 0) {
                vm_error(r, r == -ENOSPC ? "free some space there, or point SMOLVM_HOME elsewhere" : NULL,
                         "mkdir %s: %s", vms, strerror(-r));
                goto fail;
        }
        /* Removals a kill interrupted: finished by whoever comes next. */
        (void)vm_trash_sweep(vms, NULL);
        if (cfg->name) {
                /* Check-then-create must be atomic across processes: two creates with one
                 * name race otherwise. Only named creates take this lock. */
                char lock_path[4096 + 16];
                snprintf(lock_path, sizeof(lock_path), "%s/vms.lock", vm->home);
                names_lock = vm_lock_path(lock_path, VM_LOCK_TIMEOUT_MS);
                if (names_lock < 0) {
                        r = names_lock;
                        goto fail;
                }
                r = name_taken(vms, cfg->name);
                if (r < 0)
                        goto fail;
        }
        /* The dir is built under a staging name and renamed into place once its
         * record is written: a create killed half-way leaves no VM without a
         * vm.json (invisible to ls, unremovable by rm), only a staging dir the
         * next sweep removes. The create lock is held shared meanwhile so no sweep
         * takes a staging dir that is still being built. A
         * collision of 48 random bits is unlikely; EEXIST makes it harmless. */
        creating = vm_create_lock(vms);
        if (creating < 0) {
                r = creating;
                goto fail;
        }
        for (int attempt = 0;; attempt++) {
                r = random_id(vm->id);
                if (r < 0)
                        goto fail;
                free(staging);
                if (asprintf(&staging, "%s/" VM_NEW_PREFIX "%s", vms, vm->id) < 0) {
                        staging = NULL;
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto fail;
                }
                if (mkdir(staging, 0700) == 0)
                        break;
                r = negative_errno();
                if (r != -EEXIST || attempt >= 8) {
                        vm_error(r, r == -ENOSPC ? "free some space there, or point SMOLVM_HOME elsewhere" : NULL,
                                 "mkdir %s: %s", staging, strerror(-r));
                        goto fail;
                }
        }
        free(vm->dir);
        vm->dir = strdup(staging);
        if (!vm->dir) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                (void)rm_rf(staging);
                goto fail;
        }
        memcpy(vm->rec.id, vm->id, sizeof(vm->id));
        r = 0;
        if (have_snap) {
                /* The VM's own hard links of the snapshot's disk layers: removing
                 * the snapshot later never takes its disk away. */
                _cleanup_free_ char *top = NULL;
                r = snapshot_link_layers(snap_dir, &snap, staging, &top);
        } else if (!cfg->cold) {
                r = vm_template_attach(vm, staging);
                r = r > 0 ? 0 : r;
        }
        if (r == 0)
                r = vm_write_supervisor_config(vm);
        if (r == 0)
                r = vm_ports_write_config(vm->dir, cfg);
        if (r == 0)
                r = vm_record_save(vm->dir, &vm->rec);
        free(vm->dir);
        vm->dir = NULL;
        if (r == 0 && asprintf(&vm->dir, "%s/%s", vms, vm->id) < 0) {
                vm->dir = NULL;
                r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        /* rename() refuses to replace a non-empty dir: an id taken meanwhile fails here. */
        if (r == 0 && rename(staging, vm->dir) < 0)
                r = vm_error(negative_errno(), NULL, "rename %s to %s: %s", staging, vm->dir, strerror(errno));
        if (r < 0) {
                (void)rm_rf(staging);
                goto fail;
        }
        if (have_snap)
                snap_record_done(&snap);
        *ret_vm = vm;
        return 0;
fail:
        if (have_snap)
                snap_record_done(&snap);
        vm_free_fields(vm);
        return r;
}

/* A handle on an existing VM dir (home/vms/id). */
static int open_dir(const char *home, const char *id, smolvm_vm **ret_vm)
{
        smolvm_vm *vm = calloc(1, sizeof(*vm));
        if (!vm)
                return vm_error(-ENOMEM, NULL, "out of memory");
        pthread_mutex_init(&vm->lock, NULL);
        vm->cancel_fd = -1;
        vm->state = VM_CREATED;
        int r = -ENOMEM;
        if (!(vm->home = strdup(home)) || asprintf(&vm->dir, "%s/vms/%s", home, id) < 0) {
                vm->dir = NULL;
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto fail;
        }
        r = vm_record_load(vm->dir, &vm->rec);
        if (r < 0)
                goto fail;
        memcpy(vm->id, vm->rec.id, sizeof(vm->id));
        if (!(vm->image_dir = strdup(vm->rec.image_dir))) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto fail;
        }
        vm->ephemeral = vm->rec.ephemeral;
        vm->boot_timeout_ms = vm->rec.boot_timeout_ms ? vm->rec.boot_timeout_ms : SMOLVM_DEFAULT_BOOT_TIMEOUT_MS;
        *ret_vm = vm;
        return 0;
fail:
        vm_free_fields(vm);
        return r;
}

static bool is_hex(const char *s)
{
        return *s && strspn(s, "0123456789abcdef") == strlen(s);
}

SMOLVM_EXPORT int smolvm_open(const char *id_or_name, smolvm_vm **ret_vm)
{
        if (!id_or_name || !*id_or_name || strlen(id_or_name) > 255 || strchr(id_or_name, '/') ||
            id_or_name[0] == '.')
                return vm_error(SMOLVM_EINVAL, "give a VM id or name (`smolvm ls` lists them)",
                                "invalid VM id or name '%s'", id_or_name ? id_or_name : "");
        _cleanup_free_ char *home = NULL;
        int r = smolvm_home_dir(&home);
        if (r < 0)
                return r;
        if (vm_id_valid(id_or_name)) {
                r = open_dir(home, id_or_name, ret_vm);
                if (r != SMOLVM_ENOTFOUND)
                        return r;
        }
        char vms[4096];
        snprintf(vms, sizeof(vms), "%s/vms", home);
        smolvm_vm_info *v = NULL;
        size_t n = 0;
        r = vm_list_dir(vms, &v, &n);
        if (r < 0)
                return r;
        const char *match = NULL;
        size_t n_prefix = 0;
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i].name, id_or_name)) {
                        match = v[i].id;
                        break;
                }
        if (!match && is_hex(id_or_name) && strlen(id_or_name) >= 4)
                for (size_t i = 0; i < n; i++)
                        if (!strncmp(v[i].id, id_or_name, strlen(id_or_name)) && n_prefix++ == 0)
                                match = v[i].id;
        if (n_prefix > 1)
                r = vm_error(SMOLVM_EINVAL, "give more characters of the id, or the name",
                             "VM id prefix '%s' is ambiguous (%zu VMs)", id_or_name, n_prefix);
        else if (!match)
                r = vm_error(SMOLVM_ENOTFOUND, "`smolvm ls` lists the VMs", "no such VM: '%s'", id_or_name);
        else
                r = open_dir(home, match, ret_vm);
        free(v);
        return r;
}
