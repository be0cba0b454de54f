/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm_spawn() (spawner.h). */
#include "spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Where fds are parked in the child before they are moved to 0..n_fds-1, so
 * that one dup2 cannot clobber another's source (or the error pipe). */
#define PARK_FD_MIN SMOLVM_SPAWN_MAX_FDS

static ssize_t read_retry(int fd, void *buf, size_t len)
{
        ssize_t n;
        do
                n = read(fd, buf, len);
        while (n < 0 && errno == EINTR);
        return n;
}

/* execvpe() searches the caller's PATH (glibc reads it with getenv), not the
 * PATH the child is given: a caller that adds /usr/sbin for its children would
 * still get "command not found". So the lookup is done here, over envp's PATH
 * (glibc's default "/bin:/usr/bin" without one), with execvp's rules: an entry
 * where the file is missing or not a directory is passed over, EACCES is kept
 * for the end, any other failure stops the search. Async-signal-safe: no
 * allocation, the candidate is built on the stack. Returns only on failure,
 * with errno set. */
static void exec_search(char *const *argv, char *const *envp)
{
        const char *file = argv[0], *path = "/bin:/usr/bin";
        size_t file_len = strlen(file);
        bool eacces = false;

        if (!*file) {
                errno = ENOENT;
                return;
        }
        if (strchr(file, '/')) {
                execve(file, argv, envp);
                return;
        }
        for (char *const *e = envp; e && *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0) {
                        path = *e + 5;
                        break;
                }
        for (const char *p = path;; p++) {
                const char *end = strchrnul(p, ':');
                size_t dir_len = (size_t)(end - p);
                char buf[PATH_MAX];
                if (dir_len + 1 + file_len < sizeof(buf)) {
                        /* An empty entry is the current directory. */
                        memcpy(buf, p, dir_len);
                        if (dir_len)
                                buf[dir_len++] = '/';
                        memcpy(buf + dir_len, file, file_len + 1);
                        execve(buf, argv, envp);
                        if (errno == EACCES)
                                eacces = true;
                        else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
                                 errno != ETIMEDOUT)
                                return;
                }
                if (!*end)
                        break;
                p = end;
        }
        errno = eacces ? EACCES : ENOENT;
}

/* Between fork and exec: async-signal-safe calls only (the caller may be
 * threaded). Every signal is blocked on entry (smolvm_spawn). */
static _Noreturn void child(const smolvm_spawn_opts *o, char *const *envp, pid_t parent, int exec_w, int pid_w)
{
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        int src[SMOLVM_SPAWN_MAX_FDS], err;
        sigset_t none;

        /* Handlers would be reset by exec anyway, ignored signals would not. */
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void)sigaction(sig, &dfl, NULL);
        if (o->detach) {
                if (setsid() < 0)
                        goto fail;
                pid_t g = fork();
                if (g < 0)
                        goto fail;
                if (g > 0) {
                        (void)!write(pid_w, &g, sizeof(g));
                        _exit(0);
                }
        }
        if (o->new_pgroup)
                (void)setpgid(0, 0);
        if (o->pdeathsig) {
                if (prctl(PR_SET_PDEATHSIG, o->pdeathsig) < 0)
                        goto fail;
                /* Only armed for a future death: the caller may be gone already. */
                if (getppid() != parent)
                        _exit(127);
        }
        if (o->nofile)
                (void)setrlimit(RLIMIT_NOFILE, o->nofile);
        if (o->cwd && chdir(o->cwd) < 0)
                goto fail;
        if (exec_w < PARK_FD_MIN) {
                int e = fcntl(exec_w, F_DUPFD_CLOEXEC, PARK_FD_MIN);
                if (e < 0)
                        goto fail;
                exec_w = e;
        }
        for (int i = 0; i < o->n_fds; i++)
                if ((src[i] = fcntl(o->fds[i], F_DUPFD_CLOEXEC, PARK_FD_MIN)) < 0)
                        goto fail;
        /* dup2 clears O_CLOEXEC on the target. */
        for (int i = 0; i < o->n_fds; i++)
                if (dup2(src[i], i) < 0)
                        goto fail;
        /* Everything else goes at exec, the error pipe included (it is how the
         * caller learns that exec happened). Without CLOSE_RANGE_CLOEXEC
         * (Linux < 5.11) close them now, around the pipe. */
        if (close_range((unsigned)o->n_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
                if (exec_w > o->n_fds)
                        (void)close_range((unsigned)o->n_fds, (unsigned)exec_w - 1, 0);
                (void)close_range((unsigned)exec_w + 1, ~0U, 0);
        }
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        if (o->search_path)
                exec_search(o->argv, envp);
        else
                execve(o->argv[0], o->argv, envp);
fail:
        err = errno;
        (void)!write(exec_w, &err, sizeof(err));
        _exit(127);
}

