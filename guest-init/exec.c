/* SPDX-License-Identifier: Apache-2.0 */
/* The "exec" operation: run one command and relay its stdio over the stream.
 *
 * Memory is constant: at most one output frame is pending towards the stream
 * and at most one STDIN frame towards the command. While the stream does not
 * drain we stop reading the command's pipes, so the command blocks on its own
 * writes (the mux's credit flow control carries the backpressure to the host);
 * while the command does not read stdin we stop reading the stream. The loop
 * never blocks, so the timeout and SIGNAL frames work under backpressure. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "init.h"
#include "stream.h"
#include "util.h"

extern char **environ;

/* After the command exited, output may still sit in the pipes (drained to EOF),
 * but processes outside its group (or kept on request) may hold the pipes open
 * forever. We stop once the pipes were quiet for DRAIN_IDLE_MS, or after
 * DRAIN_MAX_MS of draining in all (a writer trickling a byte every few ms is
 * never quiet), or after DRAIN_MAX_BYTES more bytes: more than any pipe
 * buffers, so only a leftover writer is cut off. Time spent waiting for a slow
 * client counts for neither limit, so no output is lost to backpressure. */
#define DRAIN_IDLE_MS 100u
#define DRAIN_MAX_MS 1000u
#define DRAIN_MAX_BYTES (4u * 1024u * 1024u)

enum { REPORT_CHDIR = 1, REPORT_EXEC = 2, REPORT_SETUP = 3 };
struct exec_report {
        int step;
        int err;
};

static void exec_child(const agent_exec_spec *spec, int in_fd, int out_fd, int err_fd, int report_fd)
        __attribute__((noreturn));
static void exec_child(const agent_exec_spec *spec, int in_fd, int out_fd, int err_fd, int report_fd)
{
        struct exec_report rep = { REPORT_SETUP, 0 };
        sigset_t all;

        /* The handler dies with PID 1's stream; the command must not outlive a
         * handler that was killed (it would run unobserved). */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Own session and process group: timeouts and SIGNAL frames hit the whole
         * group, and the command has no controlling terminal. */
        if (setsid() < 0)
                goto fail;
        if (in_fd < 0) {
                in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (in_fd < 0)
                        goto fail;
        }
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
                goto fail;
        /* PID 1 blocks everything and the handler ignores SIGPIPE: both are
         * inherited across exec, so restore defaults. */
        for (int sig = 1; sig < NSIG; sig++)
                (void)signal(sig, SIG_DFL);
        sigemptyset(&all);
        (void)sigprocmask(SIG_SETMASK, &all, NULL);

        if (chdir(spec->cwd) < 0) {
                rep.step = REPORT_CHDIR;
                goto fail;
        }
        /* execvp() searches the caller's PATH, so make the command's env ours. */
        environ = spec->envp;
        rep.step = REPORT_EXEC;
        execvp(spec->argv[0], spec->argv);
fail:
        rep.err = errno;
        (void)!write(report_fd, &rep, sizeof(rep));
        _exit(127);
}

