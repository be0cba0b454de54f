/* SPDX-License-Identifier: Apache-2.0 */
#include "qemu_img.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
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

/* ---- a new overlay, written here ----
 * An empty overlay is four clusters of fixed layout, so it is written directly
 * (qemu-img costs a process start, 40-100 ms on every VM start under TCG's load):
 *   cluster 0  header (version 3, 104 bytes), the backing-format extension, the
 *              end extension, the backing file name;
 *   cluster 1  the refcount table: one entry, the block in cluster 2;
 *   cluster 2  the refcount block (16-bit counts): clusters 0..3+ used once;
 *   cluster 3+ the L1 table, all zero (nothing allocated: every read goes to
 *              the backing file). */
#define QCOW2_CLUSTER_BITS 16u
#define QCOW2_CLUSTER (UINT64_C(1) << QCOW2_CLUSTER_BITS)
#define QCOW2_HEADER_LEN 104u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_L1_CLUSTERS_MAX 16u /* 16 x 8192 L1 entries x 512 MiB: 64 TiB */

static void put_be64(uint8_t *p, uint64_t v)
{
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
        for (int i = 3; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t)v;
}

/* The virtual size of the base: a raw file's length, a qcow2 file's header
 * field. dirfd resolves a relative path (the overlay's directory). */
static int base_size(int dirfd, const char *path, const char *format, uint64_t *ret)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (strcmp(format, "qcow2") == 0) {
                uint8_t h[32];
                if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || be32(h) != QCOW2_MAGIC)
                        return -EBADMSG;
                *ret = be64(h + 24);
                return 0;
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        *ret = (uint64_t)st.st_size;
        return 0;
}

static int write_overlay(int fd, const char *base_path, const char *base_format, uint64_t size)
{
        size_t name_len = strlen(base_path), fmt_len = strlen(base_format);
        size_t fmt_pad = (fmt_len + 7) & ~(size_t)7;
        uint64_t l1_entries = (size + (QCOW2_CLUSTER << (QCOW2_CLUSTER_BITS - 3)) - 1) >> (2 * QCOW2_CLUSTER_BITS - 3);
        uint64_t l1_clusters = (l1_entries * 8 + QCOW2_CLUSTER - 1) / QCOW2_CLUSTER;
        if (l1_clusters == 0)
                l1_clusters = 1;
        if (l1_clusters > QCOW2_L1_CLUSTERS_MAX)
                return -EFBIG;
        size_t name_off = QCOW2_HEADER_LEN + 8 + fmt_pad + 8;
        if (name_len == 0 || name_len > 1023 || name_off + name_len > QCOW2_CLUSTER)
                return -ENAMETOOLONG;

        _cleanup_free_ uint8_t *c = calloc(1, QCOW2_CLUSTER);
        if (!c)
                return -ENOMEM;
        put_be32(c, QCOW2_MAGIC);
        put_be32(c + 4, 3);
        put_be64(c + 8, name_off);
        put_be32(c + 16, (uint32_t)name_len);
        put_be32(c + 20, QCOW2_CLUSTER_BITS);
        put_be64(c + 24, size);
        put_be32(c + 36, (uint32_t)l1_entries);
        put_be64(c + 40, 3 * QCOW2_CLUSTER);
        put_be64(c + 48, 1 * QCOW2_CLUSTER);
        put_be32(c + 56, 1);
        put_be32(c + 96, 4); /* refcount_order: 16-bit counts */
        put_be32(c + 100, QCOW2_HEADER_LEN);
        put_be32(c + QCOW2_HEADER_LEN, QCOW2_EXT_BACKING_FORMAT);
        put_be32(c + QCOW2_HEADER_LEN + 4, (uint32_t)fmt_len);
        memcpy(c + QCOW2_HEADER_LEN + 8, base_format, fmt_len);
        /* then the end extension (8 zero bytes), then the name */
        memcpy(c + name_off, base_path, name_len);

        uint64_t used = 3 + l1_clusters;
        if (ftruncate(fd, (off_t)(used * QCOW2_CLUSTER)) < 0 || pwrite(fd, c, QCOW2_CLUSTER, 0) != (ssize_t)QCOW2_CLUSTER)
                return negative_errno();
        uint8_t table[8], counts[2 * (3 + QCOW2_L1_CLUSTERS_MAX)];
        put_be64(table, 2 * QCOW2_CLUSTER);
        for (uint64_t i = 0; i < used; i++) {
                counts[2 * i] = 0;
                counts[2 * i + 1] = 1;
        }
        if (pwrite(fd, table, sizeof(table), (off_t)QCOW2_CLUSTER) != (ssize_t)sizeof(table) ||
            pwrite(fd, counts, 2 * used, (off_t)(2 * QCOW2_CLUSTER)) != (ssize_t)(2 * used))
                return errno ? negative_errno() : -EIO;
        return 0;
}

int qcow2_create_overlay(const char *base_path, const char *base_format, const char *overlay_path,
                            uint64_t size_bytes, char *err, size_t err_len)
{
        if (err && err_len)
                err[0] = '\0';
        if (strcmp(base_format, "raw") && strcmp(base_format, "qcow2"))
                return -EINVAL;
        _cleanup_free_ char *dir = strdup(overlay_path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
        _cleanup_close_ int dirfd = open(slash ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return negative_errno();
        uint64_t size = size_bytes;
        int r = size ? 0 : base_size(dirfd, base_path, base_format, &size);
        if (r < 0) {
                if (err && err_len)
                        snprintf(err, err_len, "%s: %s", base_path,
                                 r == -EBADMSG ? "not a qcow2 file" : strerror(-r));
                return r == -EBADMSG ? -EIO : r;
        }
        size = (size + 511) & ~(uint64_t)511; /* whole sectors, as qemu-img rounds */
        _cleanup_close_ int fd = open(overlay_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        errno = 0;
        r = write_overlay(fd, base_path, base_format, size);
        if (r < 0) {
                if (err && err_len)
                        snprintf(err, err_len, "writing %s: %s", overlay_path, strerror(-r));
                (void)unlink(overlay_path); /* a partial file would be taken for a valid disk next time */
        }
        return r;
}
