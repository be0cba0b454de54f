/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm_image_build: lock the cache, run the three layer steps, assemble
 * images/<key>/ from hard links into the caches, move the name symlink atomically.
 * Every step builds into cache/tmp/ and renames into place, so a failed or killed build
 * leaves no half-built entry; stale temp dirs are removed by the next build (under the lock). */
#include "image_i.h"
#include "store.h"
#include "wire.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

char *smolvm_image_home(void)
{
        char *home = NULL;
        return smolvm_home_path(&home) < 0 ? NULL : home;
}

void smolvm_image_info_done(smolvm_image_info *info)
{
        if (!info)
                return;
        free(info->key);
        free(info->dir);
        free(info->vmlinuz);
        free(info->initramfs);
        free(info->rootfs);
        free(info->kernel_release);
        *info = (smolvm_image_info){0};
}

static void ctx_done(ib_ctx *c)
{
        free(c->home);
        free(c->shared);
        free(c->cache);
        free(c->tmp);
        free(c->err.msg);
}

/* Debian package names: [a-z0-9][a-z0-9+.-]+ (Policy 5.6.1). Checked because they end up
 * in debootstrap's comma-separated --include. */
static bool valid_package(const char *p)
{
        if (!((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= '0' && p[0] <= '9')) || !p[1])
                return false;
        for (const char *s = p; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("+.-", *s)))
                        return false;
        return true;
}

static int clean_tmp(const char *dir)
{
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                _cleanup_free_ char *p = path_join(dir, de->d_name);
                if (p) {
                        (void)umount_beneath(p);
                        (void)rm_rf(p);
                }
        }
        closedir(d);
        return 0;
}

/* The store this build writes: opts->home, the system store (opts->system) or
 * $SMOLVM_HOME; and the system store's cache to read layers from, when that
 * is another store. */
static int setup_dirs(ib_ctx *c, const smolvm_image_build_opts *opts)
{
        _cleanup_free_ char *home = opts->home     ? strdup(opts->home)
                                    : opts->system ? strdup(smolvm_system_store())
                                                   : smolvm_image_home();
        if (!home)
                return ib_errf(&c->err, -ENOENT, "cannot find the state dir: set SMOLVM_HOME or HOME");
        int r;
        static const char *const sub[] = {"", "cache", "cache/kernel", "cache/initramfs", "cache/rootfs",
                                          "cache/tmp", "images"};
        for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
                _cleanup_free_ char *p = sub[i][0] ? path_join(home, sub[i]) : strdup(home);
                if (!p)
                        return -ENOMEM;
                r = mkdir_p(p, 0755);
                /* Every user reads the system store: whatever umask made it before. */
                if (r == 0 && opts->system && chmod(p, 0755) < 0)
                        r = negative_errno();
                if (r < 0 && opts->system && (r == -EACCES || r == -EPERM || r == -EROFS))
                        return ib_errf(&c->err, r, "image: the system store %s is not yours to write (%s): "
                                       "build it as root, `sudo smolvm image build --system`", home, strerror(-r));
                if (r < 0)
                        return ib_errf(&c->err, r, "mkdir %s: %m", p);
        }
        if (!(c->home = realpath(home, NULL)))
                return ib_errf(&c->err, negative_errno(), "realpath %s: %m", home);
        if (!(c->cache = path_join(c->home, "cache")) || !(c->tmp = path_join(c->cache, "tmp")))
                return -ENOMEM;
        _cleanup_free_ char *shared = opts->system ? NULL : path_join(smolvm_system_store(), "cache");
        c->shared = shared ? realpath(shared, NULL) : NULL;
        if (c->shared && strcmp(c->shared, c->cache) == 0) {
                free(c->shared);
                c->shared = NULL;
        }
        return 0;
}

