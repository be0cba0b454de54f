/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-virtiofsd: a vhost-user-fs back-end serving one host directory.
 *
 *   smolvm-virtiofsd --socket-path P | --fd N | --stream-fd N [--fuse-mount=GUEST]
 *                    --shared-dir D [--read-only|--rw] [--direct-io]
 *                    [--ready-fd M] [--trace] [--op-counts] [--sandbox=namespace|none]
 *
 * --op-counts: log the requests served per opcode at every STATFS (a guest's
 * `stat -f` on the mount), for benchmarks; the supervisor passes it when
 * SMOLVM_FS_STATS=1.
 *
 * Listens on P (or accepts on the listening Unix socket N it inherited: the
 * supervisor binds DIR/fs-K.sock itself, so the socket listens before QEMU
 * starts, whatever this process is doing), serves the first front-end (QEMU)
 * that connects, exits 0 when it disconnects, 1 on errors. With --ready-fd, writes
 * "READY\n" to fd M and closes it once the sandbox and the file server are set
 * up (just before accepting): EOF without it means startup failed (stderr says
 * why). Spawned by the supervisor, one per share. --direct-io: every regular
 * file is opened FOPEN_DIRECT_IO (fs_server.h: zero-copy reads in the guest,
 * but no shared mmap on guest kernels before 6.6; docs/internals.md).
 *
 * Stream mode (--stream-fd N; FUSE over vsock, docs/internals.md): no
 * vhost-user, fd N is a connected stream socket to the guest agent (the
 * supervisor relays it over its channel mux). With --fuse-mount=GUEST it first
 * sends the agent {"op":"fuse_mount","path":GUEST,"read_only":...} on it and
 * waits (20 s at most) for the answer; READY is written only once the guest
 * mounted it, and a refusal is printed on stderr ("the guest could not mount
 * it: ...") with exit status 1. Then it answers the raw FUSE requests arriving
 * on N until the stream ends (exit 0). The agent's answer and every FUSE
 * request are parsed inside the same sandbox and filter as in virtio-fs mode.
 *
 * Snapshots (docs/internals.md, "Mounts across snapshots"): with
 * --control-fd=C, a byte 'S' on C makes a thread answer on C with le32 errno
 * (0 on success), le64 length and the server's saved state (fs_server.h,
 * smolvm_fs_state_save: nodeids, handles, INIT; at most SMOLVM_FS_STATE_MAX).
 * With --state-fd=F the server starts from such a state, read from F (a
 * snapshot's file: parsed as hostile, under the filter), and --fuse-reattach
 * asks the agent to reattach the stream to the guest's existing FUSE mount at
 * GUEST (fuse_mount with "reattach": true) instead of mounting a new one.
 *
 * Sandbox (default "namespace"), set up after the socket is bound and before
 * anything from the front-end is read:
 *  - PR_SET_NO_NEW_PRIVS;
 *  - new mount + PID namespaces (+ a user namespace mapping only our own ids
 *    when we lack CAP_SYS_ADMIN); we fork, the child is PID 1 of the new PID
 *    namespace and serves, the parent waits and relays its exit status (and
 *    kills it on SIGTERM/SIGINT/SIGHUP: a PID 1 ignores signals it has no
 *    handler for);
 *  - all mounts made private, then pivot_root into a fresh read-only tmpfs that
 *    holds only /shared (a bind mount of D, read-only with --read-only, nosuid,
 *    nodev) and /proc (a new procfs of the new PID namespace: it shows only this
 *    process). The file server needs /proc/self/fd to reopen the O_PATH fds it
 *    pins inodes with (openat2 has no AT_EMPTY_PATH); with a private procfs that
 *    is all /proc exposes. We do not pivot straight into D so that no procfs has
 *    to be mounted inside the directory the guest sees, and we do not keep a
 *    host procfs fd, which would lead back to /proc/1/root on the host;
 *  - rlimits: no core dumps. (Not PR_SET_DUMPABLE 0: it makes /proc/self/fd
 *    owned by a root that is unmapped in a user namespace, breaking reopen.)
 *    RLIMIT_NOFILE is raised by the file server to what its tables can hold.
 *    RLIMIT_NPROC is per real uid and counts threads: not set;
 *  - last, once the file server is set up and before READY: a seccomp filter
 *    (sandbox_seccomp.c) allowing only the syscalls serving needs, the
 *    mutating ones only with --rw. It needs no namespace: --sandbox=none gets
 *    it too. In namespace mode only the serving child is filtered; the parent
 *    outside the PID namespace only waits for it and reads nothing.
 * Read-only is enforced by the file server (EROFS); the read-only bind mount and
 * the filter's EROFS for every mutating syscall are defence in depth. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evloop.h"
#include "fs_server.h"
#include "fuse_client.h"
#include "fuse_stream.h"
#include "sandbox_seccomp.h"
#include "unixsock.h"
#include "util.h"
#include "virtiofs.h"

/* Inside the sandbox root. */
#define SANDBOX_SHARED "/shared"
/* How long the guest agent has to answer --fuse-mount (the supervisor's
 * SUP_VSOCKFS_MOUNT_TIMEOUT_MS; it gives up 1 s after us). */
#define FUSE_MOUNT_TIMEOUT_MS 20000u

typedef struct options {
        const char *socket_path;
        int listen_fd;   /* --fd, or -1 */
        int stream_fd;   /* --stream-fd, or -1 */
        const char *fuse_mount; /* --fuse-mount: the guest path to ask for, or NULL */
        int ready_fd;    /* --ready-fd, or -1 */
        int control_fd;  /* --control-fd, or -1 */
        int state_fd;    /* --state-fd, or -1 */
        bool reattach;   /* --fuse-reattach */
        const char *shared_dir;
        bool read_only;
        bool direct_io;  /* --direct-io */
        bool trace;
        bool op_counts;  /* --op-counts */
        bool sandbox;
} options;

static void usage(FILE *f)
{
        fprintf(f, "usage: smolvm-virtiofsd --socket-path PATH|--fd N --shared-dir DIR [--read-only|--rw] [--direct-io]\n"
                   "                        [--ready-fd N] [--sandbox=namespace|none] [--trace]\n"
                   "                        [--op-counts]\n"
                   "       smolvm-virtiofsd --stream-fd N [--fuse-mount=GUEST_PATH [--fuse-reattach]]\n"
                   "                        [--control-fd N] [--state-fd N] --shared-dir DIR ...\n");
}

static int parse_args(int argc, char **argv, options *o)
{
        enum { OPT_RO = 256, OPT_RW, OPT_SANDBOX, OPT_TRACE, OPT_HELP, OPT_FD, OPT_READY_FD, OPT_STREAM_FD,
               OPT_FUSE_MOUNT, OPT_CONTROL_FD, OPT_STATE_FD, OPT_REATTACH, OPT_DIRECT_IO, OPT_OP_COUNTS };
        static const struct option longopts[] = {
                { "socket-path", required_argument, NULL, 's' },
                { "shared-dir", required_argument, NULL, 'd' },
                { "read-only", no_argument, NULL, OPT_RO },
                { "rw", no_argument, NULL, OPT_RW },
                { "direct-io", no_argument, NULL, OPT_DIRECT_IO },
                { "sandbox", required_argument, NULL, OPT_SANDBOX },
                { "trace", no_argument, NULL, OPT_TRACE },
                { "op-counts", no_argument, NULL, OPT_OP_COUNTS },
                { "help", no_argument, NULL, OPT_HELP },
                { "fd", required_argument, NULL, OPT_FD },
                { "ready-fd", required_argument, NULL, OPT_READY_FD },
                { "stream-fd", required_argument, NULL, OPT_STREAM_FD },
                { "fuse-mount", required_argument, NULL, OPT_FUSE_MOUNT },
                { "control-fd", required_argument, NULL, OPT_CONTROL_FD },
                { "state-fd", required_argument, NULL, OPT_STATE_FD },
                { "fuse-reattach", no_argument, NULL, OPT_REATTACH },
                { 0 },
        };
        *o = (options){ .read_only = true, .sandbox = true, .listen_fd = -1, .stream_fd = -1, .ready_fd = -1,
                        .control_fd = -1, .state_fd = -1 };
        int c;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 's': o->socket_path = optarg; break;
                case 'd': o->shared_dir = optarg; break;
                case OPT_RO: o->read_only = true; break;
                case OPT_RW: o->read_only = false; break;
                case OPT_DIRECT_IO: o->direct_io = true; break;
                case OPT_TRACE: o->trace = true; break;
                case OPT_OP_COUNTS: o->op_counts = true; break;
                case OPT_SANDBOX:
                        if (strcmp(optarg, "namespace") == 0)
                                o->sandbox = true;
                        else if (strcmp(optarg, "none") == 0)
                                o->sandbox = false;
                        else {
                                fprintf(stderr, "smolvm-virtiofsd: --sandbox: expected namespace or none, got '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_HELP: usage(stdout); exit(EXIT_SUCCESS);
                case OPT_REATTACH: o->reattach = true; break;
                case OPT_FUSE_MOUNT:
                        if (optarg[0] != '/') {
                                fprintf(stderr, "smolvm-virtiofsd: --fuse-mount %s: not an absolute path\n", optarg);
                                return -EINVAL;
                        }
                        o->fuse_mount = optarg;
                        break;
                case OPT_FD:
                case OPT_STREAM_FD:
                case OPT_CONTROL_FD:
                case OPT_STATE_FD:
                case OPT_READY_FD: {
                        const char *name = c == OPT_FD ? "fd" : c == OPT_STREAM_FD ? "stream-fd"
                                         : c == OPT_CONTROL_FD ? "control-fd" : c == OPT_STATE_FD ? "state-fd"
                                         : "ready-fd";
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (!*optarg || *end || v < 3 || v > 1024 || fcntl((int)v, F_GETFD) < 0) {
                                fprintf(stderr, "smolvm-virtiofsd: --%s %s: not an open fd >= 3\n", name, optarg);
                                return -EINVAL;
                        }
                        /* Nothing we might exec (nothing) or fork for may keep them. */
                        (void)fcntl((int)v, F_SETFD, FD_CLOEXEC);
                        *(c == OPT_FD ? &o->listen_fd : c == OPT_STREAM_FD ? &o->stream_fd
                          : c == OPT_CONTROL_FD ? &o->control_fd : c == OPT_STATE_FD ? &o->state_fd
                          : &o->ready_fd) = (int)v;
                        break;
                }
                default: usage(stderr); return -EINVAL;
                }
        }
        int n_fronts = (o->socket_path != NULL) + (o->listen_fd >= 0) + (o->stream_fd >= 0);
        if (optind != argc || !o->shared_dir || n_fronts != 1 || (o->fuse_mount && o->stream_fd < 0) ||
            (o->reattach && !o->fuse_mount) || ((o->control_fd >= 0 || o->state_fd >= 0) && o->stream_fd < 0)) {
                usage(stderr);
                return -EINVAL;
        }
        return 0;
}

/* An inherited listening socket (--fd): a Unix stream socket in listen state. */
static int check_listening(int fd)
{
        int v = 0, type = 0;
        socklen_t len = sizeof(v);
        struct sockaddr_un sa;
        socklen_t sa_len = sizeof(sa);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){ sizeof(type) }) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sa_len) < 0)
                return errno == ENOTSOCK ? -ENOTSOCK : negative_errno();
        if (!v || type != SOCK_STREAM || sa.sun_family != AF_UNIX)
                return -ENOTSOCK;
        return fd;
}

