/* SPDX-License-Identifier: Apache-2.0 */
/* Step 1: Debian's linux-image-amd64, fetched with apt-get download and unpacked with
 * dpkg-deb -x into the cache (never installed into the host's /boot).
 *
 * cache/kernel/<pkg>_<version>/
 *   vmlinuz, vmlinux, release, kernel.deb  the package is kept (70 MB) so a new module set
 *   index/                                 needs no download; the unpacked tree (400 MB)
 *   modules/<relpath>.ko                   is not: only depmod's index with empty
 *                                          stand-ins for the module files (kmod.c) and the
 *                                          modules images use, uncompressed in-process
 *                                          (decompress.c). */
#include "image_i.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#define APT_TIMEOUT_MS (30ull * 60 * 1000)
/* No module comes near (Debian 6.1's largest, amdgpu.ko, is 19 MB); a corrupt file must not
 * make us allocate more. */
#define MODULE_MAX_BYTES (64u << 20)

void ib_kernel_done(ib_kernel *k)
{
        free(k->key);
        free(k->pkg);
        free(k->version);
        free(k->release);
        free(k->dir);
        *k = (ib_kernel){0};
}

static int apt_capture(ib_ctx *c, const char *const *argv, char **ret)
{
        ib_cmd cmd = {.argv = argv, .stdout_max_bytes = 16u << 20, .timeout_ms = APT_TIMEOUT_MS};
        return ib_run(&cmd, "kernel", ret, NULL, &c->err);
}

/* linux-image-amd64 -> linux-image-6.1.0-56-amd64 and its candidate version. */
static int resolve_package(ib_ctx *c, char **ret_pkg, char **ret_version)
{
        _cleanup_free_ char *out = NULL, *pkg = NULL, *ver = NULL, *show = NULL;
        int r;
        for (int attempt = 0; attempt < 2; attempt++) {
                if (attempt == 1) {
                        /* Only when the lookup found nothing: apt-get update is slow-ish and
                         * touches the host's lists. */
                        ib_progress(c, "[1/4] kernel: no linux-image-amd64 in the apt lists, running apt-get update");
                        const char *up[] = {"apt-get", "update", NULL};
                        ib_cmd cmd = {.argv = up, .timeout_ms = APT_TIMEOUT_MS};
                        if ((r = ib_run(&cmd, "kernel", NULL, NULL, &c->err)) < 0)
                                return r;
                }
                free(out);
                out = NULL;
                /* ShowVersion: the meta package pins "(= version)", which saves an
                 * apt-cache show (~1 s of CPU) on every cached build. */
                const char *dep[] = {"apt-cache", "depends", "-o", "APT::Cache::ShowVersion=true",
                                     "linux-image-amd64", NULL};
                r = apt_capture(c, dep, &out);
                if (r == 0)
                        r = apt_parse_depends(out, &pkg, &ver);
                if (r == 0)
                        break;
                if (attempt == 0) {
                        free(c->err.msg);
                        c->err.msg = NULL;
                }
        }
        if (r < 0)
                return ib_errf(&c->err, r, "kernel: apt-cache depends linux-image-amd64 names no linux-image-* package "
                               "(is a Debian mirror in the apt sources?)");
        if (!ver) {
                const char *show_argv[] = {"apt-cache", "show", "--no-all-versions", pkg, NULL};
                if ((r = apt_capture(c, show_argv, &show)) < 0)
                        return r;
                if ((r = apt_parse_version(show, &ver)) < 0)
                        return ib_errf(&c->err, r, "kernel: apt-cache show %s printed no Version", pkg);
        }
        *ret_pkg = TAKE_PTR(pkg);
        *ret_version = TAKE_PTR(ver);
        return 0;
}

char *kmod_uncompressed_path(const char *relpath)
{
        size_t l = strlen(relpath);
        static const char *const sfx[] = {".xz", ".zst", ".gz"};
        for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
                size_t sl = strlen(sfx[i]);
                if (l > sl && strcmp(relpath + l - sl, sfx[i]) == 0)
                        return strndup(relpath, l - sl);
        }
        return strdup(relpath);
}

