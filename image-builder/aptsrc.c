/* SPDX-License-Identifier: Apache-2.0 */
/* The host's apt configuration and apt-cache output. The mirror is never
 * hard-coded: the image uses what the host already reaches (ARCHITECTURE.md),
 * as apt itself resolves it: `apt-get indextargets` lists the index files of
 * every configured source after apt has read sources.list, sources.list.d
 * (one-line and deb822), Enabled:, APT_CONFIG and Dir::Etc::*, so none of that
 * is parsed here. What stays hand-written: picking our line out of that listing
 * (suite, "main", a scheme debootstrap can fetch) and the two small apt-cache
 * parsers below (apt has no machine-readable form for them). */
#include "image_i.h"

#include <ctype.h>
#include <stdio.h>

#define APT_LIST_TIMEOUT_MS 60000u
#define APT_LIST_MAX_BYTES (4u << 20)

/* The fields apt-get indextargets prints for each index target, in this order. */
#define INDEXTARGETS_FORMAT "$(TARGET_OF) $(IDENTIFIER) $(RELEASE) $(COMPONENT) $(REPO_URI)"

/* debootstrap fetches over these; apt-only schemes (cdrom:, mirror+, tor+) are skipped. */
static bool uri_usable(const char *s)
{
        static const char *const ok[] = {"http://", "https://", "ftp://", "file:/"};
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                if (strlen(s) > strlen(ok[i]) && strncmp(s, ok[i], strlen(ok[i])) == 0)
                        return true;
        return false;
}

int apt_parse_indextargets(const char *text, const char *suite, char **ret_uri)
{
        const char *p = text;
        for (;;) {
                const char *eol = strchrnul(p, '\n');
                _cleanup_free_ char *line = strndup(p, (size_t)(eol - p));
                if (!line)
                        return -ENOMEM;
                char *save = NULL, *f[6];
                size_t n = 0;
                for (char *t = strtok_r(line, " \t\r", &save); t && n < ARRAY_SIZE(f); t = strtok_r(NULL, " \t\r", &save))
                        f[n++] = t;
                /* A deb source's package index (not deb-src, not Contents, not a flat
                 * repository, whose "suite" is a path) for suite/main. */
                if (n == 5 && strcmp(f[0], "deb") == 0 && strcmp(f[1], "Packages") == 0 &&
                    strcmp(f[2], suite) == 0 && strcmp(f[3], "main") == 0 && uri_usable(f[4])) {
                        /* apt adds a trailing slash; without it the URI reads as the
                         * sources file wrote it (and rootfs cache keys stay stable). */
                        size_t l = strlen(f[4]);
                        if (l > 1 && f[4][l - 1] == '/' && f[4][l - 2] != '/')
                                f[4][l - 1] = '\0';
                        char *u = strdup(f[4]);
                        if (!u)
                                return -ENOMEM;
                        *ret_uri = u;
                        return 0;
                }
                if (*eol == '\0')
                        return -ENOENT;
                p = eol + 1;
        }
}

int apt_find_mirror(const char *suite, char **ret_uri, ib_err *err)
{
        /* --no-release-info: the configured sources, whether or not apt-get update
         * has fetched their Release files yet. */
        const char *argv[] = {"apt-get", "indextargets", "--no-release-info", "--format", INDEXTARGETS_FORMAT, NULL};
        ib_cmd cmd = {.argv = argv, .stdout_max_bytes = APT_LIST_MAX_BYTES, .timeout_ms = APT_LIST_TIMEOUT_MS};
        _cleanup_free_ char *out = NULL;
        int r = ib_run(&cmd, "rootfs", &out, NULL, err);
        if (r < 0)
                return r;
        r = apt_parse_indextargets(out, suite, ret_uri);
        if (r == -ENOENT)
                return ib_errf(err, r,
                               "rootfs: apt has no source for '%s main' over http(s), ftp or file "
                               "(apt-get indextargets lists none; add one to /etc/apt/sources.list.d/, or pass --mirror URL)",
                               suite);
        return r;
}

int apt_parse_depends(const char *text, char **ret_pkg, char **ret_version)
{
        const char *p = text;
        for (;;) {
                const char *eol = strchrnul(p, '\n');
                const char *s = p;
                while (s < eol && (isspace((unsigned char)*s) || *s == '|'))
                        s++;
                if ((size_t)(eol - s) > 9 && strncmp(s, "Depends: ", 9) == 0) {
                        s += 9;
                        const char *e = s;
                        while (e < eol && !isspace((unsigned char)*e))
                                e++;
                        /* "<virtual>" names are not downloadable packages. */
                        if (e - s > 12 && strncmp(s, "linux-image-", 12) == 0) {
                                _cleanup_free_ char *pkg = strndup(s, (size_t)(e - s));
                                char *ver = NULL;
                                if (!pkg)
                                        return -ENOMEM;
                                /* With APT::Cache::ShowVersion: "pkg (= 6.1.192-2)". */
                                const char *v = e;
                                while (v < eol && isspace((unsigned char)*v))
                                        v++;
                                if (ret_version && eol - v > 4 && strncmp(v, "(= ", 3) == 0) {
                                        const char *ve = memchr(v + 3, ')', (size_t)(eol - v - 3));
                                        if (ve && ve > v + 3 && !(ver = strndup(v + 3, (size_t)(ve - v - 3))))
                                                return -ENOMEM;
                                }
                                *ret_pkg = TAKE_PTR(pkg);
                                if (ret_version)
                                        *ret_version = ver;
                                return 0;
                        }
                }
                if (*eol == '\0')
                        return -ENOENT;
                p = eol + 1;
        }
}

int apt_parse_version(const char *text, char **ret_version)
{
        const char *p = text;
        for (;;) {
                const char *eol = strchrnul(p, '\n');
                if ((size_t)(eol - p) > 9 && strncmp(p, "Version: ", 9) == 0) {
                        const char *s = p + 9, *e = eol;
                        while (e > s && isspace((unsigned char)e[-1]))
                                e--;
                        if (e == s)
                                return -ENOENT;
                        char *v = strndup(s, (size_t)(e - s));
                        if (!v)
                                return -ENOMEM;
                        *ret_version = v;
                        return 0;
                }
                if (*eol == '\0')
                        return -ENOENT;
                p = eol + 1;
        }
}