static int pidfd_open_(pid_t pid)
{
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

typedef struct relay {
        int stream;
        pid_t pid;
        int out_fd, err_fd, in_fd, pidfd;
        bool stream_eof;   /* client sent no more (half-close or gone) */
        bool stream_dead;  /* client can no longer receive: stop everything */
        bool exited, timed_out, group_killed, keep_background;
        int status;
        uint64_t start_ms, exit_ms, last_data_ms;
        uint64_t drained_bytes; /* output read after the command exited */
        uint64_t drain_ms;      /* time since the exit, less the time spent waiting for the client */
        uint64_t tick_ms;       /* when drain_ms was last brought up to date */
        bool waited_for_client; /* the last poll waited for the client to take output */
        smolvm_frame_reader reader;
        const uint8_t *stdin_pending; /* points into reader's buffer */
        size_t stdin_pending_len;
        uint8_t out[SMOLVM_FRAME_HDR_SIZE + SMOLVM_FRAME_DATA_CHUNK];
        size_t out_len, out_off;
        bool prefer_stderr; /* alternate between pipes so neither starves */
} relay;

static void kill_group(relay *rl, int sig)
{
        /* The group is the command's session; after the command was reaped its
         * pid may be reused, but not as a process group id while any member of
         * the group is alive. */
        if (kill(-rl->pid, sig) < 0 && errno == ESRCH && !rl->exited)
                (void)kill(rl->pid, sig);
}

static void close_stdin(relay *rl)
{
        rl->in_fd = safe_close(rl->in_fd);
        rl->stdin_pending = NULL;
        rl->stdin_pending_len = 0;
}

static void mark_stream_dead(relay *rl)
{
        if (rl->stream_dead)
                return;
        rl->stream_dead = true;
        rl->stream_eof = true;
        rl->out_len = rl->out_off = 0;
        close_stdin(rl);
        /* Nobody is listening any more: the command's output has nowhere to go. */
        if (!rl->group_killed) {
                kill_group(rl, SIGKILL);
                rl->group_killed = true;
        }
        rl->out_fd = safe_close(rl->out_fd);
        rl->err_fd = safe_close(rl->err_fd);
}

static void flush_out(relay *rl)
{
        while (rl->out_off < rl->out_len) {
                ssize_t n = write(rl->stream, rl->out + rl->out_off, rl->out_len - rl->out_off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                mark_stream_dead(rl);
                        return;
                }
                rl->out_off += (size_t)n;
        }
        rl->out_len = rl->out_off = 0;
}

static void write_stdin(relay *rl)
{
        while (rl->stdin_pending_len > 0 && rl->in_fd >= 0) {
                ssize_t n = write(rl->in_fd, rl->stdin_pending, rl->stdin_pending_len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                close_stdin(rl); /* EPIPE: the command closed its stdin */
                        return;
                }
                rl->stdin_pending += n;
                rl->stdin_pending_len -= (size_t)n;
        }
        rl->stdin_pending = NULL;
        rl->stdin_pending_len = 0;
}

static void handle_frame(relay *rl, uint16_t type, const uint8_t *payload, uint32_t len)
{
        switch (type) {
        case SMOLVM_FRAME_STDIN:
                if (rl->in_fd < 0 || len == 0)
                        return; /* no stdin requested, or already closed: drop */
                rl->stdin_pending = payload;
                rl->stdin_pending_len = len;
                write_stdin(rl);
                return;
        case SMOLVM_FRAME_STDIN_EOF:
                close_stdin(rl);
                return;
        case SMOLVM_FRAME_SIGNAL:
                if (len == 4) {
                        uint32_t sig = get_le32(payload);
                        if (sig >= 1 && sig < (uint32_t)NSIG && !rl->group_killed)
                                kill_group(rl, (int)sig);
                }
                return;
        default:
                return; /* not meaningful here: ignored */
        }
}

static void read_stream(relay *rl)
{
        for (;;) {
                size_t space = smolvm_frame_reader_space(&rl->reader);
                if (space == 0) {
                        if (rl->reader.error) {
                                init_log("exec: bad frame from client (%s)", strerror(-rl->reader.error));
                                rl->stream_eof = true;
                                close_stdin(rl);
                        }
                        return;
                }
                ssize_t n = read(rl->stream, smolvm_frame_reader_tail(&rl->reader), space);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                mark_stream_dead(rl);
                        return;
                }
                if (n == 0) {
                        /* Client half-closed: it will send nothing more, including stdin. */
                        rl->stream_eof = true;
                        close_stdin(rl);
                        return;
                }
                smolvm_frame_reader_commit(&rl->reader, (size_t)n);
                uint16_t type;
                const uint8_t *payload;
                uint32_t len;
                int r = smolvm_frame_reader_next(&rl->reader, &type, &payload, &len);
                if (r < 0) {
                        init_log("exec: bad frame from client (%s)", strerror(-r));
                        rl->stream_eof = true;
                        close_stdin(rl);
                        return;
                }
                if (r == 1) {
                        handle_frame(rl, type, payload, len);
                        if (rl->stdin_pending_len > 0)
                                return; /* the payload lives in the reader: read no more */
                }
        }
}