/* Copies (decompressing) <moddir>/<relpath> to <dst_dir>/modules/<uncompressed relpath>. */
static int take_module(ib_ctx *c, const char *moddir, const char *relpath, const char *dst_dir)
{
        _cleanup_free_ char *src = path_join(moddir, relpath);
        _cleanup_free_ char *un = kmod_uncompressed_path(relpath);
        _cleanup_free_ char *dst = un ? xasprintf("%s/modules/%s", dst_dir, un) : NULL;
        _cleanup_free_ char *tmp = dst ? xasprintf("%s.tmp", dst) : NULL;
        if (!src || !tmp)
                return -ENOMEM;
        char *slash = strrchr(dst, '/');
        *slash = '\0';
        int r = mkdir_p(dst, 0755);
        *slash = '/';
        if (r < 0)
                return ib_errf(&c->err, r, "kernel: mkdir %s: %m", dst);

        size_t l = strlen(relpath);
        bool xz = l > 3 && strcmp(relpath + l - 3, ".xz") == 0, zst = l > 4 && strcmp(relpath + l - 4, ".zst") == 0;
        if (l > 3 && strcmp(relpath + l - 3, ".gz") == 0)
                return ib_errf(&c->err, -ENOTSUP, "kernel: %s is gzip-compressed; only xz and zstd modules are "
                               "unpacked (what Debian's kernels use)", src);
        if (!xz && !zst) {
                (void)unlink(tmp);
                if ((r = link_or_copy(src, tmp)) < 0)
                        return ib_errf(&c->err, r, "kernel: copy %s: %m", src);
        } else {
                _cleanup_free_ char *packed = NULL;
                _cleanup_free_ void *data = NULL;
                size_t packed_len = 0, len = 0;
                if ((r = read_file(src, MODULE_MAX_BYTES, &packed, &packed_len)) < 0)
                        return ib_errf(&c->err, r, "kernel: read %s: %m", src);
                r = xz ? ib_unxz(packed, packed_len, 0, MODULE_MAX_BYTES, &data, &len)
                       : ib_unzstd(packed, packed_len, MODULE_MAX_BYTES, &data, &len);
                if (r == -EFBIG)
                        return ib_errf(&c->err, r, "kernel: %s decompresses to more than %u MiB (corrupt?)", src,
                                       MODULE_MAX_BYTES >> 20);
                if (r < 0)
                        return ib_errf(&c->err, r, "kernel: %s: %s", src,
                                       r == -EBADMSG ? "corrupt or truncated compressed data" : strerror(-r));
                if ((r = write_file_atomic(tmp, data, len, 0644)) < 0)
                        return ib_errf(&c->err, r, "kernel: write %s: %m", tmp);
        }
        if (rename(tmp, dst) < 0) {
                r = negative_errno();
                (void)unlink(tmp);
                return ib_errf(&c->err, r, "kernel: rename %s: %m", dst);
        }
        return 0;
}

/* dpkg-deb -x <deb> <root>; returns root/lib/modules/<release> in *ret_moddir, where
 * depmod -b wants it (usr-merged packages ship usr/lib/modules: moved there). */
static int unpack_deb(ib_ctx *c, const char *deb, const char *root, const char *release,
                      char **ret_moddir)
{
        const char *x[] = {"dpkg-deb", "-x", deb, root, NULL};
        ib_cmd cmd = {.argv = x, .timeout_ms = 600000};
        int r = ib_run(&cmd, "kernel", NULL, NULL, &c->err);
        if (r < 0)
                return r;
        _cleanup_free_ char *a = xasprintf("%s/lib/modules/%s", root, release);
        _cleanup_free_ char *b = xasprintf("%s/usr/lib/modules/%s", root, release);
        _cleanup_free_ char *lm = xasprintf("%s/lib/modules", root);
        if (!a || !b || !lm)
                return -ENOMEM;
        struct stat st;
        if (stat(a, &st) < 0) {
                if (stat(b, &st) < 0)
                        return ib_errf(&c->err, -ENOENT, "kernel: %s has no lib/modules/%s", deb, release);
                if ((r = mkdir_p(lm, 0755)) < 0 || rename(b, a) < 0)
                        return ib_errf(&c->err, r < 0 ? r : negative_errno(), "kernel: move %s: %m", b);
        }
        *ret_moddir = TAKE_PTR(a);
        return 0;
}