char *ib_cache_lookup(ib_ctx *c, const char *rel, bool *ret_shared)
{
        const char *roots[] = {c->cache, c->shared};
        for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
                if (!roots[i])
                        continue;
                char *p = path_join(roots[i], rel);
                if (!p) {
                        errno = ENOMEM;
                        return NULL;
                }
                if (access(p, R_OK) == 0) {
                        *ret_shared = i == 1;
                        return p;
                }
                free(p);
        }
        errno = ENOENT;
        return NULL;
}

static int take_lock(ib_ctx *c, int *ret_fd)
{
        _cleanup_free_ char *p = path_join(c->cache, "lock");
        if (!p)
                return -ENOMEM;
        _cleanup_close_ int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return ib_errf(&c->err, negative_errno(), "open lock %s: %m", p);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return ib_errf(&c->err, negative_errno(), "flock %s: %m", p);
                ib_progress(c, "waiting for another image build to finish (lock %s)", p);
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR)
                                return ib_errf(&c->err, negative_errno(), "flock %s: %m", p);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int write_image_json(ib_ctx *c, const char *path, const char *key, const ib_kernel *k,
                            const ib_initramfs *ini, const ib_rootfs *rf, const ib_rootfs_opts *ro)
{
        json_t *mods = json_array(), *pk = json_array();
        for (size_t i = 0; mods && i < ini->modules.n; i++)
                json_array_append_new(mods, json_string(ini->modules.v[i]));
        for (size_t i = 0; pk && !ro->from_rootfs && i < ro->packages->n; i++)
                json_array_append_new(pk, json_string(ro->packages->v[i]));
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        json_t *o = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:I, s:o}, s:{s:s, s:s?, s:s?, s:s?, s:o, s:I}}",
                              "version", 1, "key", key, "created", when,
                              "kernel", "package", k->pkg, "version", k->version, "release", k->release, "key", k->key,
                              "initramfs", "key", ini->key, "init_sha256", ini->init_sha256,
                              "init_features", (json_int_t)SMOLVM_HELLO_FEATURES, "modules", mods ? mods : json_null(),
                              "rootfs", "key", rf->key, "suite", ro->from_rootfs ? NULL : ro->suite,
                              "mirror", ro->from_rootfs ? NULL : ro->mirror, "from_rootfs", ro->from_rootfs,
                              "packages", pk ? pk : json_null(), "size_bytes", (json_int_t)rf->size_bytes);
        if (!o)
                return -ENOMEM;
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        char *text = xasprintf("%s\n", s);
        free(s);
        if (!text)
                return -ENOMEM;
        int r = write_file_atomic(path, text, strlen(text), 0444);
        free(text);
        return r < 0 ? ib_errf(&c->err, r, "image: write %s: %m", path) : 0;
}

/* images/<name> -> <key>, replaced atomically (symlink to a temp name + rename). */
static int set_symlink(ib_ctx *c, const char *images, const char *name, const char *key)
{
        _cleanup_free_ char *link = path_join(images, name);
        _cleanup_free_ char *tmp = xasprintf("%s/.%s.tmp.%d", images, name, (int)getpid());
        if (!link || !tmp)
                return -ENOMEM;
        (void)unlink(tmp);
        if (symlink(key, tmp) < 0)
                return ib_errf(&c->err, negative_errno(), "image: symlink %s: %m", tmp);
        if (rename(tmp, link) < 0) {
                int r = negative_errno();
                (void)unlink(tmp);
                return ib_errf(&c->err, r, "image: rename %s -> %s: %m", tmp, link);
        }
        return 0;
}

