/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-supervisor: one process per VM. Owns QEMU, the sockets and the VM
 * directory; reports readiness on --ready-fd; serves hybrid vsock until the VM
 * stops. Contract: docs/internals.md, "Supervisor". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accel.h"
#include "config.h"
#include "console.h"
#include "evloop.h"
#include "fsabort.h"
#include "fsd.h"
#include "hvsock.h"
#include "log.h"
#include "mux.h"
#include "qemu.h"
#include "util.h"
#include "vsockfs.h"
#include "wire.h"

#define CHAN_NAME "org.smolvm.chan0"
#define BOOT_TIMEOUT_TCG_MS 60000u
#define BOOT_TIMEOUT_KVM_MS 10000u
/* After the channel breaks during boot, how long to wait for QEMU's exit: a
 * panicking guest closes the channel a moment before QEMU is reaped, and "kernel
 * stopped" with the console tail is the more useful message. */
#define BROKEN_GRACE_MS 1000u
/* A virtio-fs back-end exits 0 when QEMU disconnects from it: QEMU going away
 * (reported as such once reaped), or a guest reset. Wait that long for QEMU's
 * exit before taking it for the back-end failing. */
#define FSD_CLEAN_EXIT_GRACE_MS 1000u
/* The files we may create in the VM dir; with --ephemeral, also what we delete
 * (only these: never a recursive delete of a directory someone configured). */
static const char *const vm_dir_files[] = {
        "vsock.sock", "chan.sock", "console.log", "qemu.log", "overlay.qcow2",
        "config.json", "supervisor.pid", "supervisor.log",
        /* libsmolvm's: the record, its lock, run state (lifecycle.c) */
        "qmp.sock", "vm.json", "lock", "boot.json", "paused", "failed", "env.applied",
};

enum exit_code {
        EXIT_OK = 0,
        EXIT_VM_FAILED = 1,
        EXIT_USAGE = 2,
};

typedef struct sup {
        /* command line */
        const char *vm_dir;
        bool ephemeral;
        int ready_fd; /* -1 once the ready line is written */

        sup_config cfg;
        uint64_t boot_timeout_ms; /* the config's, or the accelerator's default */
        smolvm_accel_choice accel;

        bool created_overlay;
        smolvm_evloop *loop;
        int sig_fd;
        int chan_listen_fd;
        sup_console *con;
        sup_hvsock *hv;
        sup_vmm *vmm;
        smolvm_mux *mux;
        sup_fsd *fsd[SUP_MAX_MOUNTS]; /* cfg.n_mounts virtio-fs back-ends */
        bool fsd_exited[SUP_MAX_MOUNTS];     /* reaped */
        uint64_t fsd_due_ms[SUP_MAX_MOUNTS]; /* when to act on that exit */
        bool fsd_reported[SUP_MAX_MOUNTS];   /* acted on: boot failed, or the guest told */
        sup_fsabort *fsabort[SUP_MAX_MOUNTS]; /* fuse_abort sent for a dead back-end's mount */
        struct fsabort_ctx {
                struct sup *s;
                size_t index;
        } fsabort_ctx[SUP_MAX_MOUNTS];
        sup_vsockfs *vfs[SUP_MAX_MOUNTS]; /* cfg.n_mounts FUSE-over-vsock mounts */
        bool mounting;                     /* HELLO seen, vsock mounts not all answered */
        uint64_t mount_deadline_ms;

        bool running; /* HELLO seen, ready line written */
        bool stop;    /* termination signal received */
        int stop_signal;

        /* boot timeline, monotonic ms */
        uint64_t t_start, t_spawn, t_chan, t_hello, deadline_ms, broken_deadline_ms;
        bool hello;
        uint32_t hello_version, guest_init_start_ms, guest_ready_ms;
        bool hello_has_times;

        bool mux_broken;
        int mux_err;
        const char *mux_why;

        char failed_why[512]; /* the first failure: written to DIR/failed (libsmolvm's `info`) */
} sup;

static char *vm_path(const sup *s, const char *name)
{
        char *p;
        if (asprintf(&p, "%s/%s", s->vm_dir, name) < 0) {
                fprintf(stderr, "smolvm-supervisor: out of memory\n");
                exit(EXIT_VM_FAILED);
        }
        return p;
}

/* ---- the ready line ---- */

static void ready_write(sup *s, json_t *obj)
{
        _cleanup_free_ char *line = NULL;

        if (s->ready_fd < 0 || !obj) {
                json_decref(obj);
                return;
        }
        line = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        if (line) {
                size_t n = strlen(line);
                line[n] = '\n'; /* json_dumps' NUL becomes the newline; length passed explicitly */
                if (write_all(s->ready_fd, line, n + 1) < 0)
                        sup_log("ready fd: write: %m");
        }
        s->ready_fd = safe_close(s->ready_fd);
}

