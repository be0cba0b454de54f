/* SPDX-License-Identifier: Apache-2.0 */
/* A snapshot's disk chain and its bound (docs/internals.md, "Snapshots").
 *
 * A snapshot's disk is the VM's overlay at the instant over the layers the VM
 * runs on; a VM made from it and snapshotted again adds one. Past the depth
 * limit the new snapshot's disk is written flattened instead: one layer with
 * everything above the image's rootfs, so its depth is 1 again. The VM keeps
 * its own overlay and layers; older snapshots and the VMs made from them keep
 * theirs (hard links), nothing of theirs is touched. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "qemu_img.h"
#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

#define SNAPSHOT_MAX_DEPTH_DEFAULT 16u

int snapshot_max_depth(unsigned *ret)
{
        const char *env = getenv("SMOLVM_SNAPSHOT_MAX_DEPTH");
        if (!env || !*env) {
                *ret = SNAPSHOT_MAX_DEPTH_DEFAULT;
                return 0;
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(env, &end, 10);
        if (errno || *end || end == env || v < 1 || v > SNAPSHOT_MAX_LAYERS)
                return vm_error(SMOLVM_EINVAL, "unset it for the default (16)",
                                "SMOLVM_SNAPSHOT_MAX_DEPTH='%.32s' must be a number from 1 to %u", env,
                                SNAPSHOT_MAX_LAYERS);
        *ret = (unsigned)v;
        return 0;
}

void vm_layers_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

int vm_layers(const char *vm_dir, char ***ret, size_t *ret_n)
{
        DIR *d = opendir(vm_dir);
        if (!d)
                return vm_error(negative_errno(), NULL, "open %s: %s", vm_dir, strerror(errno));
        char **v = calloc(VM_MAX_LAYERS + 1, sizeof(char *));
        size_t n = 0;
        int r = v ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (!snap_layer_name_valid(de->d_name))
                        continue;
                if (n == VM_MAX_LAYERS)
                        r = vm_error(-E2BIG, "stop the VM and create a new one from its last snapshot",
                                     "the disk of the VM in %s has more than %u layers", vm_dir, VM_MAX_LAYERS);
                else if (!(v[n++] = strdup(de->d_name)))
                        r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        closedir(d);
        if (r < 0) {
                vm_layers_free(v);
                return r;
        }
        qsort(v, n, sizeof(char *), qsort_strcmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Down the VM's chain from the layer its overlay (at top_path) goes over:
 * ret_layer gets that layer's name, ret_base the absolute name the bottom layer
 * refers to (the image's rootfs, spelled as the chain spells it: so qemu-img
 * finds it in the chain and reads only the layers above it). Each step must be
 * one of the VM's layer files, at most max_steps of them. */
static int chain_ends(const char *vm_dir, const char *top_path, size_t max_steps, char *ret_layer,
                      size_t layer_size, char *ret_base, size_t base_size)
{
        char cur[PATH_MAX], backing[1024];
        snprintf(cur, sizeof(cur), "%s", top_path);
        ret_layer[0] = '\0';
        for (size_t step = 0;; step++) {
                _cleanup_close_ int fd = open(cur, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                int r = fd < 0 ? negative_errno() : qcow2_backing_name(fd, backing, sizeof(backing));
                if (r < 0)
                        return vm_error(r, NULL, "reading the backing file of %s: %s", cur, strerror(-r));
                if (r == 0)
                        return vm_error(-EBADMSG, NULL, "%s has no backing file: not a layer of a VM's disk", cur);
                if (backing[0] == '/') {
                        if (step == 0)
                                return vm_error(-EBADMSG, NULL, "%s goes over no layer: nothing to flatten", cur);
                        if (strlen(backing) >= base_size)
                                return vm_error(-ENAMETOOLONG, NULL, "%s: backing file name too long", cur);
                        memcpy(ret_base, backing, strlen(backing) + 1);
                        return 0;
                }
                if (!snap_layer_name_valid(backing) || step >= max_steps)
                        return vm_error(-EBADMSG, NULL, "%s refers to '%.64s': not one of the VM's %zu layers", cur,
                                        backing, max_steps);
                if (step == 0 && strlen(backing) < layer_size) /* a layer name is short */
                        memcpy(ret_layer, backing, strlen(backing) + 1);
                pathf(cur, sizeof(cur), "%s/%s", vm_dir, backing);
        }
}

int snapshot_flatten_disk(const char *vm_dir, size_t n_layers, const char *disk_path)
{
        char layer[64], base[1024], top[PATH_MAX], err[512];
        int r = chain_ends(vm_dir, disk_path, n_layers, layer, sizeof(layer), base, sizeof(base));
        if (r < 0)
                return r;
        /* The copy refers to the VM's top layer by a relative name, which in the
         * staging dir names nothing: first the same file by its absolute name in
         * the VM's dir (no data touched), then the rebase that copies into it
         * what the layers hold, down to the rootfs. */
        pathf(top, sizeof(top), "%s/%s", vm_dir, layer);
        r = qemu_img_rebase(disk_path, top, "qcow2", false, err, sizeof(err));
        if (r == 0)
                r = qemu_img_rebase(disk_path, base, "raw", true, err, sizeof(err));
        if (r < 0)
                return vm_error(r, r == -ENOSPC ? "free some space in $SMOLVM_HOME" : NULL,
                                "flattening the disk's %zu layers into %s (qemu-img rebase): %s", n_layers, disk_path,
                                err[0] ? err : strerror(-r));
        return 0;
}
