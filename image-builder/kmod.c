/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel module metadata as depmod writes it (modules.dep, modules.softdep, modules.alias,
 * modules.builtin) and the dependency closure + load order for the initramfs.
 * Debian's kernel package ships no modules.dep (its postinst runs depmod), so the kernel
 * step runs `depmod -b <unpacked tree>`: the order then comes from the modules' own
 * metadata (their .modinfo depends= and softdep= fields), which is what depmod reads. */
#include "image_i.h"

#include <elf.h>
#include <fnmatch.h>
#include <stdio.h>

void kmod_normalise(char *name)
{
        for (char *p = name; *p; p++)
                if (*p == '-')
                        *p = '_';
}

/* "kernel/fs/ext4/ext4.ko.xz" -> "ext4" (normalised), malloc'd. */
static char *name_from_path(const char *path, size_t len)
{
        const char *b = path;
        for (size_t i = 0; i < len; i++)
                if (path[i] == '/')
                        b = path + i + 1;
        size_t bl = len - (size_t)(b - path);
        const char *ko = NULL;
        for (size_t i = 0; i + 3 <= bl; i++)
                if (strncmp(b + i, ".ko", 3) == 0 && (i + 3 == bl || b[i + 3] == '.'))
                        ko = b + i;
        char *n = strndup(b, ko ? (size_t)(ko - b) : bl);
        if (n)
                kmod_normalise(n);
        return n;
}

static kmod_mod *db_find(const kmod_db *db, const char *name)
{
        for (size_t i = 0; i < db->n; i++)
                if (strcmp(db->mods[i].name, name) == 0)
                        return &db->mods[i];
        return NULL;
}

static kmod_mod *db_add(kmod_db *db, char *name, char *relpath)
{
        if (db->n == db->cap) {
                size_t cap = db->cap ? db->cap * 2 : 256;
                kmod_mod *m = realloc(db->mods, cap * sizeof(*m));
                if (!m)
                        return NULL;
                db->mods = m;
                db->cap = cap;
        }
        kmod_mod *m = &db->mods[db->n++];
        *m = (kmod_mod){.name = name, .relpath = relpath};
        return m;
}

void kmod_db_done(kmod_db *db)
{
        for (size_t i = 0; i < db->n; i++) {
                free(db->mods[i].name);
                free(db->mods[i].relpath);
                strv_done(&db->mods[i].deps);
                strv_done(&db->mods[i].pre);
                strv_done(&db->mods[i].post);
        }
        free(db->mods);
        strv_done(&db->alias_from);
        strv_done(&db->alias_to);
        strv_done(&db->builtin);
        *db = (kmod_db){0};
}

/* Iterate lines; the callback gets a NUL-terminated, comment-stripped copy. */
typedef int (*line_fn)(kmod_db *db, char *line, unsigned lineno, ib_err *err);
static int for_lines(kmod_db *db, const char *text, line_fn fn, ib_err *err)
{
        unsigned lineno = 0;
        const char *p = text;
        for (;;) {
                const char *eol = strchrnul(p, '\n');
                lineno++;
                _cleanup_free_ char *line = strndup(p, (size_t)(eol - p));
                if (!line)
                        return -ENOMEM;
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                int r = fn(db, line, lineno, err);
                if (r < 0)
                        return r;
                if (*eol == '\0')
                        return 0;
                p = eol + 1;
        }
}

static bool blank(const char *s)
{
        return s[strspn(s, " \t\r")] == '\0';
}