/* Report a failure: to the ready fd if nobody got a ready line yet, always to the log. */
static void fail(sup *s, bool with_console, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void fail(sup *s, bool with_console, const char *hint, const char *fmt, ...)
{
        char error[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(error, sizeof(error), fmt, ap);
        va_end(ap);
        sup_log("error: %s", error);
        if (!s->failed_why[0])
                snprintf(s->failed_why, sizeof(s->failed_why), "%s", error);
        if (s->ready_fd < 0) {
                if (sup_log_is_open()) /* else sup_log() already wrote it to stderr */
                        fprintf(stderr, "smolvm-supervisor: %s\n", error);
                return;
        }
        json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", error);
        if (o && hint)
                json_object_set_new(o, "hint", json_string(hint));
        if (o && with_console && s->con) {
                char tail[SUP_CONSOLE_TAIL_BYTES + 1];
                sup_console_drain(s->con);
                sup_console_tail(s->con, tail, sizeof(tail));
                json_object_set_new(o, "console_tail", json_string(tail));
        }
        ready_write(s, o);
}

static int64_t ms_diff(uint64_t later, uint64_t earlier)
{
        return later >= earlier ? (int64_t)(later - earlier) : 0;
}

/* The boot time split (all ms; boot_ms = t_prep + t_vmm + t_kernel + t_init):
 *   boot_ms     supervisor start -> guest HELLO received (agent ready, as the host sees it)
 *   t_prep_ms   supervisor start -> QEMU spawned (config, overlay creation, sockets)
 *   t_vmm_ms    QEMU spawned -> QEMU connected to chan.sock (QEMU's own startup: it
 *               creates chardevs before the machine, so this is process + device setup)
 *   t_kernel_ms chan.sock connect -> guest init started: machine reset, firmware,
 *               kernel load and decompression, kernel boot. Derived: the host-measured
 *               connect->HELLO interval minus the guest-measured init->ready interval.
 *   t_init_ms   init started -> agent ready (guest CLOCK_BOOTTIME: module loading,
 *               mounts, agent setup), from HELLO's init_start_ms/ready_ms
 *   t_agent_ms  reserved, 0: the guest reports a single init->ready interval today
 * guest_init_start_ms is the guest's own uptime at init start (kernel boot time as
 * the guest clock saw it; t_kernel_ms minus it ~ firmware + decompression). */
static void ready_ok(sup *s)
{
        int64_t t_init = 0, t_kernel;

        if (s->hello_has_times && s->guest_ready_ms >= s->guest_init_start_ms)
                t_init = (int64_t)(s->guest_ready_ms - s->guest_init_start_ms);
        t_kernel = ms_diff(s->t_hello, s->t_chan) - t_init;
        if (t_kernel < 0)
                t_kernel = 0;

        json_t *o = json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "ok", 1,
                              "accel", smolvm_accel_name(s->accel.accel),
                              "accel_reason", s->accel.reason,
                              "boot_ms", (json_int_t)ms_diff(s->t_hello, s->t_start),
                              "t_prep_ms", (json_int_t)ms_diff(s->t_spawn, s->t_start),
                              "t_vmm_ms", (json_int_t)ms_diff(s->t_chan, s->t_spawn),
                              "t_kernel_ms", (json_int_t)t_kernel,
                              "t_init_ms", (json_int_t)t_init,
                              "t_agent_ms", (json_int_t)0,
                              "vmm_pid", (json_int_t)sup_vmm_pid(s->vmm));
        if (o && s->hello_has_times) {
                json_object_set_new(o, "guest_init_start_ms", json_integer(s->guest_init_start_ms));
                json_object_set_new(o, "guest_ready_ms", json_integer(s->guest_ready_ms));
        }
        sup_log("guest agent ready: boot %lld ms (prep %lld, vmm %lld, kernel %lld, init %lld)",
                (long long)ms_diff(s->t_hello, s->t_start), (long long)ms_diff(s->t_spawn, s->t_start),
                (long long)ms_diff(s->t_chan, s->t_spawn), (long long)t_kernel, (long long)t_init);
        ready_write(s, o);
}

/* ---- config.json ---- */

static int config_load(sup *s)
{
        _cleanup_free_ char *path = vm_path(s, "config.json");
        char err[512];
        int r;

        r = sup_config_load(path, &s->cfg, err, sizeof(err));
        if (r < 0) {
                fail(s, false, "libsmolvm writes config.json before it starts the supervisor", "%s", err);
                return r;
        }
        r = smolvm_accel_choose(s->cfg.accel, &s->accel);
        if (r < 0) {
                fail(s, false, s->accel.hint, "%s", s->accel.reason);
                return r;
        }
        s->boot_timeout_ms = s->cfg.boot_timeout_ms ? s->cfg.boot_timeout_ms
                             : s->accel.accel == SMOLVM_ACCEL_KVM ? BOOT_TIMEOUT_KVM_MS
                                                                  : BOOT_TIMEOUT_TCG_MS;
        const char *need[] = { s->cfg.kernel, s->cfg.initrd, s->cfg.rootfs };
        for (size_t i = 0; i < ARRAY_SIZE(need); i++)
                if (access(need[i], R_OK) < 0) {
                        fail(s, false, "build the image with `smolvm image build`", "%s: %m", need[i]);
                        return -ENOENT;
                }
        return 0;
}

/* ---- VM dir files ---- */

/* Another live supervisor on this VM dir? (Its sockets would be stolen by ours.)
 * Returns its pid, or 0. */
static pid_t running_supervisor(sup *s)
{
        _cleanup_free_ char *path = vm_path(s, "supervisor.pid");
        char buf[32], comm_path[64], comm[32];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        long pid;

        if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
                return 0;
        buf[n] = '\0';
        pid = strtol(buf, NULL, 10);
        if (pid <= 0 || pid > INT_MAX || pid == getpid() || kill((pid_t)pid, 0) < 0)
                return 0;
        /* A stale file whose pid was reused by something else is not a conflict. */
        snprintf(comm_path, sizeof(comm_path), "/proc/%ld/comm", pid);
        safe_close(fd);
        fd = open(comm_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (n = read(fd, comm, sizeof(comm) - 1)) <= 0)
                return 0;
        comm[n] = '\0';
        return strncmp(comm, "smolvm-supervis", 15) == 0 ? (pid_t)pid : 0;
}

static int write_pid_file(sup *s)
{
        _cleanup_free_ char *path = vm_path(s, "supervisor.pid"), *tmp = vm_path(s, ".supervisor.pid.tmp");
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0 || write_all(fd, buf, (size_t)n) < 0 || rename(tmp, path) < 0) {
                int r = negative_errno();
                (void)unlink(tmp);
                return r;
        }
        return 0;
}

