/* SPDX-License-Identifier: Apache-2.0 */
#include "cp_spec.h"

#include <errno.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h" /* common/ */

static bool vm_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
               c == '-';
}

int cp_spec_parse(const char *arg, cp_spec *ret, char *err, size_t err_len)
{
        cp_spec s = { .path = arg };
        if (!arg || !*arg)
                return errbuf_fail(-EINVAL, err, err_len, "empty path");
        const char *colon = strchr(arg, ':');
        size_t n = colon ? (size_t)(colon - arg) : 0;
        bool remote = colon && n >= 1 && n <= CP_VM_MAX;
        for (size_t i = 0; remote && i < n; i++)
                remote = vm_char(arg[i]);
        if (remote) {
                if (colon[1] != '/')
                        return errbuf_fail(-EINVAL, err, err_len,
                                           "guest path in '%s' must be absolute (ID:/path)", arg);
                memcpy(s.vm, arg, n);
                s.vm[n] = '\0';
                s.path = colon + 1;
        }
        *ret = s;
        return 0;
}

int cp_args_parse(const char *src, const char *dst, cp_spec *ret_src, cp_spec *ret_dst, char *err, size_t err_len)
{
        cp_spec s, d;
        if (cp_spec_parse(src, &s, err, err_len) < 0 || cp_spec_parse(dst, &d, err, err_len) < 0)
                return -EINVAL;
        if (s.vm[0] && d.vm[0])
                return errbuf_fail(-EINVAL, err, err_len,
                                   "copying from one VM to another is not supported; copy through the host");
        if (!s.vm[0] && !d.vm[0])
                return errbuf_fail(-EINVAL, err, err_len, "one side must be a guest path: ID:/path");
        *ret_src = s;
        *ret_dst = d;
        return 0;
}

bool cp_ends_with_slash(const char *p)
{
        size_t n = strlen(p);
        return n > 0 && p[n - 1] == '/';
}

char *cp_dest_path(const char *dst, const char *src, bool into)
{
        if (!into)
                return strdup(dst);
        /* basename of src, ignoring trailing slashes ("dir/" -> "dir") */
        size_t end = strlen(src);
        while (end > 0 && src[end - 1] == '/')
                end--;
        size_t start = end;
        while (start > 0 && src[start - 1] != '/')
                start--;
        size_t blen = end - start;
        if (blen == 0 || (blen == 1 && src[start] == '.') || (blen == 2 && !strncmp(src + start, "..", 2)))
                return NULL;
        char *out = NULL;
        if (asprintf(&out, "%s%s%.*s", dst, cp_ends_with_slash(dst) ? "" : "/", (int)blen, src + start) < 0)
                return NULL;
        return out;
}

int cp_parse_size(const char *s, uint64_t *ret)
{
        static const char units[] = "KMGT";
        uint64_t v = 0;
        const char *p = s;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (p == s || v == 0)
                return -EINVAL;
        if (*p) {
                const char *u = strchr(units, toupper((unsigned char)*p));
                if (!u || (p[1] && strcmp(p + 1, "iB")))
                        return -EINVAL;
                unsigned shift = 10u * (unsigned)(u - units + 1);
                if (v > UINT64_MAX >> shift)
                        return -ERANGE;
                v <<= shift;
        }
        *ret = v;
        return 0;
}