/* A copy of the system store's entry src at dst, the caller's own (cp -a:
 * modes kept), made in the work dir and renamed into place complete. */
static int copy_entry(ib_ctx *c, const char *src, const char *dst)
{
        ib_progress(c, "[2/4] initramfs: a module the system store's kernel entry lacks: copying it from %s", src);
        _cleanup_rmdir_ char *tmp = mkdtemp_in(c->tmp, "kernel");
        if (!tmp)
                return ib_errf(&c->err, negative_errno(), "kernel: mkdtemp in %s: %m", c->tmp);
        _cleanup_free_ char *entry = path_join(tmp, "entry");
        if (!entry)
                return -ENOMEM;
        const char *argv[] = {"cp", "-a", "--reflink=auto", "--", src, entry, NULL};
        ib_cmd cmd = {.argv = argv, .timeout_ms = APT_TIMEOUT_MS};
        int r = ib_run(&cmd, "kernel", NULL, NULL, &c->err);
        if (r < 0)
                return r;
        if (rename(entry, dst) < 0)
                return ib_errf(&c->err, negative_errno(), "kernel: rename into %s: %m", dst);
        return 0;
}

int ib_kernel_ensure_modules(ib_ctx *c, ib_kernel *k, const strv *relpaths)
{
        strv missing = {0};
        int r = 0;
        for (size_t i = 0; i < relpaths->n && r == 0; i++) {
                _cleanup_free_ char *un = kmod_uncompressed_path(relpaths->v[i]);
                _cleanup_free_ char *p = un ? xasprintf("%s/modules/%s", k->dir, un) : NULL;
                if (!p)
                        r = -ENOMEM;
                else if (access(p, F_OK) < 0)
                        r = strv_push(&missing, relpaths->v[i]);
        }
        if (r == 0 && missing.n && k->shared) {
                /* The system store's entry is read-only: this build adds to a copy
                 * of its own (no download, no second unpack and index). */
                char *own = xasprintf("%s/kernel/%s", c->cache, k->key);
                if (!own)
                        r = -ENOMEM;
                else if ((r = copy_entry(c, k->dir, own)) < 0)
                        free(own);
                else {
                        free(k->dir);
                        k->dir = own;
                        k->shared = false;
                }
        }
        if (r < 0 || missing.n == 0) {
                strv_done(&missing);
                return r;
        }
        ib_progress(c, "[2/4] initramfs: unpacking %zu more module(s) from %s", missing.n, k->pkg);
        _cleanup_rmdir_ char *tmp = mkdtemp_in(c->tmp, "kernel-x");
        _cleanup_free_ char *deb = path_join(k->dir, "kernel.deb");
        _cleanup_free_ char *root = tmp ? path_join(tmp, "root") : NULL;
        _cleanup_free_ char *moddir = NULL;
        if (!tmp)
                r = ib_errf(&c->err, negative_errno(), "kernel: mkdtemp in %s: %m", c->tmp);
        else if (!deb || !root)
                r = -ENOMEM;
        else
                r = unpack_deb(c, deb, root, k->release, &moddir);
        for (size_t i = 0; i < missing.n && r == 0; i++)
                r = take_module(c, moddir, missing.v[i], k->dir);
        strv_done(&missing);
        return r;
}

