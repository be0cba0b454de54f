/* SPDX-License-Identifier: Apache-2.0 */
/* Step 3: the Debian root filesystem. debootstrap (minbase; without root mmdebstrap's
 * unshare mode) or an existing debootstrap output (dir or tarball), a few config files,
 * then `mkfs.ext4 -d`: no loop device and no mount, so nothing on the host can be left
 * mounted by a failed build. Without root, fakeroot keeps the files' owners (rootfs_tree).
 * Cached under cache/rootfs/<key>/rootfs.ext4, key = SHA-256 of the inputs. */
#include "image_i.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>

#include "unpriv.h"

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

/* The tree being made into rootfs.ext4. As root its files carry their real
 * owners. Without root they all belong to the user, and their owners, modes
 * and device numbers as the rootfs has them live in fakeroot's database (db):
 * every command that creates or deletes files in the tree runs under fakeroot
 * with it, mkfs.ext4 too, so it reads them back. A file deleted outside
 * fakeroot would leave its entry behind for a new file that reuses the inode
 * number (tried: a regular file came out as a character device). Files this
 * process writes later (configure) are new and unknown to fakeroot, which
 * shows them as root's. */
typedef struct rootfs_tree {
        const char *root;
        char *db;     /* NULL: as root, no fakeroot */
        bool db_made; /* a command has saved db */
} rootfs_tree;

/* argv (NULL-terminated), under fakeroot when t has a database. */
static int tree_run(ib_ctx *c, rootfs_tree *t, const char *const *argv, uint64_t timeout_ms)
{
        strv v = {0};
        int r = 0;
        if (t->db) {
                r = strv_push(&v, "fakeroot");
                /* The first command has no database to load yet. */
                if (r == 0 && t->db_made && (r = strv_push(&v, "-i")) == 0)
                        r = strv_push(&v, t->db);
                if (r == 0 && (r = strv_push(&v, "-s")) == 0 && (r = strv_push(&v, t->db)) == 0)
                        r = strv_push(&v, "--");
        }
        for (size_t i = 0; argv[i] && r == 0; i++)
                r = strv_push(&v, argv[i]);
        if (r == 0) {
                ib_cmd cmd = {.argv = (const char *const *)v.v, .timeout_ms = timeout_ms};
                r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err);
        }
        strv_done(&v);
        if (r == 0 && t->db)
                t->db_made = true;
        return r;
}

static int put(ib_ctx *c, const char *root, const char *rel, const char *text)
{
        _cleanup_free_ char *p = path_join(root, rel);
        if (!p)
                return -ENOMEM;
        int r = write_file_atomic(p, text, strlen(text), 0644);
        return r < 0 ? ib_errf(&c->err, r, "rootfs: write %s: %m", p) : 0;
}

/* Adds the regular files (not dirs) of root/rel to gone, optionally only those ending in sfx. */
static int collect_files(const char *root, const char *rel, const char *sfx, strv *gone)
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
        int r = 0;
        while (r == 0 && (de = readdir(d))) {
                size_t l = strlen(de->d_name), sl = sfx ? strlen(sfx) : 0;
                if (de->d_type != DT_REG || de->d_name[0] == '.' || strcmp(de->d_name, "lock") == 0)
                        continue;
                if (sfx && (l < sl || strcmp(de->d_name + l - sl, sfx) != 0))
                        continue;
                r = strv_push_take(gone, path_join(p, de->d_name));
        }
        closedir(d);
        return r;
}

static int collect_path(const char *root, const char *rel, strv *gone)
{
        _cleanup_free_ char *p = path_join(root, rel);
        struct stat st;
        if (!p)
                return -ENOMEM;
        return lstat(p, &st) == 0 ? strv_push(gone, p) : 0;
}

