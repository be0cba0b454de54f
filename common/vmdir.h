/* SPDX-License-Identifier: Apache-2.0 */
/* The names of the files in a VM directory, $SMOLVM_HOME/vms/<id>/
 * (docs/internals.md, "Paths"). libsmolvm and smolvm-supervisor both use these:
 * one spelling, so that neither side can look for a file the other never
 * writes. Who writes each one is noted; both sides read some of them. */
#pragma once

/* libsmolvm's: the VM's record (atomic, never changed after create), its
 * lock (flock) and the config it hands the supervisor before each start. */
#define VMDIR_RECORD "vm.json"
#define VMDIR_LOCK "lock"
#define VMDIR_CONFIG "config.json"

/* The supervisor's, for one run of the VM. */
#define VMDIR_PID "supervisor.pid"
#define VMDIR_PID_TMP ".supervisor.pid.tmp" /* renamed to VMDIR_PID */
#define VMDIR_VSOCK "vsock.sock"            /* hybrid vsock: clients connect here */
#define VMDIR_CHAN "chan.sock"              /* QEMU's virtio-serial chardev (internal) */
#define VMDIR_QMP "qmp.sock"                /* QEMU's QMP monitor (libsmolvm's pause/resume) */
#define VMDIR_LANE "lane.sock"              /* QEMU's `-netdev stream` of the lane (internal) */
#define VMDIR_OVERLAY "overlay.qcow2"       /* the VM's disk, over the image's rootfs */
#define VMDIR_RAM "ram"                     /* guest RAM (memory-backend-file, shared) */
#define VMDIR_CONSOLE_LOG "console.log"     /* the guest's serial console, size-capped */
#define VMDIR_SUPERVISOR_LOG "supervisor.log"
#define VMDIR_QEMU_LOG "qemu.log"
/* Per mount N (0-based, printf formats taking a size_t): the vhost-user socket
 * of a virtio-fs back-end, and the back-end's stdout+stderr. */
#define VMDIR_FS_SOCK_FMT "fs-%zu.sock"
#define VMDIR_FSD_LOG_FMT "virtiofsd-%zu.log"
/* A FUSE-over-vsock mount's file server state, saved for a snapshot (the
 * supervisor writes it on FSSTATE; libsmolvm moves it into the snapshot). */
#define VMDIR_FS_STATE_FMT "fs-%zu.state"

/* Run state, written by libsmolvm (lifecycle.c) and, for "failed", also by
 * the supervisor. */
#define VMDIR_SPARE "spare"            /* marker: a parked spare, claimable ("KEY:SNAPSHOT-ID") */
#define VMDIR_SPARE_TMP ".spare.tmp"   /* renamed to VMDIR_SPARE */
#define VMDIR_SPARE_PENDING "spare.pending" /* a spare on its way, not parked yet (its tag) */
#define VMDIR_CLAIM "claim.sock"       /* a spare's supervisor listens: the claim (docs/internals.md) */
#define VMDIR_PAUSED "paused"           /* marker: QEMU is stopped (pause) */
#define VMDIR_BOOT "boot.json"          /* the ready line's numbers and QEMU's pid */
#define VMDIR_FAILED "failed"           /* the last run ended badly; line 1 says why */
#define VMDIR_ENV_APPLIED "env.applied" /* the create-time env was set in the guest */
#define VMDIR_NET_POLICY "net.json" /* egress policy: libsmolvm writes it, the supervisor re-reads it when it changes */
#define VMDIR_NET_LOG "net.log"     /* egress attempts, JSON lines, size-capped (net.log.1 holds the previous part) */
#define VMDIR_NET_LOG_OLD "net.log.1"
/* libsmolvm's: the port forwards (smolvm_port_expose), changed under the
 * flock of VMDIR_PORTS_LOCK; the supervisor gets them by control lines. */
#define VMDIR_PORTS "ports.json"
#define VMDIR_PORTS_LOCK "ports.lock"
/* A VM made from a snapshot: hard links of the snapshot's disk layers,
 * VMDIR_LAYER_PREFIX <12 hex digits> VMDIR_LAYER_SUFFIX (host/lib/snapshot.c). */
#define VMDIR_LAYER_PREFIX "layer-"
#define VMDIR_LAYER_SUFFIX ".qcow2"
#define VMDIR_LAYER_ID_LEN 12 /* = SMOLVM_ID_LEN */

/* A snapshot's directory, $SMOLVM_HOME/snapshots/<id>/ (docs/internals.md,
 * "Snapshots"): written by libsmolvm (snapshot.c), read by the supervisor of a
 * VM restored from it. Never changed once the snapshot exists. */
#define SNAPDIR_RECORD "snapshot.json"
#define SNAPDIR_RAM "ram"          /* the guest RAM at the instant (sparse) */
#define SNAPDIR_STATE "state"      /* QEMU's device state (migration stream, no RAM) */
#define SNAPDIR_DISK "disk.qcow2"  /* the disk at the instant: a read-only qcow2 layer */
/* Per vsock mount N (0-based, the record's mounts order): its file server's
 * state at the instant (fs/fs_state.c; hostile on reload). An export must
 * carry these too: one per mount of the snapshot's VM record. */
#define SNAPDIR_FS_STATE_FMT "fs-%zu.state"
#define SNAPDIR_FS_STATE_MAX_BYTES (64ull << 20) /* = fs_server.h's SMOLVM_FS_STATE_MAX */
