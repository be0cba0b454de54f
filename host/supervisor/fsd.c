/* SPDX-License-Identifier: Apache-2.0 */
#include "fsd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileutil.h" /* common/ */
#include "log.h"
#include "spawner.h" /* common/ */
#include "unixsock.h" /* common/ */
#include "util.h"

/* In the child: the listening socket (or the stream) and the ready pipe. */
#define CHILD_FD3 3
#define CHILD_READY_FD 4
/* Stream back-ends only: the control socket and the state to start from. */
#define CHILD_CONTROL_FD 5
#define CHILD_STATE_FD 6
/* The state's header from the child: le32 errno, le64 length. */
#define STATE_HDR 12u
#define TAIL_MAX 256u
/* 65536 inodes + 4096 handles + slack; below the default fs.nr_open (1048576). */
#define FSD_NOFILE_HARD ((rlim_t)131072)

struct sup_fsd {
        smolvm_evloop *loop;
        char desc[160];         /* "mount N (HOST at GUEST)", for log lines */
        char what[32];          /* "virtio-fs server", "FUSE-over-vsock server" */
        char *socket_path;      /* NULL for a stream back-end */
        pid_t pid;              /* 0 once reaped */
        int wstatus;            /* once reaped by sup_fsd_poll() */
        int log_pipe;           /* read end of the child's stdout+stderr, or -1 */
        int log_fd;
        uint64_t log_bytes;
        bool log_truncated;
        int ready_fd;           /* read end of the ready pipe (non-blocking), or -1 */
        bool ready_watched;     /* ready_fd is on the loop (stream back-ends) */
        int ready_state;        /* 0 pending, 1 READY seen, -EIO: ended without */
        char ready_buf[16];
        size_t ready_got;
        char fail_line[TAIL_MAX]; /* its last line when it ended without READY */
        char line[TAIL_MAX];    /* the line being received */
        size_t line_len;
        char last[TAIL_MAX];    /* the last complete non-empty line */
        int control_fd;         /* stream back-ends: our end of --control-fd, or -1 */
};

const char *sup_fsd_binary(char *buf, size_t len)
{
        const char *e = getenv("SMOLVM_VIRTIOFSD");
        if (e && *e) {
                snprintf(buf, len, "%s", e);
                return buf;
        }
        e = getenv("SMOLVM_LIBEXECDIR");
        snprintf(buf, len, "%s/" SUP_FSD_BINARY, e && *e ? e : SMOLVM_LIBEXECDIR);
        return buf;
}

/* Ours speaks --fd/--ready-fd/--read-only; anything else is taken to be QEMU's
 * virtiofsd (benchmarks only). */
static bool is_ours(const char *bin)
{
        const char *base = strrchr(bin, '/');
        return strcmp(base ? base + 1 : bin, SUP_FSD_BINARY) == 0;
}

/* Stream back-ends need our binary: QEMU's virtiofsd has no stream mode, so
 * $SMOLVM_VIRTIOFSD is only honoured when it names ours. */
static const char *stream_binary(char *buf, size_t len)
{
        sup_fsd_binary(buf, len);
        if (is_ours(buf))
                return buf;
        const char *e = getenv("SMOLVM_LIBEXECDIR");
        snprintf(buf, len, "%s/" SUP_FSD_BINARY, e && *e ? e : SMOLVM_LIBEXECDIR);
        return buf;
}

static void keep_tail(sup_fsd *f, const char *buf, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (buf[i] == '\n') {
                        if (f->line_len) {
                                memcpy(f->last, f->line, f->line_len);
                                f->last[f->line_len] = '\0';
                        }
                        f->line_len = 0;
                } else if (f->line_len < TAIL_MAX - 1) {
                        f->line[f->line_len++] = buf[i];
                }
        }
}

static void log_append(sup_fsd *f, const char *buf, size_t n)
{
        keep_tail(f, buf, n);
        if (f->log_truncated || f->log_fd < 0)
                return;
        size_t room = SUP_FSD_LOG_MAX_BYTES - f->log_bytes;
        size_t take = MIN(n, room);
        if (take && write_all(f->log_fd, buf, take) == 0)
                f->log_bytes += take;
        if (take < n) {
                /* A back-end printing without end (a guest provoking a message per
                 * request) must not fill the host's disk. */
                static const char note[] = "\n[smolvm-supervisor: log truncated]\n";
                (void)write_all(f->log_fd, note, sizeof(note) - 1);
                f->log_truncated = true;
        }
}