/* An inherited stream (--stream-fd): a connected stream socket. */
static int check_stream(int fd)
{
        int type = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){ sizeof(type) }) < 0)
                return errno == ENOTSOCK ? -ENOTSOCK : negative_errno();
        return type == SOCK_STREAM ? fd : -ENOTSOCK;
}

/* The fuse_mount REQUEST payload (docs/protocol.md). */
static char *fuse_mount_request(const char *guest_path, bool read_only, bool reattach)
{
        json_t *o = reattach ? json_pack("{s:s, s:s, s:b, s:b}", "op", "fuse_mount", "path", guest_path, "read_only",
                                         read_only, "reattach", 1)
                             : json_pack("{s:s, s:s, s:b}", "op", "fuse_mount", "path", guest_path, "read_only",
                                         read_only);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return s;
}

static int write_file(const char *path, const char *s)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return write_all(fd, s, strlen(s));
}

/* Keep the flags the kernel locks on a bind mount (user namespaces refuse a
 * remount that would clear them). */
static unsigned long locked_flags(const char *path)
{
        struct statvfs sv;
        unsigned long f = 0;
        if (statvfs(path, &sv) < 0)
                return 0;
        if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
        if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
        if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
        return f;
}

#define TRY(step, expr) do { if ((expr) < 0) { int _e = negative_errno(); \
        fprintf(stderr, "smolvm-virtiofsd: sandbox: %s: %s\n", step, strerror(-_e)); return _e; } } while (0)