static const struct {
        const char *rel, *text;
} config_files[] = {
        {"etc/hostname", "smolvm\n"},
        {"etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tsmolvm\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
        /* No network by default (ARCHITECTURE.md, decision 9); the host's resolver
         * config would only leak host details. */
        {"etc/resolv.conf", ""},
        {"etc/machine-id", ""},
};

static int configure(ib_ctx *c, rootfs_tree *t)
{
        strv gone = {0};
        int r = 0;
        /* What put() replaces (resolv.conf may be a symlink pointing outside the
         * tree), apt's caches (.debs and package lists are dead weight in every
         * VM's disk) and what only a half-finished debootstrap leaves. */
        for (size_t i = 0; i < ARRAY_SIZE(config_files) && r == 0; i++)
                r = collect_path(t->root, config_files[i].rel, &gone);
        if (r == 0)
                r = collect_files(t->root, "var/cache/apt/archives", ".deb", &gone);
        if (r == 0)
                r = collect_files(t->root, "var/cache/apt", ".bin", &gone);
        if (r == 0)
                r = collect_files(t->root, "var/lib/apt/lists", NULL, &gone);
        if (r == 0)
                r = collect_path(t->root, "debootstrap", &gone);
        if (r < 0) {
                strv_done(&gone);
                return ib_errf(&c->err, r, "rootfs: look through %s: %m", t->root);
        }
        if (gone.n && t->db) {
                strv argv = {0};
                r = strv_push(&argv, "rm");
                if (r == 0)
                        r = strv_push(&argv, "-rf");
                if (r == 0)
                        r = strv_push(&argv, "--");
                for (size_t i = 0; i < gone.n && r == 0; i++)
                        r = strv_push(&argv, gone.v[i]);
                if (r == 0)
                        r = tree_run(c, t, (const char *const *)argv.v, MKFS_TIMEOUT_MS);
                strv_done(&argv);
        } else {
                for (size_t i = 0; i < gone.n && r == 0; i++)
                        if ((r = rm_rf(gone.v[i])) < 0)
                                r = ib_errf(&c->err, r, "rootfs: remove %s: %m", gone.v[i]);
        }
        strv_done(&gone);
        for (size_t i = 0; i < ARRAY_SIZE(config_files) && r == 0; i++)
                r = put(c, t->root, config_files[i].rel, config_files[i].text);
        return r;
}

static int extract_tar(ib_ctx *c, rootfs_tree *t, const char *tar)
{
        if (mkdir(t->root, 0755) < 0)
                return ib_errf(&c->err, negative_errno(), "rootfs: mkdir %s: %m", t->root);
        const char *argv[] = {"tar", "-xpf", tar, "-C", t->root, "--numeric-owner", NULL};
        int r = tree_run(c, t, argv, MKFS_TIMEOUT_MS);
        if (r < 0)
                return r;
        _cleanup_free_ char *status = path_join(t->root, "var/lib/dpkg/status");
        if (!status)
                return -ENOMEM;
        if (access(status, F_OK) < 0)
                return ib_errf(&c->err, -EINVAL,
                               "rootfs: tarball %s holds no Debian root (no var/lib/dpkg/status at its top)", tar);
        return 0;
}

/* A fresh Debian tree in t->root. Root: debootstrap writes it there. Not root:
 * mmdebstrap's unshare mode makes it in a user namespace (the user's
 * subordinate ids as its owners) and writes it out as a tarball, whose owners
 * fakeroot then keeps (extract_tar). What that needs was checked before the
 * kernel step (ib_rootfs_preflight). */
static int debian_tree(ib_ctx *c, const ib_rootfs_opts *o, rootfs_tree *t, const char *tmp)
{
        bool unpriv = t->db != NULL;
        _cleanup_free_ char *pk = strjoin_sep(o->packages, ",");
        _cleanup_free_ char *inc = pk ? xasprintf("--include=%s", pk) : NULL;
        _cleanup_free_ char *tar = unpriv ? path_join(tmp, "debian.tar") : NULL;
        if (!inc || (unpriv && !tar))
                return -ENOMEM;
        if (unpriv)
                ib_progress(c, "[3/4] rootfs: mmdebstrap --mode=unshare %s from %s with %s (not root; a few minutes)",
                            o->suite, o->mirror, pk[0] ? pk : "no extra packages");
        else
                ib_progress(c, "[3/4] rootfs: debootstrap %s from %s with %s (this takes ~1 min)", o->suite,
                            o->mirror, pk[0] ? pk : "no extra packages");
        const char *argv[8];
        size_t n = 0;
        argv[n++] = unpriv ? "mmdebstrap" : "debootstrap";
        if (unpriv)
                argv[n++] = "--mode=unshare";
        argv[n++] = "--variant=minbase";
        if (pk[0])
                argv[n++] = inc;
        argv[n++] = o->suite;
        argv[n++] = unpriv ? tar : t->root;
        argv[n++] = o->mirror;
        argv[n] = NULL;
        ib_cmd cmd = {.argv = argv, .timeout_ms = DEBOOTSTRAP_TIMEOUT_MS, .stdout_in_tail = true};
        int r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err);
        if (r == 0 && unpriv)
                r = extract_tar(c, t, tar);
        if (tar)
                (void)unlink(tar);
        return r;
}

