/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm: run commands in disposable QEMU microVMs.
 *
 *     smolvm_config cfg;
 *     smolvm_config_init(&cfg);
 *     cfg.ephemeral = true;
 *     smolvm_vm *vm;
 *     if (smolvm_create(&cfg, &vm) < 0 || smolvm_start(vm) < 0)
 *             fprintf(stderr, "%s\n", smolvm_last_error()->message);
 *     const char *argv[] = { "uname", "-a", NULL };
 *     smolvm_exec_opts o;
 *     smolvm_exec_opts_init(&o);
 *     o.argv = argv;
 *     smolvm_result res;
 *     smolvm_run(vm, &o, &res);
 *     ...
 *     smolvm_result_free(&res);
 *     smolvm_free(vm);   // destroys the VM if it is still running
 *
 * Errors: every int-returning function returns 0 (or a count) on success and a
 * negative errno on failure; smolvm_last_error() then describes it (message, hint,
 * guest console tail). The detail is per thread, like errno.
 *
 * Threads and processes: smolvm_exec()/smolvm_run() may be called concurrently
 * from any number of threads and processes on one running VM: each uses its own
 * connection to the guest agent and takes no lock. smolvm_start/stop/pause/resume/
 * delete serialise on the VM's lock file (flock, any process), so two CLIs acting
 * on one VM never corrupt it. smolvm_free() must not race with other calls on the
 * same handle.
 *
 * Ownership: a smolvm_vm handle is the caller's until smolvm_free(); strings
 * returned by accessors live as long as the handle; smolvm_list()'s array is freed
 * with smolvm_vm_info_free(), smolvm_result's buffers with smolvm_result_free();
 * status and boot info are plain structs filled in place.
 *
 * The guest is treated as hostile: everything it sends is validated and bounded;
 * a misbehaving guest yields an error (-EPROTO, -EBADMSG, -ETIMEDOUT, ...), never a
 * crash or unbounded memory use in the caller. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SMOLVM_BUILDING_LIB)
#define SMOLVM_EXPORT __attribute__((visibility("default")))
#else
#define SMOLVM_EXPORT
#endif

/* Default cap on each buffered stream of smolvm_run(). */
#define SMOLVM_DEFAULT_OUTPUT_CAP ((size_t)64 * 1024 * 1024)
#define SMOLVM_DEFAULT_BOOT_TIMEOUT_MS 60000u
#define SMOLVM_DEFAULT_MEM_MIB 512u
#define SMOLVM_DEFAULT_VCPUS 1u

typedef struct smolvm_vm smolvm_vm;

/* ---- errors ---------------------------------------------------------------- */

typedef struct smolvm_error {
        int code;                 /* the negative errno last returned */
        const char *message;      /* names the object and the step, e.g.
                                   * "write /x/vms/ab12/config.json: No space left on device" */
        const char *hint;         /* what the user can do, or "" */
        const char *console_tail; /* last lines of the guest console (boot failures), or "" */
        bool from_guest;          /* the guest agent reported it, e.g. -ENOENT for a command
                                   * that does not exist or a bad cwd (message says which) */
} smolvm_error;

/* Error codes. Every function returns a negative errno; these are the ones with a
 * documented meaning across the API (smolvm_strerror() describes them; the CLI's
 * --json "error.code" names them, see docs/cli.md). Others (-ENOMEM, -ENOSPC,
 * -EACCES, -EPROTO, ...) keep their usual errno meaning. */
#define SMOLVM_ENOTFOUND    (-ENOENT)       /* no such VM (id or name); from the guest: no such
                                             * command, file or directory */
#define SMOLVM_EEXIST       (-EEXIST)       /* a VM with that name already exists */
#define SMOLVM_EINVAL       (-EINVAL)       /* invalid argument or configuration */
#define SMOLVM_ETIMEDOUT    (-ETIMEDOUT)    /* boot, stop or a host safety net timed out */
#define SMOLVM_ENOTRUNNING  (-ENOTCONN)     /* the VM is not running (created or stopped) */
#define SMOLVM_EPAUSED      (-EL2HLT)       /* the VM is paused: resume it first */
#define SMOLVM_EALREADY     (-EALREADY)     /* start of a running VM, pause of a paused one */
#define SMOLVM_EUNREACHABLE (-EHOSTUNREACH) /* the VM runs but its guest agent does not answer:
                                             * exec unavailable */
