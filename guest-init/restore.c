/* SPDX-License-Identifier: Apache-2.0 */
/* A restored VM's identity: what must differ between the clones of one
 * snapshot (Firecracker's "snapshot uniqueness" advice): the kernel RNG state
 * (every child would otherwise draw the same numbers), the wall clock (frozen
 * at the snapshot instant), the hostname and the machine-id. The supervisor
 * sends it in the channel handshake (wire.h SMOLVM_CHAN_OP_IDENTITY, right
 * after the guest's HELLO); PID 1 applies it in-process before it handles any
 * stream packet (channel.c). Nothing here is fsynced: the host owns the
 * machine-id and the hostname and gives them again on every boot. */
#include <errno.h>
#include <fcntl.h>
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
#include "util.h"
#include "wire.h"

#define MACHINE_ID_PATH "/etc/machine-id"

/* RNDADDENTROPY credits the bytes (the host's getrandom() output is full
 * entropy) and RNDRESEEDCRNG makes the CRNG use them now, not at its next
 * scheduled reseed: a child's next read already differs from its siblings'. */
static int reseed(const uint8_t *entropy, size_t len)
{
        _cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* struct rand_pool_info ends in a flexible array: the bytes follow it. */
        _Alignas(struct rand_pool_info) uint8_t raw[sizeof(struct rand_pool_info) + SMOLVM_CHAN_IDENTITY_ENTROPY];
        struct rand_pool_info *p = (struct rand_pool_info *)raw;
        if (len > SMOLVM_CHAN_IDENTITY_ENTROPY)
                return -EINVAL;
        p->entropy_count = (int)(len * 8);
        p->buf_size = (int)len;
        memcpy(raw + sizeof(*p), entropy, len);
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
                r = write_file_overwrite("/etc/hostname", line, strlen(line), 0644);
        _cleanup_free_ char *hosts = NULL;
        int k = read_small_file("/etc/hosts", 64 * 1024, &hosts);
        if (k < 0 && k != -ENOENT)
                return r < 0 ? r : k;
        _cleanup_free_ char *next = hosts_with(hosts ? hosts : "", name);
        k = next ? write_file_overwrite("/etc/hosts", next, strlen(next), 0644) : 0;
        return r < 0 ? r : k;
}

bool agent_machine_id_valid(const char *hex)
{
        size_t n = strlen(hex);
        bool nonzero = false;
        if (n != 32)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
                        return false;
                nonzero |= hex[i] != '0';
        }
        return nonzero;
}

int agent_set_machine_id(const char *hex)
{
        char line[34];
        if (!agent_machine_id_valid(hex))
                return -EINVAL;
        snprintf(line, sizeof(line), "%s\n", hex);
        char cur[sizeof(line)];
        if (read_line_file(MACHINE_ID_PATH, cur, sizeof(cur)) == 0 && strcmp(cur, hex) == 0)
                return 0;
        return write_file_overwrite(MACHINE_ID_PATH, line, 33, 0444);
}

int agent_identity_parse(const uint8_t *p, uint32_t len, agent_identity *ret)
{
        static const uint8_t zero[16];
        if (len != SMOLVM_CHAN_IDENTITY_LEN)
                return -EBADMSG;
        if (get_le32(p) != 0)
                return -EOPNOTSUPP; /* flags this init does not know */
        uint64_t ns = get_le64(p + 4);
        if (ns > (uint64_t)INT64_MAX)
                return -ERANGE;
        *ret = (agent_identity){ .realtime_ns = (int64_t)ns };
        memcpy(ret->entropy, p + 12, SMOLVM_CHAN_IDENTITY_ENTROPY);
        const uint8_t *mid = p + 12 + SMOLVM_CHAN_IDENTITY_ENTROPY;
        if (memcmp(mid, zero, sizeof(zero)) != 0)
                for (size_t i = 0; i < 16; i++)
                        snprintf(ret->machine_id + 2 * i, 3, "%02x", mid[i]);
        const char *name = (const char *)mid + 16;
        size_t n = strnlen(name, SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX);
        for (size_t i = n; i < SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX; i++)
                if (name[i])
                        return -EBADMSG; /* bytes after the NUL */
        _Static_assert(SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX <= AGENT_HOSTNAME_MAX, "hostname field too wide");
        memcpy(ret->hostname, name, n);
        ret->hostname[n] = '\0';
        return agent_hostname_valid(ret->hostname) ? 0 : -EINVAL;
}

int agent_identity_apply(const agent_identity *id, char *err, size_t err_len)
{
        int k = reseed(id->entropy, sizeof(id->entropy));
        if (k < 0) {
                snprintf(err, err_len, "reseeding the kernel RNG: %s", strerror(-k));
                return k;
        }
        if (id->realtime_ns > 0) {
                struct timespec ts = { .tv_sec = (time_t)(id->realtime_ns / 1000000000),
                                       .tv_nsec = (long)(id->realtime_ns % 1000000000) };
                if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
                        k = negative_errno();
                        snprintf(err, err_len, "clock_settime: %s", strerror(-k));
                        return k;
                }
        }
        if ((k = agent_set_hostname(id->hostname)) < 0) {
                snprintf(err, err_len, "hostname %s: %s", id->hostname, strerror(-k));
                return k;
        }
        if (id->machine_id[0] && (k = agent_set_machine_id(id->machine_id)) < 0) {
                snprintf(err, err_len, "write " MACHINE_ID_PATH ": %s", strerror(-k));
                return k;
        }
        return 0;
}
