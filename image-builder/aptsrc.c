/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the host's apt configuration and apt-cache output. The mirror is never
 * hard-coded: the image uses what the host already reaches (ARCHITECTURE.md). */
#include "image_i.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <strings.h>

/* Is word a whitespace-separated token of list? */
static bool list_has(const char *list, const char *word)
{
        size_t wl = strlen(word);
        const char *p = list;
        while (*p) {
                while (*p && isspace((unsigned char)*p))
                        p++;
                const char *s = p;
                while (*p && !isspace((unsigned char)*p))
                        p++;
                if ((size_t)(p - s) == wl && strncmp(s, word, wl) == 0)
                        return true;
        }
        return false;
}

/* debootstrap fetches over these; apt-only schemes (cdrom:, mirror+, tor+) are skipped. */
static bool uri_usable(const char *s, size_t len)
{
        static const char *const ok[] = {"http://", "https://", "ftp://", "file:/"};
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                if (len > strlen(ok[i]) && strncmp(s, ok[i], strlen(ok[i])) == 0)
                        return true;
        return false;
}

typedef struct stanza {
        char *types, *uris, *suites, *components, *enabled;
} stanza;

static void stanza_done(stanza *s)
{
        free(s->types);
        free(s->uris);
        free(s->suites);
        free(s->components);
        free(s->enabled);
        *s = (stanza){0};
}

/* Returns 1 and *ret_uri if the stanza matches, 0 if not, -ENOMEM. */
static int stanza_match(const stanza *s, const char *suite, char **ret_uri)
{
        if (!s->types || !s->uris || !s->suites || !s->components)
                return 0;
        if (s->enabled && (strcasecmp(s->enabled, "no") == 0 || strcasecmp(s->enabled, "false") == 0))
                return 0;
        if (!list_has(s->types, "deb") || !list_has(s->suites, suite) || !list_has(s->components, "main"))
                return 0;
        const char *p = s->uris;
        while (*p) {
                while (*p && isspace((unsigned char)*p))
                        p++;
                const char *b = p;
                while (*p && !isspace((unsigned char)*p))
                        p++;
                if (p > b && uri_usable(b, (size_t)(p - b))) {
                        char *u = strndup(b, (size_t)(p - b));
                        if (!u)
                                return -ENOMEM;
                        *ret_uri = u;
                        return 1;
                }
        }
        return 0;
}

/* Appends the value (continuation lines joined with a space) to *field. */
static int field_append(char **field, const char *v, size_t len)
{
        while (len > 0 && isspace((unsigned char)*v)) {
                v++;
                len--;
        }
        while (len > 0 && isspace((unsigned char)v[len - 1]))
                len--;
        char *n = *field ? xasprintf("%s %.*s", *field, (int)len, v) : strndup(v, len);
        if (!n)
                return -ENOMEM;
        free(*field);
        *field = n;
        return 0;
}

int apt_parse_deb822(const char *text, const char *suite, char **ret_uri)
{
        _cleanup_(stanza_done) stanza st = {0};
        char **cur = NULL;
        const char *p = text;
        int r;

        for (;;) {
                const char *eol = strchrnul(p, '\n');
                size_t len = (size_t)(eol - p);
                bool blank = true;
                for (size_t i = 0; i < len; i++)
                        if (!isspace((unsigned char)p[i]))
                                blank = false;

                if (blank) {
                        /* End of a stanza (or of the text). */
                        if ((r = stanza_match(&st, suite, ret_uri)) != 0)
                                return r < 0 ? r : 0;
                        stanza_done(&st);
                        cur = NULL;
                } else if (p[0] == '#') {
                        /* comment line: does not end the stanza */
                } else if (p[0] == ' ' || p[0] == '\t') {
                        if (cur && (r = field_append(cur, p, len)) < 0)
                                return r;
                } else {
                        const char *colon = memchr(p, ':', len);
                        cur = NULL;
                        if (colon) {
                                size_t kl = (size_t)(colon - p);
                                static const struct {
                                        const char *key;
                                        size_t off;
                                } keys[] = {
                                        {"Types", offsetof(stanza, types)},
                                        {"URIs", offsetof(stanza, uris)},
                                        {"Suites", offsetof(stanza, suites)},
                                        {"Components", offsetof(stanza, components)},
                                        {"Enabled", offsetof(stanza, enabled)},
                                };
                                for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                                        if (kl == strlen(keys[i].key) && strncasecmp(p, keys[i].key, kl) == 0) {
                                                cur = (char **)((char *)&st + keys[i].off);
                                                /* A repeated field replaces the earlier one. */
                                                free(*cur);
                                                *cur = NULL;
                                                if ((r = field_append(cur, colon + 1, len - kl - 1)) < 0)
                                                        return r;
                                                break;
                                        }
                                }
                        }
                        /* A line without ':' is malformed: ignored, as apt would reject
                         * only that stanza; we merely skip it. */
                }
                if (*eol == '\0')
                        break;
                p = eol + 1;
        }
        r = stanza_match(&st, suite, ret_uri);
        return r < 0 ? r : r == 1 ? 0 : -ENOENT;
}

