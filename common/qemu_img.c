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

/* Run qemu-img with argv; 0 when it exits 0, else -ENOSPC (disk full) or
 * -EIO with its first line(s) in err. -ENOENT: not installed. */
static int run_qemu_img(char **argv, char *err, size_t err_len)
{
        _cleanup_close_ int rd = -1, wr = -1, null_fd = -1;
        char msg[512];
        size_t msg_len = 0;
        int pfd[2], st, r;
        pid_t pid;

        if (err && err_len)
                err[0] = '\0';
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
                snprintf(err, err_len, "%s", msg_len ? msg : "qemu-img failed");
        if (strstr(msg, "No space left on device") || strstr(msg, "Disk quota exceeded"))
                return -ENOSPC;
        return -EIO;
}

int qemu_img_create_overlay(const char *base_path, const char *base_format, const char *overlay_path,
                            uint64_t size_bytes, char *err, size_t err_len)
{
        char size_arg[32];
        /* -b is parsed as an option value inside qemu-img too: escape commas. */
        _cleanup_free_ char *backing = qemu_opt_escape(base_path);
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
        int r = run_qemu_img(argv, err, err_len);
        if (r < 0 && r != -ENOENT)
                (void)unlink(overlay_path); /* a partial file would be taken for a valid disk next time */
        return r;
}

int qemu_img_rebase(const char *path, const char *base_path, const char *base_format, bool copy, char *err,
                    size_t err_len)
{
        _cleanup_free_ char *backing = qemu_opt_escape(base_path);
        if (!backing)
                return -ENOMEM;
        char *argv[12];
        size_t argc = 0;
        argv[argc++] = (char *)QEMU_IMG_BINARY;
        argv[argc++] = (char *)"rebase";
        argv[argc++] = (char *)"-q";
        if (!copy)
                argv[argc++] = (char *)"-u";
        argv[argc++] = (char *)"-f";
        argv[argc++] = (char *)"qcow2";
        argv[argc++] = (char *)"-F";
        argv[argc++] = (char *)base_format;
        argv[argc++] = (char *)"-b";
        argv[argc++] = backing;
        argv[argc++] = (char *)path;
        argv[argc] = NULL;
        return run_qemu_img(argv, err, err_len);
}

/* qcow2 header fields (big-endian), QEMU's docs/interop/qcow2.txt. */
#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
/* dirty, corrupt, compression type, extended L2: harmless to a reader of the
 * backing name. Anything else (an external data file above all) is refused. */
#define QCOW2_INCOMPAT_KNOWN ((1ull << 0) | (1ull << 1) | (1ull << 3) | (1ull << 4))

static uint64_t be64(const uint8_t *p)
{
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static uint32_t be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int qcow2_backing_name(int fd, char *ret, size_t ret_len)
{
        uint8_t h[104];
        ssize_t n = pread(fd, h, sizeof(h), 0);
        if (n < 0)
                return negative_errno();
        if (n < 72 || be32(h) != QCOW2_MAGIC)
                return -EBADMSG;
        uint32_t version = be32(h + 4);
        if (version != 2 && version != 3)
                return -EBADMSG;
        if (version == 3) {
                if (n < 104)
                        return -EBADMSG;
                uint64_t incompat = be64(h + 72);
                if (incompat & ~QCOW2_INCOMPAT_KNOWN)
                        return (incompat & QCOW2_INCOMPAT_DATA_FILE) ? -EXDEV : -EBADMSG;
        }
        uint64_t off = be64(h + 8);
        uint32_t len = be32(h + 16);
        if (off == 0 || len == 0) {
                if (ret_len)
                        ret[0] = '\0';
                return 0;
        }
        if (len >= ret_len || len > 1023 || off > (uint64_t)INT64_MAX - len)
                return -ENAMETOOLONG;
        n = pread(fd, ret, len, (off_t)off);
        if (n < 0)
                return negative_errno();
        if ((size_t)n != len || memchr(ret, '\0', len))
                return -EBADMSG;
        ret[len] = '\0';
        return 1;
}