static int prepare_overlay(sup *s)
{
        _cleanup_free_ char *overlay = vm_path(s, "overlay.qcow2");
        uint64_t size_bytes = 0;
        struct stat st;
        char err[512];
        int r;

        if (access(overlay, F_OK) == 0)
                return 0; /* a persistent VM restarting keeps its disk */
        if (s->cfg.disk_mib && stat(s->cfg.rootfs, &st) == 0 && s->cfg.disk_mib * 1024 * 1024 > (uint64_t)st.st_size)
                size_bytes = s->cfg.disk_mib * 1024 * 1024;
        r = sup_vmm_create_overlay(s->cfg.rootfs, overlay, size_bytes, err, sizeof(err));
        if (r == -ENOENT)
                fail(s, false, "install it: apt-get install qemu-utils", "qemu-img not found");
        else if (r == -ENOSPC)
                fail(s, false, "free some space there, or point SMOLVM_HOME at a bigger filesystem",
                     "disk full: no space left in %s to create overlay.qcow2", s->vm_dir);
        else if (r < 0)
                fail(s, false, NULL, "creating %s: %s", overlay, err[0] ? err : strerror(-r));
        else
                s->created_overlay = true;
        return r;
}

/* First line of qemu.log, for "QEMU failed to start" errors (the file may be gone
 * with --ephemeral by the time anyone looks). */
static void qemu_log_first_line(sup *s, char *buf, size_t len)
{
        _cleanup_free_ char *path = vm_path(s, "qemu.log");
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        buf[0] = '\0';
        if (fd < 0 || (n = read(fd, buf, len - 1)) <= 0)
                return;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
}

/* ---- the channel: QEMU connects to chan.sock ---- */

static void on_hello(void *userdata, const uint8_t *payload, uint32_t len)
{
        sup *s = userdata;

        if (s->hello)
                return; /* the agent restarting in the guest: nothing to report again */
        s->hello = true;
        s->t_hello = now_ms();
        s->hello_version = get_le32(payload);
        if (len >= 16) {
                s->hello_has_times = true;
                s->guest_init_start_ms = get_le32(payload + 8);
                s->guest_ready_ms = get_le32(payload + 12);
        }
}

static void on_broken(void *userdata, int err, const char *why)
{
        sup *s = userdata;

        if (s->mux_broken)
                return;
        s->mux_broken = true;
        s->mux_err = err;
        s->mux_why = why;
        /* EOF is also what a clean guest poweroff looks like until QEMU is reaped:
         * give QEMU a moment to exit. A framing violation is hostile: act now. */
        s->broken_deadline_ms = now_ms() + (err == -EMSGSIZE || err == -EPROTO ? 0 : BROKEN_GRACE_MS);
        sup_log("guest channel broken: %s (%s)", why, strerror(err < 0 ? -err : err));
}

static const smolvm_mux_ops mux_ops = {
        .accept = NULL, /* the guest may not open streams to the host (yet) */
        .hello = on_hello,
        .broken = on_broken,
};

static void chan_accept_cb(void *userdata, int lfd, uint32_t events)
{
        sup *s = userdata;
        struct ucred cred;
        socklen_t cred_len = sizeof(cred);
        int fd, r;

        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        /* The VM dir is private, but be exact: only our QEMU may be the guest. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || !s->vmm ||
            cred.pid != sup_vmm_pid(s->vmm)) {
                sup_log("chan.sock: connection from pid %d is not our QEMU, closing", (int)cred.pid);
                safe_close(fd);
                return;
        }
        s->t_chan = now_ms();
        (void)smolvm_evloop_del(s->loop, s->chan_listen_fd);
        s->chan_listen_fd = safe_close(s->chan_listen_fd);
        r = smolvm_mux_new(s->loop, fd, true, &mux_ops, s, NULL, 0, &s->mux);
        if (r < 0) {
                sup_log("creating the channel mux: %s", strerror(-r));
                on_broken(s, r, "cannot create the channel mux");
        }
}

static int chan_listen(sup *s)
{
        _cleanup_free_ char *path = vm_path(s, "chan.sock");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        s->chan_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->chan_listen_fd < 0)
                return negative_errno();
        (void)unlink(path);
        /* QEMU connects once, synchronously, while it starts: backlog 1 suffices. */
        if (bind(s->chan_listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->chan_listen_fd, 1) < 0)
                return negative_errno();
        r = smolvm_evloop_add(s->loop, s->chan_listen_fd, EPOLLIN, chan_accept_cb, s);
        return r;
}

/* ---- signals ---- */

static void signal_cb(void *userdata, int fd, uint32_t events)
{
        sup *s = userdata;
        struct signalfd_siginfo si;

        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                        continue; /* reaped in the main loop */
                if (!s->stop)
                        sup_log("received %s, stopping the VM", strsignal((int)si.ssi_signo));
                s->stop = true;
                s->stop_signal = (int)si.ssi_signo;
        }
}

/* ---- lifecycle ---- */

static void describe_exit(int wstatus, char *buf, size_t len)
{
        if (WIFSIGNALED(wstatus))
                snprintf(buf, len, "killed by signal %d", WTERMSIG(wstatus));
        else
                snprintf(buf, len, "exit status %d", WEXITSTATUS(wstatus));
}