int ib_kernel_open_kmod(ib_ctx *c, const ib_kernel *k, ib_kmod **ret)
{
        _cleanup_free_ char *index = path_join(k->dir, "index");
        if (!index)
                return -ENOMEM;
        if (!ib_kmod_has_index(index)) {
                /* An entry made before the index was kept: make it once from the .deb. */
                ib_progress(c, "[2/4] initramfs: indexing the modules of %s", k->pkg);
                _cleanup_rmdir_ char *tmp = mkdtemp_in(c->tmp, "kernel-x");
                if (!tmp)
                        return ib_errf(&c->err, negative_errno(), "kernel: mkdtemp in %s: %m", c->tmp);
                _cleanup_free_ char *deb = path_join(k->dir, "kernel.deb");
                _cleanup_free_ char *root = path_join(tmp, "root");
                _cleanup_free_ char *tindex = path_join(tmp, "index");
                _cleanup_free_ char *moddir = NULL;
                if (!deb || !root || !tindex)
                        return -ENOMEM;
                int r = unpack_deb(c, deb, root, k->release, &moddir);
                if (r == 0)
                        r = ib_kmod_index(root, k->release, tindex, &c->err);
                if (r < 0)
                        return r;
                if (rename(tindex, index) < 0)
                        return ib_errf(&c->err, negative_errno(), "kernel: rename into %s: %m", index);
        }
        return ib_kmod_open(index, ret, &c->err);
}

static int find_deb(const char *dir, char **ret)
{
        DIR *d = opendir(dir);
        if (!d)
                return negative_errno();
        struct dirent *de;
        int r = -ENOENT;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l > 4 && strcmp(de->d_name + l - 4, ".deb") == 0) {
                        *ret = path_join(dir, de->d_name);
                        r = *ret ? 0 : -ENOMEM;
                        break;
                }
        }
        closedir(d);
        return r;
}

/* pkg "linux-image-6.1.0-56-amd64" -> release "6.1.0-56-amd64". */
static char *release_of(const char *pkg)
{
        return strdup(pkg + strlen("linux-image-"));
}

static int build_entry(ib_ctx *c, ib_kernel *k)
{
        int r;
        _cleanup_rmdir_ char *tmp = mkdtemp_in(c->tmp, "kernel");
        if (!tmp)
                return ib_errf(&c->err, negative_errno(), "kernel: mkdtemp in %s: %m", c->tmp);
        _cleanup_free_ char *entry = path_join(tmp, "entry");
        _cleanup_free_ char *root = path_join(tmp, "root");
        _cleanup_free_ char *pkgver = xasprintf("%s=%s", k->pkg, k->version);
        if (!entry || !root || !pkgver)
                return -ENOMEM;
        if (mkdir(entry, 0755) < 0)
                return ib_errf(&c->err, negative_errno(), "kernel: mkdir %s: %m", entry);

        ib_progress(c, "[1/4] kernel: downloading %s (%s)", k->pkg, k->version);
        /* apt-get download writes into its cwd. As root apt warns that the _apt sandbox
         * user cannot reach the directory; the download itself works. */
        const char *dl[] = {"apt-get", "download", pkgver, NULL};
        ib_cmd cmd = {.argv = dl, .cwd = entry, .timeout_ms = APT_TIMEOUT_MS};
        if ((r = ib_run(&cmd, "kernel", NULL, NULL, &c->err)) < 0)
                return r;
        _cleanup_free_ char *deb = NULL, *kdeb = path_join(entry, "kernel.deb");
        if (!kdeb)
                return -ENOMEM;
        if ((r = find_deb(entry, &deb)) < 0)
                return ib_errf(&c->err, r, "kernel: apt-get download %s left no .deb in %s", pkgver, entry);
        if (rename(deb, kdeb) < 0)
                return ib_errf(&c->err, negative_errno(), "kernel: rename %s: %m", deb);

        ib_progress(c, "[1/4] kernel: unpacking %s", k->pkg);
        _cleanup_free_ char *moddir = NULL;
        if ((r = unpack_deb(c, kdeb, root, k->release, &moddir)) < 0)
                return r;

        _cleanup_free_ char *vml = xasprintf("%s/boot/vmlinuz-%s", root, k->release);
        _cleanup_free_ char *vml_dst = path_join(entry, "vmlinuz");
        if (!vml || !vml_dst)
                return -ENOMEM;
        if (rename(vml, vml_dst) < 0)
                return ib_errf(&c->err, negative_errno(), "kernel: %s: %m", vml);
        (void)chmod(vml_dst, 0444); /* hard-linked into images: read-only everywhere */

        /* Debian ships no modules.dep (postinst runs depmod); -b keeps depmod inside the
         * unpacked tree. */
        _cleanup_free_ char *index = path_join(entry, "index");
        if (!index)
                return -ENOMEM;
        if ((r = ib_kmod_index(root, k->release, index, &c->err)) < 0)
                return r;
        _cleanup_free_ char *rel = path_join(entry, "release");
        _cleanup_free_ char *reltext = xasprintf("%s\n", k->release);
        if (!rel || !reltext)
                return -ENOMEM;
        if ((r = write_file_atomic(rel, reltext, strlen(reltext), 0644)) < 0)
                return ib_errf(&c->err, r, "kernel: write %s: %m", rel);

        /* Pre-populate the default module set so the first initramfs needs no second unpack. */
        ib_kmod *db = NULL;
        strv order = {0};
        const char *roots[16] = {0};
        for (size_t i = 0; ib_default_module_roots[i].name && i + 1 < ARRAY_SIZE(roots); i++)
                roots[i] = ib_default_module_roots[i].name;
        r = ib_kmod_open(index, &db, &c->err);
        /* A default root this kernel lacks fails later, with the initramfs step's message. */
        if (r == 0 && ib_kmod_resolve(db, roots, &order, NULL) == 0)
                for (size_t i = 0; i < order.n && r == 0; i++)
                        r = take_module(c, moddir, order.v[i], entry);
        strv_done(&order);
        ib_kmod_free(db);
        if (r < 0)
                return r;

        if (rename(entry, k->dir) < 0)
                return ib_errf(&c->err, negative_errno(), "kernel: rename into %s: %m", k->dir);
        return 0;
}

