/* SPDX-License-Identifier: Apache-2.0 */
/* Step 2: the initramfs (docs/internals.md, "Initramfs layout"):
 *   /init                        smolvm-init (static)
 *   /lib/smolvm/modules/ *.ko    the module closure, uncompressed
 *   /lib/smolvm/modules/order    one file name per line, dependencies first, each with
 *                                the conditions under which the guest loads it
 * Cached under cache/initramfs/<key>/ with key = SHA-256 of (kernel package + release,
 * smolvm-init bytes, module load order, layout version): a new smolvm-init rebuilds only
 * this file, from modules already in the kernel cache. */
#include "image_i.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#define INIT_MAX_BYTES (64u << 20)
#define INITRAMFS_LAYOUT "smolvm-initramfs-v3"

void ib_initramfs_done(ib_initramfs *i)
{
        free(i->key);
        free(i->path);
        strv_done(&i->modules);
        *i = (ib_initramfs){0};
}

int elf_check_static(const void *buf, size_t len, const char *path, ib_err *err)
{
        const uint8_t *b = buf;
        if (len < sizeof(Elf64_Ehdr) || memcmp(b, ELFMAG, SELFMAG) != 0)
                return ib_errf(err, -ENOEXEC, "initramfs: %s is not an ELF executable", path);
        if (b[EI_CLASS] != ELFCLASS64 || b[EI_DATA] != ELFDATA2LSB ||
            get_le16(b + offsetof(Elf64_Ehdr, e_machine)) != EM_X86_64)
                return ib_errf(err, -ENOEXEC, "initramfs: %s is not an x86-64 ELF", path);
        uint16_t type = get_le16(b + offsetof(Elf64_Ehdr, e_type));
        if (type != ET_EXEC && type != ET_DYN)
                return ib_errf(err, -ENOEXEC, "initramfs: %s is not an executable", path);
        uint64_t phoff = get_le64(b + offsetof(Elf64_Ehdr, e_phoff));
        uint16_t phentsize = get_le16(b + offsetof(Elf64_Ehdr, e_phentsize));
        uint16_t phnum = get_le16(b + offsetof(Elf64_Ehdr, e_phnum));
        if (phentsize < sizeof(Elf64_Phdr) || phoff > len || (uint64_t)phnum * phentsize > len - phoff)
                return ib_errf(err, -ENOEXEC, "initramfs: %s has a truncated program header table", path);
        for (uint16_t i = 0; i < phnum; i++)
                /* PT_INTERP = needs ld.so, which the initramfs does not have: the kernel
                 * would panic with "No working init found". */
                if (get_le32(b + phoff + (uint64_t)i * phentsize) == PT_INTERP)
                        return ib_errf(err, -ENOEXEC,
                                       "initramfs: %s is dynamically linked; smolvm-init must be static", path);
        return 0;
}

static const char *base_name(const char *p)
{
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

static int write_cpio(ib_ctx *c, const char *path, const char *init, size_t init_len,
                      const ib_kernel *k, const strv *uncompressed, const strv *names, const strv *lines)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return ib_errf(&c->err, negative_errno(), "initramfs: create %s: %m", path);
        cpio_writer w;
        cpio_init(&w, fd);
        /* The kernel's built-in initramfs normally provides /dev/console, but an init whose
         * stdio is not the console prints nothing at all, so carry it ourselves. */
        static const char *const dirs[] = {"dev", "proc", "sys", "run", "tmp", "lib", "lib/smolvm",
                                           "lib/smolvm/modules"};
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                cpio_add_dir(&w, dirs[i], strcmp(dirs[i], "tmp") == 0 ? 01777 : 0755);
        cpio_add_chardev(&w, "dev/console", 0600, 5, 1);
        cpio_add_chardev(&w, "dev/null", 0666, 1, 3);
        cpio_add_file(&w, "init", 0755, init, init_len);

        int r = 0;
        for (size_t i = 0; i < uncompressed->n && r == 0; i++) {
                _cleanup_free_ char *src = xasprintf("%s/modules/%s", k->dir, uncompressed->v[i]);
                _cleanup_free_ char *dst = xasprintf("lib/smolvm/modules/%s", names->v[i]);
                _cleanup_free_ char *data = NULL;
                size_t len = 0;
                if (!src || !dst)
                        return -ENOMEM;
                if ((r = read_file(src, 256u << 20, &data, &len)) < 0)
                        return ib_errf(&c->err, r, "initramfs: read %s: %m", src);
                len = kmod_prepare_for_boot((uint8_t *)data, len);
                r = cpio_add_file(&w, dst, 0644, data, len);
        }
        _cleanup_free_ char *order = strjoin_sep(lines, "\n");
        _cleanup_free_ char *order_nl = order ? xasprintf("%s\n", order) : NULL;
        if (!order_nl)
                return -ENOMEM;
        cpio_add_file(&w, "lib/smolvm/modules/order", 0644, order_nl, strlen(order_nl));
        if ((r = cpio_finish(&w)) < 0)
                return ib_errf(&c->err, r, "initramfs: write %s: %m", path);
        if (fsync(fd) < 0)
                return ib_errf(&c->err, negative_errno(), "initramfs: fsync %s: %m", path);
        return 0;
}

