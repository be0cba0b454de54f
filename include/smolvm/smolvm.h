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
 * Safe to call on a VM that never started or already died. */
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

/* ---- running commands ------------------------------------------------------ */

typedef enum smolvm_stdin_mode {
        SMOLVM_STDIN_NONE = 0, /* the command reads /dev/null */
        SMOLVM_STDIN_FD,       /* forward stdin_fd until EOF (the fd is not closed) */
        SMOLVM_STDIN_BYTES,    /* send stdin_data[0..stdin_len), then EOF */
} smolvm_stdin_mode;

typedef struct smolvm_exec_opts {
        const char *const *argv;  /* NULL-terminated, at least one element */
        const char *const *env;   /* NULL-terminated "K=V" added to the guest's base env, or NULL */
        const char *cwd;          /* absolute guest path, or NULL (/root) */
        uint32_t timeout_ms;      /* 0: none. On expiry the guest kills the command's
                                   * process group and reports timed_out. The host gives
                                   * up on its own a margin later (-ETIMEDOUT). */
        smolvm_stdin_mode stdin_mode;
        int stdin_fd;
        const void *stdin_data;
        size_t stdin_len;
        int cancel_fd;            /* > 0: give up with -ECANCELED once readable (the command
                                   * is killed); 0 or -1: none */
        size_t max_output_bytes;  /* smolvm_run() only: cap per stream; 0: the default */
        /* What the command leaves running in the background (`cmd &`, `nohup
         * cmd &`) keeps running after it exited, as over SSH, and does not hold
         * the exec open; what it writes after the exec ended goes to the exec
         * log (smolvm_exec_log()). true: SIGKILL the command's process group
         * when it exits instead. While the command runs, timeout_ms, cancel_fd
         * and the end of the client kill the whole group either way. */
        bool kill_background;
        /* Start the command and return at once (docker's -d): smolvm_exec()
         * returns 0 with ret_status->pid once it runs (on_started is called;
         * nothing else). It reads /dev/null, its stdout and stderr go to the
         * exec log, and it is not killed when the call returns. Not with tty,
         * stdin or timeout_ms (-EINVAL). */
        bool detach;
        /* Run the command on a pseudo-terminal in the guest (docker's -t): it
         * is the command's stdin, stdout, stderr and controlling terminal, so
         * its output is one stream (on_stdout), and control characters in the
         * stdin sent (Ctrl-C, Ctrl-Z, Ctrl-D) become signals and EOF there. */
        bool tty;
        const char *term;         /* tty: TERM for the command; NULL: the guest's (xterm). A
                                   * TERM in env wins */
        unsigned short rows, cols; /* tty: the window size at start when tty_size_fd < 0
                                    * (0: left to the guest kernel) */
        int tty_size_fd;          /* tty, >= 0: a terminal whose size (TIOCGWINSZ) the guest's
                                   * gets at start and after each resize_fd wake-up; -1: rows, cols */
        int resize_fd;            /* tty, > 0: readable when the window size changed (a signalfd
                                   * for SIGWINCH, a pipe): the library reads it once per wake-up
                                   * (at most 4 KiB) and sends the new size; 0 or -1: none */
} smolvm_exec_opts;

/* Fill *o with the defaults (zeroes, cancel_fd, stdin_fd, tty_size_fd and
 * resize_fd -1). */
SMOLVM_EXPORT void smolvm_exec_opts_init(smolvm_exec_opts *o);

/* Callbacks of smolvm_exec(). Any may be NULL. Returning a negative errno aborts
 * the exec: the command is killed and smolvm_exec() returns that value. Data is
 * valid only during the call. */
typedef struct smolvm_exec_callbacks {
        int (*on_started)(void *userdata, int guest_pid);
        int (*on_stdout)(void *userdata, const void *data, size_t len);
        int (*on_stderr)(void *userdata, const void *data, size_t len);
        void *userdata;
} smolvm_exec_callbacks;

