/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm internals shared by the library's files. */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/types.h>

#include "fileutil.h"
#include "store.h"
#include "util.h"
#include "smolvm/smolvm.h"

#define SMOLVM_ID_LEN 12 /* hex characters */
#define SMOLVM_NAME_MAX 63
/* How long lifecycle operations wait for another process holding the VM's lock
 * (it may be booting a VM under TCG). */
#define VM_LOCK_TIMEOUT_MS 180000u

/* Time the supervisor gets beyond the boot timeout to write its ready line. */
#define SUPERVISOR_READY_MARGIN_MS 15000u
/* Time the supervisor gets to clean up after SIGTERM before we SIGKILL its group. */
#define SUPERVISOR_STOP_TIMEOUT_MS 10000u
/* Host safety net beyond the guest's exec timeout. */
#define EXEC_HOST_MARGIN_MS 15000u
/* Hybrid vsock handshake deadline. */
#define CONNECT_TIMEOUT_MS 10000u

typedef enum vm_state {
        VM_CREATED,
        VM_RUNNING,
        VM_DEAD,
} vm_state;

/* One of smolvm_config.mounts, owned, host_path resolved (mounts.c). */
typedef struct vm_mount {
        char *host_path;          /* absolute realpath */
        char *guest_path;
        bool writable;
} vm_mount;

/* vms/<id>/vm.json: what does not change while the VM lives (state.c). */
typedef struct vm_record {
        char id[SMOLVM_ID_LEN + 1];
        char *name;               /* NULL if none */
        int64_t created_unix;
        char *image;              /* as configured */
        char *image_dir;          /* resolved, absolute */
        char *accel;              /* "auto" | "kvm" | "tcg" */
        char *kernel_cmdline;     /* NULL if none */
        char **env;               /* NULL-terminated "K=V", or NULL */
        unsigned vcpus, mem_mib, disk_mib, boot_timeout_ms;
        bool ephemeral;
        vm_mount *mounts;         /* n_mounts, or NULL */
        size_t n_mounts;
        smolvm_mount_transport mount_transport;
        json_t *net;              /* the egress policy (net.c), or NULL: no network */
        char *from_snapshot;      /* the snapshot id it was made from, or NULL */
        char *from_template;      /* warm start: the boot template's key (template.c;
                                   * from_snapshot is its snapshot id), or NULL */
        char machine_id[33];      /* the guest's /etc/machine-id, 32 hex digits, given on
                                   * every boot and restore; "" in records older than it */
} vm_record;

struct smolvm_vm {
        char id[SMOLVM_ID_LEN + 1];
        char *home;               /* $SMOLVM_HOME, absolute */
        char *dir;                /* home/vms/<id> */
        char *image_dir;
        vm_record rec;            /* immutable after create/open */
        bool ephemeral;
        unsigned boot_timeout_ms;
        int cancel_fd;

        pthread_mutex_t lock;
        /* protected by lock: */
        vm_state state;
        pid_t supervisor_pid;     /* > 0 while we own a live (unreaped) child */
        /* spare.c: the VM runs in a spare we claimed (its supervisor is not our
         * child: supervisor_pid is the spare's) and spare_fd is the claim, kept
         * open for the VM's life; spare_after: spawn a spare once it is gone. */
        bool spare_claimed;
        int spare_fd;
        bool spare_after;
        bool have_boot_info;
        smolvm_boot_info boot;
        pid_t vmm_pid;            /* QEMU, from the ready line; 0 if unknown */
        bool lane_known;          /* the ready line said whether QEMU has the lane's */
        bool lane_device;         /* device (an older supervisor did not) */
        char start_note[256];     /* smolvm_boot_info.start_note (template.c) */
        bool restore_lane_known;  /* the template's record, read at attach, said */
        bool restore_lane;        /* whether its VM had the lane (else: read again) */
};

/* ---- error.c ---- */
/* Record the thread's last error; returns code (negative errno). The hint may be
 * NULL. Printf-style message. */
