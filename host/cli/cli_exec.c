/* SPDX-License-Identifier: Apache-2.0 */
#include "cli_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "agent_proto.h"
#include "cli_json_text.h"
#include "cli_out.h"
#include "util.h"

int cli_status_exit_code(const smolvm_exec_status *st)
{
        if (st->timed_out)
                return 124;
        if (st->signal)
                return 128 + st->signal;
        return st->exit_code;
}

/* Exit code for a failed exec: 127/126 when the guest says the command could not
 * be run (docker's), else the table's (124 when the host safety net fired). */
static int exec_error_exit(int r)
{
        const smolvm_error *e = smolvm_last_error();
        if (e->from_guest && r == -ENOENT)
                return 127;
        if (e->from_guest && (r == -EACCES || r == -ENOEXEC || r == -EISDIR))
                return 126;
        return cli_exit_code_for(r);
}

void cli_exec_stdin(smolvm_exec_opts *opts, bool interactive)
{
        /* A terminal is not forwarded by default: a command that does not read
         * stdin would otherwise wait for an EOF the user never types. */
        if (fcntl(STDIN_FILENO, F_GETFD) >= 0 && (interactive || !isatty(STDIN_FILENO))) {
                opts->stdin_mode = SMOLVM_STDIN_FD;
                opts->stdin_fd = STDIN_FILENO;
        }
}

static int on_stdout(void *ud, const void *data, size_t len)
{
        (void)ud;
        /* EPIPE: whoever read our stdout is gone; stop the command like a shell would. */
        return write_all(STDOUT_FILENO, data, len);
}

static int on_stderr(void *ud, const void *data, size_t len)
{
        (void)ud;
        int r = write_all(STDERR_FILENO, data, len);
        return r == -EPIPE ? 0 : r;
}

int cli_setup_signals(sigset_t *old)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        /* A closed stdout must not kill us mid-operation: EPIPE instead. */
        signal(SIGPIPE, SIG_IGN);
        if (sigprocmask(SIG_BLOCK, &set, old) < 0)
                return -errno;
        int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        return fd < 0 ? -errno : fd;
}

int cli_pending_signal(int sfd)
{
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                return (int)si.ssi_signo;
        return 0;
}

/* ---- -t: our terminal for the guest's ---- */

typedef struct host_tty {
        int winch_fd;           /* signalfd for SIGWINCH, or -1 */
        bool raw;               /* saved holds what to restore */
        struct termios saved;
} host_tty;

/* For a tty exec: the guest's terminal gets ours' TERM and size, and every
 * change of size (SIGWINCH); with stdin forwarded from our terminal, that one
 * goes raw, so every key (Ctrl-C, Ctrl-Z, Ctrl-D too) reaches the guest's line
 * discipline, which does what ours would have done. */
static void host_tty_begin(host_tty *t, smolvm_exec_opts *o)
{
        *t = (host_tty){ .winch_fd = -1 };
        o->term = getenv("TERM");
        if (isatty(STDIN_FILENO))
                o->tty_size_fd = STDIN_FILENO;
        else if (isatty(STDOUT_FILENO))
                o->tty_size_fd = STDOUT_FILENO;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGWINCH);
        if (o->tty_size_fd >= 0 && sigprocmask(SIG_BLOCK, &set, NULL) == 0) {
                t->winch_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
                o->resize_fd = t->winch_fd;
        }
        if (o->stdin_mode == SMOLVM_STDIN_FD && isatty(o->stdin_fd) && tcgetattr(o->stdin_fd, &t->saved) == 0) {
                struct termios raw = t->saved;
                cfmakeraw(&raw);
                t->raw = tcsetattr(o->stdin_fd, TCSANOW, &raw) == 0;
        }
}

/* Before anything is printed: our messages need the terminal as it was. */
static void host_tty_end(host_tty *t, const smolvm_exec_opts *o)
{
        if (t->raw)
                (void)tcsetattr(o->stdin_fd, TCSADRAIN, &t->saved);
        t->raw = false;
        t->winch_fd = safe_close(t->winch_fd);
}

/* ---- --json: output collected as JSON text, bounded ---- */

typedef struct capture {
        cli_json_text out, err;
        smolvm_exec_status status;
} capture;

static int capture_stdout(void *ud, const void *data, size_t len)
{
        cli_json_text_add(&((capture *)ud)->out, data, len, false);
        return 0;
}

static int capture_stderr(void *ud, const void *data, size_t len)
{
        cli_json_text_add(&((capture *)ud)->err, data, len, false);
        return 0;
}

static void capture_done(capture *c)
{
        if (!c)
                return;
        free(c->out.buf);
        free(c->err.buf);
        *c = (capture){ 0 };
}

static void print_bool(FILE *f, const char *key, bool v)
{
        fprintf(f, ",\"%s\":%s", key, v ? "true" : "false");
}