typedef struct smolvm_exec_status {
        int exit_code;            /* 0..255; meaningful when signal == 0 and !timed_out */
        int signal;               /* 1..64 if the command died by a signal, else 0 */
        bool timed_out;           /* the guest killed it at timeout_ms */
        uint64_t duration_ms;     /* host wall clock, request sent -> exit received */
        uint64_t guest_duration_ms; /* as reported by the guest (0 if absent) */
        int pid;                  /* the command's pid in the guest (0 if not known): names
                                   * its exec log */
} smolvm_exec_status;

/* Run a command, streaming its output through the callbacks in constant memory.
 * Returns 0 with *ret_status filled once the command exited (whatever its exit
 * code), or a negative errno: -ECONNREFUSED/-ENOENT (VM not running), -EPROTO /
 * -EBADMSG (the agent broke the protocol), -ECONNRESET (stream ended without an
 * exit status), -ETIMEDOUT (host safety net), -ECANCELED, a callback's error, or
 * the errno the agent reported (e.g. -ENOENT: no such command). */
SMOLVM_EXPORT int smolvm_exec(smolvm_vm *vm, const smolvm_exec_opts *opts, const smolvm_exec_callbacks *cbs,
                              smolvm_exec_status *ret_status);

typedef struct smolvm_result {
        smolvm_exec_status status;
        char *stdout_data;        /* NUL-terminated for convenience; may contain NULs */
        size_t stdout_len;
        bool stdout_truncated;    /* more than the cap was produced; the rest was dropped */
        char *stderr_data;
        size_t stderr_len;
        bool stderr_truncated;
} smolvm_result;

/* Run a command and collect its output (each stream capped at
 * opts->max_output_bytes). Returns as smolvm_exec(); on success free *ret with
 * smolvm_result_free(). */
SMOLVM_EXPORT int smolvm_run(smolvm_vm *vm, const smolvm_exec_opts *opts, smolvm_result *ret);
SMOLVM_EXPORT void smolvm_result_free(smolvm_result *r);

/* The exec log of the command with guest pid pid: the output of a detached
 * command, or what the background processes of an exec wrote to its stdout and
 * stderr after it ended. The guest keeps it in /run/smolvm/exec/<pid>.log
 * (tmpfs, until the VM stops), starting a new file at 4 MiB with the previous
 * one as <pid>.log.1: both are read, oldest first. *ret_data as for
 * smolvm_read_file() (max_bytes per file). Returns 0, -ENOENT (no log for that
 * pid), or as smolvm_read_file(). */
SMOLVM_EXPORT int smolvm_exec_log(smolvm_vm *vm, int pid, void **ret_data, size_t *ret_len, size_t max_bytes);

/* ---- files ----------------------------------------------------------------- */
/* Guest paths are absolute. Each call uses its own stream to the guest agent, so
 * these may run concurrently with execs on the same VM. The guest is hostile:
 * sizes and byte counts it reports are checked, and a download never writes
 * outside host_path (see smolvm_download_with()). */

/* Write len bytes to guest_path (created or truncated, parents created) with
 * permission bits mode (e.g. 0644). Returns 0, -EINVAL (relative path),
 * SMOLVM_ENOTRUNNING, or the guest's error (e.g. -EISDIR, -ENOSPC). */
SMOLVM_EXPORT int smolvm_write_file(smolvm_vm *vm, const char *guest_path, const void *data, size_t len,
                                    unsigned mode);

/* Read guest_path into memory. max_bytes: 0 = 64 MiB; a larger file fails with
 * -EFBIG before any byte is transferred. On success *ret_data is malloc'd (free()
 * it), NUL-terminated for convenience (it may contain NULs), *ret_len its length.
 * Returns 0, -EFBIG, the guest's error (-ENOENT, -EISDIR, ...), -EPROTO when the
 * guest sent more or fewer bytes than it announced. */