/* Stop QEMU, close and free everything, remove what must not outlive us. */
/* We are a child subreaper (see main()): a back-end's sandboxed server runs as
 * PID 1 of its own PID namespace under an outer process, and when the group is
 * killed it can outlive that parent by a moment and be reparented to us. Reap
 * every such descendant, bounded, so that nothing of the VM is left, not even
 * a zombie waiting for the host's init. */
static void reap_orphans(void)
{
        uint64_t deadline = now_ms() + 2000;
        for (;;) {
                pid_t p = waitpid(-1, NULL, WNOHANG);
                if (p > 0 || (p < 0 && errno == EINTR))
                        continue;
                if (p < 0 || now_ms() >= deadline) /* ECHILD: none left */
                        return;
                (void)usleep(10000);
        }
}

static void teardown(sup *s, bool failed)
{
        sup_hvsock_free(s->hv);
        s->hv = NULL;
        smolvm_mux_free(s->mux);
        s->mux = NULL;
        /* After the mux: a pending connect calls back into its mount. */
        for (size_t i = 0; i < SUP_MAX_MOUNTS; i++) {
                sup_vsockfs_free(s->vfs[i]); /* SIGKILL the server + reap: its stream ends */
                s->vfs[i] = NULL;
                sup_fsabort_free(s->fsabort[i]);
                s->fsabort[i] = NULL;
        }
        sup_vmm_free(s->vmm); /* SIGKILL + reap */
        s->vmm = NULL;
        /* After QEMU: a back-end dying first would look like a failure to it. */
        for (size_t i = 0; i < SUP_MAX_MOUNTS; i++) {
                sup_fsd_free(s->fsd[i]); /* SIGKILL the group + reap, removes fs-N.sock */
                s->fsd[i] = NULL;
        }
        reap_orphans();
        sup_console_free(s->con);
        s->con = NULL;
        if (s->chan_listen_fd >= 0) {
                (void)smolvm_evloop_del(s->loop, s->chan_listen_fd);
                s->chan_listen_fd = safe_close(s->chan_listen_fd);
        }
        if (s->sig_fd >= 0) {
                (void)smolvm_evloop_del(s->loop, s->sig_fd);
                s->sig_fd = safe_close(s->sig_fd);
        }
        smolvm_evloop_free(s->loop);
        s->loop = NULL;
        size_t n_mounts = s->cfg.n_mounts;
        sup_config_done(&s->cfg);

        if (s->ephemeral) {
                sup_log_close();
                for (size_t i = 0; i < ARRAY_SIZE(vm_dir_files); i++) {
                        _cleanup_free_ char *p = vm_path(s, vm_dir_files[i]);
                        (void)unlink(p);
                }
                for (size_t i = 0; i < n_mounts; i++) {
                        char name[48];
                        snprintf(name, sizeof(name), "virtiofsd-%zu.log", i);
                        _cleanup_free_ char *p = vm_path(s, name);
                        (void)unlink(p);
                }
                if (rmdir(s->vm_dir) < 0)
                        fprintf(stderr, "smolvm-supervisor: rmdir %s: %m\n", s->vm_dir);
                return;
        }
        /* Persistent VM: the disk and the logs stay; nothing may connect any more.
         * A failed run leaves "failed", so the VM's derived state reads "error". */
        if (failed) {
                _cleanup_free_ char *p = vm_path(s, "failed");
                _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0 && s->failed_why[0])
                        (void)write_all(fd, s->failed_why, strlen(s->failed_why));
        }
        const char *gone[] = { "vsock.sock", "chan.sock", "qmp.sock", "paused", "supervisor.pid" };
        for (size_t i = 0; i < ARRAY_SIZE(gone); i++) {
                _cleanup_free_ char *p = vm_path(s, gone[i]);
                (void)unlink(p);
        }
        /* Only a boot that never ran: a VM that ran keeps its disk whatever killed it. */
        if (failed && s->created_overlay && !s->running) {
                _cleanup_free_ char *p = vm_path(s, "overlay.qcow2");
                (void)unlink(p);
        }
        sup_log("stopped");
        sup_log_close();
}

/* FUSE-over-vsock mounts, between the guest's HELLO and the ready line, so that a
 * command run right after start sees them: start all (the guest mounts them in
 * parallel), then wait for every answer. Returns 1 when all are mounted, 0 while
 * waiting, or -1 after fail() (the boot fails: a mount the user asked for is
 * missing). */
static int vsock_mounts_step(sup *s, uint64_t now)
{
        char err[768];
        int r, n_ok = 0;

        if (!s->mounting) {
                s->mounting = true;
                s->mount_deadline_ms = now + SUP_VSOCKFS_MOUNT_TIMEOUT_MS + 1000;
                for (size_t i = 0; i < s->cfg.n_mounts; i++) {
                        char name[48];
                        snprintf(name, sizeof(name), "virtiofsd-%zu.log", i);
                        _cleanup_free_ char *log_path = vm_path(s, name);
                        r = sup_vsockfs_start(s->loop, s->mux, (unsigned)i, &s->cfg.mounts[i], log_path, &s->vfs[i],
                                              err, sizeof(err));
                        if (r < 0) {
                                fail(s, false, NULL, "%s", err);
                                return -1;
                        }
                }
        }
        for (size_t i = 0; i < s->cfg.n_mounts; i++) {
                r = sup_vsockfs_state(s->vfs[i], err, sizeof(err));
                if (r < 0) {
                        char hint[PATH_MAX + 96];
                        snprintf(hint, sizeof(hint), "see the guest console below and %s/virtiofsd-%zu.log",
                                 s->vm_dir, i);
                        fail(s, true, hint, "%s", err);
                        return -1;
                }
                n_ok += r;
        }
        if ((size_t)n_ok == s->cfg.n_mounts) {
                sup_log("%d mount(s) served over vsock", n_ok);
                return 1;
        }
        /* The servers give up on their own at SUP_VSOCKFS_MOUNT_TIMEOUT_MS; this
         * is the backstop. */
        if (now >= s->mount_deadline_ms) {
                fail(s, true, "see the guest console below", "the guest agent did not mount the vsock mounts within %u s",
                     SUP_VSOCKFS_MOUNT_TIMEOUT_MS / 1000);
                return -1;
        }
        return 0;
}