static int fill_info(const char *dir, const char *key, smolvm_image_info *ret)
{
        smolvm_image_info i = {0};
        if (!(i.key = strdup(key)) || !(i.dir = strdup(dir)) || !(i.vmlinuz = path_join(dir, IMAGE_BZIMAGE)) ||
            !(i.initramfs = path_join(dir, IMAGE_INITRD)) || !(i.rootfs = path_join(dir, IMAGE_ROOTFS))) {
                smolvm_image_info_done(&i);
                return -ENOMEM;
        }
        /* Optional (store.h): an image made by hand may come without it. */
        if (access(i.vmlinuz, F_OK) < 0) {
                free(i.vmlinuz);
                i.vmlinuz = NULL;
        }
        _cleanup_free_ char *jp = path_join(dir, IMAGE_JSON);
        json_t *j = jp ? json_load_file(jp, 0, NULL) : NULL;
        const char *rel = NULL;
        if (j && json_unpack(j, "{s:{s:s}}", "kernel", "release", &rel) == 0 && rel)
                i.kernel_release = strdup(rel);
        json_decref(j);
        *ret = i;
        return 0;
}

static int assemble(ib_ctx *c, const ib_kernel *k, const ib_initramfs *ini, const ib_rootfs *rf,
                    const ib_rootfs_opts *ro, const char *name, smolvm_image_info *ret)
{
        ib_hash *h = ib_hash_new();
        if (!h)
                return -ENOMEM;
        ib_hash_str(h, "layout", "smolvm-image-v1");
        /* image.json records the init's features: an image made before it had them
         * is made again (hard links: the caches are unchanged). */
        char features[16];
        snprintf(features, sizeof(features), "%u", SMOLVM_HELLO_FEATURES);
        ib_hash_str(h, "init_features", features);
        ib_hash_str(h, "kernel", k->key);
        ib_hash_str(h, "initramfs", ini->key);
        ib_hash_str(h, "rootfs", rf->key);
        char key[65];
        ib_hash_final_hex(h, key);

        _cleanup_free_ char *images = path_join(c->home, "images");
        _cleanup_free_ char *dir = images ? path_join(images, key) : NULL;
        _cleanup_free_ char *json = dir ? path_join(dir, IMAGE_JSON) : NULL;
        if (!json)
                return -ENOMEM;
        int r;
        bool cached = access(json, F_OK) == 0;
        if (cached) {
                ib_progress(c, "[4/4] image: %s cached", key);
                /* Images assembled before vmlinux existed: add it in place (a new file, atomic). */
                _cleanup_free_ char *src = path_join(k->dir, IMAGE_KERNEL), *dst = path_join(dir, IMAGE_KERNEL);
                if (!src || !dst)
                        return -ENOMEM;
                if (access(dst, R_OK) < 0 && (r = link_or_copy(src, dst)) < 0)
                        return ib_errf(&c->err, r, "image: link %s -> %s: %m", src, dst);
        } else {
                ib_progress(c, "[4/4] image: assembling %s", dir);
                char *tmp = mkdtemp_in(images, ".tmp");
                if (!tmp)
                        return ib_errf(&c->err, negative_errno(), "image: mkdtemp in %s: %m", images);
                const struct {
                        const char *src, *dst;
                } files[] = {
                        {k->dir, IMAGE_BZIMAGE},
                        {k->dir, IMAGE_KERNEL},
                        {ini->path, IMAGE_INITRD},
                        {rf->path, IMAGE_ROOTFS},
                };
                r = 0;
                for (size_t i = 0; i < ARRAY_SIZE(files) && r == 0; i++) {
                        _cleanup_free_ char *src = i < 2 ? path_join(k->dir, files[i].dst) : strdup(files[i].src);
                        _cleanup_free_ char *dst = path_join(tmp, files[i].dst);
                        if (!src || !dst)
                                r = -ENOMEM;
                        /* Hard links: no copy, and the image dir stays valid even if the
                         * cache entry is pruned later. Files are read-only bases. */
                        else if ((r = link_or_copy(src, dst)) < 0)
                                r = ib_errf(&c->err, r, "image: link %s -> %s: %m", src, dst);
                }
                _cleanup_free_ char *tjson = path_join(tmp, IMAGE_JSON);
                if (r == 0 && !tjson)
                        r = -ENOMEM;
                if (r == 0)
                        r = write_image_json(c, tjson, key, k, ini, rf, ro);
                if (r == 0 && chmod(tmp, 0755) < 0)
                        r = ib_errf(&c->err, negative_errno(), "image: chmod %s: %m", tmp);
                if (r == 0 && rename(tmp, dir) < 0)
                        r = ib_errf(&c->err, negative_errno(), "image: rename into %s: %m", dir);
                if (r < 0)
                        (void)rm_rf(tmp);
                free(tmp);
                if (r < 0)
                        return r;
        }
        if (name && (r = set_symlink(c, images, name, key)) < 0)
                return r;
        if ((r = fill_info(dir, key, ret)) < 0)
                return r;
        ret->cached = cached;
        return 0;
}