#define SMOLVM_DEFAULT_READ_MAX ((size_t)64 * 1024 * 1024)
SMOLVM_EXPORT int smolvm_read_file(smolvm_vm *vm, const char *guest_path, void **ret_data, size_t *ret_len,
                                   size_t max_bytes);

/* Copy host_path (a file, or a directory recursively) to guest_path, which names
 * the copy itself (not a directory to copy into). Permission bits are kept,
 * missing guest parents are created, symlinks inside a directory are recreated as
 * symlinks (via `ln -s` in the guest), other special files (sockets, fifos,
 * devices) are skipped. Streams in constant memory. Returns 0 or a negative errno;
 * on failure part of the tree may have been copied. */
SMOLVM_EXPORT int smolvm_upload(smolvm_vm *vm, const char *host_path, const char *guest_path);

/* Copy guest_path (a file, or a directory recursively) to host_path, which names
 * the copy itself; its missing parents are created. Same as smolvm_download_with()
 * with SMOLVM_DOWNLOAD_AS, no size cap and no cancel fd. */
SMOLVM_EXPORT int smolvm_download(smolvm_vm *vm, const char *guest_path, const char *host_path);

/* What host_path means to smolvm_download_with(). */
typedef enum smolvm_download_dest {
        SMOLVM_DOWNLOAD_AS = 0,   /* host_path is the copy itself */
        SMOLVM_DOWNLOAD_INTO,     /* host_path is a directory (created if missing) that gets
                                   * the copy under guest_path's last component: cp's DST/ */
        SMOLVM_DOWNLOAD_AUTO,     /* INTO when host_path is an existing directory, else AS:
                                   * cp's DST */
} smolvm_download_dest;

typedef struct smolvm_download_opts {
        smolvm_download_dest dest;
        uint64_t max_bytes;       /* > 0: refuse (-EFBIG) a download whose files total more
                                   * bytes, announced or received; 0: no cap */
        int cancel_fd;            /* > 0: give up with -ECANCELED once readable (e.g. a
                                   * signalfd); 0 or -1: none. No signal handler is installed. */
} smolvm_download_opts;

/* Fill *o with the defaults (SMOLVM_DOWNLOAD_AS, no cap, cancel_fd = -1). */
SMOLVM_EXPORT void smolvm_download_opts_init(smolvm_download_opts *o);

/* Copy guest_path (a file, or a directory recursively) to the host, where
 * opts->dest says. Files are written to a temporary name and renamed into place,
 * streamed in constant memory. Permission bits are kept except setuid/setgid
 * (never trusted from a guest).
 *
 * Symlinks: the directories above host_path's last component are the caller's and
 * are resolved as usual (missing ones are created). Everything from host_path's
 * last component down is the copy's: every step is resolved below its parent with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so an existing symlink there (one
 * a previous download recreated, say) is never followed: where the copy would go
 * through it the download fails with -EEXIST naming it; a file or symlink of the
 * copy replaces a symlink at its own name (rename). Symlinks in a tree are
 * recreated verbatim. Paths the guest lists are validated (relative, no "..").
 * Modes are applied through fds the download opened, last and deepest first.
 *
 * Space: before writing, the announced sizes (the file's, or the sum of a tree's
 * files) are checked against opts->max_bytes (-EFBIG) and against the free space of
 * the destination's file system (-ENOSPC); each file is checked again when the guest
 * announces it, and the guest can never send more bytes than it announced.
 *
 * On success *ret_host_path (if not NULL) is the copy's host path, malloc'd. On
 * failure nothing is left half-written (the temporary file is removed) but earlier
 * files of a tree stay. Returns 0, -EFBIG, -ENOSPC, -ECANCELED, -EEXIST (a symlink
 * in the way), -EINVAL (INTO/AUTO with a guest path without a last component, "/"),
 * the guest's error, or -EBADMSG when the guest lists an unsafe path. */
SMOLVM_EXPORT int smolvm_download_with(smolvm_vm *vm, const char *guest_path, const char *host_path,
                                       const smolvm_download_opts *opts, char **ret_host_path);

