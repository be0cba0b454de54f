/* SPDX-License-Identifier: Apache-2.0 */
/* DIR/config.json, written by libsmolvm before it starts the supervisor
 * (docs/internals.md, "Supervisor"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "mounts": host directories served to the guest, over virtio-fs or, with
 * "mount_transport": "vsock", FUSE over an agent stream. */
#define SUP_MAX_MOUNTS 16u
#define SUP_MOUNT_TAG_MAX 36u /* virtio-fs config space: tag[36] */
typedef struct sup_mount_cfg {
        char *tag;        /* [a-z0-9-], at most SUP_MOUNT_TAG_MAX bytes */
        char *host;       /* absolute */
        char *guest;      /* absolute, no whitespace, '"' or ':' (kernel command line) */
        bool writable;
} sup_mount_cfg;

typedef struct sup_config {
        char *kernel;        /* absolute paths */
        char *initrd;
        char *rootfs;        /* raw base image, never written */
        char *cmdline_extra; /* optional "cmdline": appended to the kernel command line */
        char *accel;         /* "auto" | "kvm" | "tcg"; NULL = auto */
        uint32_t mem_mib;    /* default 512 */
        uint32_t cpus;       /* default 1 */
        uint64_t boot_timeout_ms; /* 0 = the accelerator's default */
        uint64_t disk_mib;        /* 0 = the base image's size */
        sup_mount_cfg mounts[SUP_MAX_MOUNTS];
        size_t n_mounts;
        bool mounts_vsock;        /* "mount_transport": "vsock" (FUSE over the agent stream) */
        char *snapshot_dir;       /* optional "snapshot_dir": the VM was made from this
                                   * snapshot (absolute); its first start restores it */
        char *disk_layer;         /* with it, "disk_layer": the file in the VM dir (a hard
                                   * link of the snapshot's disk) its overlay goes over */
        bool ram_copy;            /* "ram_copy": true: the restore copies the snapshot's RAM
                                   * into the VM dir and maps it shared (a VM that can be
                                   * snapshotted), instead of mapping it private */
        bool snapshot_lane;       /* "lane": true: the snapshot's VM had the lane's device
                                   * (libsmolvm reads it from the snapshot record), so
                                   * its restore has it; false or absent: it had not */
        bool fresh_mounts;        /* "fresh_mounts": true: the snapshot (a boot template)
                                   * carries none of the mounts: they are mounted after
                                   * the restore as after a boot, not reattached */
        char *machine_id;         /* optional "machine_id": 32 lowercase hex digits, the
                                   * VM's own (libsmolvm keeps it in vm.json), given to
                                   * the guest on every boot and restore */
} sup_config;

/* Parse and validate path. Returns 0, or -EINVAL/-ENOMEM with err set to a
 * message naming the file and the key. */
int sup_config_load(const char *path, sup_config *ret, char *err, size_t err_len);
/* Accepts a zeroed config. */
void sup_config_done(sup_config *c);
