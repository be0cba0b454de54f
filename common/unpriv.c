/* SPDX-License-Identifier: Apache-2.0 */
/* What a user needs for an image build without root (unpriv.h). */
#include "unpriv.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawner.h"
#include "util.h"

/* A decimal number that ends at end; 0 or -EINVAL. */
static int parse_u64(const char *s, const char *end, uint64_t *ret)
{
        uint64_t v = 0;
        if (s == end || end - s > 19)
                return -EINVAL;
        for (; s < end; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(*s - '0');
        }
        *ret = v;
        return 0;
}

int subid_find(const char *text, const char *user, subid_range *ret)
{
        size_t ulen = strlen(user);
        for (const char *line = text; *line;) {
                const char *eol = strchrnul(line, '\n');
                const char *c1 = memchr(line, ':', (size_t)(eol - line));
                const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
                subid_range r;
                if (c2 && (size_t)(c1 - line) == ulen && memcmp(line, user, ulen) == 0 &&
                    parse_u64(c1 + 1, c2, &r.first) == 0 && parse_u64(c2 + 1, eol, &r.count) == 0) {
                        *ret = r;
                        return 0;
                }
                line = *eol ? eol + 1 : eol;
        }
        return -ENOENT;
}

int subid_file_find(const char *path, const char *user, subid_range *ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        _cleanup_free_ char *buf = malloc(SUBID_FILE_MAX_BYTES + 1);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, SUBID_FILE_MAX_BYTES + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > SUBID_FILE_MAX_BYTES)
                        return -EFBIG;
        }
        buf[len] = '\0';
        return subid_find(buf, user, ret);
}

static void append(char *buf, size_t size, const char *sep, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, const char *sep, const char *fmt, ...)
{
        size_t len = strlen(buf);
        if (len && len + strlen(sep) < size) {
                memcpy(buf + len, sep, strlen(sep) + 1);
                len += strlen(sep);
        }
        va_list ap;
        va_start(ap, fmt);
        if (len < size)
                vsnprintf(buf + len, size - len, fmt, ap);
        va_end(ap);
}

static void lack(unpriv_lacks *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lack(unpriv_lacks *l, const char *fmt, ...)
{
        char what[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        append(l->missing, sizeof(l->missing), ", ", "%s", what);
        l->n++;
}

static bool have(const char *program)
{
        char *p = smolvm_find_program(program);
        bool found = p != NULL;
        free(p);
        return found;
}

/* The first number in a /proc/sys file, or -1 when it cannot be read. */
static long sysctl_long(const char *path)
{
        char buf[32];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        return strtol(buf, NULL, 10);
}

static void check_range(unpriv_lacks *l, const char *file, const char *user, bool *ret_bad)
{
        subid_range r;
        int k = subid_file_find(file, user, &r);
        if (k < 0) {
                lack(l, "a range in %s for %s (%s)", file, user, k == -ENOENT ? "none" : strerror(-k));
                *ret_bad = true;
        } else if (r.count < SUBID_COUNT_MIN) {
                lack(l, "a range of %u ids in %s for %s (its first line gives %" PRIu64 ")", SUBID_COUNT_MIN, file,
                     user, r.count);
                *ret_bad = true;
        }
}

void unpriv_build_check(const char *user, bool fresh, unpriv_lacks *ret)
{
        unpriv_lacks l = { 0 };
        char pkgs[128] = "";
        if (!have("fakeroot")) {
                lack(&l, "fakeroot");
                append(pkgs, sizeof(pkgs), " ", "fakeroot");
        }
        if (fresh) {
                if (!have("mmdebstrap")) {
                        lack(&l, "mmdebstrap");
                        append(pkgs, sizeof(pkgs), " ", "mmdebstrap");
                }
                if (!have("newuidmap") || !have("newgidmap")) {
                        lack(&l, "newuidmap/newgidmap (package uidmap)");
                        append(pkgs, sizeof(pkgs), " ", "uidmap");
                }
        }
        if (pkgs[0])
                append(l.fix, sizeof(l.fix), "; ", "apt-get install %s", pkgs);
        if (fresh) {
                bool bad = false;
                check_range(&l, SUBID_UID_FILE, user, &bad);
                check_range(&l, SUBID_GID_FILE, user, &bad);
                if (bad)
                        append(l.fix, sizeof(l.fix), "; ",
                               "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s (a range no other "
                               "line of /etc/subuid uses; it must be %s's first line there)",
                               user, user);
                /* Debian's own switch, and the generic one. */
                if (sysctl_long("/proc/sys/kernel/unprivileged_userns_clone") == 0) {
                        lack(&l, "user namespaces for unprivileged users");
                        append(l.fix, sizeof(l.fix), "; ", "sysctl -w kernel.unprivileged_userns_clone=1");
                }
                if (sysctl_long("/proc/sys/user/max_user_namespaces") == 0) {
                        lack(&l, "user namespaces (user.max_user_namespaces is 0)");
                        append(l.fix, sizeof(l.fix), "; ", "sysctl -w user.max_user_namespaces=15000");
                }
        }
        *ret = l;
}