#define SMOLVM_EIMAGE       (-ENOMEDIUM)    /* the image is missing, incomplete or unusable */
#define SMOLVM_EBACKEND     (-ECHILD)       /* the supervisor or QEMU failed */
#define SMOLVM_EBUSY        (-EBUSY)        /* the VM is running (delete without force), or
                                             * another process holds its lock too long */
#define SMOLVM_ECORRUPT     (-EUCLEAN)      /* a state file (vm.json) is corrupt or half-written,
                                             * or an archive is damaged or truncated */

/* The detail of the last failure on this thread. Never NULL; the strings stay
 * valid until the next failing libsmolvm call on this thread. */
SMOLVM_EXPORT const smolvm_error *smolvm_last_error(void);
/* A static description of a (negative or positive) errno-style code; the
 * SMOLVM_E* codes get smolvm's wording ("VM is not running", ...). */
SMOLVM_EXPORT const char *smolvm_strerror(int code);
/* The library version, e.g. "0.1.0". */
SMOLVM_EXPORT const char *smolvm_version(void);

/* ---- VM lifecycle ---------------------------------------------------------- */

/* A host directory shown in the guest (smolvm_config.mounts). The host serves it
 * (docs/internals.md, "Host directory mounts"): read-only unless writable, and
 * confined to host_path even against a compromised guest kernel, on the host. */
#define SMOLVM_MAX_MOUNTS 16u
typedef struct smolvm_mount {
        const char *host_path;    /* an existing directory; smolvm_create() stores its
                                   * realpath, so a relative path is relative to the cwd */
        const char *guest_path;   /* absolute, normalised ("/a/b": no "." or ".." parts,
                                   * no "//", not "/"), at most 255 bytes, no whitespace,
                                   * control characters, '"' or ':' */
        bool writable;            /* false: every write is refused by the host (EROFS) */
} smolvm_mount;

typedef enum smolvm_mount_transport {
        SMOLVM_MOUNT_VIRTIOFS = 0, /* vhost-user-fs device (QEMU), one server process per mount */
        SMOLVM_MOUNT_VSOCK,        /* FUSE over an agent stream: the same sandboxed server
                                    * process per mount, no virtio-fs device and no shared
                                    * guest memory (docs/internals.md, "Mounts over FUSE
                                    * over vsock") */
} smolvm_mount_transport;

/* A port forward (smolvm_config.ports, smolvm_port_expose()): connections to the
 * host's bind_addr:host_port reach the guest's 127.0.0.1:guest_port (or ::1).
 * docs/internals.md, "Port forwarding". */
#define SMOLVM_MAX_PORTS 64u
typedef struct smolvm_port {
        uint16_t guest_port;      /* 1..65535 */
        uint16_t host_port;       /* 0: a free port, chosen when the forward is set up */
        const char *bind_addr;    /* a numeric IPv4/IPv6 address of the host; NULL: 127.0.0.1 */
} smolvm_port;