/* A system store's entry this build can read as it is: everything the later
 * steps read from an entry (they write nothing there unless a module is missing). */
static bool shared_entry_usable(const char *dir)
{
        static const char *const files[] = {"vmlinuz", "vmlinux", "kernel.deb", "release"};
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                _cleanup_free_ char *p = path_join(dir, files[i]);
                if (!p || access(p, R_OK) < 0)
                        return false;
        }
        _cleanup_free_ char *index = path_join(dir, "index");
        return index && ib_kmod_has_index(index);
}

int ib_kernel_step(ib_ctx *c, ib_kernel *ret)
{
        ib_kernel k = {0};
        _cleanup_free_ char *vml = NULL, *shared = NULL;
        int r;
        ib_progress(c, "[1/4] kernel: resolving linux-image-amd64");
        if ((r = resolve_package(c, &k.pkg, &k.version)) < 0)
                goto fail;
        if (!(k.release = release_of(k.pkg)) || !(k.key = xasprintf("%s_%s", k.pkg, k.version))) {
                r = -ENOMEM;
                goto fail;
        }
        /* An epoch's ':' is legal in a path but trips up tools that split on ':'. */
        for (char *p = k.key; *p; p++)
                if (*p == ':' || *p == '/')
                        *p = '%';
        if (!(k.dir = xasprintf("%s/kernel/%s", c->cache, k.key))) {
                r = -ENOMEM;
                goto fail;
        }
        if (!(vml = path_join(k.dir, "vmlinuz"))) {
                r = -ENOMEM;
                goto fail;
        }
        if (c->shared && !(shared = xasprintf("%s/kernel/%s", c->shared, k.key))) {
                r = -ENOMEM;
                goto fail;
        }
        if (access(vml, F_OK) == 0) {
                ib_progress(c, "[1/4] kernel: %s (%s) cached", k.pkg, k.version);
        } else if (shared && shared_entry_usable(shared)) {
                /* Read as it is; a module it lacks makes an own entry (ensure_modules). */
                ib_progress(c, "[1/4] kernel: %s (%s) cached in the system store", k.pkg, k.version);
                free(k.dir);
                k.dir = TAKE_PTR(shared);
                k.shared = true;
        } else if ((r = build_entry(c, &k)) < 0)
                goto fail;
        if ((r = ib_vmlinux_ensure(k.dir, &c->err)) < 0)
                goto fail;
        *ret = k;
        return 0;
fail:
        ib_kernel_done(&k);
        return r;
}
