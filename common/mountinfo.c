/* SPDX-License-Identifier: Apache-2.0 */
/* Reading /proc/self/mountinfo (mountinfo.h). A line (proc(5)):
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   id parent maj:min root mountpoint options [optional fields...] - fstype source superoptions
 *
 * Fields are separated by single spaces; spaces, tabs, newlines and
 * backslashes inside paths are written as octal escapes (\040, ...). The
 * number of optional fields varies, so the type is the field after the lone
 * "-". */
#include "mountinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Undo the octal escapes of mountinfo in place. */
static void unescape_octal(char *s)
{
        char *w = s;
        for (char *r = s; *r; r++) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
                    r[3] <= '7') {
                        *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
                        r += 3;
                } else {
                        *w++ = *r;
                }
        }
        *w = '\0';
}

/* A decimal number that is all of s, at most max. */
static int parse_ulong(const char *s, unsigned long max, unsigned long *ret)
{
        char *end;
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int mountinfo_parse_line(char *line, mountinfo_entry *ret, const char **ret_mountpoint)
{
        char *save = NULL, *tok[5];
        size_t n = 0;
        char *t;

        for (t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
                tok[n++] = t;
                if (n == 5)
                        break;
        }
        if (n < 5)
                return -EINVAL;
        /* Skip the mount options and the optional fields up to the separator. */
        while ((t = strtok_r(NULL, " \n", &save)) && strcmp(t, "-") != 0)
                ;
        char *fstype = t ? strtok_r(NULL, " \n", &save) : NULL;
        if (!fstype || strlen(fstype) >= MOUNTINFO_FSTYPE_MAX)
                return -EINVAL;

        unsigned long id, major, minor;
        char *colon = strchr(tok[2], ':');
        if (!colon)
                return -EINVAL;
        *colon = '\0';
        /* The kernel's dev_t has 12 bits of major and 20 of minor. */
        if (parse_ulong(tok[0], 0x7fffffffUL, &id) < 0 || parse_ulong(tok[2], 0xfffUL, &major) < 0 ||
            parse_ulong(colon + 1, 0xfffffUL, &minor) < 0)
                return -EINVAL;
        if (tok[4][0] != '/')
                return -EINVAL;
        unescape_octal(tok[4]);

        mountinfo_entry e = { .id = (long)id, .major = (unsigned)major, .minor = (unsigned)minor };
        memcpy(e.fstype, fstype, strlen(fstype) + 1);
        *ret = e;
        *ret_mountpoint = tok[4];
        return 0;
}

int mountinfo_foreach(FILE *f, mountinfo_fn fn, void *ud)
{
        char *line = NULL;
        size_t cap = 0;
        int r = 0;

        for (;;) {
                errno = 0;
                if (getline(&line, &cap, f) < 0) {
                        r = errno ? -errno : 0; /* errno 0 at the end of the file */
                        break;
                }
                mountinfo_entry e;
                const char *mp;
                if (mountinfo_parse_line(line, &e, &mp) == 0 && (r = fn(&e, mp, ud)) < 0)
                        break;
        }
        free(line);
        return r;
}

typedef struct find_state {
        const char *path;
        mountinfo_entry best;
        bool found;
} find_state;

static int find_one(const mountinfo_entry *e, const char *mountpoint, void *ud)
{
        find_state *s = ud;
        if (strcmp(mountpoint, s->path) == 0) {
                s->best = *e; /* later lines are mounted on top */
                s->found = true;
        }
        return 0;
}

int mountinfo_find(FILE *f, const char *path, mountinfo_entry *ret)
{
        find_state s = { .path = path };
        int r = mountinfo_foreach(f, find_one, &s);
        if (r == -ENOMEM)
                return r;
        if (!s.found)
                return -ENOENT;
        *ret = s.best;
        return 0;
}

bool mountinfo_is_fuse(const char *fstype)
{
        if (strcmp(fstype, "virtiofs") == 0)
                return true;
        size_t n = strncmp(fstype, "fuseblk", 7) == 0 ? 7 : strncmp(fstype, "fuse", 4) == 0 ? 4 : 0;
        return n && (fstype[n] == '\0' || (fstype[n] == '.' && fstype[n + 1] != '\0'));
}

unsigned mountinfo_fuse_conn_id(const mountinfo_entry *e)
{
        return (e->major << 20) | e->minor;
}