static void close_log_pipe(sup_fsd *f)
{
        if (f->log_pipe < 0)
                return;
        if (f->loop)
                (void)smolvm_evloop_del(f->loop, f->log_pipe);
        f->log_pipe = safe_close(f->log_pipe);
}

/* Read what the pipe has (non-blocking). */
static void drain_log(sup_fsd *f)
{
        char buf[16384];
        while (f->log_pipe >= 0) {
                ssize_t n = read(f->log_pipe, buf, sizeof(buf));
                if (n > 0) {
                        log_append(f, buf, (size_t)n);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == 0 || errno != EAGAIN)
                        close_log_pipe(f);
                return;
        }
}

static void log_cb(void *userdata, int fd, uint32_t events)
{
        drain_log(userdata);
}

/* A SIGKILLed supervisor leaves its sockets: unix_listen replaces them,
 * nothing else. */
static int listen_at(const char *path, char *err, size_t err_len)
{
        int fd = unix_listen(path, 1, 0);
        if (fd == -ENAMETOOLONG)
                return errbuf_fail(fd, err, err_len, "socket path %s is too long", path);
        if (fd < 0)
                return errbuf_fail(fd, err, err_len, "listening on %s: %s", path, strerror(-fd));
        return fd;
}

static sup_fsd *fsd_new(unsigned index, const sup_mount_cfg *m, const char *socket_path, const char *what)
{
        sup_fsd *f = calloc(1, sizeof(*f));
        if (!f)
                return NULL;
        if (socket_path && !(f->socket_path = strdup(socket_path))) {
                free(f);
                return NULL;
        }
        f->log_pipe = f->log_fd = f->ready_fd = f->control_fd = -1;
        snprintf(f->what, sizeof(f->what), "%s", what);
        snprintf(f->desc, sizeof(f->desc), "mount %u (%s at %s)", index, m->host, m->guest);
        return f;
}

/* Fork and exec argv with fd 3 = fd3 and, with want_ready, fd 4 = the write end
 * of the ready pipe; stdout/stderr into log_path (created/truncated) through a
 * pipe on the loop. Returns 0 or a negative errno with err set. */
static int spawn(sup_fsd *f, smolvm_evloop *loop, char *const argv[], int fd3, bool want_ready, int fd5, int fd6,
                 const char *log_path, char *err, size_t err_len)
{
        _cleanup_close_ int null_fd = -1, log_w = -1, ready_w = -1;
        int pfd[2], r;

        f->log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (f->log_fd < 0) {
                r = negative_errno();
                return errbuf_fail(r, err, err_len, "%s: %s", log_path, strerror(-r));
        }
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0 || pipe2(pfd, O_CLOEXEC) < 0)
                goto fail_errno;
        f->log_pipe = pfd[0];
        log_w = pfd[1];
        /* Our ends only: the child's stdout/stderr and ready fd stay blocking. */
        (void)fcntl(f->log_pipe, F_SETFL, O_NONBLOCK);
        if (want_ready) {
                if (pipe2(pfd, O_CLOEXEC) < 0)
                        goto fail_errno;
                f->ready_fd = pfd[0];
                ready_w = pfd[1];
                (void)fcntl(f->ready_fd, F_SETFL, O_NONBLOCK);
        }

        /* The back-end pins every inode the guest holds with an O_PATH fd (65536
         * by default) and raises its soft RLIMIT_NOFILE to what its tables need,
         * but only up to the hard limit, which a container or login may have set
         * low (20000 measured: a 20,000-file tree then gets EMFILE). Raise the
         * hard limit for it where we may (root). */
        struct rlimit nofile = { 0, 0 };
        bool raise_nofile = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_max != RLIM_INFINITY &&
                            nofile.rlim_max < FSD_NOFILE_HARD;
        if (raise_nofile)
                nofile.rlim_max = FSD_NOFILE_HARD;

        int fds[7] = { null_fd, log_w, log_w, fd3, ready_w, fd5, fd6 };
        pid_t pid;
        /* Its own process group (it forks a sandboxed server: we kill the group),
         * dying with the supervisor. */
        smolvm_spawn_opts o = {
                .argv = argv,
                .search_path = true,
                .fds = fds,
                .n_fds = fd6 >= 0 ? 7 : fd5 >= 0 ? 6 : ready_w >= 0 ? 5 : 4,
                .new_pgroup = true,
                .pdeathsig = SIGKILL,
                .nofile = raise_nofile ? &nofile : NULL,
        };
        r = smolvm_spawn(&o, &pid);
        if (r < 0)
                return errbuf_fail(r, err, err_len, "starting %s: %s", argv[0], strerror(-r));
        f->pid = pid;
        f->loop = loop;
        r = smolvm_evloop_add(loop, f->log_pipe, EPOLLIN, log_cb, f);
        if (r < 0) {
                f->loop = NULL;
                return errbuf_fail(r, err, err_len, "watching the log of %s: %s", argv[0], strerror(-r));
        }
        return 0;