/* Puts the rootfs's files into t->root: a fresh Debian tree, a copy of
 * --from-rootfs DIR, or TAR unpacked. */
static int fill_tree(ib_ctx *c, const ib_rootfs_opts *o, bool from_dir, const char *tmp, rootfs_tree *t)
{
        int r;
        if (!o->from_rootfs)
                return debian_tree(c, o, t, tmp);
        if (!from_dir) {
                ib_progress(c, "[3/4] rootfs: unpacking %s%s", o->from_rootfs, t->db ? " (fakeroot)" : "");
                return extract_tar(c, t, o->from_rootfs);
        }
        if (t->db) {
                /* fakeroot shows every file it has no record of as root's, so a copy
                 * under it (cp -a) would lose the owners: tar reads the real ones. */
                ib_progress(c, "[3/4] rootfs: packing %s to unpack it under fakeroot", o->from_rootfs);
                _cleanup_free_ char *tar = path_join(tmp, "from.tar");
                if (!tar)
                        return -ENOMEM;
                const char *argv[] = {"tar", "--numeric-owner", "-cf", tar, "-C", o->from_rootfs, ".", NULL};
                ib_cmd cmd = {.argv = argv, .timeout_ms = MKFS_TIMEOUT_MS};
                r = ib_run(&cmd, "rootfs", NULL, NULL, &c->err);
                if (r < 0 && c->err.msg) {
                        _cleanup_free_ char *why = TAKE_PTR(c->err.msg);
                        ib_errf(&c->err, r, "%s (without root every file of %s must be readable by you: as root, "
                                "pack it into a tarball, `tar --numeric-owner -cf root.tar -C DIR .`, and pass that)",
                                why, o->from_rootfs);
                }
                if (r == 0)
                        r = extract_tar(c, t, tar);
                (void)unlink(tar);
                return r;
        }
        ib_progress(c, "[3/4] rootfs: copying %s", o->from_rootfs);
        _cleanup_free_ char *src = xasprintf("%s/.", o->from_rootfs);
        if (!src)
                return -ENOMEM;
        if (mkdir(t->root, 0755) < 0)
                return ib_errf(&c->err, negative_errno(), "rootfs: mkdir %s: %m", t->root);
        /* A copy, because we edit /etc and must not touch the user's tree. */
        const char *argv[] = {"cp", "-a", "--reflink=auto", src, t->root, NULL};
        ib_cmd cmd = {.argv = argv, .timeout_ms = MKFS_TIMEOUT_MS};
        return ib_run(&cmd, "rootfs", NULL, NULL, &c->err);
}

/* The cache key of the rootfs o describes. */
static int rootfs_key(ib_ctx *c, const ib_rootfs_opts *o, char key[65], bool *ret_from_dir)
{
        int r;
        ib_hash *h = ib_hash_new();
        if (!h)
                return -ENOMEM;
        ib_hash_str(h, "layout", "smolvm-rootfs-v1");
        if (o->from_rootfs) {
                if ((r = from_identity(c, h, o->from_rootfs, ret_from_dir)) < 0) {
                        ib_hash_free(h);
                        return r;
                }
                /* Without root the owners come through fakeroot; entries made by
                 * user builds before it had every file owned by the user. */
                if (geteuid() != 0)
                        ib_hash_str(h, "owners", "fakeroot");
        } else {
                ib_hash_str(h, "suite", o->suite);
                ib_hash_str(h, "mirror", o->mirror);
                for (size_t i = 0; i < o->packages->n; i++)
                        ib_hash_str(h, "package", o->packages->v[i]);
        }
        char size[32];
        snprintf(size, sizeof(size), "%llu", (unsigned long long)o->size_mib);
        ib_hash_str(h, "size-mib", size);
        ib_hash_final_hex(h, key);
        return 0;
}

