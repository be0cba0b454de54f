/* SPDX-License-Identifier: Apache-2.0 */
/* The initramfs module closure and load order, read from the kernel package's
 * own metadata through libkmod (the library of modprobe): modules.dep.bin for
 * hard dependencies, modules.softdep for soft ones, the alias and builtin
 * indexes to resolve softdep names. libkmod reads indexes but writes none, and
 * Debian's package ships none (its postinst runs depmod), so the kernel step
 * runs `depmod -b` over the unpacked tree once (ib_kmod_index) and the kernel
 * cache keeps, in index/, the index files libkmod reads and an empty stand-in
 * for each module file: libkmod stat()s a dependency's file before it reports
 * the dependency (kmod_module_new_from_path), and the cache does not keep the
 * 400 MB tree, only the modules images use (modules/).
 *
 * Hand-written on top, because no library does it: the walk that turns the
 * closure into one load order (modprobe loads one module and its dependencies;
 * we list them all once, each after what it needs), taking every provider of a
 * softdep alias (which one the guest CPU can use is only known in the guest),
 * the order file's conditions, and kmod_prepare_for_boot (signature, .BTF). */
#include "image_i.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <libkmod.h>
#include <stdio.h>
#include <sys/stat.h>
#include <syslog.h>

/* Each with when the guest loads it (docs/internals.md): the disk, the root
 * file system and the channel always; the vsock transport only where the VMM
 * gives a virtio-vsock device (ID 19: Firecracker, vhost-vsock; our QEMU setup
 * uses virtio-serial); virtio-fs (ID 26) only with mounts; fuse with virtio-fs,
 * else kept for fuse_mount; virtio-net (ID 1, with failover and net_failover)
 * where the VMM gives the lane's device (common/lane.h). */
const kmod_root ib_default_module_roots[] = {
        {"virtio_mmio", NULL},
        {"virtio_blk", NULL},
        {"ext4", NULL},
        {"virtio_console", NULL},
        {"vmw_vsock_virtio_transport", "virtio:19"},
        {"fuse", "demand"},
        {"virtiofs", "virtio:26"},
        {"virtio_net", "virtio:1"},
        {NULL, NULL},
};

#define DEPMOD_TIMEOUT_MS 600000u
#define KMOD_ERROR_MAX 256u

/* What the lookups read (libkmod's index_files[] plus the softdep config). */
static const char *const index_files[] = {
        "modules.dep.bin",     "modules.softdep",           "modules.alias.bin",
        "modules.symbols.bin", "modules.builtin.bin",       "modules.builtin.alias.bin",
};

#define TREE_DEPTH_MAX 16

struct ib_kmod {
        struct kmod_ctx *ctx;
        char *dir;                       /* what libkmod joins module paths to */
        char last_error[KMOD_ERROR_MAX]; /* libkmod's last complaint, for our messages */
};

/* An empty file at dst/<rel> for every module file src/<rel> (a name with
 * ".ko" in it), directories as needed. Takes src_fd. */