/* Read one chunk from a pipe into the (empty) output frame buffer. */
static void read_pipe(relay *rl, int *fd, uint16_t type, uint64_t now)
{
        ssize_t n;
        do
                n = read(*fd, rl->out + SMOLVM_FRAME_HDR_SIZE, SMOLVM_FRAME_DATA_CHUNK);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
                return;
        if (n <= 0) {
                *fd = safe_close(*fd);
                return;
        }
        rl->last_data_ms = now;
        if (rl->exited)
                rl->drained_bytes += (uint64_t)n;
        smolvm_frame_hdr_encode(type, (uint32_t)n, rl->out);
        rl->out_len = SMOLVM_FRAME_HDR_SIZE + (size_t)n;
        rl->out_off = 0;
        flush_out(rl);
}

static void on_child_exit(relay *rl, uint64_t now)
{
        pid_t p;
        do
                p = waitpid(rl->pid, &rl->status, WNOHANG);
        while (p < 0 && errno == EINTR);
        if (p != rl->pid)
                return;
        rl->exited = true;
        rl->exit_ms = now;
        rl->last_data_ms = now;
        rl->tick_ms = now;
        rl->pidfd = safe_close(rl->pidfd);
        close_stdin(rl);
        /* Whatever the command left running in its group goes with it (unless
         * asked otherwise): a finished exec leaves no process behind. Output
         * already in the pipes stays readable. */
        if (!rl->keep_background && !rl->group_killed) {
                kill_group(rl, SIGKILL);
                rl->group_killed = true;
        }
}

static int poll_timeout(const relay *rl, uint64_t now, uint64_t deadline_ms, bool out_pending)
{
        uint64_t until = UINT64_MAX;
        if (!rl->exited && deadline_ms && !rl->timed_out)
                until = deadline_ms;
        if (rl->exited) {
                until = rl->last_data_ms + DRAIN_IDLE_MS;
                if (!out_pending)
                        until = MIN(until, now + DRAIN_MAX_MS - MIN(rl->drain_ms, (uint64_t)DRAIN_MAX_MS));
        }
        if (!rl->exited && rl->pidfd < 0)
                until = MIN(until, now + 20); /* no pidfd: poll waitpid */
        if (until == UINT64_MAX)
                return -1;
        return until > now ? (int)MIN(until - now, (uint64_t)INT32_MAX) : 0;
}