fail_errno:
        r = negative_errno();
        return errbuf_fail(r, err, err_len, "starting the %s for %s: %s", f->what, f->desc, strerror(-r));
}

/* SMOLVM_FS_STATS=1: our server logs its requests per opcode at every STATFS
 * (bench/fs.sh COUNT=1, docs/benchmarks.md). */
static bool op_counts(void)
{
        const char *v = getenv("SMOLVM_FS_STATS");
        return v && strcmp(v, "1") == 0;
}

int sup_fsd_start(smolvm_evloop *loop, unsigned index, const sup_mount_cfg *m, const char *socket_path,
                  const char *log_path, sup_fsd **ret, char *err, size_t err_len)
{
        char bin[4096], fd_arg[16], ready_arg[16];
        _cleanup_close_ int lfd = -1;
        _cleanup_free_ char *source = NULL;
        int r;

        sup_fsd *f = fsd_new(index, m, socket_path, "virtio-fs server");
        if (!f)
                return errbuf_fail(-ENOMEM, err, err_len, "out of memory");
        sup_fsd_binary(bin, sizeof(bin));
        bool ours = is_ours(bin);

        lfd = listen_at(socket_path, err, err_len);
        if (lfd < 0) {
                r = lfd;
                goto fail;
        }
        snprintf(fd_arg, sizeof(fd_arg), "--fd=%d", CHILD_FD3);
        snprintf(ready_arg, sizeof(ready_arg), "--ready-fd=%d", CHILD_READY_FD);
        if (!ours && asprintf(&source, "source=%s", m->host) < 0) {
                source = NULL;
                r = errbuf_fail(-ENOMEM, err, err_len, "out of memory");
                goto fail;
        }
        /* SMOLVM_FS_DIRECT_IO=1: opt-in direct I/O (docs/internals.md, "Direct I/O"). */
        const char *dio = getenv("SMOLVM_FS_DIRECT_IO");
        bool direct = dio && strcmp(dio, "1") == 0;
        char *argv_ours[9] = { bin, fd_arg, ready_arg, (char *)"--shared-dir", m->host,
                               m->writable ? (char *)"--rw" : (char *)"--read-only" };
        size_t n = 6;
        if (direct)
                argv_ours[n++] = (char *)"--direct-io";
        if (op_counts())
                argv_ours[n++] = (char *)"--op-counts";
        char *argv_qemu[] = { bin, fd_arg, (char *)"-o", source, (char *)"-o", (char *)"cache=auto", NULL };
        r = spawn(f, loop, ours ? argv_ours : argv_qemu, lfd, ours, -1, -1, log_path, err, err_len);
        if (r < 0)
                goto fail;
        sup_log("started %s pid %d for %s, socket %s", bin, (int)f->pid, f->desc, socket_path);
        *ret = f;
        return 0;
fail:
        sup_fsd_free(f);
        return r;
}

/* Read what the ready pipe has. Returns 1 once "READY\n" arrived, 0 while
 * waiting for more, -EIO when it ended (EOF, garbage) without: fail_line then
 * has the back-end's last words. */
static int ready_read(sup_fsd *f)
{
        if (f->ready_state != 0 || f->ready_fd < 0)
                return f->ready_state;
        for (;;) {
                ssize_t n = read(f->ready_fd, f->ready_buf + f->ready_got, sizeof(f->ready_buf) - 1 - f->ready_got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n > 0) {
                        f->ready_got += (size_t)n;
                        f->ready_buf[f->ready_got] = '\0';
                        if (strstr(f->ready_buf, "READY\n")) {
                                f->ready_state = 1;
                                break;
                        }
                        if (f->ready_got < sizeof(f->ready_buf) - 1)
                                continue;
                }
                /* EOF (or garbage) before READY: it failed; its stderr says why. */
                f->ready_state = -EIO;
                drain_log(f);
                if (f->line_len)
                        f->line[f->line_len] = '\0';
                snprintf(f->fail_line, sizeof(f->fail_line), "%s", f->line_len ? f->line : f->last);
                break;
        }
        if (f->ready_watched) {
                (void)smolvm_evloop_del(f->loop, f->ready_fd);
                f->ready_watched = false;
        }
        f->ready_fd = safe_close(f->ready_fd);
        return f->ready_state;
}