typedef struct smolvm_config {
        const char *image;        /* NULL: "default"; a name under $SMOLVM_HOME/images/,
                                   * an image key ([A-Za-z0-9._-], not starting with '.'),
                                   * or an absolute directory path; else SMOLVM_EINVAL */
        unsigned vcpus;           /* 0: SMOLVM_DEFAULT_VCPUS; max 64 */
        unsigned mem_mib;         /* 0: SMOLVM_DEFAULT_MEM_MIB; 64..262144 */
        const char *accel;        /* NULL or "auto", "kvm", "tcg" */
        unsigned boot_timeout_ms; /* 0: SMOLVM_DEFAULT_BOOT_TIMEOUT_MS */
        bool ephemeral;           /* the VM (and its directory) dies with its creator */
        const char *kernel_cmdline; /* appended to the guest kernel command line, or NULL:
                                   * then $SMOLVM_KERNEL_APPEND if set (debugging, tests) */
        int cancel_fd;            /* > 0: smolvm_start() gives up with -ECANCELED once this fd
                                   * is readable (e.g. a signalfd); 0 or -1: none */
        const char *name;         /* NULL or a unique name: 1..63 of [A-Za-z0-9_.-], starting
                                   * with a letter or digit, not 12 hex digits (ids look so) */
        unsigned disk_mib;        /* 0: the image's size. The per-VM overlay's virtual size is
                                   * max(image size, disk_mib); the guest grows its ext4 at boot */
        const char *const *env;   /* NULL-terminated "K=V", or NULL. Persistent VMs: stored in
                                   * the record and set with smolvm_set_env() by the first
                                   * successful smolvm_start() (if that fails, start returns
                                   * the error with the VM running; the next start retries).
                                   * Ephemeral VMs: ignored; use smolvm_exec_opts.env */
        const smolvm_mount *mounts; /* n_mounts host directories to mount in the guest, in
                                   * order, at every boot (persistent VMs keep them in the
                                   * record); NULL when n_mounts is 0 */
        size_t n_mounts;          /* at most SMOLVM_MAX_MOUNTS */
        smolvm_mount_transport mount_transport;
        const struct smolvm_net *net; /* egress by name; NULL: no network (see below) */
        const smolvm_port *ports; /* n_ports forwards set up at every boot (kept in the
                                   * VM dir, ports.json; see smolvm_port_expose()) */
        size_t n_ports;           /* at most SMOLVM_MAX_PORTS */
        const char *from_snapshot; /* NULL, or a snapshot's name or id: the VM continues from
                                   * it (its first start restores it); image, vcpus, mem_mib,
                                   * disk_mib, accel and kernel_cmdline come from the snapshot
                                   * and must be left 0/NULL; so do the mounts (a snapshot's
                                   * vsock mounts continue in the new VM) */
        bool cold;                /* boot from scratch. Default (false): a warm start from
                                   * the image's boot template when the config allows it
                                   * (docs/architecture.md, "Warm start"): the template is
                                   * built on first use (a cold boot plus a snapshot); a VM
                                   * it cannot serve boots cold and says why
                                   * (smolvm_boot_info.start_note). $SMOLVM_COLD=1 makes
                                   * every start cold */
} smolvm_config;

/* Egress by name (docs/cli.md, "Network"): the guest resolves and connects as
 * usual, the host decides per name and port at connect time, resolves and
 * connects itself. A pattern is NAME, *.SUFFIX (names below SUFFIX) or an IP
 * address, each optionally followed by :PORT. Kept in the record. */
typedef struct smolvm_net {
        bool open;                /* every public name, minus deny; else only allow */
        const char *const *allow; /* NULL-terminated patterns, or NULL */
        const char *const *deny;  /* NULL-terminated patterns, or NULL */
        const char *const *hosts; /* NULL-terminated "NAME:IP" pins (may be private or
                                   * loopback: a pinned name is reached as pinned), or NULL */
} smolvm_net;

/* Fill *cfg with the defaults (equivalent to zeroing it, with cancel_fd = -1). */
SMOLVM_EXPORT void smolvm_config_init(smolvm_config *cfg);

/* Allocate a VM id, create $SMOLVM_HOME/vms/<id>/ with its record vm.json (and the
 * supervisor's config.json), written atomically, resolve the image. Nothing runs
 * yet. A persistent VM (!cfg->ephemeral) outlives the handle and this process:
 * any process can smolvm_open() it; only smolvm_delete() removes it.
 * Returns 0 and *ret_vm (free with smolvm_free()), SMOLVM_EIMAGE (image not built
 * or incomplete), SMOLVM_EEXIST (name taken), SMOLVM_EINVAL (bad config,
 * an unknown mount_transport included), SMOLVM_ENOTFOUND / -ENOTDIR (a mount's
 * host_path is missing / not a directory; the message names it), -ENOSPC,
 * -EACCES, ... */