static void relay_loop(relay *rl, uint64_t deadline_ms)
{
        for (;;) {
                uint64_t now = now_ms();
                if (!rl->exited && deadline_ms && !rl->timed_out && now >= deadline_ms) {
                        rl->timed_out = true;
                        kill_group(rl, SIGKILL);
                        rl->group_killed = true;
                }
                if (!rl->exited && rl->pidfd < 0)
                        on_child_exit(rl, now);
                if (rl->exited) {
                        if (!rl->waited_for_client)
                                rl->drain_ms += now - rl->tick_ms;
                        rl->tick_ms = now;
                        if (rl->out_fd < 0 && rl->err_fd < 0)
                                break;
                        if (rl->out_off < rl->out_len)
                                rl->last_data_ms = now; /* backpressure is not idleness */
                        else if (now >= rl->last_data_ms + DRAIN_IDLE_MS)
                                break;
                        if (rl->drained_bytes >= DRAIN_MAX_BYTES || rl->drain_ms >= DRAIN_MAX_MS) {
                                init_log("exec: pid %d exited but its output is still being written "
                                         "(a process outside its group?): closing it after %llu ms, %llu bytes",
                                         (int)rl->pid, (unsigned long long)rl->drain_ms,
                                         (unsigned long long)rl->drained_bytes);
                                break;
                        }
                }

                enum { PFD_STREAM, PFD_OUT, PFD_ERR, PFD_IN, PFD_PID, PFD_N };
                struct pollfd pfd[PFD_N];
                bool out_pending = rl->out_off < rl->out_len;
                pfd[PFD_STREAM] = (struct pollfd){ .fd = rl->stream_dead ? -1 : rl->stream };
                if (!rl->stream_eof && rl->stdin_pending_len == 0)
                        pfd[PFD_STREAM].events |= POLLIN;
                if (out_pending)
                        pfd[PFD_STREAM].events |= POLLOUT;
                pfd[PFD_OUT] = (struct pollfd){ .fd = out_pending ? -1 : rl->out_fd, .events = POLLIN };
                pfd[PFD_ERR] = (struct pollfd){ .fd = out_pending ? -1 : rl->err_fd, .events = POLLIN };
                pfd[PFD_IN] = (struct pollfd){ .fd = rl->stdin_pending_len ? rl->in_fd : -1, .events = POLLOUT };
                pfd[PFD_PID] = (struct pollfd){ .fd = rl->exited ? -1 : rl->pidfd, .events = POLLIN };

                rl->waited_for_client = out_pending;
                int n = poll(pfd, PFD_N, poll_timeout(rl, now, deadline_ms, out_pending));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        init_log("exec: poll: %m");
                        mark_stream_dead(rl);
                        /* Still wait for the command (killed above) to be reaped. */
                        if (!rl->exited)
                                (void)waitpid(rl->pid, &rl->status, 0);
                        rl->exited = true;
                        break;
                }
                now = now_ms();

                if (pfd[PFD_PID].revents)
                        on_child_exit(rl, now);
                if (pfd[PFD_STREAM].revents & (POLLERR | POLLHUP)) {
                        /* POLLHUP on a socket: the client closed both directions. */
                        mark_stream_dead(rl);
                        continue;
                }
                if (pfd[PFD_STREAM].revents & POLLOUT)
                        flush_out(rl);
                if (pfd[PFD_STREAM].revents & POLLIN)
                        read_stream(rl);
                if (pfd[PFD_IN].revents) {
                        if (pfd[PFD_IN].revents & (POLLERR | POLLHUP))
                                close_stdin(rl);
                        else
                                write_stdin(rl);
                        /* The reader's frame was consumed: continue pulling frames. */
                        if (rl->stdin_pending_len == 0 && !rl->stream_eof)
                                read_stream(rl);
                }
                /* One output chunk at a time, alternating between the pipes. */
                int first = rl->prefer_stderr ? PFD_ERR : PFD_OUT;
                for (int k = 0; k < 2; k++) {
                        int i = k == 0 ? first : (first == PFD_OUT ? PFD_ERR : PFD_OUT);
                        if (rl->out_off < rl->out_len || !pfd[i].revents)
                                continue;
                        if (i == PFD_OUT)
                                read_pipe(rl, &rl->out_fd, SMOLVM_FRAME_STDOUT, now);
                        else
                                read_pipe(rl, &rl->err_fd, SMOLVM_FRAME_STDERR, now);
                        rl->prefer_stderr = i == PFD_OUT;
                }
        }
        /* The command has exited (or we gave up waiting for it: never, see above). */
        rl->out_fd = safe_close(rl->out_fd);
        rl->err_fd = safe_close(rl->err_fd);
        close_stdin(rl);
}

static int send_exit(relay *rl)
{
        json_t *o = json_object();
        if (!o)
                return -ENOMEM;
        int code = WIFEXITED(rl->status) ? WEXITSTATUS(rl->status) : -1;
        int sig = WIFSIGNALED(rl->status) ? WTERMSIG(rl->status) : 0;
        json_object_set_new(o, "exit_code", json_integer(code));
        json_object_set_new(o, "signal", json_integer(sig));
        json_object_set_new(o, "timed_out", json_boolean(rl->timed_out));
        json_object_set_new(o, "duration_ms", json_integer((json_int_t)(rl->exit_ms - rl->start_ms)));
        return agent_send_json(rl->stream, SMOLVM_FRAME_EXIT, o);
}

