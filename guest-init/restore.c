/* SPDX-License-Identifier: Apache-2.0 */
/* The "restored" op: what must differ between the clones of one snapshot
 * (Firecracker's "snapshot uniqueness" advice): the kernel RNG state (every
 * child would otherwise draw the same numbers), the wall clock (frozen at the
 * snapshot instant), the hostname and the machine-id. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"
#include "init.h"
#include "stream.h"
#include "util.h"

#define MACHINE_ID_PATH "/etc/machine-id"

/* RNDADDENTROPY credits the bytes (the host's getrandom() output is full
 * entropy) and RNDRESEEDCRNG makes the CRNG use them now, not at its next
 * scheduled reseed: a child's next read already differs from its siblings'. */
static int reseed(const agent_restore_spec *r)
{
        _cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* struct rand_pool_info ends in a flexible array: the bytes follow it. */
        _Alignas(struct rand_pool_info) uint8_t raw[sizeof(struct rand_pool_info) + AGENT_RESTORE_ENTROPY_MAX];
        struct rand_pool_info *p = (struct rand_pool_info *)raw;
        p->entropy_count = (int)(r->entropy_len * 8);
        p->buf_size = (int)r->entropy_len;
        memcpy(raw + sizeof(*p), r->entropy, r->entropy_len);
        if (ioctl(fd, RNDADDENTROPY, p) < 0)
                return negative_errno();
        if (ioctl(fd, RNDRESEEDCRNG) < 0)
                return negative_errno();
        return 0;
}

/* /etc/hosts with its 127.0.1.1 line naming name (added when there is none);
 * NULL when it already does, or out of memory. */
static char *hosts_with(const char *old, const char *name)
{
        char want[AGENT_HOSTNAME_MAX + 16];
        size_t want_len = (size_t)snprintf(want, sizeof(want), "127.0.1.1\t%s\n", name), len = 0;
        /* one line replaced or added, a newline before it, the NUL */
        char *out = malloc(strlen(old) + want_len + 2);
        bool found = false, changed = false;
        if (!out)
                return NULL;
        for (const char *line = old; *line;) {
                const char *nl = strchr(line, '\n');
                size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
                if (!found && strncmp(line, "127.0.1.1", 9) == 0 && (line[9] == ' ' || line[9] == '\t')) {
                        found = true;
                        changed = n != want_len || memcmp(line, want, n) != 0;
                        memcpy(out + len, want, want_len);
                        len += want_len;
                } else {
                        memcpy(out + len, line, n);
                        len += n;
                }
                line += n;
        }
        if (!found) {
                if (len && out[len - 1] != '\n')
                        out[len++] = '\n';
                memcpy(out + len, want, want_len);
                len += want_len;
                changed = true;
        }
        out[len] = '\0';
        if (!changed)
                { free(out); out = NULL; }
        return out;
}

/* A small file's whole content (at most max bytes, no NUL), NUL-terminated. */
static int read_small_file(const char *path, size_t max, char **ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
                return -EFBIG;
        char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        int r = read_all(fd, buf, (size_t)st.st_size);
        if (r < 0 || memchr(buf, '\0', (size_t)st.st_size)) {
                free(buf);
                return r < 0 ? r : -EBADMSG;
        }
        buf[st.st_size] = '\0';
        *ret = buf;
        return 0;
}

int agent_set_hostname(const char *name)
{
        if (sethostname(name, strlen(name)) < 0)
                return negative_errno();
        char line[AGENT_HOSTNAME_MAX + 2], cur[AGENT_HOSTNAME_MAX + 2];
        snprintf(line, sizeof(line), "%s\n", name);
        int r = 0;
        if (read_line_file("/etc/hostname", cur, sizeof(cur)) < 0 || strcmp(cur, name) != 0)
                r = write_file_replace("/etc/hostname", line, strlen(line), 0644);
        _cleanup_free_ char *hosts = NULL;
        int k = read_small_file("/etc/hosts", 64 * 1024, &hosts);
        if (k < 0 && k != -ENOENT)
                return r < 0 ? r : k;
        _cleanup_free_ char *next = hosts_with(hosts ? hosts : "", name);
        k = next ? write_file_replace("/etc/hosts", next, strlen(next), 0644) : 0;
        return r < 0 ? r : k;
}

int agent_restored(int fd, const agent_request *req)
{
        const agent_restore_spec *r = &req->restore;
        int k = reseed(r);
        if (k < 0)
                return agent_send_errorf(fd, -k, "restored: reseeding the kernel RNG: %s", strerror(-k));
        bool stepped = false;
        if (r->realtime_ns > 0) {
                struct timespec ts = { .tv_sec = (time_t)(r->realtime_ns / 1000000000),
                                       .tv_nsec = (long)(r->realtime_ns % 1000000000) };
                if (clock_settime(CLOCK_REALTIME, &ts) < 0)
                        return agent_send_errorf(fd, errno, "restored: clock_settime: %m");
                stepped = true;
        }
        if (r->hostname[0] && (k = agent_set_hostname(r->hostname)) < 0)
                return agent_send_errorf(fd, -k, "restored: hostname %s: %s", r->hostname, strerror(-k));
        if (r->machine_id[0]) {
                char line[34];
                snprintf(line, sizeof(line), "%s\n", r->machine_id);
                k = write_file_atomic(MACHINE_ID_PATH, line, 33, 0444);
                if (k < 0)
                        return agent_send_errorf(fd, -k, "restored: write " MACHINE_ID_PATH ": %s", strerror(-k));
        }
        return agent_send_json(fd, SMOLVM_FRAME_RESULT,
                               json_pack("{s:b,s:b,s:b}", "ok", 1, "reseeded", 1, "clock_stepped", stepped));
}