/* Mount i's server process, whichever the transport (NULL if none). */
static sup_fsd *mount_server(const sup *s, size_t i)
{
        if (s->cfg.mounts_vsock)
                return s->vfs[i] ? sup_vsockfs_fsd(s->vfs[i]) : NULL;
        return s->fsd[i];
}

/* Descendants reparented to us (we are a child subreaper): a back-end's
 * sandboxed server outlives its parent by a moment when that parent dies.
 * Reap them as they come, so no zombie waits for teardown (reap_orphans), but
 * never the children we track, whose owners want their exit status: peek
 * first (WNOWAIT). */
static void reap_strays(sup *s)
{
        for (;;) {
                siginfo_t si = { 0 };
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
                        return;
                if (s->vmm && si.si_pid == sup_vmm_pid(s->vmm))
                        return;
                for (size_t i = 0; i < s->cfg.n_mounts; i++)
                        if (mount_server(s, i) && si.si_pid == sup_fsd_pid(mount_server(s, i)))
                                return;
                (void)waitpid(si.si_pid, NULL, WNOHANG);
        }
}

static void fsabort_done(void *userdata, int err, const char *msg)
{
        struct fsabort_ctx *c = userdata;
        sup *s = c->s;
        const sup_mount *m = &s->cfg.mounts[c->index];
        char line[1024];

        if (err == 0)
                snprintf(line, sizeof(line),
                         "mount %zu (%s at %s): guest accesses to %s now fail with ENOTCONN (Transport endpoint "
                         "is not connected) instead of hanging: %s",
                         c->index, m->host, m->guest, m->guest, msg);
        else
                snprintf(line, sizeof(line),
                         "error: mount %zu (%s at %s): the guest could not abort the mount (%s)%s: guest accesses "
                         "to %s hang until the VM stops",
                         c->index, m->host, m->guest, msg,
                         err == -EOPNOTSUPP ? "; its smolvm-init predates fuse_abort: rebuild the image with "
                                              "`smolvm image build`"
                                            : "",
                         m->guest);
        sup_log("%s", line);
        sup_console_note(s->con, line);
}

/* Mount i's back-end died. During boot the boot fails: the user asked for the
 * mount and would get a VM where it hangs. Afterwards the VM keeps running:
 * we say so (supervisor.log, and console.log, which `smolvm logs` shows) and
 * send the agent fuse_abort, which makes accesses to the mount fail: QEMU 7.2
 * never fails the requests the guest sends to a back-end that went away, and
 * cannot be given a new one. Returns -1 after fail() when the boot fails,
 * else 0. */
static int fsd_died(sup *s, size_t i)
{
        const sup_mount *m = &s->cfg.mounts[i];
        const char *id = strrchr(s->vm_dir, '/') ? strrchr(s->vm_dir, '/') + 1 : s->vm_dir;
        sup_fsd *f = mount_server(s, i);
        char how[400], line[1536];
        int r;

        bool clean = sup_fsd_describe_exit(f, how, sizeof(how));
        if (!s->running) {
                fail(s, false,
                     "the server must run as long as the VM: if something killed it (the OOM killer: see dmesg), "
                     "start the VM again",
                     "the %s for %s exited during boot (%s)", sup_fsd_what(f), sup_fsd_desc(f), how);
                return -1;
        }
        if (s->cfg.mounts_vsock) {
                /* No fence needed: its end of the stream closed with it, so the
                 * guest's relay saw EOF and closed /dev/fuse, aborting the FUSE
                 * connection; the mount stays, and every access to it gets
                 * ENOTCONN. A clean exit is the stream ending from the guest's
                 * side (someone unmounted it). */
                if (clean)
                        snprintf(line, sizeof(line),
                                 "%s: the guest closed its FUSE stream (it was unmounted in the guest); its "
                                 "server exited",
                                 sup_fsd_desc(f));
                else
                        snprintf(line, sizeof(line),
                                 "error: the %s for %s exited (%s); the guest's accesses to %s now fail with "
                                 "ENOTCONN (Transport endpoint is not connected). To serve %s again, restart "
                                 "the VM (smolvm stop %s; smolvm start %s; an ephemeral VM must be run again); "
                                 "the server's log: %s/virtiofsd-%zu.log",
                                 sup_fsd_what(f), sup_fsd_desc(f), how, m->guest, m->host, id, id, s->vm_dir, i);
                sup_log("%s", line);
                if (!clean)
                        sup_console_note(s->con, line);
                return 0;
        }
        snprintf(line, sizeof(line),
                 "error: the virtio-fs server for %s exited (%s); the guest is told to fail accesses to %s "
                 "(ENOTCONN) instead of hanging. To serve %s again, restart the VM (smolvm stop %s; smolvm "
                 "start %s; an ephemeral VM must be run again); the server's log: %s/virtiofsd-%zu.log",
                 sup_fsd_desc(f), how, m->guest, m->host, id, id, s->vm_dir, i);
        sup_log("%s", line);
        sup_console_note(s->con, line);
        s->fsabort_ctx[i] = (struct fsabort_ctx){ .s = s, .index = i };
        r = sup_fsabort_start(s->loop, s->mux, m->guest, fsabort_done, &s->fsabort_ctx[i], &s->fsabort[i]);
        if (r < 0) {
                char why[128];
                snprintf(why, sizeof(why), "cannot open a stream to the guest agent: %s", strerror(-r));
                fsabort_done(&s->fsabort_ctx[i], r, why);
        }
        return 0;
}