int smolvm_spawn(const smolvm_spawn_opts *o, pid_t *ret_pid)
{
        _cleanup_close_ int exec_r = -1, exec_w = -1, pid_r = -1, pid_w = -1;
        int pfd[2], child_errno = 0, fork_errno;
        sigset_t all, old;
        pid_t pid, child_pid;
        ssize_t n;

        if (!o->argv || !o->argv[0] || o->n_fds < 0 || o->n_fds > SMOLVM_SPAWN_MAX_FDS ||
            (o->n_fds > 0 && !o->fds) || (o->detach && o->pdeathsig))
                return -EINVAL;
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return negative_errno();
        exec_r = pfd[0];
        exec_w = pfd[1];
        if (o->detach) {
                if (pipe2(pfd, O_CLOEXEC) < 0)
                        return negative_errno();
                pid_r = pfd[0];
                pid_w = pfd[1];
        }
        char *const *envp = o->envp ? o->envp : environ;
        pid_t parent = getpid();

        /* No handler of ours may run in the child before it resets them. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid = fork();
        if (pid == 0)
                child(o, envp, parent, exec_w, pid_w);
        fork_errno = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (pid < 0)
                return fork_errno > 0 ? -fork_errno : -EIO;
        exec_w = safe_close(exec_w);
        pid_w = safe_close(pid_w);
        child_pid = pid;
        if (o->detach) {
                /* The intermediate exits at once; its child is not ours. */
                pid_t g = 0;
                n = read_retry(pid_r, &g, sizeof(g));
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                if (n != (ssize_t)sizeof(g) || g <= 0) {
                        n = read_retry(exec_r, &child_errno, sizeof(child_errno));
                        return n == (ssize_t)sizeof(child_errno) && child_errno > 0 ? -child_errno : -ECHILD;
                }
                child_pid = g;
        } else if (o->new_pgroup) {
                /* Also from here: kill(-pid) must work even before the child runs. */
                (void)setpgid(pid, pid);
        }
        /* EOF when exec closed the pipe; an errno when the child got no further. */
        n = read_retry(exec_r, &child_errno, sizeof(child_errno));
        if (n == (ssize_t)sizeof(child_errno)) {
                if (!o->detach)
                        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                                ;
                return child_errno > 0 ? -child_errno : -EIO;
        }
        *ret_pid = child_pid;
        return 0;
}

char *smolvm_find_program(const char *name)
{
        if (strchr(name, '/'))
                return access(name, X_OK) == 0 ? strdup(name) : NULL;
        const char *path = getenv("PATH");
        char *dirs = NULL;
        if (asprintf(&dirs, "%s:" SMOLVM_SBIN_PATH, path && *path ? path : "/usr/bin:/bin") < 0)
                return NULL;
        char *save = NULL, *found = NULL;
        for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
                char *p = NULL;
                struct stat st;
                if (asprintf(&p, "%s/%s", d, name) < 0)
                        break;
                if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
                        found = p;
                else
                        free(p);
        }
        free(dirs);
        return found;
}