SMOLVM_EXPORT int smolvm_create(const smolvm_config *cfg, smolvm_vm **ret_vm);

/* Open an existing VM by id, unique id prefix (>= 4 characters) or name, from any
 * process. Returns 0 and *ret_vm (free with smolvm_free(), which never stops or
 * deletes a persistent VM), SMOLVM_ENOTFOUND, SMOLVM_EINVAL (ambiguous prefix or
 * invalid name), SMOLVM_ECORRUPT (its vm.json cannot be parsed; the message names
 * the file). */
SMOLVM_EXPORT int smolvm_open(const char *id_or_name, smolvm_vm **ret_vm);

/* Boot the VM and wait until the guest agent is ready (boot timeout + a margin).
 * Ephemeral VMs: the supervisor is our child and dies with this process; on
 * failure the VM directory is removed. Persistent VMs: the supervisor is detached
 * (its own session, reparented to init), so the VM survives this process; stale
 * sockets of a crashed run are removed first; on failure (also one after the boot,
 * e.g. the guest refusing smolvm_config.env) nothing of it keeps running: the VM
 * stays, in state ERROR (the reason in smolvm_status_info.error), with its logs.
 * Holds the VM's lock (vms/<id>/lock) while it works.
 * smolvm_last_error() has the supervisor's message, hint and the console tail.
 * Returns 0, SMOLVM_ETIMEDOUT, -ECANCELED (cancel_fd), SMOLVM_EALREADY (running),
 * SMOLVM_ENOTFOUND (deleted, or supervisor binary missing), SMOLVM_EBUSY (lock),
 * or the error the supervisor reported. */
SMOLVM_EXPORT int smolvm_start(smolvm_vm *vm);
/* smolvm_start() watching cancel_fd (> 0; 0 or -1: none) instead of
 * smolvm_config.cancel_fd: for a handle from smolvm_open(), which has none, and for
 * callers that interrupt each start on its own (a language binding's Ctrl-C).
 * A cancelled persistent VM is left in state ERROR ("interrupted while the VM was
 * booting"); the next start works. */
SMOLVM_EXPORT int smolvm_start_with_cancel(smolvm_vm *vm, int cancel_fd);

/* Stop a running (or paused) VM gracefully: ask the guest agent to power off
 * (disks synced), wait up to SMOLVM_STOP_TIMEOUT_MS for the supervisor to exit,
 * then SIGTERM, then SIGKILL its process group. A persistent VM keeps its disk and
 * directory; an ephemeral one is removed. Stopping a VM that is not running is a
 * no-op returning 0. Returns 0, SMOLVM_ENOTFOUND, SMOLVM_EBUSY, ... */
#define SMOLVM_STOP_TIMEOUT_MS 20000u
SMOLVM_EXPORT int smolvm_stop(smolvm_vm *vm);

/* Freeze / thaw the VM's vCPUs (QMP stop/cont). While paused, smolvm_exec() fails
 * at once with SMOLVM_EPAUSED. Returns 0, SMOLVM_ENOTRUNNING, SMOLVM_EALREADY
 * (already paused / not paused), SMOLVM_EBACKEND (QEMU refused), ... */
SMOLVM_EXPORT int smolvm_pause(smolvm_vm *vm);
SMOLVM_EXPORT int smolvm_resume(smolvm_vm *vm);

/* Remove the VM: every file and process of it. A running VM is refused with
 * SMOLVM_EBUSY unless flags has SMOLVM_DELETE_FORCE (then it is killed; its disk
 * is going away, so there is no graceful poweroff). The handle stays valid only
 * for smolvm_free() and smolvm_id(). */
#define SMOLVM_DELETE_FORCE 1u
SMOLVM_EXPORT int smolvm_delete(smolvm_vm *vm, unsigned flags);

/* Delete by full id without opening: also works when the VM's record is corrupt
 * (smolvm_open() fails with SMOLVM_ECORRUPT) and finishes a removal that was
 * killed part-way (smolvm_open() fails with SMOLVM_ENOTFOUND). Same flags and
 * returns as smolvm_delete(), plus SMOLVM_ENOTFOUND. */