/* ---- workspace archives and tar streams ------------------------------------ */
/* A guest directory as a tar stream made and unpacked by the guest's own GNU tar
 * (run through the agent like any command, as root, --numeric-owner), so names of
 * any bytes, modes, owners, symlinks, hard links and empty directories are tar's
 * business; the host never parses the tar, it compresses, decompresses or passes
 * it through, in constant memory. Archives are smolvm's .tar.zst: a zstd stream
 * with a checksummed header and trailer (`tar --zstd -tf FILE` lists it), read and
 * written on the host with io_uring where the kernel allows. */

/* Where workspace persist and hydrate look by default; the guest's init creates it
 * at boot when it is missing. */
#define SMOLVM_WORKSPACE_DIR "/workspace"

typedef struct smolvm_archive_opts {
        const char *guest_path;   /* the guest directory; NULL: SMOLVM_WORKSPACE_DIR
                                   * (the tar stream calls require one) */
        int level;                /* persist: zstd level 1..19; 0: the default, 3 */
        uint64_t max_bytes;       /* persist, tar from the guest: > 0 stops with -EFBIG once the
                                   * guest's output written to the host passes this many bytes
                                   * (a guest can send without end); 0: no cap */
        int cancel_fd;            /* > 0: give up with -ECANCELED once readable (e.g. a
                                   * signalfd); what was begun is removed; 0 or -1: none */
        /* Called as the transfer moves (tar bytes so far, archive bytes so far), from
         * the calling thread, or for hydrate from a thread of the library. May be NULL. */
        void (*progress)(void *userdata, uint64_t tar_bytes, uint64_t file_bytes);
        void *userdata;
} smolvm_archive_opts;

typedef struct smolvm_archive_result {
        uint64_t tar_bytes;       /* the tar stream's size */
        uint64_t file_bytes;      /* the archive's (or the raw stream's) size */
        uint64_t duration_ms;
        bool verified;            /* hydrate: smolvm's trailer was there and matched (false:
                                   * a plain .tar.zst, checked by zstd's frame checksums only) */
        char sha256[65];          /* persist, verified hydrate: the trailer's SHA-256, hex */
        char io[16];              /* how the host file was read or written: "io_uring",
                                   * "pread", "pwrite", "read", "write" */
} smolvm_archive_result;

/* Fill *o with the defaults (zeroes, cancel_fd = -1). */
SMOLVM_EXPORT void smolvm_archive_opts_init(smolvm_archive_opts *o);

/* Archive o->guest_path (the directory's contents, as "./...") into host_path, a
 * new or replaced file (its directory must exist), written under a temporary name
 * and renamed into place when complete: on any failure or cancellation no file is
 * left (SIGKILL may leave the hidden ".NAME.XXXXXXXXXXXX.part"). Returns 0 with
 * *ret (may be NULL) filled, SMOLVM_ENOTFOUND (no such guest directory), -EIO (the
 * guest's tar failed: its stderr is in the message; a file that changed while it
 * was read fails too), -ENOSPC, -EFBIG (o->max_bytes), -ECANCELED, -EISDIR
 * (host_path is a directory). */
SMOLVM_EXPORT int smolvm_workspace_persist(smolvm_vm *vm, const char *host_path, const smolvm_archive_opts *o,
                                           smolvm_archive_result *ret);
/* The same into fd (a file, written at its offset, or a pipe); fd is not closed. On
 * failure what was written stays in fd: it has no trailer, so hydrate refuses it. */
SMOLVM_EXPORT int smolvm_workspace_persist_fd(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                              smolvm_archive_result *ret);