int smolvm_image_build(const smolvm_image_build_opts *opts, smolvm_image_progress_fn progress,
                       void *ud, smolvm_image_info *ret_info, char **ret_error)
{
        static const smolvm_image_build_opts defaults = {0};
        if (!opts)
                opts = &defaults;
        ib_ctx c = {.progress = progress, .ud = ud};
        ib_kernel k = {0};
        ib_initramfs ini = {0};
        ib_rootfs rf = {0};
        strv packages = {0};
        _cleanup_free_ char *mirror = NULL, *init = NULL;
        _cleanup_close_ int lock_fd = -1;
        smolvm_image_info info = {0};
        const char *suite = opts->suite ? opts->suite : "bookworm";
        mode_t old_umask = 0;
        bool umask_set = false;
        int r;

        /* Inputs first: a typo should fail before any download. */
        for (const char *s = suite; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-')) {
                        r = ib_errf(&c.err, -EINVAL, "invalid suite '%s'", suite);
                        goto out;
                }
        if (opts->name && !image_name_valid(opts->name)) {
                r = ib_errf(&c.err, -EINVAL, "invalid image name '%s' (letters, digits, '.', '_', '-')", opts->name);
                goto out;
        }
        r = 0;
        if (!opts->no_default_packages)
                for (size_t i = 0; ib_default_packages[i] && r == 0; i++)
                        r = strv_push(&packages, ib_default_packages[i]);
        for (size_t i = 0; opts->packages && opts->packages[i] && r == 0; i++) {
                if (!valid_package(opts->packages[i]))
                        r = ib_errf(&c.err, -EINVAL, "invalid package name '%s'", opts->packages[i]);
                else
                        r = strv_push(&packages, opts->packages[i]);
        }
        if (r < 0)
                goto out;
        strv_sort_uniq(&packages);

        if (opts->init_path)
                init = strdup(opts->init_path);
        else
                init = path_join(smolvm_libexec_dir(), "smolvm-init");
        if (!init) {
                r = -ENOMEM;
                goto out;
        }
        if (access(init, R_OK) < 0) {
                r = ib_errf(&c.err, negative_errno(),
                            "initramfs: smolvm-init not found at %s: %m (build guest-init, or set SMOLVM_LIBEXECDIR, or pass --init)",
                            init);
                goto out;
        }
        if (opts->from_rootfs) {
                struct stat st;
                if (stat(opts->from_rootfs, &st) < 0) {
                        r = ib_errf(&c.err, negative_errno(), "rootfs: --from-rootfs %s: %m", opts->from_rootfs);
                        goto out;
                }
                /* debootstrap is not run, so nothing would install them. */
                if (opts->packages && opts->packages[0]) {
                        r = ib_errf(&c.err, -EINVAL, "--packages cannot be combined with --from-rootfs "
                                                     "(install them into that rootfs first)");
                        goto out;
                }
        }
        if (opts->mirror) {
                if (!(mirror = strdup(opts->mirror))) {
                        r = -ENOMEM;
                        goto out;
                }
                if (strpbrk(mirror, " \t\n,") || !strstr(mirror, ":/")) {
                        r = ib_errf(&c.err, -EINVAL, "invalid mirror URL '%s'", mirror);
                        goto out;
                }
        } else if (!opts->from_rootfs) {
                if ((r = apt_find_mirror(suite, &mirror, &c.err)) < 0)
                        goto out;
        }

        /* Built for every user: readable by all, whatever the caller's umask (its
         * children, tar and mkfs among them, inherit this one). Process-wide: the
         * caller is the CLI, one thread. */
        if (opts->system) {
                old_umask = umask(022);
                umask_set = true;
        }
        r = setup_dirs(&c, opts);
        if (r == 0 && opts->system && access(c.home, W_OK) < 0)
                r = ib_errf(&c.err, negative_errno(), "image: the system store %s is not yours to write (%m): build "
                            "it as root, `sudo smolvm image build --system`", c.home);
        if (r == 0)
                r = take_lock(&c, &lock_fd);
        if (r < 0)
                goto out;
        /* Under the lock nobody else is building: whatever is in tmp is from a dead build. */
        (void)clean_tmp(c.tmp);

        ib_rootfs_opts ro = {.suite = suite, .mirror = mirror, .from_rootfs = opts->from_rootfs,
                             .packages = &packages, .size_mib = opts->rootfs_size_mib};
        if ((r = ib_rootfs_preflight(&c, &ro)) < 0 || (r = ib_kernel_step(&c, &k)) < 0 ||
            (r = ib_initramfs_step(&c, &k, init, opts->extra_modules, &ini)) < 0 ||
            (r = ib_rootfs_step(&c, &ro, &rf)) < 0)
                goto out;

        bool is_default = (!opts->suite || strcmp(opts->suite, "bookworm") == 0) && !opts->mirror &&
                          (!opts->packages || !opts->packages[0]) && !opts->no_default_packages &&
                          !opts->from_rootfs && !opts->rootfs_size_mib &&
                          (!opts->extra_modules || !opts->extra_modules[0]);
        const char *name = opts->name ? opts->name : is_default ? "default" : NULL;
        if ((r = assemble(&c, &k, &ini, &rf, &ro, name, &info)) < 0)
                goto out;
        *ret_info = info;
        info = (smolvm_image_info){0};
        r = 0;
out:
        if (umask_set)
                umask(old_umask);
        if (r < 0 && ret_error) {
                if (c.err.msg)
                        *ret_error = TAKE_PTR(c.err.msg);
                else
                        *ret_error = xasprintf("image build: %s", strerror(-r));
        }
        smolvm_image_info_done(&info);
        ib_kernel_done(&k);
        ib_initramfs_done(&ini);
        ib_rootfs_done(&rf);
        strv_done(&packages);
        ctx_done(&c);
        return r;
}