static void ready_cb(void *userdata, int fd, uint32_t events)
{
        (void)ready_read(userdata);
}

int sup_fsd_start_stream(smolvm_evloop *loop, unsigned index, const sup_mount_cfg *m, int stream_fd, int state_fd,
                         const char *log_path, sup_fsd **ret, char *err, size_t err_len)
{
        char bin[4096], fd_arg[24], ready_arg[16], control_arg[24], state_arg[24];
        _cleanup_free_ char *mount_arg = NULL;
        _cleanup_close_ int control_theirs = -1;
        int r, sp[2];

        sup_fsd *f = fsd_new(index, m, NULL, "FUSE-over-vsock server");
        if (!f || asprintf(&mount_arg, "--fuse-mount=%s", m->guest) < 0) {
                mount_arg = NULL;
                sup_fsd_free(f);
                return errbuf_fail(-ENOMEM, err, err_len, "out of memory");
        }
        stream_binary(bin, sizeof(bin));
        snprintf(fd_arg, sizeof(fd_arg), "--stream-fd=%d", CHILD_FD3);
        snprintf(ready_arg, sizeof(ready_arg), "--ready-fd=%d", CHILD_READY_FD);
        snprintf(control_arg, sizeof(control_arg), "--control-fd=%d", CHILD_CONTROL_FD);
        snprintf(state_arg, sizeof(state_arg), "--state-fd=%d", CHILD_STATE_FD);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = errbuf_fail(negative_errno(), err, err_len, "%s: socketpair: %s", f->desc, strerror(errno));
                goto fail;
        }
        f->control_fd = sp[0];
        control_theirs = sp[1];
        /* With a state (a restore): the guest's mount exists, the stream is
         * reattached to it rather than mounted anew. */
        char *argv[12] = { bin, fd_arg, ready_arg, (char *)"--shared-dir", m->host,
                           m->writable ? (char *)"--rw" : (char *)"--read-only", mount_arg, control_arg };
        size_t n = 8;
        if (op_counts())
                argv[n++] = (char *)"--op-counts";
        if (state_fd >= 0) {
                argv[n++] = state_arg;
                argv[n++] = (char *)"--fuse-reattach";
        }
        r = spawn(f, loop, argv, stream_fd, true, control_theirs, state_fd, log_path, err, err_len);
        if (r < 0)
                goto fail;
        /* The supervisor's loop must keep relaying the stream meanwhile: READY
         * is watched, not waited for. */
        r = smolvm_evloop_add(loop, f->ready_fd, EPOLLIN, ready_cb, f);
        if (r < 0) {
                snprintf(err, err_len, "watching %s: %s", f->desc, strerror(-r));
                goto fail;
        }
        f->ready_watched = true;
        sup_log("started %s pid %d for %s over vsock", bin, (int)f->pid, f->desc);
        *ret = f;
        return 0;
fail:
        sup_fsd_free(f);
        return r;
}

/* Read exactly len bytes from the control socket by deadline_ms. */
static int control_read(int fd, uint8_t *buf, size_t len, uint64_t deadline_ms)
{
        size_t got = 0;
        while (got < len) {
                uint64_t now = now_ms();
                if (now >= deadline_ms)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int k = poll(&p, 1, (int)MIN(deadline_ms - now, 1000u));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k <= 0)
                        continue;
                ssize_t n = read(fd, buf + got, len - got);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EPIPE;
                got += (size_t)n;
        }
        return 0;
}

