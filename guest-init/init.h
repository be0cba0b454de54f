/* SPDX-License-Identifier: Apache-2.0 */
/* Private interfaces between the parts of smolvm-init (guest PID 1 and agent). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "evloop.h"
#include "request.h"

/* Log to stderr (the console for PID 1 and its handlers), prefixed "smolvm-init: ". */
void init_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Guest CLOCK_BOOTTIME in milliseconds (includes time before init started). */
uint64_t boottime_ms(void);

/* setup.c: everything before "the line". Never returns on failure (powers off). */
void setup_system(void);
/* Print the message and power the VM off. Only before the line, or from a handler. */
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log.c: the kernel command line. fn(value, ud) for each key=value on
 * /proc/cmdline, in order (value may be changed in place). */
void cmdline_foreach(const char *key, void (*fn)(char *value, void *ud), void *ud);
/* Value of the last key=... on /proc/cmdline (malloc'd) or NULL. */
char *cmdline_get(const char *key);

/* channel.c: the virtio-serial channel and AF_VSOCK listener of PID 1. */
typedef struct agent_channel agent_channel;
int agent_channel_new(smolvm_evloop *loop, uint32_t init_start_ms, uint32_t ready_ms, agent_channel **ret);
/* Called from PID 1's loop between dispatch rounds: reopen a broken or not yet
 * connected channel. Returns the poll timeout (ms) the channel wants, or -1. */
int agent_channel_tick(agent_channel *ch);
/* The channel's mux while the host is connected, else NULL. */
struct smolvm_mux;
struct smolvm_mux *agent_channel_mux(agent_channel *ch);
/* A SIGIO arrived: the host side of the port connected or disconnected. */
void agent_channel_sigio(agent_channel *ch);
/* How many times the channel broke since boot (a restored VM's first thing:
 * every stream of the old session ends). Shared with the handler processes
 * (a MAP_SHARED page made by agent_channel_new, before any handler forks), so
 * a fuse_mount relay whose stream ended can tell a channel reset, after which
 * its mount is reattached, from its server ending. */
uint32_t agent_channel_generation(void);
void agent_channel_generation_init(void); /* agent_channel_new: the shared page */
void agent_channel_generation_bump(void); /* the channel breaks (channel.c), before its streams are reset */

/* lane.c: the lane's device, when the VMM gives it (docs/protocol.md, "The
 * lane"). agent_lane_open: its interface up and a packet socket on it, or
 * -ENODEV without the device (*ret NULL; logged when it fails otherwise).
 * agent_lane_request: ask the host to switch a new channel's host -> guest
 * bytes to the lane (a new epoch). */
typedef struct agent_lane agent_lane;
int agent_lane_open(agent_lane **ret);
int agent_lane_request(agent_lane *l, struct smolvm_mux *mux);

/* net_egress.c: egress by name (docs/protocol.md, "Egress"), when the kernel
 * command line says smolvm.net=1: every TCP connection and DNS question goes to
 * the host's egress port. *ret stays NULL when off. Failures are logged (the
 * guest then has no network); returns 0 or -ENOMEM. */
typedef struct net_egress net_egress;
int net_egress_start(smolvm_evloop *loop, agent_channel *ch, net_egress **ret);

/* handler.c: serve one stream (one operation) in a child process of PID 1.
 * Runs in the forked child; returns the exit status for _exit(). */
int agent_handle_stream(int fd);
/* Fork a handler for fd. PID 1 keeps nothing of fd (the caller closes its copy).
 * Returns the child pid or negative errno. */
int agent_spawn_handler(int fd);

/* exec.c: run one exec request on a stream fd (blocking, the caller's process). */
int agent_exec(int fd, const agent_exec_spec *spec);

/* execlog.c: exec logs, <agent_exec_log_dir>/<pid>.log (SMOLVM_EXEC_LOG_DIR
 * except in tests): a detached command's output, and what an exec's background
 * processes write after it ended. */
extern const char *agent_exec_log_dir;
/* The log's path for pid. Returns 0 or -ENAMETOOLONG. */
int agent_exec_log_path(pid_t pid, char *buf, size_t len);
/* Create (or truncate) pid's log, mode 0644, and its directory. Returns the
 * fd (O_APPEND) or a negative errno. */
int agent_exec_log_open(pid_t pid);
/* Append what fds[0..n_fds) (at most 4) deliver to pid's log until each one
 * reaches EOF, then close them. log_fd: the open log (taken), or -1 to create
 * it at the first byte (no output, no file). Bounded: the log is rotated to
 * <pid>.log.1 at 4 MiB. Blocks; errors are logged and the output dropped. */
void agent_exec_log_pump(pid_t pid, int log_fd, int *fds, size_t n_fds);

/* pty.c: terminals for exec's "tty". */
/* Open a pty pair (both O_CLOEXEC, the slave O_NOCTTY) of rows x cols (0:
 * left as the kernel makes it). Returns 0 or a negative errno. */