static int dep_line(kmod_db *db, char *line, unsigned lineno, ib_err *err)
{
        if (blank(line))
                return 0;
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
                return ib_errf(err, -EINVAL, "modules.dep line %u: expected \"path: deps\"", lineno);
        *colon = '\0';
        char *name = name_from_path(line, strlen(line));
        char *rel = strdup(line);
        if (!name || !rel) {
                free(name);
                free(rel);
                return -ENOMEM;
        }
        if (db_find(db, name)) {
                free(name);
                free(rel);
                return ib_errf(err, -EINVAL, "modules.dep line %u: duplicate module", lineno);
        }
        kmod_mod *m = db_add(db, name, rel);
        if (!m) {
                free(name);
                free(rel);
                return -ENOMEM;
        }
        char *save = NULL;
        for (char *t = strtok_r(colon + 1, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
                int r = strv_push_take(&m->deps, name_from_path(t, strlen(t)));
                if (r < 0)
                        return r;
        }
        return 0;
}

int kmod_parse_dep(kmod_db *db, const char *text, ib_err *err)
{
        return for_lines(db, text, dep_line, err);
}

static int softdep_line(kmod_db *db, char *line, unsigned lineno, ib_err *err)
{
        char *save = NULL;
        char *t = strtok_r(line, " \t\r", &save);
        if (!t)
                return 0;
        if (strcmp(t, "softdep") != 0)
                return 0; /* other modprobe.d verbs are not ours to interpret */
        char *mod = strtok_r(NULL, " \t\r", &save);
        if (!mod)
                return ib_errf(err, -EINVAL, "modules.softdep line %u: missing module name", lineno);
        kmod_normalise(mod);
        kmod_mod *m = db_find(db, mod);
        strv *cur = NULL;
        for (t = strtok_r(NULL, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
                if (strcmp(t, "pre:") == 0)
                        cur = m ? &m->pre : NULL;
                else if (strcmp(t, "post:") == 0)
                        cur = m ? &m->post : NULL;
                else if (!m || !cur)
                        /* A module this kernel lacks; or a name before any pre:/post:
                         * (MODULE_SOFTDEP("gcm") in cifs), which kmod ignores too. */
                        continue;
                else {
                        kmod_normalise(t);
                        int r = strv_push(cur, t);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int kmod_parse_softdep(kmod_db *db, const char *text, ib_err *err)
{
        return for_lines(db, text, softdep_line, err);
}

static int alias_line(kmod_db *db, char *line, unsigned lineno, ib_err *err)
{
        char *save = NULL;
        char *t = strtok_r(line, " \t\r", &save);
        if (!t)
                return 0;
        char *pat = strtok_r(NULL, " \t\r", &save);
        char *mod = strtok_r(NULL, " \t\r", &save);
        if (strcmp(t, "alias") != 0 || !pat || !mod)
                return ib_errf(err, -EINVAL, "modules.alias line %u: expected \"alias PATTERN MODULE\"", lineno);
        kmod_normalise(mod);
        /* Like kmod's alias_normalize: '-' and '_' are equivalent outside [...] ranges;
         * softdep targets are normalised the same way before matching. */
        for (char *p = pat, depth = 0; *p; p++) {
                if (*p == '[')
                        depth = 1;
                else if (*p == ']')
                        depth = 0;
                else if (*p == '-' && !depth)
                        *p = '_';
        }
        int r = strv_push(&db->alias_from, pat);
        if (r == 0 && (r = strv_push(&db->alias_to, mod)) < 0) {
                free(db->alias_from.v[--db->alias_from.n]);
                db->alias_from.v[db->alias_from.n] = NULL;
        }
        return r;
}

int kmod_parse_alias(kmod_db *db, const char *text, ib_err *err)
{
        return for_lines(db, text, alias_line, err);
}

static int builtin_line(kmod_db *db, char *line, unsigned lineno, ib_err *err)
{
        (void)lineno;
        (void)err;
        char *save = NULL;
        char *t = strtok_r(line, " \t\r", &save);
        if (!t)
                return 0;
        return strv_push_take(&db->builtin, name_from_path(t, strlen(t)));
}

int kmod_parse_builtin(kmod_db *db, const char *text, ib_err *err)
{
        return for_lines(db, text, builtin_line, err);
}

enum { UNSEEN = 0, VISITING, DONE };

typedef struct walk {
        const kmod_db *db;
        uint8_t *state; /* per db->mods index */
        strv *order;
        ib_err *err;
} walk;

static int visit(walk *w, const char *name, const char *needed_by, bool soft);

/* Softdep targets may be module names or aliases ("crypto-crc32c"): every provider is
 * taken, because which one loads depends on the guest CPU (crc32c-intel needs SSE4.2). */
static int visit_soft(walk *w, const char *name, const char *needed_by)
{
        if (db_find(w->db, name) || strv_contains(&w->db->builtin, name))
                return visit(w, name, needed_by, true);
        strv providers = {0};
        int r = 0;
        for (size_t i = 0; i < w->db->alias_from.n && r == 0; i++)
                if (fnmatch(w->db->alias_from.v[i], name, 0) == 0 &&
                    !strv_contains(&providers, w->db->alias_to.v[i]))
                        r = strv_push(&providers, w->db->alias_to.v[i]);
        if (r == 0)
                strv_sort_uniq(&providers);
        for (size_t i = 0; i < providers.n && r == 0; i++)
                r = visit(w, providers.v[i], needed_by, true);
        strv_done(&providers);
        return r;
}

static int visit(walk *w, const char *name, const char *needed_by, bool soft)
{
        kmod_mod *m = db_find(w->db, name);
        if (!m) {
                if (strv_contains(&w->db->builtin, name) || soft)
                        return 0; /* built in, or an optional softdep the kernel lacks */
                if (needed_by)
                        return ib_errf(w->err, -ENOENT, "module %s (needed by %s) not found", name, needed_by);
                return ib_errf(w->err, -ENOENT, "module %s not found (neither a module nor built in)", name);
        }
        size_t idx = (size_t)(m - w->db->mods);
        if (w->state[idx] == DONE)
                return 0;
        if (w->state[idx] == VISITING) {
                if (soft)
                        return 0; /* modprobe breaks softdep loops the same way */
                return ib_errf(w->err, -ELOOP, "module dependency cycle through %s", name);
        }
        w->state[idx] = VISITING;
        int r;
        for (size_t i = 0; i < m->pre.n; i++)
                if ((r = visit_soft(w, m->pre.v[i], m->name)) < 0)
                        return r;
        for (size_t i = 0; i < m->deps.n; i++)
                if ((r = visit(w, m->deps.v[i], m->name, false)) < 0)
                        return r;
        w->state[idx] = DONE;
        if ((r = strv_push(w->order, m->relpath)) < 0)
                return r;
        for (size_t i = 0; i < m->post.n; i++)
                if ((r = visit_soft(w, m->post.v[i], m->name)) < 0)
                        return r;
        return 0;
}

int kmod_resolve(const kmod_db *db, const char *const *roots, strv *ret_order, ib_err *err)
{
        _cleanup_free_ uint8_t *state = calloc(db->n ? db->n : 1, 1);
        if (!state)
                return -ENOMEM;
        strv order = {0};
        walk w = {.db = db, .state = state, .order = &order, .err = err};
        for (size_t i = 0; roots[i]; i++) {
                _cleanup_free_ char *n = strdup(roots[i]);
                if (!n) {
                        strv_done(&order);
                        return -ENOMEM;
                }
                kmod_normalise(n);
                int r = visit(&w, n, NULL, false);
                if (r < 0) {
                        strv_done(&order);
                        return r;
                }
        }
        *ret_order = order;
        return 0;
}

/* Append the words of when to *acc that it lacks (space-separated). */
static int add_words(char **acc, const char *when)
{
        _cleanup_free_ char *copy = strdup(when);
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                bool have = false;
                if (*acc) {
                        size_t wl = strlen(w);
                        for (const char *p = *acc; (p = strstr(p, w)); p += wl)
                                if ((p == *acc || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\0'))
                                        have = true;
                }
                if (have)
                        continue;
                char *n = *acc ? xasprintf("%s %s", *acc, w) : strdup(w);
                if (!n)
                        return -ENOMEM;
                free(*acc);
                *acc = n;
        }
        return 0;
}

int kmod_conditions(const kmod_db *db, const kmod_root *roots, const strv *order, strv *ret_when, ib_err *err)
{
        size_t n = order->n;
        _cleanup_free_ bool *always = calloc(n ? n : 1, sizeof(bool));
        char **acc = calloc(n ? n : 1, sizeof(char *));
        int r = always && acc ? 0 : -ENOMEM;
        for (size_t i = 0; roots[i].name && r == 0; i++) {
                const char *one[] = {roots[i].name, NULL};
                strv closure = {0};
                if ((r = kmod_resolve(db, one, &closure, err)) < 0)
                        break;
                for (size_t c = 0; c < closure.n && r == 0; c++)
                        for (size_t j = 0; j < n; j++) {
                                if (strcmp(order->v[j], closure.v[c]) != 0)
                                        continue;
                                if (!roots[i].when || !*roots[i].when)
                                        always[j] = true;
                                else
                                        r = add_words(&acc[j], roots[i].when);
                                break;
                        }
                strv_done(&closure);
        }
        strv out = {0};
        for (size_t j = 0; j < n && r == 0; j++)
                r = strv_push(&out, always[j] || !acc[j] ? "" : acc[j]);
        for (size_t j = 0; acc && j < n; j++)
                free(acc[j]);
        free(acc);
        if (r < 0) {
                strv_done(&out);
                return r;
        }
        *ret_when = out;
        return 0;
}

#define MODULE_SIG_MAGIC "~Module signature appended~\n"
/* struct module_signature (include/linux/module_signature.h): 12 bytes before
 * the magic; its last field is the signature length, big-endian. */
#define MODULE_SIG_INFO_LEN 12

size_t kmod_prepare_for_boot(uint8_t *data, size_t len)
{
        /* 1. The appended signature. */
        size_t ml = strlen(MODULE_SIG_MAGIC);
        if (len >= ml + MODULE_SIG_INFO_LEN && memcmp(data + len - ml, MODULE_SIG_MAGIC, ml) == 0) {
                const uint8_t *info = data + len - ml - MODULE_SIG_INFO_LEN;
                uint32_t sig_len = (uint32_t)info[8] << 24 | (uint32_t)info[9] << 16 | (uint32_t)info[10] << 8 | info[11];
                if (sig_len <= len - ml - MODULE_SIG_INFO_LEN)
                        len -= ml + MODULE_SIG_INFO_LEN + sig_len;
        }
        /* 2. The .BTF section: the kernel finds it by name; pointing its name at
         * the empty string hides it. It is not allocated (SHF_ALLOC clear), so
         * nothing else of the module refers to it. */
        if (len < sizeof(Elf64_Ehdr) || memcmp(data, ELFMAG, SELFMAG) != 0 || data[EI_CLASS] != ELFCLASS64 ||
            data[EI_DATA] != ELFDATA2LSB)
                return len;
        uint64_t shoff = get_le64(data + offsetof(Elf64_Ehdr, e_shoff));
        uint16_t shentsize = get_le16(data + offsetof(Elf64_Ehdr, e_shentsize));
        uint16_t shnum = get_le16(data + offsetof(Elf64_Ehdr, e_shnum));
        uint16_t shstrndx = get_le16(data + offsetof(Elf64_Ehdr, e_shstrndx));
        if (shentsize < sizeof(Elf64_Shdr) || shoff > len || (uint64_t)shnum * shentsize > len - shoff ||
            shstrndx >= shnum)
                return len;
        uint8_t *strh = data + shoff + (uint64_t)shstrndx * shentsize;
        uint64_t str_off = get_le64(strh + offsetof(Elf64_Shdr, sh_offset));
        uint64_t str_size = get_le64(strh + offsetof(Elf64_Shdr, sh_size));
        if (str_off > len || str_size > len - str_off)
                return len;
        for (uint16_t i = 1; i < shnum; i++) {
                uint8_t *sh = data + shoff + (uint64_t)i * shentsize;
                uint32_t name = get_le32(sh + offsetof(Elf64_Shdr, sh_name));
                uint64_t flags = get_le64(sh + offsetof(Elf64_Shdr, sh_flags));
                if (name >= str_size || (flags & SHF_ALLOC))
                        continue;
                const char *n = (const char *)data + str_off + name;
                if (strnlen(n, str_size - name) == 4 && memcmp(n, ".BTF", 4) == 0)
                        put_le32(sh + offsetof(Elf64_Shdr, sh_name), 0);
        }
        return len;
}