int vm_error(int code, const char *hint, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, also recording a console tail (sanitised, last part kept). */
int vm_error_console(int code, const char *hint, const char *console, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Change the last error's code, keeping its message and hint; returns code. */
int vm_error_set_code(int code);
/* The last error, kept across cleanup steps that may record their own. */
typedef struct vm_error_saved {
        int code;
        bool from_guest;
        char message[1024];
        char hint[512];
        char console[4096];
} vm_error_saved;
void vm_error_save(vm_error_saved *ret);
void vm_error_restore(const vm_error_saved *e);
/* Mark the last error as reported by the guest agent. */
void vm_error_mark_guest(void);
/* sanitize_text(): common/util.h. */

/* ---- paths.c ---- */
/* smolvm_home_path() (common/store.h), recording the error. */
int smolvm_home_dir(char **ret);
/* mkdir_p, mkdir_p_open, rm_rf, write_file_atomic: common/fileutil.h. */
/* A VM dir being removed: vms/VM_TRASH_PREFIX<id> (docs/internals.md). */
#define VM_TRASH_PREFIX ".removing-"
/* A VM dir being created: vms/VM_NEW_PREFIX<id>, renamed to vms/<id> once its
 * record is complete (its creator holds its lock until then). A kill leaves
 * only a dir the next sweep removes, never a VM without a record. */
#define VM_NEW_PREFIX ".creating-"
/* <vms dir>VM_CREATE_LOCK_SUFFIX ($SMOLVM_HOME/vms.create.lock, beside
 * vms.lock): creators hold it shared while a staging dir exists; a sweep
 * removes staging dirs only when it gets it exclusively (no creator is at
 * work, so every staging dir there was left by a killed one). */
#define VM_CREATE_LOCK_SUFFIX ".create.lock"
/* Take that lock shared (blocking). Returns the fd or a negative errno (recorded). */
int vm_create_lock(const char *vms_dir);
/* Remove vms_dir/id restartably, with its lock held (the fd survives): rename
 * it to vms_dir/.removing-<id> (from then on no lookup or listing sees the
 * VM), then remove that, its "lock" last. Records the error. */
int vm_dir_remove(const char *vms_dir, const char *id);
/* Finish the removals a kill interrupted: each vms_dir/.removing-<id> (only
 * only_id's if not NULL) whose lock no live remover holds. Returns 1 when one
 * was removed, 0 when none, or a negative errno (recorded). */
int vm_trash_sweep(const char *vms_dir, const char *only_id);
/* write_file_atomic(path, data, len, 0600), recording the error. */
int vm_write_file_atomic(const char *path, const char *data, size_t len);
/* The same without the fsyncs when !durable: for the files of an ephemeral
 * VM, whose dir dies with it (a host crash leaves at worst a record `ls`
 * reports damaged, and `rm` removes). */
int vm_write_file(const char *path, const char *data, size_t len, bool durable);
/* snprintf for paths built from $SMOLVM_HOME (bounded by the callers' checks)
 * and our own fixed names: a truncated one fails to open, never aliases. */
void pathf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* n_bytes (at most 64) random bytes as 2 * n_bytes lowercase hex digits and a NUL. */
int random_hex(char *ret, size_t n_bytes);
/* Random hex id of SMOLVM_ID_LEN characters. */
int random_id(char ret[SMOLVM_ID_LEN + 1]);
/* s is such an id: SMOLVM_ID_LEN lowercase hex digits. */
bool vm_id_valid(const char *s);
/* Image directory for a name (see smolvm_config.image: a valid name under
 * home/images, else under the system store's images (image_store_entry), or an
 * absolute path), resolved and checked by image_dir_check(); *ret_store (may
 * be NULL) says which store had it. Records the error: -EINVAL for an invalid
 * name, naming it and the store; -ENOENT naming both stores; -EACCES for a
 * store closed to this user. */
int resolve_image(const char *home, const char *name, char **ret_dir, image_store *ret_store);

/* ---- record_json.c: fields of vm.json and snapshot.json ---- */
typedef struct rec_reader {
        const char *path; /* the file, for messages */
        const char *what; /* "VM record", "snapshot record" */
        const char *hint; /* the fix a user sees */
} rec_reader;
/* SMOLVM_ECORRUPT: "<what> <path> is corrupt: <fmt...>" with the hint. */
int rec_corrupt(const rec_reader *rr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* key as a malloc'd string of at most max bytes (SIZE_MAX: any); absent or
 * null: NULL, or corrupt when required. */
int rec_get_str(const rec_reader *rr, json_t *root, const char *key, bool required, size_t max, char **ret);
/* key as an integer from min to max; absent or null: 0, or corrupt when required. */
int rec_get_u64(const rec_reader *rr, json_t *root, const char *key, bool required, uint64_t min, uint64_t max,
                uint64_t *ret);
/* An optional boolean (absent: false): 1 if present, 0 if absent, or a
 * negative errno. */
int rec_get_bool(const rec_reader *rr, json_t *root, const char *key, bool *ret);
int rec_get_uint(const rec_reader *rr, json_t *root, const char *key, bool required, unsigned min, unsigned max,
                 unsigned *ret);
/* "version" must be version; another gives SMOLVM_ECORRUPT with other_hint. */
int rec_check_version(const rec_reader *rr, json_t *root, unsigned version, const char *other_hint);
/* image_dir absolute; accel NULL, auto, kvm or tcg. */
int rec_check_image(const rec_reader *rr, const char *image_dir, const char *accel);

/* ---- state.c ---- */
bool vm_name_valid(const char *s);
/* Parse a record's text; errors (SMOLVM_ECORRUPT) name path. Pure: unit-tested. */
int vm_record_parse(const char *path, const char *text, size_t len, vm_record *ret);
/* malloc'd JSON text, or NULL (ENOMEM or invalid UTF-8). */
char *vm_record_format(const vm_record *rec);
/* dir/vm.json: SMOLVM_ENOTFOUND if missing, SMOLVM_ECORRUPT if unparsable. */
int vm_record_load(const char *dir, vm_record *ret);
int vm_record_save(const char *dir, const vm_record *rec);
void vm_record_done(vm_record *rec);
/* flock(LOCK_EX) on path (created if missing), waiting up to timeout_ms. Returns
 * the fd (close it to unlock) or SMOLVM_EBUSY / a negative errno. Records the error. */
int vm_lock_path(const char *path, unsigned timeout_ms);
/* The pid of a live smolvm-supervisor serving dir (supervisor.pid + /proc cmdline),
 * or 0; *ret_stale: a supervisor.pid exists but names no such process. */
pid_t vm_live_supervisor(const char *dir, bool *ret_stale);
smolvm_state vm_derive_state(const char *dir, pid_t *ret_pid);
/* Why a VM is in state ERROR, one sanitised line for `info`: DIR/failed (the
 * supervisor's or a failed start's reason), else what a stale supervisor.pid means. */
void vm_error_reason(const char *dir, char *buf, size_t size);
/* State letter ('R', 'S', 'T', ...) and parent of pid from /proc/PID/stat.
 * Returns 0 or a negative errno (-ENOENT: no such process). */
int proc_stat(pid_t pid, char *ret_state, pid_t *ret_ppid);
void vm_info_from_record(const vm_record *rec, smolvm_vm_info *ret);
int vm_list_dir(const char *vms_dir, smolvm_vm_info **ret, size_t *ret_n);

/* ---- lifecycle.c ---- */
/* Lock the VM (vms/<id>/lock) and check it still exists. Returns the lock fd or
 * a negative errno (recorded). */
int vm_lock(smolvm_vm *vm);
/* Whether the running VM's QEMU has the lane's device (its ready line, or
 * boot.json for a VM another process started): 1, 0, or -1 when not known (a
 * supervisor older than the "lane" field). */
int vm_lane_device(smolvm_vm *vm);

/* ---- snapshot.c, snapshot_record.c ---- */
#define SNAPSHOT_MAX_LAYERS 32u
/* A VM made from a snapshot runs over its layers and its disk. */
#define VM_MAX_LAYERS (SNAPSHOT_MAX_LAYERS + 1)
/* snapshots/<id>/snapshot.json: a snapshot's record. Input (the file can be
 * damaged or planted): parsed bounded and checked. */
typedef struct snap_record {
        char id[SMOLVM_ID_LEN + 1];
        char *name;               /* NULL if none */
        int64_t created_unix;
        char vm_id[SMOLVM_ID_LEN + 1]; /* the VM it was taken of */
        char *image;              /* as the VM was configured */
        char *image_dir;          /* absolute: kernel and initrd of a restore */
        char *accel;
        char *kernel_cmdline;     /* NULL if none */
        unsigned vcpus, mem_mib, disk_mib;
        bool internal;            /* fork's own, removed once its children started */
        bool net;                 /* the VM had a network: its guest set up egress at boot */
        int lane;                 /* "lane": 1 the VM had the lane's device (its restore
                                   * must have it), 0 it had not, -1 not recorded (taken
                                   * by an older smolvm: its device state tells) */
        uint64_t pause_ms;        /* how long the VM was paused for it */
        uint64_t ram_bytes;       /* RAM data copied */
        char **layers;            /* NULL-terminated: the disk's lower layers in the
                                   * snapshot dir ("layer-<id>.qcow2"), <= SNAPSHOT_MAX_LAYERS */
        size_t n_layers;
        /* The VM's FUSE-over-vsock mounts ("mounts", "mount_transport": "vsock"
         * in snapshot.json); mount N's server state is SNAPDIR_FS_STATE_FMT. */
        vm_mount *mounts;
        size_t n_mounts;
} snap_record;
int snap_record_parse(const char *path, const char *text, size_t len, snap_record *ret);
char *snap_record_format(const snap_record *rec);
void snap_record_done(snap_record *rec);
/* "layer-<12 hex>.qcow2" */
bool snap_layer_name_valid(const char *s);
/* home/snapshots/<id> of the snapshot named or with that id (or unique id
 * prefix >= 4), its record loaded. SMOLVM_ENOTFOUND, SMOLVM_ECORRUPT, ... */
int snapshot_find(const char *home, const char *id_or_name, char **ret_dir, snap_record *ret);
/* Hard-link the snapshot's disk and layers into a new VM's (staging) dir as its
 * layers; *ret_top (malloc'd) is the file its overlay goes over. */
/* The next start of vm restores its snapshot (made from one, never started). */
bool vm_start_restores(const smolvm_vm *vm);
int snapshot_link_layers(const char *snap_dir, const snap_record *rec, const char *vm_dir, char **ret_top);
/* home/snapshots into buf (-ENAMETOOLONG, recorded). */
int snapshots_dir(const char *home, char *buf, size_t size);
/* SMOLVM_EEXIST (recorded) when a snapshot is called name, else 0. */
int snapshot_name_check(const char *home, const char *name);
/* The lock that makes check-then-create of a snapshot name atomic
 * (home/snapshots.lock): the fd, or a negative errno (recorded). */
int snapshot_names_lock(const char *home);
/* dir/snapshot.json. SMOLVM_ENOTFOUND, SMOLVM_ECORRUPT, ... (recorded). */
int snapshot_load_record(const char *dir, snap_record *ret);
/* smolvm_snapshot_create() without its checks, into vm->home/snapshots;
 * internal: fork's and the templates' own. */
#define SNAPSHOT_LEAVE_PAUSED (1u << 30) /* neither resume nor stop the VM afterwards */
int snapshot_take(smolvm_vm *vm, const char *name, bool internal, unsigned flags, smolvm_snapshot_info *ret);
/* Whether a restore of the snapshot in dir (record rec) gets the lane's
 * device: the record's "lane", or for a record without it its device state
 * searched for the lane's MAC address once. */
bool snapshot_restores_lane(const char *dir, const snap_record *rec);
/* snapshot_chain.c: the depth (layers, its own included) past which a new
 * snapshot's disk is flattened: 16, or $SMOLVM_SNAPSHOT_MAX_DEPTH (1..32; else
 * SMOLVM_EINVAL, recorded). */
int snapshot_max_depth(unsigned *ret);
/* The VM dir's layers (its disk's lower qcow2 files, at most VM_MAX_LAYERS),
 * sorted, in a NULL-terminated malloc'd array of malloc'd names. */
int vm_layers(const char *vm_dir, char ***ret, size_t *ret_n);
void vm_layers_free(char **v); /* NULL is fine */
/* disk_path, a copy of the overlay of the VM in vm_dir (n_layers layers under
 * it), rewritten in place to hold everything above the image's rootfs and go
 * straight over it. Negative errno (-ENOSPC: disk full), recorded. */
int snapshot_flatten_disk(const char *vm_dir, size_t n_layers, const char *disk_path);

/* ---- vm.c ---- */
/* smolvm_create() in home (NULL: $SMOLVM_HOME): the templates build their VM in
 * a home of their own. */
int vm_create_in(const char *home, const smolvm_config *cfg, smolvm_vm **ret_vm);

/* ---- template.c: warm start (boot templates) ---- */
#define VM_TEMPLATE_KEY_LEN 64 /* hex SHA-256 */
bool vm_template_key_valid(const char *s);
/* Called by smolvm_create for a VM not made from a snapshot nor asked cold:
 * find (or build, on first use) the boot template for vm->rec and link its disk
 * into staging; then vm->rec.from_snapshot/from_template name it. Returns 1
 * (warm), 0 (cold: vm->start_note says why, if there is a reason to tell) or
 * -ECANCELED (cancel_fd during a build). Never fails the create otherwise. */
int vm_template_attach(smolvm_vm *vm, const char *staging);
/* Before a first start that restores a template: if the template changed or was
 * rebuilt since the VM was created, the VM boots cold (vm_template_go_cold). */
int vm_template_precheck(smolvm_vm *vm);
/* Make the VM (its dir, record, config) one that boots cold; why goes to
 * vm->start_note. Returns 0 or a negative errno (recorded). */
int vm_template_go_cold(smolvm_vm *vm, const char *why);
/* The restore from vm's template failed: remove that template (the next warm
 * start builds a new one). */
void vm_template_drop(smolvm_vm *vm);

/* ---- qmp.c ---- */
/* Run one QMP command ("stop", "cont") on DIR/qmp.sock. Records the error. */
int qmp_command(const char *vm_dir, const char *command);
/* A session, for a sequence of commands (snapshot.c). Each returns 0 or a
 * negative errno (recorded). */
typedef struct qmp_conn qmp_conn;
int qmp_open(const char *vm_dir, qmp_conn **ret);
int qmp_call(qmp_conn *c, const char *command, json_t *args, int fd, json_t **ret_return);
void qmp_close(qmp_conn *c);

/* ---- mounts.c ---- */
#define VM_MOUNT_GUEST_PATH_MAX 255u
/* The virtio-fs tag of mount i is VM_MOUNT_TAG_PREFIX "<i>" (the supervisor's
 * config.json carries it; the guest finds it on its kernel command line). */
#define VM_MOUNT_TAG_PREFIX "smolvm-fs-"
void vm_mounts_free(vm_mount *mounts, size_t n);
const char *vm_mount_transport_name(smolvm_mount_transport t);
/* "virtiofs" | "vsock". Returns 0 or -EINVAL. */
int vm_mount_transport_parse(const char *s, smolvm_mount_transport *ret);
/* See smolvm_mount.guest_path. */
bool vm_mount_guest_path_valid(const char *p);
/* True (and why says which path it collides with) when a valid guest path p is
 * one the guest's init owns: /dev, /proc, /sys, /run/smolvm, /etc/smolvm, what is
 * under them, their parents (/run, /etc), and /tmp itself. Pure: unit-tested. */
bool vm_mount_guest_path_reserved(const char *p, char *why, size_t why_len);
/* Validate cfg's mounts (host paths exist and are directories: realpath'd) into
 * rec. Records the error (naming the path). Returns 0 or a negative errno. */
int vm_mounts_from_config(const smolvm_config *cfg, vm_record *rec);
/* [{"host","guest","writable"(,"tag")}]; NULL on ENOMEM / invalid UTF-8. */
json_t *vm_mounts_to_json(const vm_record *rec, bool with_tags);
/* The record's "mounts" and "mount_transport" (both optional) into rec. On
 * failure why says what is wrong; returns 0, -EINVAL or -ENOMEM. */
int vm_mounts_parse(json_t *root, vm_record *rec, char *why, size_t why_len);
/* A snapshot of a paused VM with vsock mounts: each mount's file server state
 * (FSSTATE, docs/internals.md "Hybrid vsock") into staging/fs-N.state. */
#define VM_MOUNT_STATE_TIMEOUT_MS 15000u
int vm_mounts_save_states(smolvm_vm *vm, const char *staging);

/* ---- net.c ---- */
/* cfg->net (patterns and pins checked) into rec->net. */
int vm_net_from_config(const smolvm_config *cfg, vm_record *rec);
/* The record's optional "net" into rec. Returns 0, -ENOMEM, or -EINVAL with why. */
int vm_net_parse(json_t *root, vm_record *rec, char *why, size_t why_len);
/* DIR/net.json from rec->net for the supervisor (removed when there is none). */
int vm_net_write_policy(const char *dir, const vm_record *rec);
/* Give a created, never started VM (a fork's child) a copy of the policy net
 * (a vm_record's "net") and save its record. Returns 0 or a negative errno. */
int vm_net_inherit(smolvm_vm *vm, const json_t *net);

/* ---- env.c ---- */
/* Check "K=V" entries (NULL-terminated, kv may be NULL) by the guest's env_set
 * rules (agent_env_entry_check, at most 4096, AGENT_ENV_MAX_TOTAL bytes): 0, or
 * -EINVAL / -E2BIG recorded, naming the key, prefixed "what: ". */
int vm_env_check(const char *what, const char *const *kv);

/* ---- vm.c ---- */
int vm_write_supervisor_config(smolvm_vm *vm);
/* ---- port.c ---- */
/* Check smolvm_config.ports (recorded error). */
int vm_ports_check_config(const smolvm_config *cfg);
/* Write dir/ports.json from smolvm_config.ports (create). */
int vm_ports_write_config(const char *dir, const smolvm_config *cfg);
/* After a boot: set up every recorded forward in the running supervisor,
 * recording host ports chosen for 0. Returns 0 or a recorded error. */
int vm_ports_apply(smolvm_vm *vm);
void vm_free_fields(smolvm_vm *vm);

/* ---- lifecycle.c ---- */
/* Before an exec: SMOLVM_ENOTRUNNING / SMOLVM_EPAUSED with a clear message, or 0. */
int vm_check_exec_ready(smolvm_vm *vm);

/* ---- supervisor.c ---- */
/* Ephemeral VMs: the supervisor is our child (vm->supervisor_pid). Persistent:
 * detached (double fork + setsid), *ret_pid its pid, not our child. */
int supervisor_spawn(smolvm_vm *vm, int *ret_ready_fd);
int supervisor_spawn_detached(smolvm_vm *vm, int *ret_ready_fd, pid_t *ret_pid);
/* Terminate a detached supervisor: wait up to grace_ms for it to exit by itself
 * (a guest powering off), then SIGTERM, wait up to timeout_ms, then SIGKILL. */
void supervisor_kill_detached(const char *dir, pid_t pid, unsigned grace_ms, unsigned timeout_ms);
/* Read and validate the ready line; give up with -ECANCELED once cancel_fd (> 0)
 * is readable. Records the error. */
int supervisor_wait_ready(smolvm_vm *vm, int ready_fd, int cancel_fd);
/* Terminate and reap the supervisor (called with vm->lock held). */
void supervisor_stop(smolvm_vm *vm);
/* A spare's supervisor for the VM dir dir (spare.c), detached, holding the
 * template's spare lock (lock_fd, an flock) until its claim or exit. */
int supervisor_spawn_spare(const char *dir, const char *tag, uint64_t idle_ms, int lock_fd);

/* ---- spare.c: a restore run ahead for the next warm start ---- */
/* SMOLVM_SPARE_IDLE_MS: how long an unclaimed spare lives (0: no spares). */
uint64_t vm_spare_idle_ms(void);
/* An ephemeral warm start that a spare can serve (and that leaves one). */
bool vm_spare_eligible(smolvm_vm *vm);
/* Claim a parked spare of vm's template (none parked but one on its way: wait
 * for it, up to 5 s or cancel_fd): 1 with the VM moved into the spare's
 * dir and id and *ret_ready_fd the supervisor's ready pipe; 0 when there is
 * none to claim or the claim broke half-way (vm untouched: start it as
 * without a spare). */
int vm_spare_claim(smolvm_vm *vm, int cancel_fd, int *ret_ready_fd);
/* Take down the parked spares of template key (it is being discarded). */
void vm_spare_sweep(const char *vms, const char *key);
/* Park a spare for vm's template if none is (fire-and-forget: errors are
 * dropped, the caller's last error kept). */
void vm_spare_spawn(const smolvm_vm *vm, uint64_t idle_ms);

/* ---- connect.c ---- */
/* Connect to the guest's port through DIR/vsock.sock. Returns a non-blocking
 * connected fd or a negative errno. Records the error. */
int vsock_connect(const char *vm_dir, uint32_t port, int cancel_fd);