SMOLVM_EXPORT int smolvm_delete_id(const char *id, unsigned flags);

/* Ephemeral VMs: stop and remove (as smolvm_delete(vm, SMOLVM_DELETE_FORCE)).
 * Safe to call on a VM that never started or already died. A VM that started
 * warm then leaves a spare for the next warm start: a detached supervisor and
 * QEMU with the template restored, its guest parked before it takes an
 * identity, that live SMOLVM_SPARE_IDLE_MS (default 60000; 0: none) unless claimed
 * (docs/cli.md, "Warm start"). */
SMOLVM_EXPORT int smolvm_destroy(smolvm_vm *vm);

/* Free the handle. An ephemeral VM is destroyed; a persistent one is left as it
 * is (running or not). NULL is fine. */
SMOLVM_EXPORT void smolvm_free(smolvm_vm *vm);

SMOLVM_EXPORT const char *smolvm_id(const smolvm_vm *vm);
/* Absolute path of the VM directory. */
SMOLVM_EXPORT const char *smolvm_dir(const smolvm_vm *vm);

typedef struct smolvm_boot_info {
        uint64_t boot_ms;         /* supervisor start -> agent ready, as reported */
        uint64_t host_boot_ms;    /* smolvm_start() wall clock */
        uint64_t t_vmm_ms, t_kernel_ms, t_init_ms, t_agent_ms; /* split, 0 if unknown */
        char accel[16];           /* "kvm", "tcg" */
        char accel_reason[256];
        char start[8];            /* "warm" (restored from the boot template) or "cold" */
        char start_note[256];     /* why a start was cold although warm was allowed, or
                                   * what happened to the template; "" if nothing to say */
} smolvm_boot_info;

/* Boot info of a running VM (also one started by another process). Returns 0 or
 * SMOLVM_ENOTRUNNING (-ESRCH in older versions). */
SMOLVM_EXPORT int smolvm_boot_info_get(const smolvm_vm *vm, smolvm_boot_info *ret);

/* ---- state, status, listing ------------------------------------------------ */

/* The live state is derived, never stored: RUNNING iff DIR/supervisor.pid names a
 * live smolvm-supervisor serving this VM dir. ERROR: the last run did not end
 * cleanly (its supervisor was killed, or the VM crashed); start works again. */
typedef enum smolvm_state {
        SMOLVM_STATE_CREATED = 0, /* never started */
        SMOLVM_STATE_RUNNING,
        SMOLVM_STATE_PAUSED,
        SMOLVM_STATE_STOPPED,
        SMOLVM_STATE_ERROR,
} smolvm_state;

/* "created", "running", "paused", "stopped", "error". */
SMOLVM_EXPORT const char *smolvm_state_name(smolvm_state s);

typedef struct smolvm_vm_info {
        char id[16];
        char name[64];            /* "" if none */
        smolvm_state state;
        int64_t created_unix;     /* seconds since the epoch */
        pid_t supervisor_pid;     /* > 0 while running or paused */
        unsigned vcpus, mem_mib, disk_mib; /* disk_mib 0: the image's size */
        char accel[8];            /* configured: "auto", "kvm", "tcg" */
        char image[256];          /* as configured (truncated if longer) */
        bool ephemeral;
} smolvm_vm_info;

typedef struct smolvm_status_info {
        smolvm_vm_info info;
        bool have_boot;           /* boot is valid (running or paused) */
        smolvm_boot_info boot;    /* of the current run, whoever started it */
        pid_t vmm_pid;            /* QEMU, or 0 */
        char dir[4096];           /* the VM directory */
        char error[512];          /* state ERROR: why (e.g. "QEMU (pid N) died unexpectedly
                                   * (killed by signal 9)..."); else "" */
} smolvm_status_info;

/* Current status of the VM. Returns 0 and *ret (a plain struct, nothing to free),
 * SMOLVM_ENOTFOUND (deleted meanwhile), SMOLVM_ECORRUPT. */
