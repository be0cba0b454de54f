/* SPDX-License-Identifier: Apache-2.0 */
/* Terminals for exec's "tty": a pty pair whose slave becomes the command's
 * controlling terminal, its window size, and the session that owns it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

int agent_pty_set_size(int master, uint16_t rows, uint16_t cols)
{
        if (rows == 0 || cols == 0)
                return 0;
        /* The kernel sends SIGWINCH to the terminal's foreground process group. */
        struct winsize ws = { .ws_row = rows, .ws_col = cols };
        return ioctl(master, TIOCSWINSZ, &ws) < 0 ? negative_errno() : 0;
}

/* The slave of master, opened without making it our controlling terminal. */
static int open_slave(int master)
{
        /* TIOCGPTPEER (Linux 4.13) finds the slave whatever devpts instance or
         * path the master came from; the path is the fallback. */
        int fd = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0 || (errno != EINVAL && errno != ENOTTY))
                return fd >= 0 ? fd : negative_errno();
        unsigned n;
        if (ioctl(master, TIOCGPTN, &n) < 0)
                return negative_errno();
        char path[64];
        snprintf(path, sizeof(path), "/dev/pts/%u", n);
        fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        return fd >= 0 ? fd : negative_errno();
}

int agent_pty_open(uint16_t rows, uint16_t cols, int *ret_master, int *ret_slave)
{
        _cleanup_close_ int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0)
                return negative_errno();
        int unlock = 0;
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
                return negative_errno();
        _cleanup_close_ int slave = open_slave(master);
        if (slave < 0)
                return slave;
        /* The guest speaks UTF-8 (LANG=C.UTF-8): erase whole characters. */
        struct termios t;
        if (tcgetattr(slave, &t) == 0) {
                t.c_iflag |= IUTF8;
                (void)tcsetattr(slave, TCSANOW, &t);
        }
        int r = agent_pty_set_size(master, rows, cols);
        if (r < 0)
                return r;
        *ret_master = TAKE_FD(master);
        *ret_slave = TAKE_FD(slave);
        return 0;
}

/* The session id in /proc/<pid>/stat, or -1. */
static pid_t session_of(const char *pid)
{
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", pid);
        if (read_line_file(path, buf, sizeof(buf)) < 0)
                return -1;
        /* "pid (comm) state ppid pgrp session ...": comm may hold anything,
         * so count from its last ')'. */
        const char *p = strrchr(buf, ')');
        int ppid, pgrp, sid;
        char state;
        if (!p || sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) != 4)
                return -1;
        return sid;
}

void agent_kill_session(pid_t sid, int sig)
{
        /* A terminal session's shell puts each job in a process group of its
         * own: only the session holds them all. Processes that setsid() again
         * leave it, as they leave the process group of a command without a
         * terminal. */
        (void)kill(-sid, sig);
        DIR *d = opendir("/proc");
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                pid_t pid = (pid_t)atoi(de->d_name);
                if (pid != sid && session_of(de->d_name) == sid)
                        (void)kill(pid, sig);
        }
        closedir(d);
}
