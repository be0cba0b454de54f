/* SPDX-License-Identifier: Apache-2.0 */
/* String vectors and file helpers of the image builder. Mount points come from
 * common/mountinfo.c (one parser, one octal unescape for the tree). */
#include "image_i.h"
#include "mountinfo.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>

char *xasprintf(const char *fmt, ...)
{
        char *s;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

char *path_join(const char *a, const char *b)
{
        size_t la = strlen(a);
        return xasprintf("%s%s%s", a, (la > 0 && a[la - 1] == '/') ? "" : "/", b);
}

int strv_push_take(strv *s, char *str)
{
        if (!str)
                return -ENOMEM;
        if (s->n + 2 > s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 8;
                char **v = realloc(s->v, cap * sizeof(*v));
                if (!v) {
                        free(str);
                        return -ENOMEM;
                }
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = str;
        s->v[s->n] = NULL;
        return 0;
}

int strv_push(strv *s, const char *str)
{
        return strv_push_take(s, strdup(str));
}

bool strv_contains(const strv *s, const char *str)
{
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i], str) == 0)
                        return true;
        return false;
}

void strv_sort_uniq(strv *s)
{
        if (s->n == 0)
                return;
        qsort(s->v, s->n, sizeof(char *), qsort_strcmp);
        size_t j = 1;
        for (size_t i = 1; i < s->n; i++) {
                if (strcmp(s->v[i], s->v[j - 1]) == 0)
                        free(s->v[i]);
                else
                        s->v[j++] = s->v[i];
        }
        s->n = j;
        s->v[j] = NULL;
}

void strv_done(strv *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        *s = (strv){0};
}

char *strjoin_sep(const strv *s, const char *sep)
{
        size_t len = 1, lsep = strlen(sep);
        for (size_t i = 0; i < s->n; i++)
                len += strlen(s->v[i]) + lsep;
        char *out = malloc(len), *p = out;
        if (!out)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < s->n; i++) {
                if (i > 0)
                        p = stpcpy(p, sep);
                p = stpcpy(p, s->v[i]);
        }
        return out;
}

int read_file(const char *path, size_t max_bytes, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if ((uint64_t)st.st_size > max_bytes)
                return -EFBIG;
        size_t cap = (size_t)st.st_size + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len + 1 >= cap) {
                        if (cap > max_bytes)
                                return -EFBIG;
                        char *nb = realloc(buf, cap * 2);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap *= 2;
                }
                ssize_t n = read(fd, buf + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int copy_file(const char *src, const char *dst)
{
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return negative_errno();
        struct stat st;
        if (fstat(in, &st) < 0)
                return negative_errno();
        _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
        if (out < 0)
                return negative_errno();
        /* copy_file_range reflinks/offloads where the filesystem can. */
        uint64_t left = (uint64_t)st.st_size;
        while (left > 0) {
                ssize_t n = copy_file_range(in, NULL, out, NULL, MIN(left, (uint64_t)1 << 30), 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = negative_errno();
                        (void)unlink(dst);
                        return r;
                }
                if (n == 0)
                        break;
                left -= (uint64_t)n;
        }
        return 0;
}

int link_or_copy(const char *src, const char *dst)
{
        if (link(src, dst) == 0)
                return 0;
        if (errno != EXDEV && errno != EPERM && errno != EMLINK)
                return negative_errno();
        return copy_file(src, dst);
}

static _Thread_local uint64_t du_total;
static int du_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)path;
        (void)flag;
        (void)ftw;
        du_total += (uint64_t)st->st_blocks * 512u;
        return 0;
}

int dir_usage_bytes(const char *path, uint64_t *ret)
{
        /* nftw has no user pointer: a thread-local accumulator keeps this reentrant enough. */
        du_total = 0;
        if (nftw(path, du_cb, 32, FTW_PHYS | FTW_MOUNT) < 0)
                return negative_errno();
        *ret = du_total;
        return 0;
}

char *mkdtemp_in(const char *parent, const char *prefix)
{
        char *t = xasprintf("%s/%s.XXXXXX", parent, prefix);
        if (!t) {
                errno = ENOMEM;
                return NULL;
        }
        if (!mkdtemp(t)) {
                int e = errno;
                free(t);
                errno = e;
                return NULL;
        }
        return t;
}

void rm_tmpdir_freep(char **p)
{
        if (*p) {
                (void)umount_beneath(*p);
                (void)rm_rf(*p);
                free(*p);
        }
}

static int cmp_len_desc(const void *a, const void *b)
{
        size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
        return la < lb ? 1 : la > lb ? -1 : 0;
}

typedef struct beneath {
        const char *dir;
        size_t dir_len;
        strv *mps;
} beneath;

static int collect_beneath(const mountinfo_entry *e, const char *mountpoint, void *ud)
{
        (void)e;
        beneath *b = ud;
        if (strncmp(mountpoint, b->dir, b->dir_len) == 0 && mountpoint[b->dir_len] == '/')
                return strv_push(b->mps, mountpoint);
        return 0;
}

int umount_beneath(const char *dir)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();
        strv mps = {0};
        beneath b = {.dir = dir, .dir_len = strlen(dir), .mps = &mps};
        int r = mountinfo_foreach(f, collect_beneath, &b);
        fclose(f);
        /* Deepest first: a mount below another must go before it. */
        if (r == 0 && mps.n)
                qsort(mps.v, mps.n, sizeof(char *), cmp_len_desc);
        for (size_t i = 0; i < mps.n && r == 0; i++)
                if (umount2(mps.v[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                        r = negative_errno();
        strv_done(&mps);
        return r;
}