SMOLVM_EXPORT int smolvm_status(smolvm_vm *vm, smolvm_status_info *ret);

/* All VMs under $SMOLVM_HOME/vms, oldest first. *ret is one malloc'd array of
 * *ret_n entries (NULL when 0); free it with smolvm_vm_info_free(). A VM whose
 * record is unreadable is listed with state ERROR and its directory name as id.
 * Returns 0 or a negative errno. */
SMOLVM_EXPORT int smolvm_list(smolvm_vm_info **ret, size_t *ret_n);
SMOLVM_EXPORT void smolvm_vm_info_free(smolvm_vm_info *infos);

/* The VM's name, or "" if it has none. Valid as long as the handle. */
SMOLVM_EXPORT const char *smolvm_name(const smolvm_vm *vm);

/* ---- snapshots (docs/cli.md, "snapshot") ----------------------------------- */

typedef struct smolvm_snapshot_info {
        char id[16];
        char name[64];            /* "" if none */
        int64_t created_unix;
        char vm_id[16];           /* the VM it was taken of */
        char image[256];
        unsigned vcpus, mem_mib;
        bool internal;            /* smolvm_fork()'s own */
        uint64_t pause_ms;        /* how long the VM was paused for it */
        uint64_t ram_bytes;       /* guest RAM data kept (the RAM file's non-hole bytes) */
        uint64_t disk_bytes;      /* bytes on disk of the whole snapshot dir (st_blocks) */
        unsigned depth;           /* disk layers, its own included (a snapshot that would be
                                   * deeper than 16, $SMOLVM_SNAPSHOT_MAX_DEPTH, is flattened: 1) */
        char dir[4096];
        unsigned n_mounts;        /* host directory mounts it carries (vsock) */
} smolvm_snapshot_info;

/* Flags of smolvm_snapshot_create(). */
#define SMOLVM_SNAPSHOT_STOP 1u     /* stop the VM afterwards instead of resuming it */

/* Snapshot a running or paused VM: memory, devices and disk at one instant. The
 * VM is paused meanwhile (ret->pause_ms) and then resumed (a paused VM stays
 * paused; with SMOLVM_SNAPSHOT_STOP it is stopped). name: NULL or unique among
 * snapshots (the VM name rule). Nothing is left of a snapshot that failed; the
 * VM carries on. Returns 0 and *ret (may be NULL), SMOLVM_ENOTRUNNING,
 * SMOLVM_EEXIST (name), SMOLVM_EINVAL (the VM has virtio-fs mounts: vsock ones
 * are carried; or it runs on a
 * snapshot's RAM: see docs/cli.md), -ENOSPC, SMOLVM_EBACKEND (QEMU refused). */
SMOLVM_EXPORT int smolvm_snapshot_create(smolvm_vm *vm, const char *name, unsigned flags,
                                         smolvm_snapshot_info *ret);
/* All snapshots, oldest first: one malloc'd array (free()), NULL when none. */
SMOLVM_EXPORT int smolvm_snapshot_list(smolvm_snapshot_info **ret, size_t *ret_n);
/* By name, id or unique id prefix (>= 4). SMOLVM_ENOTFOUND, SMOLVM_ECORRUPT. */
SMOLVM_EXPORT int smolvm_snapshot_info_get(const char *id_or_name, smolvm_snapshot_info *ret);
/* Remove a snapshot. VMs made from it keep running and keep their disks (they
 * hold hard links of its layers and map its RAM); only a VM created from it and
 * never started can no longer start (its start names the snapshot).
 * SMOLVM_ENOTFOUND. */
SMOLVM_EXPORT int smolvm_snapshot_rm(const char *id_or_name);

/* N new persistent VMs continuing from vm's present instant, each started, with
 * its own copy-on-write disk and memory, a reseeded RNG, its own hostname
 * (smolvm-<id>) and machine-id, the host's wall clock. vm carries on (a paused
 * VM stays paused). ret_ids gets n ids (16 bytes each). On failure the children
 * made so far are deleted. Returns 0 or as smolvm_snapshot_create() and
 * smolvm_start(). */
