/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM backend: turn a VM description into a running VMM process and stop it.
 * Narrow on purpose (start / pid / poll / stop, plus disk preparation) so a
 * Firecracker or Cloud Hypervisor backend can implement the same calls; they
 * speak hybrid vsock natively, QEMU gets there through the virtio-serial channel. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "accel.h"

/* A vhost-user-fs device: the back-end listens on socket_path (fsd.h). */
typedef struct sup_vm_fs {
        const char *socket_path;
        const char *tag;           /* what the guest mounts: mount -t virtiofs TAG DIR */
} sup_vm_fs;

typedef struct sup_vm_spec {
        const char *kernel;
        const char *initrd;
        const char *disk;          /* the per-VM copy-on-write disk (qcow2 overlay) */
        bool disk_cache_unsafe;    /* ignore guest flushes (the disk dies with the VM) */
        const char *cmdline_extra; /* appended to the kernel command line; may be NULL */
        uint32_t mem_mib;
        uint32_t cpus;
        smolvm_accel accel;
        const char *chan_path;  /* Unix socket the VMM connects to: the guest channel port */
        const char *chan_name;  /* virtio-serial port name, e.g. "org.smolvm.chan0" */
        const char *qmp_path;   /* QMP monitor socket (libsmolvm's pause/resume), or NULL */
        int console_fd;         /* connected socket the guest serial console is written to */
        int log_fd;             /* receives the VMM's stdout and stderr */
        const sup_vm_fs *fs;    /* n_fs virtio-fs devices (vhost-user back-ends map the
                                 * guest RAM file: it is always shared when n_fs > 0) */
        size_t n_fs;
        /* Guest RAM lives in this file (memory-backend-file): shared (MAP_SHARED,
         * the VM's own RAM, which a snapshot freezes by copying it) or, for a VM
         * restored from a snapshot, the snapshot's frozen RAM mapped privately
         * (copy-on-write: the file is never written). */
        const char *ram_path;
        bool ram_private;
        /* Restore: an fd open on the device state file to load (-incoming), or
         * -1 for a boot. */
        int incoming_fd;
        /* The lane (common/lane.h): a virtio-net device on `-netdev stream`
         * whose QEMU listens on this Unix socket (the supervisor connects), or
         * NULL for none. A restore must have it exactly when its snapshot did. */
        const char *lane_path;
} sup_vm_spec;

typedef struct sup_vmm sup_vmm;

/* Name of the VMM binary, for messages. */
const char *sup_vmm_binary(void);

/* Start the VMM: own process group, dies with us (PR_SET_PDEATHSIG), stdin from
 * /dev/null. Returns 0, -ENOENT when the VMM binary is not installed, or another
 * negative errno (exec failures are reported, not discovered later). */
/* Start timing the host TSC rate (TCG needs it on the kernel command line):
 * call early, so the VM's preparation covers the measuring interval instead of
 * a sleep in sup_vmm_start(). Optional. */
void sup_vmm_tsc_begin(void);
int sup_vmm_start(const sup_vm_spec *spec, sup_vmm **ret);

pid_t sup_vmm_pid(const sup_vmm *vmm);

/* Reap without blocking. Returns 1 when the VMM has exited (*ret_wstatus is its
 * wait status), 0 while it runs, negative errno on error. */
int sup_vmm_poll(sup_vmm *vmm, int *ret_wstatus);

/* Kill the VMM's process group (SIGKILL) and reap it. Idempotent. Returns the
 * wait status of the VMM, or -1 if it was already reaped. */
int sup_vmm_stop(sup_vmm *vmm);

/* Connect to a Unix socket the VMM listens on (path), checking that the VMM
 * is the peer (SO_PEERCRED). Returns a blocking O_CLOEXEC fd or a negative
 * errno (-EPERM: someone else listens there). */
int sup_vmm_connect(const sup_vmm *vmm, const char *path);
/* A restore with the lane: the connection to spec->lane_path made before the
 * state was loaded (ownership passes to the caller), or -1. */
int sup_vmm_take_lane_fd(sup_vmm *vmm);

/* Stops the VMM if still running. Accepts NULL. */
void sup_vmm_free(sup_vmm *vmm);