static int stand_ins(int src_fd, int dst_fd, unsigned depth)
{
        if (depth > TREE_DEPTH_MAX) {
                close(src_fd);
                return -ELOOP;
        }
        DIR *d = fdopendir(src_fd);
        if (!d) {
                int r = negative_errno();
                close(src_fd);
                return r;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (errno = 0, de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = negative_errno();
                } else if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (sub < 0)
                                r = negative_errno();
                        else if (mkdirat(dst_fd, de->d_name, 0755) < 0 && errno != EEXIST) {
                                r = negative_errno();
                                close(sub);
                        } else {
                                int dsub = openat(dst_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                                if (dsub < 0) {
                                        r = negative_errno();
                                        close(sub);
                                } else {
                                        r = stand_ins(sub, dsub, depth + 1); /* takes sub */
                                        close(dsub);
                                }
                        }
                } else if (S_ISREG(st.st_mode) && strstr(de->d_name, ".ko")) {
                        int fd = openat(dst_fd, de->d_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
                        if (fd < 0)
                                r = negative_errno();
                        else
                                close(fd);
                }
        }
        if (r == 0 && errno)
                r = negative_errno();
        closedir(d);
        return r;
}

int ib_kmod_index(const char *root, const char *release, const char *dst_dir, ib_err *err)
{
        const char *argv[] = {"depmod", "-b", root, release, NULL};
        ib_cmd cmd = {.argv = argv, .timeout_ms = DEPMOD_TIMEOUT_MS};
        int r = ib_run(&cmd, "kernel", NULL, NULL, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *moddir = xasprintf("%s/lib/modules/%s", root, release);
        if (!moddir)
                return -ENOMEM;
        if (mkdir(dst_dir, 0755) < 0)
                return ib_errf(err, negative_errno(), "kernel: mkdir %s: %m", dst_dir);
        int src = open(moddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (src < 0)
                return ib_errf(err, negative_errno(), "kernel: open %s: %m", moddir);
        _cleanup_close_ int dst = open(dst_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dst < 0) {
                close(src);
                return ib_errf(err, negative_errno(), "kernel: open %s: %m", dst_dir);
        }
        if ((r = stand_ins(src, dst, 0)) < 0)
                return ib_errf(err, r, "kernel: mirror the module files of %s into %s: %m", moddir, dst_dir);
        for (size_t i = 0; i < ARRAY_SIZE(index_files); i++) {
                _cleanup_free_ char *s = path_join(moddir, index_files[i]), *d = path_join(dst_dir, index_files[i]);
                if (!s || !d)
                        return -ENOMEM;
                /* depmod leaves out an index with nothing to say (no built-in modules). */
                if (rename(s, d) < 0 && !(errno == ENOENT && i > 0))
                        return ib_errf(err, negative_errno(), "kernel: move depmod's %s: %m", s);
        }
        return 0;
}

bool ib_kmod_has_index(const char *dir)
{
        _cleanup_free_ char *p = path_join(dir, "modules.dep.bin");
        return p && access(p, F_OK) == 0;
}

/* libkmod's log callback: the format comes from libkmod itself. */
static void log_to_db(void *data, int priority, const char *file, int line, const char *fn, const char *format,
                      va_list args) __attribute__((format(printf, 6, 0)));
static void log_to_db(void *data, int priority, const char *file, int line, const char *fn, const char *format,
                      va_list args)
{
        (void)priority, (void)file, (void)line, (void)fn;
        ib_kmod *db = data;
        vsnprintf(db->last_error, sizeof(db->last_error), format, args);
        db->last_error[strcspn(db->last_error, "\n")] = '\0';
}

void ib_kmod_free(ib_kmod *db)
{
        if (!db)
                return;
        kmod_unref(db->ctx);
        free(db->dir);
        free(db);
}

int ib_kmod_open(const char *dir, ib_kmod **ret, ib_err *err)
{
        if (!ib_kmod_has_index(dir))
                return ib_errf(err, -ENOENT, "kernel: no modules.dep.bin in %s (depmod's index)", dir);
        /* No modprobe.d: the host's blacklists and options are not the guest's. */
        static const char *const no_config[] = {NULL};
        ib_kmod *db = calloc(1, sizeof(*db));
        if (!db || !(db->dir = strdup(dir)) || !(db->ctx = kmod_new(dir, no_config))) {
                ib_kmod_free(db);
                return -ENOMEM;
        }
        kmod_set_log_priority(db->ctx, LOG_ERR);
        kmod_set_log_fn(db->ctx, log_to_db, db);
        *ret = db;
        return 0;
}

static void module_unrefp(struct kmod_module **m)
{
        if (*m)
                kmod_module_unref(*m);
}

static void list_unrefp(struct kmod_list **l)
{
        if (*l)
                kmod_module_unref_list(*l);
}

typedef struct walk {
        ib_kmod *db;
        strv visiting, done; /* module names */
        strv *order;         /* relpaths */
        ib_err *err;
} walk;

static int visit(walk *w, struct kmod_module *m, bool soft);

static int visit_list(walk *w, struct kmod_list *list, bool soft)
{
        struct kmod_list *l;
        kmod_list_foreach(l, list) {
                _cleanup_(module_unrefp) struct kmod_module *m = kmod_module_get_module(l);
                int r = visit(w, m, soft);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int visit(walk *w, struct kmod_module *m, bool soft)
{
        const char *name = kmod_module_get_name(m);
        const char *path = kmod_module_get_path(m);
        /* No path: the lookup found it built in (modules.dep lists every module
         * with a file, a hard dependency always has one). */
        if (!path || strv_contains(&w->done, name))
                return 0;
        if (strv_contains(&w->visiting, name)) {
                if (soft)
                        return 0; /* modprobe breaks softdep loops the same way */
                /* depmod refuses to index one; a hand-made index could still hold it. */
                return ib_errf(w->err, -ELOOP, "module dependency cycle through %s", name);
        }
        size_t dl = strlen(w->db->dir);
        if (strncmp(path, w->db->dir, dl) != 0 || path[dl] != '/')
                return ib_errf(w->err, -EINVAL, "module %s: path %s is outside %s", name, path, w->db->dir);
        int r = strv_push(&w->visiting, name);
        if (r < 0)
                return r;
        _cleanup_(list_unrefp) struct kmod_list *pre = NULL, *post = NULL, *deps = NULL;
        if ((r = kmod_module_get_softdeps(m, &pre, &post)) < 0)
                return ib_errf(w->err, r, "module %s: softdeps: %s", name, w->db->last_error);
        if ((r = visit_list(w, pre, true)) < 0)
                return r;
        deps = kmod_module_get_dependencies(m);
        if ((r = visit_list(w, deps, false)) < 0)
                return r;
        free(w->visiting.v[--w->visiting.n]); /* name is the last one pushed */
        w->visiting.v[w->visiting.n] = NULL;
        if ((r = strv_push(&w->done, name)) < 0 || (r = strv_push(w->order, path + dl + 1)) < 0)
                return r;
        return visit_list(w, post, true);
}

int ib_kmod_resolve(ib_kmod *db, const char *const *roots, strv *ret_order, ib_err *err)
{
        strv order = {0};
        walk w = {.db = db, .order = &order, .err = err};
        int r = 0;
        for (size_t i = 0; roots[i] && r == 0; i++) {
                _cleanup_(module_unrefp) struct kmod_module *m = NULL;
                db->last_error[0] = '\0';
                r = kmod_module_new_from_name_lookup(db->ctx, roots[i], &m);
                if (r < 0)
                        r = ib_errf(err, r, "module %s: lookup failed: %s", roots[i],
                                    db->last_error[0] ? db->last_error : strerror(-r));
                else if (!m)
                        r = ib_errf(err, -ENOENT, "module %s not found (neither a module nor built in)", roots[i]);
                else
                        r = visit(&w, m, false);
        }
        strv_done(&w.visiting);
        strv_done(&w.done);
        if (r < 0) {
                strv_done(&order);
                return r;
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

int ib_kmod_conditions(ib_kmod *db, const kmod_root *roots, const strv *order, strv *ret_when, ib_err *err)
{
        size_t n = order->n;
        _cleanup_free_ bool *always = calloc(n ? n : 1, sizeof(bool));
        char **acc = calloc(n ? n : 1, sizeof(char *));
        int r = always && acc ? 0 : -ENOMEM;
        for (size_t i = 0; roots[i].name && r == 0; i++) {
                const char *one[] = {roots[i].name, NULL};
                strv closure = {0};
                if ((r = ib_kmod_resolve(db, one, &closure, err)) < 0)
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