/* One pass of the state machine after the loop dispatched. Returns -1 to keep
 * running, else the exit code. */
static int step(sup *s)
{
        uint64_t now = now_ms();
        char how[64];
        int wstatus, r;

        if (s->hello && !s->running) {
                if (s->hello_version != SMOLVM_CHAN_VERSION) {
                        fail(s, false, "rebuild the image with `smolvm image build` so smolvm-init matches this smolvm",
                             "guest agent speaks channel version %u, expected %u", s->hello_version,
                             SMOLVM_CHAN_VERSION);
                        return EXIT_VM_FAILED;
                }
                r = s->cfg.mounts_vsock ? vsock_mounts_step(s, now) : 1;
                if (r < 0)
                        return EXIT_VM_FAILED;
                if (r > 0) {
                        s->mounting = false;
                        s->running = true;
                        ready_ok(s);
                        sup_hvsock_set_mux(s->hv, s->mux);
                }
        }

        pid_t vmm_pid = s->vmm ? sup_vmm_pid(s->vmm) : 0; /* 0 once reaped */
        r = s->vmm ? sup_vmm_poll(s->vmm, &wstatus) : 0;
        if (r > 0) {
                describe_exit(wstatus, how, sizeof(how));
                if (s->running) {
                        /* A guest powering off (or panicking: panic=-1, -no-reboot) makes
                         * QEMU exit 0; anything else nobody asked for is a failure, and
                         * the VM's state must say so ("error"), not "stopped". */
                        if (!s->stop && (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)) {
                                const char *id = strrchr(s->vm_dir, '/') ? strrchr(s->vm_dir, '/') + 1 : s->vm_dir;
                                snprintf(s->failed_why, sizeof(s->failed_why),
                                         "QEMU (pid %d) died unexpectedly (%s): the VM stopped; `smolvm start %s` "
                                         "boots it again",
                                         (int)vmm_pid, how, id);
                                sup_log("error: %s", s->failed_why);
                                char line[600];
                                snprintf(line, sizeof(line), "error: %s", s->failed_why);
                                sup_console_note(s->con, line);
                                return EXIT_VM_FAILED;
                        }
                        sup_log("QEMU exited (%s): the VM stopped", how);
                        return EXIT_OK;
                }
                /* A guest that panics or powers off makes QEMU exit 0 (panic=-1 and
                 * -no-reboot); a non-zero exit is QEMU itself failing (it creates the
                 * chardevs, so connects to chan.sock, before it checks the devices). */
                char first[256];
                qemu_log_first_line(s, first, sizeof(first));
                if (!s->t_chan || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
                        fail(s, false, "see qemu.log in the VM dir", "%s failed to start (%s)%s%s", sup_vmm_binary(),
                             how, first[0] ? ": " : "", first);
                } else {
                        fail(s, true, "see the guest console below; rebuild the image with `smolvm image build`",
                             "guest kernel stopped during boot (%s)", how);
                }
                return EXIT_VM_FAILED;
        }

        /* Back-ends: reaped after QEMU, so that their own exit when QEMU goes
         * away is not taken for a failure (fsd_died, below). */
        for (size_t i = 0; i < s->cfg.n_mounts; i++) {
                sup_fsd *f = mount_server(s, i);
                if (f && !s->fsd_exited[i] && sup_fsd_poll(f) > 0) {
                        char desc[8]; /* only the verdict is needed here */
                        bool clean = sup_fsd_describe_exit(f, desc, sizeof(desc));
                        s->fsd_exited[i] = true;
                        s->fsd_due_ms[i] = now + (clean ? FSD_CLEAN_EXIT_GRACE_MS : 0);
                }
        }
        reap_strays(s);

        if (s->stop) {
                if (!s->running)
                        fail(s, false, NULL, "stopped by %s during boot", strsignal(s->stop_signal));
                return EXIT_OK;
        }

        if (s->mux_broken && now >= s->broken_deadline_ms) {
                if (s->running) {
                        snprintf(s->failed_why, sizeof(s->failed_why), "the guest channel broke (%s)", s->mux_why);
                        sup_log("%s: stopping the VM", s->failed_why);
                        return EXIT_VM_FAILED;
                }
                fail(s, true, "see the guest console below", "guest channel broke during boot: %s", s->mux_why);
                return EXIT_VM_FAILED;
        }

        for (size_t i = 0; i < s->cfg.n_mounts; i++) {
                if (!s->fsd_exited[i] || s->fsd_reported[i] || now < s->fsd_due_ms[i])
                        continue;
                s->fsd_reported[i] = true;
                if (fsd_died(s, i) < 0)
                        return EXIT_VM_FAILED;
        }

        if (!s->running && !s->mounting && now >= s->deadline_ms) {
                fail(s, true,
                     "the guest agent did not answer in time: see the guest console below; on slow (TCG) "
                     "hosts raise --boot-timeout, else rebuild the image with `smolvm image build`",
                     "agent not reachable within %llu s", (unsigned long long)(s->boot_timeout_ms + 999) / 1000);
                return EXIT_VM_FAILED;
        }
        return -1;
}