/* Unpack the archive host_path (smolvm's, or any .tar.zst) into o->guest_path,
 * created if missing; existing entries with the archive's names are replaced, others
 * stay, and the directory itself keeps its mode and owner. The guest unpacks into a
 * hidden directory inside it and moves the entries
 * into place only once the whole archive passed its checks and tar succeeded, so a
 * damaged, truncated or foreign file, a failing tar or a cancellation leaves the
 * directory as it was. Windows over 16 MiB (zstd --long, --ultra) are refused.
 * Returns 0 with *ret (may be NULL), SMOLVM_ECORRUPT (damaged or truncated: the
 * message says where), -EPROTONOSUPPORT (made by a newer smolvm), -EFBIG (window
 * too large), -EIO (the guest's tar failed, with its stderr), -ECANCELED. */
SMOLVM_EXPORT int smolvm_workspace_hydrate(smolvm_vm *vm, const char *host_path, const smolvm_archive_opts *o,
                                           smolvm_archive_result *ret);
/* The same from fd (a file from its offset, or a pipe); fd is not closed. */
SMOLVM_EXPORT int smolvm_workspace_hydrate_fd(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                              smolvm_archive_result *ret);

/* Write an uncompressed tar of the guest path o->guest_path (a directory or a file)
 * to fd, its entries named from the path's last component ("dir/...") as docker
 * cp's tar streams are. fd is not closed. Returns 0 with *ret (may be NULL),
 * SMOLVM_ENOTFOUND, -EIO (the guest's tar failed), -EPIPE (fd's reader went away),
 * -EFBIG (o->max_bytes), -ECANCELED. */
SMOLVM_EXPORT int smolvm_tar_from_guest(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                        smolvm_archive_result *ret);
/* Unpack an uncompressed tar read from fd (until EOF) into the existing guest
 * directory o->guest_path, as `tar -x` does there (unlike hydrate, in place: a
 * failure may leave part of it). Returns 0 with *ret (may be NULL),
 * SMOLVM_ENOTFOUND (no such directory), -EIO (the guest's tar failed, e.g. on a
 * stream that is not a tar), -ECANCELED. */
SMOLVM_EXPORT int smolvm_tar_to_guest(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                      smolvm_archive_result *ret);

/* ---- snapshot export and import (docs/cli.md, "snapshot export") ----------- */
/* A snapshot as one self-contained file: a smolvm archive (zstd, SHA-256
 * trailer, io_uring) holding its record, device state, RAM (holes stay holes)
 * and every disk layer, plus the key of the image it needs. The smolvm_archive_opts
 * used: level (0: 1, the fastest), cancel_fd, progress (bytes of content, bytes of
 * file) and userdata; ret (may be NULL): tar_bytes is the content's size. */

/* Write the snapshot id_or_name to host_path (replaced if it exists), under a
 * temporary name renamed into place when complete (no file is left on failure).
 * Returns 0, SMOLVM_ENOTFOUND, SMOLVM_ECORRUPT (a damaged snapshot), SMOLVM_EIMAGE
 * (its image is gone), SMOLVM_EINVAL (its image is no image-store entry), -ENOSPC,
 * -ECANCELED, -EISDIR. */
SMOLVM_EXPORT int smolvm_snapshot_export(const char *id_or_name, const char *host_path,
                                         const smolvm_archive_opts *o, smolvm_archive_result *ret);
/* The same into fd (a file at its offset, or a pipe); fd is not closed. */
SMOLVM_EXPORT int smolvm_snapshot_export_fd(const char *id_or_name, int fd, const smolvm_archive_opts *o,
                                            smolvm_archive_result *ret);
/* A new snapshot (a new id) from an exported one, named name (NULL: the name it
 * had, if any). Everything is checked before it appears (checksum, sizes, record,
 * names, the disk chain): it is unpacked into a hidden staging dir removed on any
 * failure or cancellation (one a SIGKILL leaves is swept by the next snapshot
 * create or import). Its image must be here (same key: built by the same smolvm
 * with the same options). Returns 0 with *ret_info and *ret (each may be NULL),
 * SMOLVM_ECORRUPT (damaged, truncated, or not a snapshot export), SMOLVM_EIMAGE
 * (the image is missing: the message names it and how to build it), SMOLVM_EEXIST
 * (the name is taken), -EPROTONOSUPPORT, -ENOSPC, -ECANCELED. Only import archives
 * from sources you trust like the VM itself: QEMU loads the device state. */