int smolvm_image_resolve_ex(const char *home_opt, const char *name, smolvm_image_info *ret, char **ret_error)
{
        _cleanup_free_ char *home = home_opt ? strdup(home_opt) : smolvm_image_home();
        _cleanup_free_ char *dir = NULL, *real = NULL;
        image_store store = IMAGE_STORE_USER;
        if (!home)
                return -ENOMEM;
        if (!name)
                name = "default";
        int r = 0;
        if (strchr(name, '/'))
                dir = strdup(name);
        else if ((r = image_store_entry(home, name, &dir, &store)) == -ENOENT)
                dir = xasprintf("%s/images/%s", home, name);
        if (!dir || r == -ENOMEM)
                return -ENOMEM;
        if (r < 0) {
                if (ret_error)
                        *ret_error = xasprintf("image '%s': %s: %s%s", name, dir, strerror(-r),
                                               store == IMAGE_STORE_SYSTEM ? " (as root: chmod -R a+rX the system "
                                                                             "store, it is for every user)"
                                                                           : "");
                return r;
        }
        real = realpath(dir, NULL);
        const char *missing;
        if (real && image_dir_check(real, &missing) < 0) {
                free(real);
                real = NULL;
        }
        if (!real) {
                if (ret_error)
                        *ret_error = strcmp(name, "default") == 0
                                             ? xasprintf("image 'default' is not built (not in %s, nor in the system "
                                                         "store %s/images); as root, `smolvm image build --system` "
                                                         "builds it for every user, `smolvm image build` your own",
                                                         dir, smolvm_system_store())
                                             : xasprintf("image '%s' is not built (no %s); run: smolvm image build --name %s",
                                                         name, dir, name);
                return -ENOENT;
        }
        const char *key = strrchr(real, '/') + 1;
        r = fill_info(real, key, ret);
        if (r == 0)
                ret->system = store == IMAGE_STORE_SYSTEM;
        return r;
}