int ib_rootfs_preflight(ib_ctx *c, const ib_rootfs_opts *o)
{
        if (geteuid() == 0)
                return 0;
        char key[65];
        bool from_dir = false, shared = false;
        int r = rootfs_key(c, o, key, &from_dir);
        if (r < 0)
                return r;
        _cleanup_free_ char *rel = xasprintf("rootfs/%s/rootfs.ext4", key);
        if (!rel)
                return -ENOMEM;
        _cleanup_free_ char *found = ib_cache_lookup(c, rel, &shared);
        if (found)
                return 0;
        struct passwd *pw = getpwuid(geteuid());
        char uid[32];
        snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
        const char *user = pw ? pw->pw_name : uid;
        unpriv_lacks l;
        unpriv_build_check(user, !o->from_rootfs, &l);
        if (!l.n)
                return 0;
        if (o->from_rootfs)
                return ib_errf(&c->err, -EPERM,
                               "rootfs: --from-rootfs without root keeps the owners of its files through fakeroot, "
                               "which is missing. As root: %s; or build as root", l.fix);
        return ib_errf(&c->err, -EPERM,
                       "rootfs: a Debian rootfs is made without root by mmdebstrap --mode=unshare and fakeroot, and "
                       "user %s lacks %s. As root: %s. Or, as root, build it for every user: `smolvm image build "
                       "--system`; or pass --from-rootfs DIR|TAR",
                       user, l.missing, l.fix);
}

int ib_rootfs_step(ib_ctx *c, const ib_rootfs_opts *o, ib_rootfs *ret)
{
        int r;
        bool from_dir = false;
        char key[65];
        if ((r = rootfs_key(c, o, key, &from_dir)) < 0)
                return r;

        _cleanup_free_ char *final = xasprintf("%s/rootfs/%s", c->cache, key);
        _cleanup_free_ char *final_img = final ? path_join(final, "rootfs.ext4") : NULL;
        _cleanup_free_ char *rel = xasprintf("rootfs/%s/rootfs.ext4", key);
        _cleanup_free_ char *keyd = strdup(key);
        if (!final_img || !keyd || !rel)
                return -ENOMEM;
        struct stat st;
        bool shared = false;
        _cleanup_free_ char *found = ib_cache_lookup(c, rel, &shared);
        if (found && stat(found, &st) == 0) {
                ib_progress(c, "[3/4] rootfs: cached%s (%s)", shared ? " in the system store" : "",
                            o->from_rootfs ? o->from_rootfs : o->suite);
                *ret = (ib_rootfs){.key = TAKE_PTR(keyd), .path = TAKE_PTR(found), .size_bytes = (uint64_t)st.st_size};
                return 0;
        }

        _cleanup_rmdir_ char *tmp = mkdtemp_in(c->tmp, "rootfs");
        if (!tmp)
                return ib_errf(&c->err, negative_errno(), "rootfs: mkdtemp in %s: %m", c->tmp);
        _cleanup_free_ char *root = path_join(tmp, "root");
        _cleanup_free_ char *img = path_join(tmp, "rootfs.ext4");
        if (!root || !img)
                return -ENOMEM;

        rootfs_tree t = {.root = root};
        if (geteuid() != 0 && !(t.db = path_join(tmp, "fakeroot.db")))
                return -ENOMEM;
        r = fill_tree(c, o, from_dir, tmp, &t);
        if (r == 0)
                r = configure(c, &t);
        if (r < 0) {
                free(t.db);
                return r;
        }

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
        r = tree_run(c, &t, mk, MKFS_TIMEOUT_MS);
        if (t.db)
                (void)unlink(t.db);
        free(t.db);
        if (r < 0)
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