int sup_fsd_save_state(sup_fsd *f, const char *path, size_t *ret_bytes, char *err, size_t err_len)
{
        uint8_t hdr[STATE_HDR];
        uint64_t deadline = now_ms() + SUP_FSD_STATE_TIMEOUT_MS;
        int r;

        if (f->control_fd < 0 || f->pid == 0)
                return errbuf_fail(-ESRCH, err, err_len, "the %s for %s is not running", f->what, f->desc);
        /* A reply left over from a save that timed out would be taken for this one. */
        char junk[4096];
        while (recv(f->control_fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
                ;
        r = write_all(f->control_fd, "S", 1);
        if (r == 0)
                r = control_read(f->control_fd, hdr, sizeof(hdr), deadline);
        if (r < 0)
                return errbuf_fail(r, err, err_len, "asking the %s for %s for its state: %s", f->what, f->desc,
                                   strerror(-r));
        uint32_t e = get_le32(hdr);
        uint64_t len = get_le64(hdr + 4);
        if (e != 0 || len > SUP_FSD_STATE_MAX_BYTES) {
                r = e != 0 && e < 4096 ? -(int)e : -EPROTO;
                return errbuf_fail(r, err, err_len, "the %s for %s could not save its state: %s", f->what, f->desc,
                                   e == EFBIG ? "it holds too many files for a snapshot" : strerror(-r));
        }
        _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return errbuf_fail(-ENOMEM, err, err_len, "out of memory");
        r = control_read(f->control_fd, buf, len, deadline);
        if (r == 0)
                r = write_file_atomic(path, buf, len, 0600);
        if (r < 0)
                return errbuf_fail(r, err, err_len, "saving the state of the %s for %s to %s: %s", f->what, f->desc,
                                   path, strerror(-r));
        *ret_bytes = len;
        return 0;
}

int sup_fsd_ready_state(sup_fsd *f, char *why, size_t why_len)
{
        int r = ready_read(f);
        if (r < 0)
                snprintf(why, why_len, "%s", f->fail_line);
        return r;
}

int sup_fsd_wait_ready(sup_fsd *f, uint64_t deadline_ms, char *err, size_t err_len)
{
        for (;;) {
                int r = ready_read(f);
                if (r > 0 || (r == 0 && f->ready_fd < 0)) /* no --ready-fd: its socket listens */
                        return 0;
                if (r < 0)
                        return errbuf_fail(-EIO, err, err_len, "the %s for %s failed to start%s%s", f->what, f->desc,
                                           f->fail_line[0] ? ": " : "", f->fail_line);
                uint64_t now = now_ms();
                if (now >= deadline_ms)
                        return errbuf_fail(-ETIMEDOUT, err, err_len, "the %s for %s did not start within %u s", f->what,
                                           f->desc, SUP_FSD_READY_TIMEOUT_MS / 1000);
                struct pollfd p = { .fd = f->ready_fd, .events = POLLIN };
                if (poll(&p, 1, (int)MIN(deadline_ms - now, 1000u)) < 0 && errno != EINTR)
                        return negative_errno();
        }
}

int sup_fsd_poll(sup_fsd *f)
{
        int st;
        pid_t p;

        if (f->pid == 0)
                return 1;
        do
                p = waitpid(f->pid, &st, WNOHANG);
        while (p < 0 && errno == EINTR);
        if (p <= 0)
                return 0;
        f->pid = 0;
        f->wstatus = st;
        drain_log(f);
        return 1;
}

static const char *sig_name(int sig)
{
        const char *n = sigabbrev_np(sig);
        return n ? n : "?";
}

bool sup_fsd_describe_exit(const sup_fsd *f, char *buf, size_t len)
{
        int st = f->wstatus;
        int n;

        if (WIFSIGNALED(st))
                n = snprintf(buf, len, "killed by signal %d (SIG%s)", WTERMSIG(st), sig_name(WTERMSIG(st)));
        else if (WEXITSTATUS(st) > 128 && WEXITSTATUS(st) < 128 + 65)
                /* Ours relays its sandboxed server's death as 128 + signal. */
                n = snprintf(buf, len, "exit status %d: its server was killed by signal %d (SIG%s)", WEXITSTATUS(st),
                             WEXITSTATUS(st) - 128, sig_name(WEXITSTATUS(st) - 128));
        else
                n = snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
        if (n >= 0 && (size_t)n < len && f->last[0])
                snprintf(buf + n, len - (size_t)n, ": %s", f->last);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

const char *sup_fsd_desc(const sup_fsd *f)
{
        return f->desc;
}

const char *sup_fsd_what(const sup_fsd *f)
{
        return f->what;
}

pid_t sup_fsd_pid(const sup_fsd *f)
{
        return f->pid;
}

void sup_fsd_free(sup_fsd *f)
{
        if (!f)
                return;
        if (f->pid > 0) {
                /* Its group: our back-end forks a PID-namespace child of its own. */
                if (kill(-f->pid, SIGKILL) < 0)
                        (void)kill(f->pid, SIGKILL);
                while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                f->pid = 0;
        }
        drain_log(f);
        close_log_pipe(f);
        safe_close(f->log_fd);
        safe_close(f->control_fd);
        if (f->ready_watched)
                (void)smolvm_evloop_del(f->loop, f->ready_fd);
        safe_close(f->ready_fd);
        if (f->socket_path)
                (void)unlink(f->socket_path);
        free(f->socket_path);
        free(f);
}
