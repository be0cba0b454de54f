/* SPDX-License-Identifier: Apache-2.0 */
/* Exec logs: the output of a detached command, and what the background
 * processes of an exec write to its stdout/stderr after the exec ended (they
 * keep running, as over SSH, and must not die of SIGPIPE at their next line).
 * One file per command, <agent_exec_log_dir>/<pid>.log, written by the
 * command's handler process until nothing holds the output open any more.
 *
 * Bounded: at EXEC_LOG_CAP_BYTES the file is renamed to <pid>.log.1 (replacing
 * the older one) and restarted, so a chatty server keeps at most twice the cap
 * of the guest's RAM (/run is a tmpfs, emptied at each boot, so a pid names
 * one command). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fileutil.h"
#include "init.h"
#include "util.h"

#define EXEC_LOG_CAP_BYTES (4u * 1024u * 1024u)

const char *agent_exec_log_dir = SMOLVM_EXEC_LOG_DIR;

int agent_exec_log_path(pid_t pid, char *buf, size_t len)
{
        int n = snprintf(buf, len, "%s/%d.log", agent_exec_log_dir, (int)pid);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int agent_exec_log_open(pid_t pid)
{
        char path[512];
        int r = agent_exec_log_path(pid, path, sizeof(path));
        if (r < 0)
                return r;
        r = mkdir_p_exact(agent_exec_log_dir, 0755);
        if (r < 0)
                return r;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return negative_errno();
        (void)fchmod(fd, 0644); /* whatever the umask */
        return fd;
}

typedef struct exec_log {
        pid_t pid;
        int fd;          /* -1: not opened yet (or given up) */
        bool failed;     /* writing failed: the rest is read and dropped */
        size_t bytes;    /* in the current file */
} exec_log;

/* Start a new file, keeping the current one as <pid>.log.1. */
static int log_rotate(exec_log *l)
{
        char path[512], old[520];
        int r = agent_exec_log_path(l->pid, path, sizeof(path));
        if (r < 0)
                return r;
        snprintf(old, sizeof(old), "%s.1", path);
        if (rename(path, old) < 0)
                return negative_errno();
        l->fd = safe_close(l->fd);
        l->bytes = 0;
        int fd = agent_exec_log_open(l->pid);
        if (fd < 0)
                return fd;
        l->fd = fd;
        return 0;
}

static void log_write(exec_log *l, const uint8_t *p, size_t n)
{
        if (l->failed)
                return;
        int r = 0;
        if (l->fd < 0) {
                r = agent_exec_log_open(l->pid);
                if (r >= 0)
                        l->fd = r;
        } else if (l->bytes + n > EXEC_LOG_CAP_BYTES) {
                r = log_rotate(l);
        }
        if (r >= 0)
                r = write_all(l->fd, p, n);
        if (r < 0) {
                init_log("exec log of pid %d: %s; its further output is dropped", (int)l->pid, strerror(-r));
                l->failed = true;
                l->fd = safe_close(l->fd);
                return;
        }
        l->bytes += n;
}

void agent_exec_log_pump(pid_t pid, int log_fd, int *fds, size_t n_fds)
{
        exec_log l = { .pid = pid, .fd = log_fd };
        _cleanup_free_ uint8_t *buf = malloc(SMOLVM_FRAME_DATA_CHUNK);
        if (!buf)
                goto out;
        struct pollfd pfd[4];
        if (n_fds > ARRAY_SIZE(pfd))
                goto out;
        for (;;) {
                size_t open_fds = 0;
                for (size_t i = 0; i < n_fds; i++) {
                        pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
                        open_fds += fds[i] >= 0;
                }
                if (open_fds == 0)
                        break;
                if (poll(pfd, n_fds, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        init_log("exec log of pid %d: poll: %m", (int)pid);
                        break;
                }
                for (size_t i = 0; i < n_fds; i++) {
                        if (fds[i] < 0 || !pfd[i].revents)
                                continue;
                        ssize_t n = read(fds[i], buf, SMOLVM_FRAME_DATA_CHUNK);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                /* EOF; EIO from a pty whose slave nobody holds. */
                                fds[i] = safe_close(fds[i]);
                                continue;
                        }
                        log_write(&l, buf, (size_t)n);
                }
        }
out:
        for (size_t i = 0; i < n_fds; i++)
                fds[i] = safe_close(fds[i]);
        safe_close(l.fd);
}