static int loop_timeout_ms(const sup *s)
{
        uint64_t now = now_ms(), until;

        until = s->running ? UINT64_MAX : s->mounting ? s->mount_deadline_ms : s->deadline_ms;
        if (s->mux_broken && s->broken_deadline_ms < until)
                until = s->broken_deadline_ms;
        for (size_t i = 0; i < s->cfg.n_mounts; i++)
                if (s->fsd_exited[i] && !s->fsd_reported[i] && s->fsd_due_ms[i] < until)
                        until = s->fsd_due_ms[i];
        if (until == UINT64_MAX)
                return -1;
        return until > now ? (int)MIN(until - now, (uint64_t)INT_MAX) : 0;
}

/* Start one virtio-fs back-end per mount (all, then wait for all: they set up
 * in parallel) and build the kernel command line: one smolvm.mount=TAG:PATH:MODE
 * per mount (docs/internals.md), then the configured extra arguments. */
static int start_fs_servers(sup *s, sup_vm_fs *fs, char (*fs_sock)[PATH_MAX], char **ret_cmdline)
{
        char err[768];
        size_t cap = 1 + (s->cfg.cmdline_extra ? strlen(s->cfg.cmdline_extra) : 0);
        int r;

        for (size_t i = 0; i < s->cfg.n_mounts; i++)
                cap += 32 + strlen(s->cfg.mounts[i].tag) + strlen(s->cfg.mounts[i].guest);
        char *cmdline = calloc(1, cap), *p = cmdline;
        if (!cmdline) {
                fail(s, false, NULL, "out of memory");
                return -ENOMEM;
        }
        /* vsock mounts: no device, no kernel argument; served after HELLO. */
        for (size_t i = 0; i < s->cfg.n_mounts && !s->cfg.mounts_vsock; i++) {
                const sup_mount *m = &s->cfg.mounts[i];
                char name[48];
                snprintf(name, sizeof(name), "fs-%zu.sock", i);
                snprintf(fs_sock[i], PATH_MAX, "%s/%s", s->vm_dir, name);
                snprintf(name, sizeof(name), "virtiofsd-%zu.log", i);
                _cleanup_free_ char *log_path = vm_path(s, name);
                r = sup_fsd_start(s->loop, (unsigned)i, m, fs_sock[i], log_path, &s->fsd[i], err, sizeof(err));
                if (r < 0) {
                        fail(s, false,
                             r == -ENOENT ? "install smolvm-virtiofsd in $SMOLVM_LIBEXECDIR (next to smolvm-supervisor)"
                                          : NULL,
                             "%s", err);
                        free(cmdline);
                        return r;
                }
                fs[i] = (sup_vm_fs){ .socket_path = fs_sock[i], .tag = m->tag };
                p += sprintf(p, "%ssmolvm.mount=%s:%s:%s", p == cmdline ? "" : " ", m->tag, m->guest,
                             m->writable ? "rw" : "ro");
        }
        uint64_t deadline = now_ms() + SUP_FSD_READY_TIMEOUT_MS;
        for (size_t i = 0; i < s->cfg.n_mounts && !s->cfg.mounts_vsock; i++) {
                r = sup_fsd_wait_ready(s->fsd[i], deadline, err, sizeof(err));
                if (r < 0) {
                        char hint[PATH_MAX + 64];
                        snprintf(hint, sizeof(hint), "see %s/virtiofsd-%zu.log", s->vm_dir, i);
                        fail(s, false, hint, "%s", err);
                        free(cmdline);
                        return r;
                }
        }
        if (s->cfg.cmdline_extra && *s->cfg.cmdline_extra)
                sprintf(p, "%s%s", p == cmdline ? "" : " ", s->cfg.cmdline_extra);
        *ret_cmdline = cmdline;
        return 0;
}

static int start_vm(sup *s)
{
        _cleanup_free_ char *overlay = vm_path(s, "overlay.qcow2"), *chan = vm_path(s, "chan.sock"),
                            *vsock = vm_path(s, "vsock.sock"), *console_log = vm_path(s, "console.log"),
                            *qemu_log = vm_path(s, "qemu.log"), *qmp = vm_path(s, "qmp.sock");
        _cleanup_close_ int vmm_console_fd = -1, qemu_log_fd = -1;
        _cleanup_free_ char *cmdline = NULL;
        sup_vm_fs fs[SUP_MAX_MOUNTS];
        char fs_sock[SUP_MAX_MOUNTS][PATH_MAX];
        sigset_t mask;
        int r;

        sup_vmm_tsc_begin();
        r = prepare_overlay(s);
        if (r < 0)
                return r;

        r = smolvm_evloop_new(&s->loop);
        if (r < 0)
                goto fail_errno;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->sig_fd < 0) {
                r = negative_errno();
                goto fail_errno;
        }
        if ((r = smolvm_evloop_add(s->loop, s->sig_fd, EPOLLIN, signal_cb, s)) < 0)
                goto fail_errno;

        r = sup_hvsock_new(s->loop, vsock, &s->hv);
        if (r < 0) {
                fail(s, false, NULL, "listening on %s: %s", vsock, strerror(-r));
                return r;
        }
        r = chan_listen(s);
        if (r < 0) {
                fail(s, false, NULL, "listening on %s: %s", chan, strerror(-r));
                return r;
        }
        r = sup_console_new(s->loop, console_log, &s->con, &vmm_console_fd);
        if (r < 0) {
                fail(s, false, NULL, "console capture (%s): %s", console_log, strerror(-r));
                return r;
        }
        qemu_log_fd = open(qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0600);
        if (qemu_log_fd < 0) {
                r = negative_errno();
                fail(s, false, NULL, "%s: %s", qemu_log, strerror(-r));
                return r;
        }

        r = start_fs_servers(s, fs, fs_sock, &cmdline);
        if (r < 0)
                return r;

        sup_vm_spec spec = {
                .kernel = s->cfg.kernel,
                .initrd = s->cfg.initrd,
                .disk = overlay,
                .disk_cache_unsafe = s->ephemeral,
                .cmdline_extra = cmdline,
                .mem_mib = s->cfg.mem_mib,
                .cpus = s->cfg.cpus,
                .accel = s->accel.accel,
                .chan_path = chan,
                .qmp_path = qmp,
                .chan_name = CHAN_NAME,
                .console_fd = vmm_console_fd,
                .log_fd = qemu_log_fd,
                .fs = fs,
                .n_fs = s->cfg.mounts_vsock ? 0 : s->cfg.n_mounts, /* 0: no memfd either */
        };
        s->t_spawn = now_ms();
        r = sup_vmm_start(&spec, &s->vmm);
        if (r == -ENOENT) {
                fail(s, false, "install it: apt-get install qemu-system-x86", "%s not found", sup_vmm_binary());
                return r;
        }
        if (r < 0) {
                fail(s, false, NULL, "starting %s: %s", sup_vmm_binary(), strerror(-r));
                return r;
        }
        s->deadline_ms = s->t_start + s->boot_timeout_ms;
        return 0;

