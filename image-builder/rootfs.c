/* SPDX-License-Identifier: Apache-2.0 */
/* Step 3: the Debian root filesystem. debootstrap (minbase) or an existing debootstrap
 * output (dir or tarball), a few config files, then `mkfs.ext4 -d`: no loop device and no
 * mount, so nothing on the host can be left mounted by a failed build.
 * Cached under cache/rootfs/<key>/rootfs.ext4, key = SHA-256 of the inputs. */
#include "image_i.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#define DEBOOTSTRAP_TIMEOUT_MS (60ull * 60 * 1000)
#define MKFS_TIMEOUT_MS (30ull * 60 * 1000)

const char *const ib_default_packages[] = {"python3", "git", "ca-certificates", "procps", NULL};

void ib_rootfs_done(ib_rootfs *r)
{
        free(r->key);
        free(r->path);
        *r = (ib_rootfs){0};
}

/* Identity of a user-given rootfs: cheap (no hashing of 200 MB) but changes when the
 * tarball is replaced or packages are installed into the directory. */
static int from_identity(ib_ctx *c, ib_hash *h, const char *from, bool *ret_is_dir)
{
        _cleanup_free_ char *abs = realpath(from, NULL);
        struct stat st;
        if (!abs || stat(abs, &st) < 0)
                return ib_errf(&c->err, negative_errno(), "rootfs: --from-rootfs %s: %m", from);
        char buf[128];
        ib_hash_str(h, "from", abs);
        snprintf(buf, sizeof(buf), "%llu:%llu:%lld.%09ld:%lld", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                 (long long)st.st_size);
        ib_hash_str(h, "from-stat", buf);
        *ret_is_dir = S_ISDIR(st.st_mode);
        if (*ret_is_dir) {
                _cleanup_free_ char *status = path_join(abs, "var/lib/dpkg/status");
                if (!status)
                        return -ENOMEM;
                if (stat(status, &st) < 0)
                        return ib_errf(&c->err, -ENOTDIR,
                                       "rootfs: --from-rootfs %s is not a Debian root (no var/lib/dpkg/status)", from);
                snprintf(buf, sizeof(buf), "%lld.%09ld:%lld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                         (long long)st.st_size);
                ib_hash_str(h, "from-dpkg", buf);
        } else if (!S_ISREG(st.st_mode))
                return ib_errf(&c->err, -EINVAL, "rootfs: --from-rootfs %s is neither a directory nor a tarball", from);
        return 0;
}

static int put(ib_ctx *c, const char *root, const char *rel, const char *text)
{
        _cleanup_free_ char *p = path_join(root, rel);
        if (!p)
                return -ENOMEM;
        (void)unlink(p); /* may be a symlink (resolv.conf) pointing outside the tree */
        int r = write_file_atomic(p, text, strlen(text), 0644);
        return r < 0 ? ib_errf(&c->err, r, "rootfs: write %s: %m", p) : 0;
}

/* Deletes the regular files (not dirs) of root/rel, optionally only those ending in sfx. */
static int clean_dir(const char *root, const char *rel, const char *sfx)
{
        _cleanup_free_ char *p = path_join(root, rel);
        if (!p)
                return -ENOMEM;
        int dfd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        DIR *d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return negative_errno();
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name), sl = sfx ? strlen(sfx) : 0;
                if (de->d_type != DT_REG || de->d_name[0] == '.' || strcmp(de->d_name, "lock") == 0)
                        continue;
                if (sfx && (l < sl || strcmp(de->d_name + l - sl, sfx) != 0))
                        continue;
                (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
        return 0;
}

static int configure(ib_ctx *c, const char *root)
{
        int r;
        if ((r = put(c, root, "etc/hostname", "smolvm\n")) < 0 ||
            (r = put(c, root, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tsmolvm\n"
                                           "::1\tlocalhost ip6-localhost ip6-loopback\n")) < 0 ||
            /* No network by default (ARCHITECTURE.md, decision 9); the host's resolver
             * config would only leak host details. */
            (r = put(c, root, "etc/resolv.conf", "")) < 0 ||
            (r = put(c, root, "etc/machine-id", "")) < 0)
                return r;
        /* apt caches: .debs and package lists are dead weight in every VM's disk. */
        (void)clean_dir(root, "var/cache/apt/archives", ".deb");
        (void)clean_dir(root, "var/cache/apt", ".bin");
        (void)clean_dir(root, "var/lib/apt/lists", NULL);
        _cleanup_free_ char *dd = path_join(root, "debootstrap");
        if (!dd)
                return -ENOMEM;
        (void)rm_rf(dd); /* left behind only by a half-finished debootstrap output */
        return 0;
}

int ib_rootfs_step(ib_ctx *c, const ib_rootfs_opts *o, ib_rootfs *ret)
{
        int r;
        bool from_dir = false;
        ib_hash *h = ib_hash_new();
        if (!h)
                return -ENOMEM;
        ib_hash_str(h, "layout", "smolvm-rootfs-v1");
        if (o->from_rootfs) {
                if ((r = from_identity(c, h, o->from_rootfs, &from_dir)) < 0) {
                        ib_hash_free(h);
                        return r;
                }
        } else {
                ib_hash_str(h, "suite", o->suite);
                ib_hash_str(h, "mirror", o->mirror);
                for (size_t i = 0; i < o->packages->n; i++)
                        ib_hash_str(h, "package", o->packages->v[i]);
        }
        char size[32];
        snprintf(size, sizeof(size), "%llu", (unsigned long long)o->size_mib);
        ib_hash_str(h, "size-mib", size);
        char key[65];
        ib_hash_final_hex(h, key);

        _cleanup_free_ char *final = xasprintf("%s/rootfs/%s", c->cache, key);
        _cleanup_free_ char *final_img = final ? path_join(final, "rootfs.ext4") : NULL;
        _cleanup_free_ char *keyd = strdup(key);
        if (!final_img || !keyd)
                return -ENOMEM;
        struct stat st;
        if (stat(final_img, &st) == 0) {
                ib_progress(c, "[3/4] rootfs: cached (%s)", o->from_rootfs ? o->from_rootfs : o->suite);
                *ret = (ib_rootfs){.key = TAKE_PTR(keyd), .path = TAKE_PTR(final_img),
                                   .size_bytes = (uint64_t)st.st_size};
                return 0;
        }

        _cleanup_rmdir_ char *tmp = mkdtemp_in(c->tmp, "rootfs");
        if (!tmp)
                return ib_errf(&c->err, negative_errno(), "rootfs: mkdtemp in %s: %m", c->tmp);
        _cleanup_free_ char *root = path_join(tmp, "root");
        _cleanup_free_ char *img = path_join(tmp, "rootfs.ext4");
        if (!root || !img)
                return -ENOMEM;

        if (!o->from_rootfs) {
                if (geteuid() != 0)
                        return ib_errf(&c->err, -EPERM,
                                       "rootfs: debootstrap needs root (run as root, or pass --from-rootfs)");
                _cleanup_free_ char *pk = strjoin_sep(o->packages, ",");
                _cleanup_free_ char *inc = pk ? xasprintf("--include=%s", pk) : NULL;
                if (!inc)
                        return -ENOMEM;
                ib_progress(c, "[3/4] rootfs: debootstrap %s from %s with %s (this takes ~1 min)",
                            o->suite, o->mirror, pk[0] ? pk : "no extra packages");
                const char *argv[8];
                size_t n = 0;
                argv[n++] = "debootstrap";
                argv[n++] = "--variant=minbase";
                if (o->packages->n)
                        argv[n++] = inc;
                argv[n++] = o->suite;
                argv[n++] = root;
                argv[n++] = o->mirror;
                argv[n] = NULL;
                ib_cmd cmd = {.argv = argv, .timeout_ms = DEBOOTSTRAP_TIMEOUT_MS, .stdout_in_tail = true};
                if ((r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err)) < 0)
                        return r;
        } else if (from_dir) {
                ib_progress(c, "[3/4] rootfs: copying %s", o->from_rootfs);
                _cleanup_free_ char *src = xasprintf("%s/.", o->from_rootfs);
                if (!src)
                        return -ENOMEM;
                if (mkdir(root, 0755) < 0)
                        return ib_errf(&c->err, negative_errno(), "rootfs: mkdir %s: %m", root);
                /* A copy, because we edit /etc and must not touch the user's tree. */
                const char *argv[] = {"cp", "-a", "--reflink=auto", src, root, NULL};
                ib_cmd cmd = {.argv = argv, .timeout_ms = MKFS_TIMEOUT_MS};
                if ((r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err)) < 0)
                        return r;
        } else {
                ib_progress(c, "[3/4] rootfs: unpacking %s", o->from_rootfs);
                if (mkdir(root, 0755) < 0)
                        return ib_errf(&c->err, negative_errno(), "rootfs: mkdir %s: %m", root);
                const char *argv[] = {"tar", "-xpf", o->from_rootfs, "-C", root, "--numeric-owner", NULL};
                ib_cmd cmd = {.argv = argv, .timeout_ms = MKFS_TIMEOUT_MS};
                if ((r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err)) < 0)
                        return r;
                _cleanup_free_ char *status = path_join(root, "var/lib/dpkg/status");
                if (!status)
                        return -ENOMEM;
                if (access(status, F_OK) < 0)
                        return ib_errf(&c->err, -EINVAL,
                                       "rootfs: tarball %s holds no Debian root (no var/lib/dpkg/status at its top)",
                                       o->from_rootfs);
        }
        if ((r = configure(c, root)) < 0)
                return r;

        uint64_t used = 0;
        if ((r = dir_usage_bytes(root, &used)) < 0)
                return ib_errf(&c->err, r, "rootfs: measure %s: %m", root);
        /* Headroom so a guest can apt/pip install things: content * 1.3 + 256 MiB. */
        uint64_t mib = o->size_mib ? o->size_mib : (used / 10 * 13 + (256ull << 20) + (1ull << 20) - 1) >> 20;
        if (mib * (1ull << 20) < used + (used >> 4))
                return ib_errf(&c->err, -ENOSPC, "rootfs: %llu MiB is too small for %llu MiB of content",
                               (unsigned long long)mib, (unsigned long long)(used >> 20));
        char sz[32];
        snprintf(sz, sizeof(sz), "%lluM", (unsigned long long)mib);
        ib_progress(c, "[3/4] rootfs: mkfs.ext4 -d (%llu MiB content, %llu MiB disk)",
                    (unsigned long long)(used >> 20), (unsigned long long)mib);
        /* -i 8192: twice the default inode density; pip/npm trees are many small files. */
        const char *mk[] = {"mkfs.ext4", "-F", "-q", "-b", "4096", "-i", "8192", "-L", "smolvm-root",
                            "-d", root, img, sz, NULL};
        ib_cmd cmd = {.argv = mk, .timeout_ms = MKFS_TIMEOUT_MS};
        if ((r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err)) < 0)
                return r;
        if ((r = rm_rf(root)) < 0)
                return ib_errf(&c->err, r, "rootfs: remove %s: %m", root);
        (void)chmod(img, 0444);
        (void)chmod(tmp, 0755);
        _cleanup_free_ char *parent = xasprintf("%s/rootfs", c->cache);
        if (!parent)
                return -ENOMEM;
        if ((r = mkdir_p(parent, 0755)) < 0)
                return ib_errf(&c->err, r, "rootfs: mkdir %s: %m", parent);
        if (rename(tmp, final) < 0)
                return ib_errf(&c->err, negative_errno(), "rootfs: rename into %s: %m", final);
        free(TAKE_PTR(tmp));
        if (stat(final_img, &st) < 0)
                return ib_errf(&c->err, negative_errno(), "rootfs: %s: %m", final_img);
        *ret = (ib_rootfs){.key = TAKE_PTR(keyd), .path = TAKE_PTR(final_img), .size_bytes = (uint64_t)st.st_size};
        return 0;
}
