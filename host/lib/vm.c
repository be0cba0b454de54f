/* SPDX-License-Identifier: Apache-2.0 */
/* VM lifecycle: create (directory + config.json), start (supervisor), destroy. */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "smolvm_i.h"
#include "util.h"

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
        return 0;
}

static int write_config(smolvm_vm *vm, const smolvm_config *cfg)
{
        char kernel[4096], initrd[4096], rootfs[4096], path[4096];
        snprintf(kernel, sizeof(kernel), "%s/vmlinux", vm->image_dir);
        snprintf(initrd, sizeof(initrd), "%s/initramfs.img", vm->image_dir);
        snprintf(rootfs, sizeof(rootfs), "%s/rootfs.ext4", vm->image_dir);
        snprintf(path, sizeof(path), "%s/config.json", vm->dir);

        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:b}",
                              "id", vm->id, "image", cfg->image ? cfg->image : "default",
                              "kernel", kernel, "initrd", initrd, "rootfs", rootfs,
                              "mem_mib", (json_int_t)(cfg->mem_mib ? cfg->mem_mib : SMOLVM_DEFAULT_MEM_MIB),
                              "cpus", (json_int_t)(cfg->vcpus ? cfg->vcpus : SMOLVM_DEFAULT_VCPUS),
                              "accel", cfg->accel ? cfg->accel : "auto",
                              "boot_timeout_ms", (json_int_t)vm->boot_timeout_ms,
                              "disk_mib", (json_int_t)0,
                              "ephemeral", cfg->ephemeral);
        const char *append = cfg->kernel_cmdline ? cfg->kernel_cmdline : getenv("SMOLVM_KERNEL_APPEND");
        if (o && append && *append && json_object_set_new(o, "cmdline", json_string(append)) < 0) {
                json_decref(o);
                o = NULL;
        }
        if (!o)
                return vm_error(-EINVAL, NULL,
                                "cannot encode config.json (paths and kernel command line must be UTF-8)");
        char *s = json_dumps(o, JSON_INDENT(2));
        json_decref(o);
        if (!s)
                return vm_error(-ENOMEM, NULL, "out of memory");
        size_t len = strlen(s);
        int r = write_file_atomic(path, s, len);
        free(s);
        return r;
}

static void vm_free_fields(smolvm_vm *vm)
{
        free(vm->home);
        free(vm->dir);
        free(vm->image_dir);
        pthread_mutex_destroy(&vm->lock);
        free(vm);
}

SMOLVM_EXPORT int smolvm_create(const smolvm_config *cfg, smolvm_vm **ret_vm)
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

        r = smolvm_home_dir(&vm->home);
        if (r < 0)
                goto fail;
        r = resolve_image(vm->home, cfg->image, &vm->image_dir);
        if (r < 0)
                goto fail;

        char vms[4096];
        snprintf(vms, sizeof(vms), "%s/vms", vm->home);
        r = mkdir_parents(vms, 0700);
        if (r < 0) {
                vm_error(r, r == -ENOSPC ? "free some space there, or point SMOLVM_HOME elsewhere" : NULL,
                         "mkdir %s: %s", vms, strerror(-r));
                goto fail;
        }
        /* A collision of 48 random bits is unlikely; mkdir's EEXIST makes it harmless. */
        for (int attempt = 0;; attempt++) {
                r = random_id(vm->id);
                if (r < 0)
                        goto fail;
                free(vm->dir);
                if (asprintf(&vm->dir, "%s/%s", vms, vm->id) < 0) {
                        vm->dir = NULL;
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto fail;
                }
                if (mkdir(vm->dir, 0700) == 0)
                        break;
                r = negative_errno();
                if (r != -EEXIST || attempt >= 8) {
                        vm_error(r, r == -ENOSPC ? "free some space there, or point SMOLVM_HOME elsewhere" : NULL,
                                 "mkdir %s: %s", vm->dir, strerror(-r));
                        free(vm->dir);
                        vm->dir = NULL;
                        goto fail;
                }
        }
        r = write_config(vm, cfg);
        if (r < 0) {
                (void)rm_rf(vm->dir);
                goto fail;
        }
        *ret_vm = vm;
        return 0;
fail:
        vm_free_fields(vm);
        return r;
}

SMOLVM_EXPORT int smolvm_start(smolvm_vm *vm)
{
        pthread_mutex_lock(&vm->lock);
        if (vm->state != VM_CREATED) {
                pthread_mutex_unlock(&vm->lock);
                return vm_error(-EALREADY, NULL, "VM %s was already started", vm->id);
        }
        uint64_t t0 = now_ms();
        int ready_fd = -1;
        int r = supervisor_spawn(vm, &ready_fd);
        if (r < 0) {
                vm->state = VM_DEAD;
                (void)rm_rf(vm->dir);
                pthread_mutex_unlock(&vm->lock);
                return r;
        }
        vm->state = VM_RUNNING;
        r = supervisor_wait_ready(vm, ready_fd);
        safe_close(ready_fd);
        if (r < 0) {
                /* Keep the recorded error; stopping does not touch it. */
                supervisor_stop(vm);
                (void)rm_rf(vm->dir);
                vm->state = VM_DEAD;
                pthread_mutex_unlock(&vm->lock);
                return r;
        }
        vm->boot.host_boot_ms = now_ms() - t0;
        vm->have_boot_info = true;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

SMOLVM_EXPORT int smolvm_destroy(smolvm_vm *vm)
{
        if (!vm)
                return 0;
        pthread_mutex_lock(&vm->lock);
        supervisor_stop(vm);
        vm->state = VM_DEAD;
        int r = rm_rf(vm->dir);
        pthread_mutex_unlock(&vm->lock);
        if (r < 0)
                return vm_error(r, NULL, "remove %s: %s", vm->dir, strerror(-r));
        return 0;
}

SMOLVM_EXPORT void smolvm_free(smolvm_vm *vm)
{
        if (!vm)
                return;
        /* Only ephemeral VMs are ours to tear down; a persistent one outlives this handle
         * once it is running. One that never started is just a directory. */
        if (vm->ephemeral || vm->state != VM_RUNNING)
                (void)smolvm_destroy(vm);
        vm_free_fields(vm);
}

SMOLVM_EXPORT const char *smolvm_id(const smolvm_vm *vm)
{
        return vm->id;
}

SMOLVM_EXPORT const char *smolvm_dir(const smolvm_vm *vm)
{
        return vm->dir;
}

SMOLVM_EXPORT int smolvm_boot_info_get(const smolvm_vm *vm, smolvm_boot_info *ret)
{
        smolvm_vm *w = (smolvm_vm *)vm;
        pthread_mutex_lock(&w->lock);
        bool have = w->have_boot_info && w->state == VM_RUNNING;
        if (have)
                *ret = w->boot;
        pthread_mutex_unlock(&w->lock);
        return have ? 0 : vm_error(-ESRCH, NULL, "VM %s is not running", vm->id);
}