int agent_pty_open(uint16_t rows, uint16_t cols, int *ret_master, int *ret_slave);
/* Set the window size (TIOCSWINSZ; ignored when rows or cols is 0): the
 * foreground process group gets SIGWINCH. Returns 0 or a negative errno. */
int agent_pty_set_size(int master, uint16_t rows, uint16_t cols);
/* Send sig to every process of session sid (its process groups: a shell's
 * jobs each have their own). */
void agent_kill_session(pid_t sid, int sig);

/* The ops below take the parsed request (request.h) and are served through
 * handler.c's table, one per agent_op.
 * fileops.c: write_file, read_file, mkdir, list_tree on a stream fd (blocking).
 * Each sends its RESULT or ERROR; returns 0 or a negative errno (for the exit
 * status only: the client has been answered if it could be). */
int agent_write_file(int fd, const agent_request *req);
int agent_read_file(int fd, const agent_request *req);
int agent_mkdir(int fd, const agent_request *req);
int agent_list_tree(int fd, const agent_request *req);

/* fuseops.c: FUSE over the stream (docs/protocol.md, "FUSE over vsock").
 * fuse_mount: mount a FUSE file system at req->file.path whose server is the client,
 * relaying /dev/fuse <-> fd until either ends, then detach the mount.
 * fuse_serve: serve req->file.path read-only to the client's FUSE requests on fd.
 * Each answers RESULT {"ok":true} (or ERROR) first; returns 0 or negative errno. */
int agent_fuse_mount(int fd, const agent_request *req);
int agent_fuse_serve(int fd, const agent_request *req);
/* Raise (virtio-fs mounts too, mounts.c) the readahead window of the FUSE mount at path (for the log), whose
 * files have st_dev dev_major:dev_minor, to the server's READ size. Best effort. */
void agent_raise_readahead(const char *path, unsigned dev_major, unsigned dev_minor);

/* fuserelay.c: PID 1 relays the fuse_mount mounts in its own loop. A handler
 * hands over, on PID 1's socket (root only): ADOPT (path, /dev/fuse fd, stream
 * fd) after its mount; REATTACH (path, the new server's stream) after a
 * channel reset; WAITING (path): is a mount there waiting for a new server?
 * agent_fuse_handoff returns 0 (the fds were passed: PID 1 has its own copies)
 * or negative errno: -ECONNREFUSED/-ENOENT when PID 1 does not listen (not
 * PID 1, e.g. the unit suites) or has no such mount, -EMFILE when it relays
 * too many already; the caller then relays in its own process. */
typedef enum agent_fuse_handoff_kind {
        AGENT_FUSE_ADOPT = 1,
        AGENT_FUSE_REATTACH = 2,
        AGENT_FUSE_WAITING = 3,
} agent_fuse_handoff_kind;
/* How long a mount whose stream a channel reset ended waits for a new server. */
#define AGENT_FUSE_REATTACH_WAIT_MS 60000
int agent_fuse_handoff(agent_fuse_handoff_kind kind, const char *path, int dev_fd, int stream_fd);
/* PID 1: listen for handoffs on loop. Returns 0 or negative errno. */
int agent_fuse_relays_start(smolvm_evloop *loop);
/* PID 1, between dispatch rounds: abort the mounts that waited too long for a
 * new server. Returns ms until the next such deadline, or -1. */
int agent_fuse_relays_tick(void);

/* fuseabort.c: fuse_abort: the file server of the mount at req->file.path is gone;
 * make accesses fail (ENOTCONN) instead of hanging: abort its FUSE connection
 * through fusectl (mounted if needed), or for virtio-fs, which has no fusectl
 * entry, cover the mount with an aborted FUSE mount. Answers RESULT {"ok":
 * true, "method": "abort"|"fence", "fstype": ..., ...} or ERROR; returns 0 or
 * negative errno. */
int agent_fuse_abort(int fd, const agent_request *req);

/* net_port.c: port_connect (docs/protocol.md): connect to the guest's
 * 127.0.0.1:req->port (::1 if that is refused), answer RESULT, then relay raw
 * bytes stream <-> TCP until both directions ended (half-close passed through).
 * Returns 0 or a negative errno. */
int agent_port_connect(int fd, const agent_request *req);
/* restore.c: a restored VM's identity (wire.h SMOLVM_CHAN_OP_IDENTITY). */
typedef struct agent_identity {
        int64_t realtime_ns;                   /* the host's CLOCK_REALTIME; 0: keep the clock */
        uint8_t entropy[64];                   /* host randomness for the kernel RNG */
        char machine_id[33];                   /* 32 lowercase hex digits; "" keeps it */
        char hostname[AGENT_HOSTNAME_MAX + 1]; /* valid (agent_hostname_valid) */
} agent_identity;
/* Parse and validate an IDENTITY payload (hostile bytes): 0, or -EBADMSG (size,
 * padding), -EOPNOTSUPP (unknown flags), -ERANGE (clock), -EINVAL (hostname). */