/* The success envelope of run/exec: streamed out, nothing is built in memory. */
static void print_exec_ok(const char *command, int exit_code, const capture *c, const smolvm_boot_info *boot)
{
        const smolvm_exec_status *st = &c->status;
        FILE *f = stdout;
        /* Printed, not built as a jansson tree: the strings are already JSON text,
         * and a tree (plus its dump) would hold the output several times over. */
        fputs("{\"ok\":true,\"command\":", f);
        cli_json_string(f, command, strlen(command));
        fprintf(f, ",\"exit_code\":%d,\"data\":{\"exit_code\":%d,\"signal\":", exit_code, cli_status_exit_code(st));
        if (st->signal)
                fprintf(f, "%d", st->signal);
        else
                fputs("null", f);
        print_bool(f, "timed_out", st->timed_out);
        if (st->pid > 0)
                fprintf(f, ",\"pid\":%d", st->pid);
        else
                fputs(",\"pid\":null", f);
        fputs(",\"stdout\":\"", f);
        fwrite(c->out.buf ? c->out.buf : "", 1, c->out.len, f);
        fputs("\",\"stderr\":\"", f);
        fwrite(c->err.buf ? c->err.buf : "", 1, c->err.len, f);
        fputc('"', f);
        print_bool(f, "stdout_truncated", c->out.truncated);
        print_bool(f, "stderr_truncated", c->err.truncated);
        fprintf(f, ",\"duration_ms\":%" PRIu64, st->duration_ms);
        if (boot) {
                fprintf(f, ",\"boot_ms\":%" PRIu64 ",\"start\":", boot->boot_ms ? boot->boot_ms : boot->host_boot_ms);
                cli_json_string(f, boot->start, strlen(boot->start));
                fputs(",\"start_note\":", f);
                if (boot->start_note[0])
                        cli_json_string(f, boot->start_note, strlen(boot->start_note));
                else
                        fputs("null", f);
        }
        fputs("},\"error\":null}\n", f);
        fflush(f);
}

/* The timeout message: the same whether the agent reported the timeout or the
 * library's safety net fired (exec.c). */
static void print_timed_out(const smolvm_exec_opts *opts)
{
        if (opts->timeout_ms % 1000 == 0)
                cli_error("command timed out after %u s (--timeout) and was killed", opts->timeout_ms / 1000);
        else
                cli_error("command timed out after %u ms and was killed", opts->timeout_ms);
}

/* Run opts in vm: streamed to our stdout/stderr, or, when cap is given (--json),
 * collected into *cap. Sets *ret_err to the library's result and returns the
 * exit code (cli_exec_relay). */
static int exec_in_vm(smolvm_vm *vm, const smolvm_exec_opts *opts, int sfd, capture *cap, int *ret_err)
{
        int r, code = CLI_EXIT_ERROR;
        smolvm_exec_status st = { 0 };
        smolvm_exec_opts o = *opts;
        host_tty tty = { .winch_fd = -1 };
        if (o.tty)
                host_tty_begin(&tty, &o);
        if (cap) {
                smolvm_exec_callbacks cbs = { .on_stdout = capture_stdout, .on_stderr = capture_stderr,
                                              .userdata = cap };
                r = smolvm_exec(vm, &o, &cbs, &st);
                cli_json_text_add(&cap->out, NULL, 0, true);
                cli_json_text_add(&cap->err, NULL, 0, true);
                cap->status = st;
        } else {
                smolvm_exec_callbacks cbs = { .on_stdout = on_stdout, .on_stderr = on_stderr };
                r = smolvm_exec(vm, &o, &cbs, &st);
        }
        host_tty_end(&tty, &o);
        if (r == 0) {
                code = cli_status_exit_code(&st);
                if (st.timed_out)
                        print_timed_out(opts);
        } else if (r == -ECANCELED) {
                int sig = cli_pending_signal(sfd);
                code = 128 + (sig ? sig : SIGINT);
        } else if (r == -EPIPE) {
                code = 128 + SIGPIPE; /* as in a shell pipeline: quiet 141 */
        } else {
                code = exec_error_exit(r);
        }
        *ret_err = r;
        return code;
}

int cli_exec_relay(smolvm_vm *vm, const smolvm_exec_opts *opts, int sfd, const char *command, bool json,
                   const smolvm_boot_info *boot)
{
        capture cap = { 0 };
        int r, exit_code = exec_in_vm(vm, opts, sfd, json ? &cap : NULL, &r);
        if (r == 0 && json)
                print_exec_ok(command, exit_code, &cap, boot);
        else if (r < 0 && r != -ECANCELED && r != -EPIPE)
                cli_fail_exit(command, json, r, exit_code);
        capture_done(&cap);
        return exit_code;
}

int cli_exec_detached(smolvm_vm *vm, const smolvm_exec_opts *opts, const char *command, bool json)
{
        smolvm_exec_status st = { 0 };
        int r = smolvm_exec(vm, opts, NULL, &st);
        if (r < 0)
                return cli_fail_exit(command, json, r, exec_error_exit(r));
        if (json) {
                char log[sizeof(SMOLVM_EXEC_LOG_DIR) + 32];
                snprintf(log, sizeof(log), SMOLVM_EXEC_LOG_DIR "/%d.log", st.pid);
                cli_json_ok(command, 0, json_pack("{s:i,s:s}", "pid", st.pid, "log", log));
        } else {
                printf("%d\n", st.pid);
        }
        return 0;
}