#define SMOLVM_FORK_MAX 64u
SMOLVM_EXPORT int smolvm_fork(smolvm_vm *vm, unsigned n, char (*ret_ids)[16]);

/* ---- environment ----------------------------------------------------------- */
/* Persistent environment of a VM, kept by the guest under /etc/profile.d: later
 * execs and login shells see it. Values travel inside the request, never on a
 * command line (host or guest). Keys are [A-Za-z_][A-Za-z0-9_]*. */

/* Set each "K=V" of the NULL-terminated kv. Returns 0, -EINVAL (malformed entry,
 * nothing set), or the guest's error. */
SMOLVM_EXPORT int smolvm_set_env(smolvm_vm *vm, const char *const *kv);
/* Remove each key of the NULL-terminated keys (absent keys are fine). */
SMOLVM_EXPORT int smolvm_unset_env(smolvm_vm *vm, const char *const *keys);
/* The persistent variables as a malloc'd NULL-terminated array of "K=V", sorted by
 * key; free with smolvm_env_free(). Returns 0 or a negative errno. */
SMOLVM_EXPORT int smolvm_list_env(smolvm_vm *vm, char ***ret_kv);
SMOLVM_EXPORT void smolvm_env_free(char **kv);

/* ---- doctor ---------------------------------------------------------------- */
/* Host checks: can VMs run here, and how fast. Nothing is changed on the host. */

typedef enum smolvm_check_status {
        SMOLVM_CHECK_PASS = 0,
        SMOLVM_CHECK_WARN,        /* works, but slower or with a feature missing */
        SMOLVM_CHECK_FAIL,        /* VMs cannot run until this is fixed */
} smolvm_check_status;

typedef struct smolvm_doctor_check {
        const char *name;         /* stable id: "kvm", "qemu", "qemu-microvm", "qemu-img",
                                   * "supervisor", "image", "home", "disk", "image-build" */
        smolvm_check_status status;
        char *message;            /* what was found */
        char *fix;                /* what to do about it, "" when nothing */
} smolvm_doctor_check;

typedef struct smolvm_doctor_report {
        smolvm_doctor_check *checks;
        size_t n_checks;
        size_t n_warn, n_fail;
        bool kvm_usable;          /* VMs can run on KVM here (false on a nested PVM host) */
        bool nested_pvm;          /* kvm_pvm loaded: KVM is unusable for stock kernels */
        char accel[8];            /* what accel "auto" picks: "kvm" or "tcg" */
        char *accel_reason;       /* the supervisor's reason for that choice */
        char *qemu_version;       /* e.g. "7.2.15", or "" */
        char *home;               /* $SMOLVM_HOME */
        uint64_t free_disk_bytes; /* available in $SMOLVM_HOME's file system */
        uint64_t image_bytes;     /* the default image's files, 0 if not built */
        char *system_store;       /* the system image store looked in (after $SMOLVM_HOME's) */
        bool image_shared;        /* the default image is the system store's */
} smolvm_doctor_report;

#define SMOLVM_DOCTOR_DISK_WARN_BYTES ((uint64_t)2 << 30)
#define SMOLVM_DOCTOR_DISK_FAIL_BYTES ((uint64_t)512 << 20)

/* Run every check. Returns 0 and *ret (free with smolvm_doctor_report_free())
 * whatever the checks found, or -ENOMEM. */
SMOLVM_EXPORT int smolvm_doctor(smolvm_doctor_report **ret);
SMOLVM_EXPORT void smolvm_doctor_report_free(smolvm_doctor_report *r);
/* "pass", "warn", "fail". */
SMOLVM_EXPORT const char *smolvm_check_status_name(smolvm_check_status s);

/* The rest of the API, one header per area (each only through this one). */
#define SMOLVM_INSIDE_SMOLVM_H
#include "exec.h"  /* IWYU pragma: export */
#include "files.h" /* IWYU pragma: export */
#include "net.h"   /* IWYU pragma: export */
#undef SMOLVM_INSIDE_SMOLVM_H

#ifdef __cplusplus
}
#endif