int agent_identity_parse(const uint8_t *payload, uint32_t len, agent_identity *ret);
/* Mix the entropy into the kernel RNG and reseed it, step the clock, set the
 * hostname and machine-id (not fsynced). 0, or a negative errno with err
 * saying which step failed. */
int agent_identity_apply(const agent_identity *id, char *err, size_t err_len);
/* 32 lowercase hex digits, not all zero. */
bool agent_machine_id_valid(const char *hex);
/* /etc/machine-id (rewritten only when it differs, not fsynced: the host gives
 * it on every boot, smolvm.machine_id=). 0 or negative errno. */
int agent_set_machine_id(const char *hex);
/* restore.c: the VM's name for itself: the kernel's hostname, /etc/hostname and
 * the 127.0.1.1 line of /etc/hosts (what resolves it), the same for a boot
 * (smolvm.hostname= from the supervisor) and a restore. 0 or negative errno. */
int agent_set_hostname(const char *name);
/* What fuse_abort reads and opens: "/proc/self/mountinfo",
 * "/sys/fs/fuse/connections" and "/dev/fuse" except in tests. */
extern const char *agent_mountinfo_path;
extern const char *agent_fusectl_dir;
extern const char *agent_fuse_dev;

/* envstore.c: the persistent environment (env_set/env_unset/env_list). */
/* Where "/etc" is: <agent_etc_dir>/smolvm/env.json and <agent_etc_dir>/profile.d/
 * smolvm-env.sh. "/etc" except in tests. */
extern const char *agent_etc_dir;
/* Serve an env_* request (answers RESULT or ERROR). */
int agent_env_op(int fd, const agent_request *req);
/* Rebuild spec->envp as base env + stored env + the request's own env. On
 * failure (logged by the caller) spec is unchanged. Returns 0 or negative errno. */
int agent_env_apply_stored(agent_exec_spec *spec);

/* mounts.c: mount the host directories named by smolvm.mount=TAG:PATH:ro|rw
 * kernel arguments (virtio-fs). Best effort: logs failures, never fatal. */
void setup_mounts(void);
/* Split one smolvm.mount value in place. Returns 0 or -EINVAL. */
int mount_arg_parse(char *value, const char **ret_tag, const char **ret_path, bool *ret_ro);

/* modules.c: kernel modules (docs/internals.md, "Initramfs layout"). One line
 * of the order file: "NAME.ko [virtio:ID...] [demand]". No condition: always
 * loaded at boot; virtio:ID: at boot if a virtio device of that ID exists;
 * demand: otherwise kept in agent_modules_dir and loaded on first use. */
typedef struct module_line {
        const char *name;     /* points into the parsed line */
        bool always;
        bool demand;
        uint64_t virtio_mask; /* bit N: wanted if virtio device ID N is present */
} module_line;
/* Parse one line in place. Returns 1 (ret filled), 0 (blank or comment) or -EINVAL. */
int module_line_parse(char *line, module_line *ret);
bool module_wanted_at_boot(const module_line *m, uint64_t virtio_present);
/* Bit mask of the virtio device IDs under sys_dir (/sys/bus/virtio/devices). */
uint64_t virtio_devices_present(const char *sys_dir);
/* Demand modules not loaded at boot, held open across switch_root. */
typedef struct module_stash {
        size_t n;
        int fds[8];
        char names[8][64];
} module_stash;
/* Load the boot modules from dir (fatal if virtio_blk or ext4 fails); open the
 * demand modules not needed now into ret_stash. */
void modules_load_boot(const char *dir, module_stash *ret_stash);
/* Whether modules_load_boot() left name ("vsock.ko") out: then its feature is
 * absent, and probing it would only make the kernel try to run modprobe. */
bool module_skipped_at_boot(const char *name);
/* After /run is mounted: copy the stashed modules to agent_modules_dir (with an
 * order file) and close them. */
void modules_keep(module_stash *stash);
/* Load every kept module not loaded yet, in order (fuse before /dev/fuse is
 * used). Returns 0 (also when nothing was kept) or the first negative errno. */
int modules_load_demand(void);
/* "/run/smolvm/modules" except in tests. */
extern const char *agent_modules_dir;

/* growfs.c: grow the root ext4 filesystem online when its block device is
 * larger (the host made the overlay bigger). Best effort: logs failures. */
void grow_root_fs(const char *dev);
/* Size in bytes of the ext4 filesystem whose superblock (the 1024 bytes at
 * offset 1024 of the device) is sb. Returns 0, or -EINVAL if it is not ext4. */
int ext4_superblock_fs_bytes(const uint8_t *sb, size_t sb_len, uint64_t *ret_bytes);