fail_errno:
        fail(s, false, NULL, "supervisor setup: %s", strerror(-r));
        return r;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: smolvm-supervisor --vm-dir DIR [--ephemeral] [--ready-fd N]\n"
                   "Runs one smolvm VM (internal: started by libsmolvm; see docs/internals.md).\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "vm-dir", required_argument, NULL, 'd' },
                { "ephemeral", no_argument, NULL, 'e' },
                { "ready-fd", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        sup s = { .ready_fd = -1, .sig_fd = -1, .chan_listen_fd = -1, .t_start = now_ms() };
        pid_t parent = getppid();
        struct stat st = {};
        sigset_t mask;
        int c, code;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        s.vm_dir = optarg;
                        break;
                case 'e':
                        s.ephemeral = true;
                        break;
                case 'r': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*optarg == '\0' || *end || v < 0 || v > INT_MAX || fcntl((int)v, F_GETFD) < 0) {
                                fprintf(stderr, "smolvm-supervisor: --ready-fd %s: not an open fd\n", optarg);
                                return EXIT_USAGE;
                        }
                        s.ready_fd = (int)v;
                        break;
                }
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                case 'V':
                        printf("smolvm-supervisor %s\n", SMOLVM_VERSION);
                        return EXIT_OK;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (!s.vm_dir || optind != argc) {
                usage(stderr);
                return EXIT_USAGE;
        }
        /* QEMU must not inherit the ready pipe: the CLI would never see EOF. */
        if (s.ready_fd >= 0)
                (void)fcntl(s.ready_fd, F_SETFD, FD_CLOEXEC);

        /* Signals arrive through the signalfd in the loop; block them before
         * arming the parent-death signal so none is lost. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN); /* clients vanish; writes report EPIPE instead */
        /* Orphaned descendants (a back-end's namespaced server) come to us, not to the
         * host's init: teardown reaps them (reap_orphans). */
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
        if (s.ephemeral) {
                /* A killed CLI must leave nothing behind. The signal is only armed for a
                 * future death: if the parent is already gone, act as if it fired. */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent) {
                        s.stop = true;
                        s.stop_signal = SIGTERM;
                }
        }

        if (stat(s.vm_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fail(&s, false, "libsmolvm creates the VM dir and its config.json first", "VM dir %s: %s", s.vm_dir,
                     S_ISDIR(st.st_mode) || access(s.vm_dir, F_OK) < 0 ? strerror(errno) : "not a directory");
                return EXIT_USAGE;
        }
        {
                /* Before opening (truncating) the log: it may be the other one's. */
                pid_t other = running_supervisor(&s);
                if (other > 0) {
                        fail(&s, false, "stop it first, or use another VM dir",
                             "VM %s is already running (supervisor pid %d)", s.vm_dir, (int)other);
                        return EXIT_USAGE;
                }
        }
        {
                _cleanup_free_ char *log_path = vm_path(&s, "supervisor.log");
                if (sup_log_open(log_path) < 0)
                        fprintf(stderr, "smolvm-supervisor: %s: %m (logging to stderr)\n", log_path);
        }
        sup_log("smolvm-supervisor %s starting for %s%s", SMOLVM_VERSION, s.vm_dir, s.ephemeral ? " (ephemeral)" : "");

        if (config_load(&s) < 0) {
                teardown(&s, true);
                return EXIT_USAGE;
        }
        sup_log("accel %s: %s", smolvm_accel_name(s.accel.accel), s.accel.reason);
        if (write_pid_file(&s) < 0) {
                fail(&s, false, NULL, "writing %s/supervisor.pid: %m", s.vm_dir);
                teardown(&s, true);
                return EXIT_VM_FAILED;
        }
        if (s.stop) {
                fail(&s, false, NULL, "parent exited before the VM started");
                teardown(&s, false);
                return EXIT_OK;
        }
        if (start_vm(&s) < 0) {
                teardown(&s, true);
                return EXIT_VM_FAILED;
        }

        for (;;) {
                int r = smolvm_evloop_run_once(s.loop, loop_timeout_ms(&s));
                if (r < 0) {
                        fail(&s, false, NULL, "event loop: %s", strerror(-r));
                        code = EXIT_VM_FAILED;
                        break;
                }
                code = step(&s);
                if (code >= 0)
                        break;
        }
        teardown(&s, code != EXIT_OK);
        return code;
}
