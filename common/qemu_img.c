/* SPDX-License-Identifier: Apache-2.0 */
#include "qemu_img.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawner.h"
#include "util.h"

#define QEMU_IMG_BINARY "qemu-img"

char *qemu_opt_escape(const char *s)
{
        size_t n = strlen(s), commas = 0;
        for (size_t i = 0; i < n; i++)
                commas += s[i] == ',';
        char *out = malloc(n + commas + 1), *p = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                *p++ = s[i];
                if (s[i] == ',')
                        *p++ = ',';
        }
        *p = '\0';
        return out;
}

int qemu_img_create_overlay(const char *base_path, const char *base_format, const char *overlay_path,
                            uint64_t size_bytes, char *err, size_t err_len)
{
        _cleanup_free_ char *backing = NULL;
        _cleanup_close_ int rd = -1, wr = -1, null_fd = -1;
        char size_arg[32], msg[512];
        size_t msg_len = 0;
        int pfd[2], st, r;
        pid_t pid;

        if (err && err_len)
                err[0] = '\0';
        /* -b is parsed as an option value inside qemu-img too: escape commas. */
        backing = qemu_opt_escape(base_path);
        if (!backing)
                return -ENOMEM;
        snprintf(size_arg, sizeof(size_arg), "%llu", (unsigned long long)size_bytes);
        char *argv[16];
        size_t argc = 0;
        argv[argc++] = (char *)QEMU_IMG_BINARY;
        argv[argc++] = (char *)"create";
        argv[argc++] = (char *)"-q";
        argv[argc++] = (char *)"-f";
        argv[argc++] = (char *)"qcow2";
        argv[argc++] = (char *)"-F";
        argv[argc++] = (char *)base_format;
        argv[argc++] = (char *)"-b";
        argv[argc++] = backing;
        argv[argc++] = (char *)overlay_path;
        if (size_bytes)
                argv[argc++] = size_arg;
        argv[argc] = NULL;

        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0 || pipe2(pfd, O_CLOEXEC) < 0)
                return negative_errno();
        rd = pfd[0];
        wr = pfd[1];
        int fds[3] = { null_fd, wr, wr };
        smolvm_spawn_opts o = {
                .argv = argv,
                .search_path = true,
                .fds = fds,
                .n_fds = 3,
                .new_pgroup = true,
                .pdeathsig = SIGKILL,
        };
        r = smolvm_spawn(&o, &pid);
        if (r < 0)
                return r;
        wr = safe_close(wr);
        /* qemu-img prints a line or two at most; keep the first bytes, drain the rest. */
        for (;;) {
                char buf[512];
                ssize_t n = read(rd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                size_t take = MIN((size_t)n, sizeof(msg) - 1 - msg_len);
                memcpy(msg + msg_len, buf, take);
                msg_len += take;
        }
        msg[msg_len] = '\0';
        while (msg_len > 0 && (msg[msg_len - 1] == '\n' || msg[msg_len - 1] == '\r'))
                msg[--msg_len] = '\0';
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 0;
        if (err && err_len)
                snprintf(err, err_len, "%s", msg_len ? msg : "qemu-img create failed");
        (void)unlink(overlay_path); /* a partial file would be taken for a valid disk next time */
        if (strstr(msg, "No space left on device") || strstr(msg, "Disk quota exceeded"))
                return -ENOSPC;
        return -EIO;
}