SMOLVM_EXPORT int smolvm_snapshot_import(const char *host_path, const char *name, const smolvm_archive_opts *o,
                                         smolvm_snapshot_info *ret_info, smolvm_archive_result *ret);
/* The same from fd (a file from its offset, or a pipe); fd is not closed. */
SMOLVM_EXPORT int smolvm_snapshot_import_fd(int fd, const char *name, const smolvm_archive_opts *o,
                                            smolvm_snapshot_info *ret_info, smolvm_archive_result *ret);

/* ---- network ---------------------------------------------------------------- */

/* Add pattern to the VM's allow list (allow true; every deny pattern for the
 * same host, whatever its port, is removed) or to its deny list (allow false;
 * allow patterns for the same host are removed), in the record and, if it
 * runs, at once for new connections and DNS questions. Returns 0, SMOLVM_EINVAL (bad pattern, or
 * the VM was created without a network: the message says so). */
SMOLVM_EXPORT int smolvm_net_change(smolvm_vm *vm, bool allow, const char *pattern);
/* Path of the VM's egress log (JSON lines, docs/cli.md "smolvm net log"; the
 * previous part is the same path with ".1"). Free with free(). NULL on ENOMEM. */
SMOLVM_EXPORT char *smolvm_net_log_path(smolvm_vm *vm);

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

/* ---- port forwarding -------------------------------------------------------- */

/* Forward host bind_addr:host_port (NULL: 127.0.0.1; 0: a free port) to the
 * guest's TCP port guest_port. The listener lives in the VM's supervisor (it
 * outlives this process and dies with the VM); the forward is recorded in the
 * VM dir and set up again at every start, on the same host port. A VM that is
 * not running only gets the record (host_port 0 is then chosen at start).
 * Each connection is relayed to the guest's 127.0.0.1:guest_port, or ::1 when
 * that refuses; if neither listens, the host connection is closed at once.
 * Returns 0 and the host port in *ret_host_port (may be NULL; 0 for a stopped
 * VM asked for any port), -EADDRINUSE (the host port is taken: the message
 * names it), -EEXIST (guest_port is forwarded already), -EINVAL, -ENOSPC
 * (SMOLVM_MAX_PORTS), -EADDRNOTAVAIL (bind_addr is not the host's), ... */
SMOLVM_EXPORT int smolvm_port_expose(smolvm_vm *vm, uint16_t guest_port, uint16_t host_port, const char *bind_addr,
                                     uint16_t *ret_host_port);

typedef struct smolvm_port_info {
        uint16_t guest_port;
        uint16_t host_port;       /* 0: not chosen yet (the VM has not run since) */
        char bind_addr[46];       /* INET6_ADDRSTRLEN */
        bool active;              /* the supervisor listens on host_port now */
        unsigned connections;     /* connections it relays now (0 when not active) */
} smolvm_port_info;

/* The recorded forwards, in the order they were added, with whether each is
 * listening and how many connections it relays (asked of the running VM's
 * supervisor). *ret is malloc'd (free()), NULL when *ret_n is 0. Returns 0,
 * SMOLVM_ECORRUPT (ports.json unreadable), ... */
SMOLVM_EXPORT int smolvm_port_list(smolvm_vm *vm, smolvm_port_info **ret, size_t *ret_n);

/* Stop forwarding guest_port: the listener closes at once (connections already
 * relayed go on until they end) and the record goes. Returns 0,
 * SMOLVM_ENOTFOUND (not forwarded), ... */
SMOLVM_EXPORT int smolvm_port_close(smolvm_vm *vm, uint16_t guest_port);

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

#ifdef __cplusplus
}
#endif