int apt_parse_sources_list(const char *text, const char *suite, char **ret_uri)
{
        const char *p = text;
        for (;;) {
                const char *eol = strchrnul(p, '\n');
                _cleanup_free_ char *line = strndup(p, (size_t)(eol - p));
                if (!line)
                        return -ENOMEM;
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';

                /* Tokens: deb [ options ] uri suite component... */
                char *tok[64];
                size_t n = 0;
                bool in_opts = false;
                char *save = NULL;
                for (char *t = strtok_r(line, " \t\r", &save); t && n < ARRAY_SIZE(tok);
                     t = strtok_r(NULL, " \t\r", &save)) {
                        if (n == 1 && !in_opts && t[0] == '[') {
                                in_opts = true;
                        }
                        if (in_opts) {
                                if (strchr(t, ']'))
                                        in_opts = false;
                                continue;
                        }
                        tok[n++] = t;
                }
                if (n >= 4 && strcmp(tok[0], "deb") == 0 && !in_opts && strcmp(tok[2], suite) == 0 &&
                    uri_usable(tok[1], strlen(tok[1]))) {
                        for (size_t i = 3; i < n; i++) {
                                if (strcmp(tok[i], "main") == 0) {
                                        char *u = strdup(tok[1]);
                                        if (!u)
                                                return -ENOMEM;
                                        *ret_uri = u;
                                        return 0;
                                }
                        }
                }
                if (*eol == '\0')
                        return -ENOENT;
                p = eol + 1;
        }
}

static int cmp_name(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Try one file; 0 + uri, -ENOENT (no match or no file), other negative errno. */
static int try_file(const char *path, bool deb822, const char *suite, char **ret_uri)
{
        _cleanup_free_ char *text = NULL;
        int r = read_file(path, 1 << 20, &text, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : -ENOENT;
        return deb822 ? apt_parse_deb822(text, suite, ret_uri) : apt_parse_sources_list(text, suite, ret_uri);
}

int apt_find_mirror(const char *root, const char *suite, char **ret_uri)
{
        if (!root)
                root = "";
        _cleanup_free_ char *list = xasprintf("%s/etc/apt/sources.list", root);
        _cleanup_free_ char *dir = xasprintf("%s/etc/apt/sources.list.d", root);
        if (!list || !dir)
                return -ENOMEM;

        /* apt's own order: sources.list, then sources.list.d/ alphabetically. */
        int r = try_file(list, false, suite, ret_uri);
        if (r != -ENOENT)
                return r;

        DIR *d = opendir(dir);
        if (!d)
                return -ENOENT;
        strv names = {0};
        struct dirent *de;
        r = 0;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if ((l > 8 && strcmp(de->d_name + l - 8, ".sources") == 0) ||
                    (l > 5 && strcmp(de->d_name + l - 5, ".list") == 0))
                        if ((r = strv_push(&names, de->d_name)) < 0)
                                break;
        }
        closedir(d);
        if (r == 0 && names.n > 0)
                qsort(names.v, names.n, sizeof(char *), cmp_name);
        r = r < 0 ? r : -ENOENT;
        for (size_t i = 0; r == -ENOENT && i < names.n; i++) {
                _cleanup_free_ char *path = path_join(dir, names.v[i]);
                if (!path) {
                        r = -ENOMEM;
                        break;
                }
                size_t l = strlen(names.v[i]);
                r = try_file(path, l > 8 && strcmp(names.v[i] + l - 8, ".sources") == 0, suite, ret_uri);
        }
        strv_done(&names);
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