int ib_initramfs_step(ib_ctx *c, ib_kernel *k, const char *init_path,
                      const char *const *extra_modules, ib_initramfs *ret)
{
        ib_initramfs res = {0};
        _cleanup_free_ char *init = NULL, *img = NULL, *parent = NULL, *final = NULL, *rel = NULL;
        size_t init_len = 0;
        ib_kmod *db = NULL;
        strv roots = {0}, order = {0}, uncompressed = {0}, when = {0}, lines = {0};
        kmod_root *croots = NULL;
        char *tmp = NULL;
        int r;

        r = read_file(init_path, INIT_MAX_BYTES, &init, &init_len);
        if (r < 0) {
                r = ib_errf(&c->err, r,
                            "initramfs: read smolvm-init %s: %m (build guest-init, or set SMOLVM_LIBEXECDIR or --init)",
                            init_path);
                goto out;
        }
        if ((r = elf_check_static(init, init_len, init_path, &c->err)) < 0)
                goto out;

        for (size_t i = 0; ib_default_module_roots[i].name && r == 0; i++)
                r = strv_push(&roots, ib_default_module_roots[i].name);
        for (size_t i = 0; extra_modules && extra_modules[i] && r == 0; i++)
                r = strv_push(&roots, extra_modules[i]);
        if (r < 0)
                goto out;
        if ((r = ib_kernel_open_kmod(c, k, &db)) < 0)
                goto out;
        ib_err kerr = {0};
        if ((r = ib_kmod_resolve(db, (const char *const *)roots.v, &order, &kerr)) < 0) {
                r = ib_errf(&c->err, r, "initramfs: kernel %s: %s", k->release, kerr.msg ? kerr.msg : strerror(-r));
                free(kerr.msg);
                goto out;
        }
        /* Extra modules the user asked for are loaded at every boot. */
        if (!(croots = calloc(roots.n + 1, sizeof(*croots)))) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < roots.n; i++)
                croots[i] = (kmod_root){roots.v[i], NULL};
        for (size_t i = 0; ib_default_module_roots[i].name; i++)
                croots[i].when = ib_default_module_roots[i].when;
        if ((r = ib_kmod_conditions(db, croots, &order, &when, &kerr)) < 0) {
                r = ib_errf(&c->err, r, "initramfs: kernel %s: %s", k->release, kerr.msg ? kerr.msg : strerror(-r));
                free(kerr.msg);
                goto out;
        }
        for (size_t i = 0; i < order.n && r == 0; i++) {
                char *u = kmod_uncompressed_path(order.v[i]);
                if (!u) {
                        r = -ENOMEM;
                        break;
                }
                if ((r = strv_push_take(&uncompressed, u)) < 0)
                        break;
                const char *bn = base_name(u);
                /* One flat directory: two modules with the same file name cannot both go in. */
                if (strv_contains(&res.modules, bn))
                        r = ib_errf(&c->err, -EEXIST, "initramfs: two modules named %s", bn);
                else
                        r = strv_push(&res.modules, bn);
                if (r == 0)
                        r = strv_push_take(&lines, when.v[i][0] ? xasprintf("%s %s", bn, when.v[i]) : strdup(bn));
        }
        if (r < 0)
                goto out;

        ib_hash *h = ib_hash_new();
        if (!h) {
                r = -ENOMEM;
                goto out;
        }
        ib_hash *hi = ib_hash_new();
        if (!hi) {
                ib_hash_free(h);
                r = -ENOMEM;
                goto out;
        }
        ib_hash_bytes(hi, init, init_len);
        ib_hash_final_hex(hi, res.init_sha256);
        ib_hash_str(h, "layout", INITRAMFS_LAYOUT);
        ib_hash_str(h, "kernel", k->key);
        ib_hash_str(h, "release", k->release);
        ib_hash_str(h, "init", res.init_sha256);
        for (size_t i = 0; i < order.n; i++) {
                ib_hash_str(h, "module", order.v[i]);
                ib_hash_str(h, "when", when.v[i]);
        }
        char key[65];
        ib_hash_final_hex(h, key);
        if (!(res.key = strdup(key)) || !(rel = xasprintf("initramfs/%s/initramfs.img", key))) {
                r = -ENOMEM;
                goto out;
        }
        bool shared = false;
        if ((res.path = ib_cache_lookup(c, rel, &shared))) {
                ib_progress(c, "[2/4] initramfs: cached%s (%zu modules)", shared ? " in the system store" : "",
                            res.modules.n);
                goto done;
        }
        if (errno == ENOMEM || !(res.path = path_join(c->cache, rel))) {
                r = -ENOMEM;
                goto out;
        }

        ib_progress(c, "[2/4] initramfs: packing smolvm-init + %zu modules for %s", res.modules.n, k->release);
        if ((r = ib_kernel_ensure_modules(c, k, &order)) < 0)
                goto out;
        if (!(tmp = mkdtemp_in(c->tmp, "initramfs"))) {
                r = ib_errf(&c->err, negative_errno(), "initramfs: mkdtemp in %s: %m", c->tmp);
                goto out;
        }
        img = path_join(tmp, "initramfs.img");
        parent = xasprintf("%s/initramfs", c->cache);
        final = xasprintf("%s/initramfs/%s", c->cache, key);
        if (!img || !parent || !final) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = write_cpio(c, img, init, init_len, k, &uncompressed, &res.modules, &lines)) < 0)
                goto out;
        (void)chmod(img, 0444);
        if ((r = mkdir_p(parent, 0755)) < 0) {
                r = ib_errf(&c->err, r, "initramfs: mkdir %s: %m", parent);
                goto out;
        }
        if (rename(tmp, final) < 0) {
                r = ib_errf(&c->err, negative_errno(), "initramfs: rename into %s: %m", final);
                goto out;
        }
        (void)chmod(final, 0755);
        free(tmp);
        tmp = NULL;
done:
        *ret = res;
        res = (ib_initramfs){0};
        r = 0;
out:
        if (tmp) {
                (void)rm_rf(tmp);
                free(tmp);
        }
        ib_initramfs_done(&res);
        ib_kmod_free(db);
        strv_done(&roots);
        strv_done(&order);
        strv_done(&uncompressed);
        strv_done(&when);
        strv_done(&lines);
        free(croots);
        return r;
}
