/* SPDX-License-Identifier: Apache-2.0 */
/* Run an external command (smolvm_spawn, never a shell): stdin from /dev/null, stdout
 * discarded or captured (bounded), stderr kept as a bounded tail for the error message. */
#include "image_i.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "spawner.h"

extern char **environ;

#define STDERR_TAIL_BYTES 8192

typedef struct child {
        pid_t pid;
} child;

/* Error-path cleanup (crun): a child still alive here is killed and reaped. */
static void child_killp(child *c)
{
        if (c->pid > 0) {
                (void)kill(c->pid, SIGKILL);
                while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                c->pid = 0;
        }
}

static void strvp_done(strv *s) { strv_done(s); }

/* environ with LC_ALL=C (stable, parseable output) and sbin in PATH (debootstrap, depmod,
 * mkfs.ext4 live there and a user's PATH may lack it). Built before the spawn: after fork
 * in a threaded program only async-signal-safe calls are allowed. */
static int build_env(strv *env)
{
        int r;
        bool have_path = false;
        for (char **e = environ; e && *e; e++) {
                if (strncmp(*e, "LC_ALL=", 7) == 0 || strncmp(*e, "LANGUAGE=", 9) == 0)
                        continue;
                if (strncmp(*e, "PATH=", 5) == 0) {
                        have_path = true;
                        r = strv_push_take(env, xasprintf("%s:/usr/sbin:/sbin", *e));
                } else
                        r = strv_push(env, *e);
                if (r < 0)
                        return r;
        }
        if (!have_path && (r = strv_push(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")) < 0)
                return r;
        if ((r = strv_push(env, "LC_ALL=C")) < 0)
                return r;
        return strv_push(env, "DEBIAN_FRONTEND=noninteractive");
}

void ib_tail_lines(const char *buf, size_t len, size_t max_lines, char *out, size_t out_size)
{
        if (out_size == 0)
                return;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\r'))
                len--;
        size_t start = len, lines = 0;
        while (start > 0) {
                if (buf[start - 1] == '\n' && ++lines >= max_lines)
                        break;
                start--;
        }
        if (len - start > out_size - 1)
                start = len - (out_size - 1);
        size_t o = 0;
        for (size_t i = start; i < len && o < out_size - 1; i++) {
                char ch = buf[i];
                /* One error line for the user: newlines become " | ", control chars go. */
                if (ch == '\n') {
                        if (o + 3 >= out_size - 1)
                                break;
                        memcpy(out + o, " | ", 3);
                        o += 3;
                } else if ((unsigned char)ch >= 0x20 || ch == '\t')
                        out[o++] = ch;
        }
        out[o] = '\0';
}

int ib_run(const ib_cmd *cmd, const char *step, char **ret_stdout, size_t *ret_stdout_len,
           ib_err *err)
{
        _cleanup_(strvp_done) strv env = {0};
        const char *name = cmd->argv[0];
        int r;

        if ((r = build_env(&env)) < 0)
                return ib_errf(err, r, "%s: out of memory", step);

        int pout[2] = {-1, -1}, perr[2] = {-1, -1};
        if (pipe2(perr, O_CLOEXEC) < 0)
                return ib_errf(err, negative_errno(), "%s: pipe: %m", step);
        _cleanup_close_ int err_rd = perr[0];
        _cleanup_close_ int err_wr = perr[1];
        _cleanup_close_ int out_rd = -1, out_wr = -1;
        if (cmd->stdout_max_bytes > 0) {
                if (pipe2(pout, O_CLOEXEC) < 0)
                        return ib_errf(err, negative_errno(), "%s: pipe: %m", step);
                out_rd = pout[0];
                out_wr = pout[1];
        }
        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return ib_errf(err, negative_errno(), "%s: open /dev/null: %m", step);

        /* If the builder is killed, debootstrap & co. must not go on writing into a
         * temp dir the next build (holding the lock) will delete: PDEATHSIG. */
        int fds[3] = { devnull, out_wr >= 0 ? out_wr : cmd->stdout_in_tail ? err_wr : devnull, err_wr };
        smolvm_spawn_opts o = {
                .argv = (char *const *)cmd->argv,
                .envp = env.v,
                .search_path = true,
                .fds = fds,
                .n_fds = 3,
                .pdeathsig = SIGKILL,
                .cwd = cmd->cwd,
        };
        _cleanup_(child_killp) child ch = {0};
        r = smolvm_spawn(&o, &ch.pid);
        if (r == -ENOENT && (!cmd->cwd || access(cmd->cwd, X_OK) == 0))
                return ib_errf(err, -ENOENT, "%s: %s: command not found (install it, see scripts/setup.sh)",
                               step, name);
        if (r < 0)
                return ib_errf(err, r, "%s: starting %s%s%s: %s", step, name, cmd->cwd ? " in " : "",
                               cmd->cwd ? cmd->cwd : "", strerror(-r));
        err_wr = safe_close(err_wr);
        out_wr = safe_close(out_wr);

        char tail[STDERR_TAIL_BYTES];
        size_t tail_len = 0;
        _cleanup_free_ char *out = NULL;
        size_t out_len = 0, out_cap = 0;
        bool overflow = false;
        uint64_t deadline = cmd->timeout_ms ? now_ms() + cmd->timeout_ms : 0;

        while (err_rd >= 0 || out_rd >= 0) {
                struct pollfd pfd[2];
                nfds_t n = 0;
                if (err_rd >= 0)
                        pfd[n++] = (struct pollfd){.fd = err_rd, .events = POLLIN};
                if (out_rd >= 0)
                        pfd[n++] = (struct pollfd){.fd = out_rd, .events = POLLIN};
                int timeout = -1;
                if (deadline) {
                        uint64_t now = now_ms();
                        if (now >= deadline)
                                return ib_errf(err, -ETIMEDOUT, "%s: %s timed out after %llu s",
                                               step, name, (unsigned long long)(cmd->timeout_ms / 1000));
                        timeout = (int)MIN(deadline - now, (uint64_t)60000);
                }
                int pr = poll(pfd, n, timeout);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        return ib_errf(err, negative_errno(), "%s: poll: %m", step);
                }
                for (nfds_t i = 0; i < n; i++) {
                        if (!pfd[i].revents)
                                continue;
                        bool is_err = pfd[i].fd == err_rd;
                        char buf[65536];
                        ssize_t k = read(pfd[i].fd, buf, sizeof(buf));
                        if (k < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (k <= 0) {
                                if (is_err)
                                        err_rd = safe_close(err_rd);
                                else
                                        out_rd = safe_close(out_rd);
                                continue;
                        }
                        if (is_err) {
                                size_t kk = (size_t)k;
                                if (kk >= sizeof(tail)) {
                                        memcpy(tail, buf + kk - sizeof(tail), sizeof(tail));
                                        tail_len = sizeof(tail);
                                } else {
                                        if (tail_len + kk > sizeof(tail)) {
                                                size_t drop = tail_len + kk - sizeof(tail);
                                                memmove(tail, tail + drop, tail_len - drop);
                                                tail_len -= drop;
                                        }
                                        memcpy(tail + tail_len, buf, kk);
                                        tail_len += kk;
                                }
                        } else if (out_len + (size_t)k > cmd->stdout_max_bytes) {
                                overflow = true;
                                out_rd = safe_close(out_rd);
                                (void)kill(ch.pid, SIGKILL);
                        } else {
                                if (out_len + (size_t)k + 1 > out_cap) {
                                        size_t cap = MAX(out_cap * 2, out_len + (size_t)k + 1);
                                        cap = MAX(cap, (size_t)65536);
                                        char *nb = realloc(out, cap);
                                        if (!nb)
                                                return ib_errf(err, -ENOMEM, "%s: out of memory", step);
                                        out = nb;
                                        out_cap = cap;
                                }
                                memcpy(out + out_len, buf, (size_t)k);
                                out_len += (size_t)k;
                        }
                }
        }

        int status;
        while (waitpid(ch.pid, &status, 0) < 0) {
                if (errno != EINTR)
                        return ib_errf(err, negative_errno(), "%s: waitpid %s: %m", step, name);
        }
        ch.pid = 0;

        char t[1024];
        ib_tail_lines(tail, tail_len, 6, t, sizeof(t));
        if (overflow)
                return ib_errf(err, -E2BIG, "%s: %s printed more than %zu bytes", step, name,
                               cmd->stdout_max_bytes);
        if (WIFSIGNALED(status))
                return ib_errf(err, -ECHILD, "%s: %s killed by signal %d%s%s", step, name,
                               WTERMSIG(status), t[0] ? ": " : "", t);
        int code = WEXITSTATUS(status);
        if (code == 127 && tail_len == 0)
                return ib_errf(err, -ENOENT, "%s: %s: command not found (install it, see scripts/setup.sh)",
                               step, name);
        if (code != 0)
                return ib_errf(err, -EPROTO, "%s: %s failed (exit %d)%s%s", step, name, code,
                               t[0] ? ": " : "", t);
        if (ret_stdout) {
                if (!out && !(out = strdup("")))
                        return ib_errf(err, -ENOMEM, "%s: out of memory", step);
                out[out_len] = '\0';
                if (ret_stdout_len)
                        *ret_stdout_len = out_len;
                *ret_stdout = TAKE_PTR(out);
        }
        return 0;
}