/* Runs in the child, PID 1 of the new PID namespace, in the new mount namespace. */
static int build_root(const char *shared_dir, int shared_fd, bool read_only)
{
        char src[64];
        /* The scratch mount point only exists in our private mount namespace. */
        const char *scratch = "/tmp";
        TRY("make mounts private", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
        /* A bind source must be a mount of our (new) namespace: the fd opened
         * before unshare is not. Reopen by path and check it is the same
         * directory, so a rename in between cannot swap what we share. */
        _cleanup_close_ int fd = open(shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct stat a, b;
        TRY("reopen shared dir", fd);
        TRY("stat shared dir", fstat(fd, &a));
        TRY("stat shared dir", fstat(shared_fd, &b));
        if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
                fprintf(stderr, "smolvm-virtiofsd: sandbox: %s changed while starting\n", shared_dir);
                return -ESTALE;
        }
        TRY("mount tmpfs", mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0755"));
        TRY("mkdir /shared", mkdir("/tmp/shared", 0755));
        TRY("mkdir /proc", mkdir("/tmp/proc", 0555));
        /* Bind through our fd: the path may be hidden by the tmpfs now. */
        snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
        TRY("bind shared dir", mount(src, "/tmp/shared", NULL, MS_BIND | MS_REC, NULL));
        unsigned long f = locked_flags("/tmp/shared") | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
        TRY("remount shared dir", mount(NULL, "/tmp/shared", NULL, MS_REMOUNT | MS_BIND | f, NULL));
        TRY("mount proc", mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
        TRY("chdir new root", chdir(scratch));
        /* pivot_root(".", "."): the old root ends up stacked on "/", detach it. */
        TRY("pivot_root", (int)syscall(SYS_pivot_root, ".", "."));
        TRY("detach old root", umount2(".", MNT_DETACH));
        TRY("chdir /", chdir("/"));
        TRY("remount root read-only", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
        return 0;
}

static pid_t child_pid;
static volatile sig_atomic_t killed_by;

static void forward_signal(int sig)
{
        killed_by = sig;
        if (child_pid > 0)
                kill(child_pid, SIGKILL);
}

/* Enter the namespaces and fork. Returns in the child only (0), or a negative
 * errno; the parent never returns (it exits with the child's status). */
static int enter_namespaces(void)
{
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0) {
                if (errno != EPERM)
                        return negative_errno();
                /* Unprivileged: a user namespace that maps only ourselves. */
                TRY("unshare user+mount+pid namespaces", unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID));
                char map[64];
                TRY("setgroups deny", write_file("/proc/self/setgroups", "deny"));
                snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
                TRY("uid_map", write_file("/proc/self/uid_map", map));
                snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
                TRY("gid_map", write_file("/proc/self/gid_map", map));
        }
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                /* Die with the parent: the supervisor only tracks the parent. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                return 0;
        }
        child_pid = pid;
        struct sigaction sa = { .sa_handler = forward_signal };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        _exit(EXIT_FAILURE);
        if (WIFEXITED(status))
                _exit(WEXITSTATUS(status));
        /* Report the signal we were sent, not the SIGKILL we relayed it as. */
        _exit(128 + (killed_by ? killed_by : WTERMSIG(status)));
}

static void set_rlimits(void)
{
        /* A core dump would write guest memory (mapped shared) to disk. */
        struct rlimit none = { 0, 0 };
        setrlimit(RLIMIT_CORE, &none);
        /* We never fork again past this point; threads count against
         * RLIMIT_NPROC per real uid, so no useful bound exists there. */
}

static bool done;
static int exit_code;

static void on_broken(void *userdata, int err, const char *why)
{
        bool *trace = userdata;
        done = true;
        if (err == -ECONNRESET) {
                if (*trace)
                        fprintf(stderr, "smolvm-virtiofsd: front-end disconnected\n");
                return;
        }
        fprintf(stderr, "smolvm-virtiofsd: vhost-user: %s: %s\n", why, strerror(-err));
        exit_code = EXIT_FAILURE;
}

static void signal_ready(options *o)
{
        if (o->ready_fd < 0)
                return;
        int w = write_all(o->ready_fd, "READY\n", 6);
        if (w < 0)
                fprintf(stderr, "smolvm-virtiofsd: --ready-fd: %s\n", strerror(-w));
        o->ready_fd = safe_close(o->ready_fd);
}

/* --state-fd, under the filter: the whole file (bounded), then the tables. */
static int load_state(smolvm_fs *fs, int fd)
{
        size_t cap = SMOLVM_FS_STATE_MAX + 1, len = 0;
        _cleanup_free_ uint8_t *buf = malloc(cap);
        if (!buf) {
                fprintf(stderr, "smolvm-virtiofsd: --state-fd: out of memory\n");
                return -ENOMEM;
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        fprintf(stderr, "smolvm-virtiofsd: --state-fd: %s\n", strerror(errno));
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len == cap) {
                        fprintf(stderr, "smolvm-virtiofsd: --state-fd: the saved file server state is larger "
                                        "than %u MiB\n", SMOLVM_FS_STATE_MAX >> 20);
                        return -EFBIG;
                }
        }
        char err[256];
        int r = smolvm_fs_state_load(fs, buf, len, err, sizeof(err));
        if (r < 0)
                fprintf(stderr, "smolvm-virtiofsd: restoring the mount's state from the snapshot: %s\n", err);
        return r;
}

/* --control-fd: one thread answering 'S' with the saved state (see the top). */
static void *control_main(void *arg)
{
        smolvm_fs *fs = ((void **)arg)[0];
        int fd = (int)(intptr_t)((void **)arg)[1];
        free(arg);
        for (;;) {
                uint8_t c;
                ssize_t n = read(fd, &c, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return NULL; /* the supervisor is gone: so are we, soon */
                if (c != 'S')
                        continue;
                uint8_t *state = NULL, hdr[12];
                size_t len = 0;
                int r = smolvm_fs_state_save(fs, SMOLVM_FS_STATE_MAX, &state, &len);
                put_le32(hdr, (uint32_t)(r < 0 ? -r : 0));
                put_le64(hdr + 4, r < 0 ? 0 : len);
                if (write_all(fd, hdr, sizeof(hdr)) == 0 && r == 0)
                        (void)write_all(fd, state, len);
                free(state);
        }
}

static int start_control(smolvm_fs *fs, int fd)
{
        void **arg = malloc(2 * sizeof(void *));
        if (!arg)
                return -ENOMEM;
        arg[0] = fs;
        arg[1] = (void *)(intptr_t)fd;
        pthread_t t;
        int r = pthread_create(&t, NULL, control_main, arg);
        if (r != 0) {
                free(arg);
                return -r;
        }
        pthread_detach(t);
        return 0;
}

/* Stream mode, under the filter: the guest agent's answer to fuse_mount, READY,
 * then FUSE until the stream ends. Returns the exit status. */
static int serve_stream(options *o, smolvm_fs *fs, const char *mount_request, uint64_t deadline_ms)
{
        char err[512];
        int r;

        if (mount_request) {
                r = smolvm_fuse_client_request(o->stream_fd, mount_request, deadline_ms, err, sizeof(err));
                if (r < 0) {
                        /* The supervisor quotes this line in its boot error. */
                        fprintf(stderr, "smolvm-virtiofsd: the guest could not mount it: %s\n", err);
                        return EXIT_FAILURE;
                }
        }
        signal_ready(o);
        r = smolvm_fs_serve_stream(fs, o->stream_fd);
        /* The guest unmounting, the VM stopping and the supervisor's teardown all
         * end here; only a broken stream (a hostile or buggy peer) is an error. */
        if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
                fprintf(stderr, "smolvm-virtiofsd: FUSE stream: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        if (o->trace)
                fprintf(stderr, "smolvm-virtiofsd: the FUSE stream ended\n");
        return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
        options o;
        if (parse_args(argc, argv, &o) < 0)
                return EXIT_FAILURE;
        uint64_t mount_deadline_ms = now_ms() + FUSE_MOUNT_TIMEOUT_MS;
        _cleanup_free_ char *mount_request = NULL;
        if (o.stream_fd >= 0) {
                if (check_stream(o.stream_fd) < 0) {
                        fprintf(stderr, "smolvm-virtiofsd: --stream-fd %d: not a stream socket\n", o.stream_fd);
                        return EXIT_FAILURE;
                }
                /* A peer gone is an error to report (EPIPE), not a silent death. */
                (void)signal(SIGPIPE, SIG_IGN);
                /* Built before the sandbox: jansson seeds its hash function from
                 * /dev/urandom on first use, which the sandbox no longer has. */
                if (o.fuse_mount && !(mount_request = fuse_mount_request(o.fuse_mount, o.read_only, o.reattach))) {
                        fprintf(stderr, "smolvm-virtiofsd: out of memory\n");
                        return EXIT_FAILURE;
                }
        }

        _cleanup_close_ int shared_fd = open(o.shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (shared_fd < 0) {
                fprintf(stderr, "smolvm-virtiofsd: open %s: %s\n", o.shared_dir, strerror(errno));
                return EXIT_FAILURE;
        }
        _cleanup_close_ int lfd = o.stream_fd >= 0 ? -1
                                  : o.listen_fd >= 0 ? check_listening(o.listen_fd) : unix_listen(o.socket_path, 1, 0);
        if (lfd < 0 && o.stream_fd < 0) {
                if (o.listen_fd >= 0)
                        fprintf(stderr, "smolvm-virtiofsd: --fd %d: %s\n", o.listen_fd,
                                lfd == -ENOTSOCK ? "not a listening Unix stream socket" : strerror(-lfd));
                else
                        fprintf(stderr, "smolvm-virtiofsd: listen on %s: %s\n", o.socket_path, strerror(-lfd));
                return EXIT_FAILURE;
        }

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                fprintf(stderr, "smolvm-virtiofsd: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
                return EXIT_FAILURE;
        }
        const char *root = o.shared_dir;
        if (o.sandbox) {
                if (enter_namespaces() < 0 || build_root(o.shared_dir, shared_fd, o.read_only) < 0)
                        return EXIT_FAILURE;
                root = SANDBOX_SHARED;
        }
        shared_fd = safe_close(shared_fd);
        set_rlimits();

        smolvm_fs *fs = NULL;
        smolvm_fs_config fcfg = { .root = root, .read_only = o.read_only, .direct_io = o.direct_io,
                                  .log_op_counts = o.op_counts };
        int r = smolvm_fs_new(&fcfg, &fs);
        if (r < 0) {
                fprintf(stderr, "smolvm-virtiofsd: file server on %s: %s\n", o.shared_dir, strerror(-r));
                return EXIT_FAILURE;
        }
        if (o.trace) {
                smolvm_fs_stats st;
                smolvm_fs_get_stats(fs, &st);
                fprintf(stderr, "smolvm-virtiofsd: limits: %u inodes, %llu MiB of tables, %u fds, %u handles\n",
                        st.max_inodes, (unsigned long long)(st.max_mem_bytes >> 20), st.max_fds, st.max_handles);
        }
        if (o.control_fd >= 0 && (r = start_control(fs, o.control_fd)) < 0) {
                fprintf(stderr, "smolvm-virtiofsd: --control-fd: %s\n", strerror(-r));
                smolvm_fs_free(fs);
                return EXIT_FAILURE;
        }
        /* The last step of the sandbox, before READY: a filter that cannot be
         * installed fails the VM's start, it never runs unfiltered. */
        const char *what = NULL;
        r = sandbox_seccomp_install(o.read_only, &what);
        if (r < 0) {
                fprintf(stderr, "smolvm-virtiofsd: seccomp: %s: %s\n", what, strerror(-r));
                smolvm_fs_free(fs);
                return EXIT_FAILURE;
        }

        if (o.state_fd >= 0 && load_state(fs, o.state_fd) < 0) {
                smolvm_fs_free(fs);
                return EXIT_FAILURE;
        }
        if (o.stream_fd >= 0) {
                r = serve_stream(&o, fs, mount_request, mount_deadline_ms);
                smolvm_fs_free(fs);
                return r;
        }
        signal_ready(&o);
        int cfd;
        do
                cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        while (cfd < 0 && errno == EINTR);
        if (cfd < 0) {
                fprintf(stderr, "smolvm-virtiofsd: accept on %s: %s\n", o.socket_path, strerror(errno));
                smolvm_fs_free(fs);
                return EXIT_FAILURE;
        }
        /* One front-end per process. */
        lfd = safe_close(lfd);

        smolvm_evloop *loop = NULL;
        smolvm_virtiofs *vfs = NULL;
        smolvm_virtiofs_config vcfg = { .fs = fs, .broken = on_broken, .userdata = &o.trace, .trace = o.trace };
        r = smolvm_evloop_new(&loop);
        if (r >= 0)
                r = smolvm_virtiofs_new(loop, cfd, &vcfg, &vfs);
        if (r < 0) {
                fprintf(stderr, "smolvm-virtiofsd: virtio-fs device: %s\n", strerror(-r));
                safe_close(cfd);
                smolvm_evloop_free(loop);
                smolvm_fs_free(fs);
                return EXIT_FAILURE;
        }
        while (!done) {
                r = smolvm_evloop_run_once(loop, -1);
                if (r < 0) {
                        fprintf(stderr, "smolvm-virtiofsd: event loop: %s\n", strerror(-r));
                        exit_code = EXIT_FAILURE;
                        break;
                }
        }
        if (o.trace) {
                smolvm_virtiofs_stats st;
                smolvm_virtiofs_get_stats(vfs, &st);
                fprintf(stderr, "smolvm-virtiofsd: %llu requests, %llu dropped, %llu notifies, %u broken queues\n",
                        (unsigned long long)st.n_requests, (unsigned long long)st.n_dropped,
                        (unsigned long long)st.n_notifies, st.n_broken_queues);
        }
        smolvm_virtiofs_free(vfs);
        smolvm_evloop_free(loop);
        smolvm_fs_free(fs);
        return exit_code;
}