int agent_exec(int fd, const agent_exec_spec *spec)
{
        int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, in_p[2] = { -1, -1 }, rep_p[2] = { -1, -1 };
        int r = 0;

        if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(rep_p, O_CLOEXEC) < 0 ||
            (spec->want_stdin && pipe2(in_p, O_CLOEXEC) < 0)) {
                r = negative_errno();
                (void)agent_send_error(fd, -r, "exec: cannot create pipes");
                goto out;
        }

        uint64_t start = now_ms();
        pid_t pid = fork();
        if (pid < 0) {
                r = negative_errno();
                (void)agent_send_error(fd, -r, "exec: fork failed");
                goto out;
        }
        if (pid == 0)
                exec_child(spec, in_p[0], out_p[1], err_p[1], rep_p[1]);

        out_p[1] = safe_close(out_p[1]);
        err_p[1] = safe_close(err_p[1]);
        in_p[0] = safe_close(in_p[0]);
        rep_p[1] = safe_close(rep_p[1]);

        /* The report pipe closes on a successful exec (O_CLOEXEC) or carries why not. */
        struct exec_report rep;
        ssize_t n;
        do
                n = read(rep_p[0], &rep, sizeof(rep));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(rep)) {
                char msg[600];
                (void)waitpid(pid, NULL, 0);
                if (rep.step == REPORT_CHDIR)
                        snprintf(msg, sizeof(msg), "cwd %.256s: %s", spec->cwd, strerror(rep.err));
                else if (rep.step == REPORT_EXEC)
                        snprintf(msg, sizeof(msg), "exec %.256s: %s", spec->argv[0], strerror(rep.err));
                else
                        snprintf(msg, sizeof(msg), "exec: setting up the command failed: %s", strerror(rep.err));
                r = -rep.err;
                (void)agent_send_error(fd, rep.err, msg);
                goto out;
        }

        relay *rl = calloc(1, sizeof(*rl));
        if (!rl) {
                (void)kill(-pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                r = -ENOMEM;
                goto out;
        }
        *rl = (relay){
                .stream = fd, .pid = pid, .start_ms = start,
                .out_fd = TAKE_FD(out_p[0]), .err_fd = TAKE_FD(err_p[0]), .in_fd = TAKE_FD(in_p[1]),
                .pidfd = pidfd_open_(pid), .keep_background = spec->keep_background,
        };
        r = smolvm_frame_reader_init(&rl->reader, SMOLVM_FRAME_MAX_PAYLOAD);
        json_t *started = json_pack("{s:i}", "pid", (int)pid);
        if (r < 0 || !started || agent_send_json(fd, SMOLVM_FRAME_STARTED, started) < 0) {
                /* Nobody to report to: do not leave the command running. */
                rl->stream_dead = true;
                kill_group(rl, SIGKILL);
                rl->group_killed = true;
        }
        if (rl->in_fd >= 0)
                (void)fd_set_nonblock(rl->in_fd, true);
        (void)fd_set_nonblock(rl->out_fd, true);
        (void)fd_set_nonblock(rl->err_fd, true);
        (void)fd_set_nonblock(fd, true);

        uint64_t deadline = spec->timeout_ms ? start + spec->timeout_ms : 0;
        relay_loop(rl, deadline);
        if (!rl->exited) {
                /* Only after a poll failure: reaped there. */
                rl->exit_ms = now_ms();
        }
        (void)fd_set_nonblock(fd, false);
        if (!rl->stream_dead) {
                flush_out(rl);
                if (!rl->stream_dead)
                        r = send_exit(rl);
        }
        rl->pidfd = safe_close(rl->pidfd);
        smolvm_frame_reader_done(&rl->reader);
        free(rl);
out:
        safe_close(out_p[0]);
        safe_close(out_p[1]);
        safe_close(err_p[0]);
        safe_close(err_p[1]);
        safe_close(in_p[0]);
        safe_close(in_p[1]);
        safe_close(rep_p[0]);
        safe_close(rep_p[1]);
        return r;
}