int smolvm_image_resolve(const char *home, const char *name, smolvm_image_info *ret)
{
        return smolvm_image_resolve_ex(home, name, ret, NULL);
}

static const char *base_name_of(const char *p)
{
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

/* The images of one store's images/ dir, sorted by key. */
static int list_store(const char *images, bool system, smolvm_image_list_fn fn, void *ud)
{
        DIR *d = opendir(images);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        strv dirs = {0}, link_names = {0}, link_keys = {0};
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d)) && r == 0) {
                if (de->d_name[0] == '.')
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        r = strv_push(&dirs, de->d_name);
                else if (S_ISLNK(st.st_mode)) {
                        char target[256];
                        ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
                        if (n <= 0)
                                continue;
                        target[n] = '\0';
                        if ((r = strv_push(&link_names, de->d_name)) == 0 &&
                            (r = strv_push(&link_keys, base_name_of(target))) < 0) {
                                free(link_names.v[--link_names.n]);
                                link_names.v[link_names.n] = NULL;
                        }
                }
        }
        closedir(d);
        if (r == 0 && dirs.n)
                qsort(dirs.v, dirs.n, sizeof(char *), qsort_strcmp);
        for (size_t i = 0; i < dirs.n && r == 0; i++) {
                _cleanup_free_ char *p = path_join(images, dirs.v[i]);
                strv names = {0};
                if (!p) {
                        r = -ENOMEM;
                        break;
                }
                for (size_t j = 0; j < link_names.n && r == 0; j++)
                        if (strcmp(link_keys.v[j], dirs.v[i]) == 0)
                                r = strv_push(&names, link_names.v[j]);
                strv_sort_uniq(&names);
                _cleanup_free_ char *joined = r == 0 && names.n ? strjoin_sep(&names, ",") : NULL;
                strv_done(&names);
                smolvm_image_info info = {0};
                if (r < 0 || smolvm_image_resolve(NULL, p, &info) < 0)
                        continue; /* half-removed or foreign dir */
                info.system = system;
                r = fn(ud, dirs.v[i], joined, &info);
                smolvm_image_info_done(&info);
        }
        strv_done(&dirs);
        strv_done(&link_names);
        strv_done(&link_keys);
        return r;
}

int smolvm_image_list(const char *home_opt, smolvm_image_list_fn fn, void *ud)
{
        _cleanup_free_ char *home = home_opt ? strdup(home_opt) : smolvm_image_home();
        _cleanup_free_ char *images = home ? path_join(home, "images") : NULL;
        _cleanup_free_ char *sys = path_join(smolvm_system_store(), "images");
        if (!images || !sys)
                return -ENOMEM;
        int r = list_store(images, false, fn, ud);
        if (r != 0)
                return r;
        /* The system store after the user's, unless they are one (root building it). */
        _cleanup_free_ char *real_home = realpath(images, NULL), *real_sys = realpath(sys, NULL);
        if (real_home && real_sys && strcmp(real_home, real_sys) == 0)
                return 0;
        r = list_store(sys, true, fn, ud);
        /* A system store closed to this user is doctor's to report, not a reason to list nothing. */
        return r == -EACCES ? 0 : r;
}
