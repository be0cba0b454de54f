/* SPDX-License-Identifier: Apache-2.0 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

int sup_spawn(char *const argv[], const int *fds, int n_fds, const struct rlimit *nofile, pid_t *ret_pid)
{
        _cleanup_close_ int exec_r = -1, exec_w = -1;
        int pfd[2], child_errno = 0;
        ssize_t n;

        if (n_fds < 0 || n_fds > SUP_SPAWN_MAX_FDS)
                return -EINVAL;
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return negative_errno();
        exec_r = pfd[0];
        exec_w = pfd[1];

        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                /* Child: async-signal-safe calls only. */
                int src[SUP_SPAWN_MAX_FDS];
                sigset_t none;
                (void)setpgid(0, 0);
                /* The parent may already be gone (the signal is only armed for
                 * future deaths), hence the getppid check. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                sigemptyset(&none);
                (void)sigprocmask(SIG_SETMASK, &none, NULL);
                (void)signal(SIGPIPE, SIG_DFL);
                if (nofile)
                        (void)setrlimit(RLIMIT_NOFILE, nofile);
                /* Out of the 0..n range first, so one dup2 cannot clobber another
                 * source; dup2 clears O_CLOEXEC on the target. */
                for (int i = 0; i < n_fds; i++)
                        if ((src[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
                                goto fail;
                for (int i = 0; i < n_fds; i++)
                        if (dup2(src[i], i) < 0)
                                goto fail;
                execvp(argv[0], argv);
        fail:
                child_errno = errno;
                (void)!write(exec_w, &child_errno, sizeof(child_errno));
                _exit(127);
        }
        /* Also from the parent, so kill(-pid) works even before the child runs. */
        (void)setpgid(pid, pid);
        exec_w = safe_close(exec_w);
        do
                n = read(exec_r, &child_errno, sizeof(child_errno));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(child_errno)) {
                (void)waitpid(pid, NULL, 0);
                return child_errno > 0 ? -child_errno : -EIO;
        }
        *ret_pid = pid;
        return 0;
}
