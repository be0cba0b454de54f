/* SPDX-License-Identifier: Apache-2.0 */
/* Private to image-builder/: helpers shared by the build steps. Pure parsers are
 * declared here so tests/unit/test_image.c can exercise them. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fileutil.h"
#include "image.h"
#include "util.h"

/* ---- errors: one message, first writer wins (the innermost context is most precise) ---- */
typedef struct ib_err {
        char *msg;
} ib_err;

/* Sets err->msg (if not yet set) to the formatted text; returns r (a negative errno).
 * progress.c. */
int ib_errf(ib_err *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- strings ---- */
typedef struct strv {
        char **v;
        size_t n, cap;
} strv;
int strv_push(strv *s, const char *str);          /* copies str; 0 or -ENOMEM */
int strv_push_take(strv *s, char *str);           /* takes str (freed on failure) */
bool strv_contains(const strv *s, const char *str);
void strv_sort_uniq(strv *s);
void strv_done(strv *s);
char *strjoin_sep(const strv *s, const char *sep); /* NULL on ENOMEM */
char *path_join(const char *a, const char *b);     /* NULL on ENOMEM */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- running commands (smolvm_spawn, no shell) ---- */
typedef struct ib_cmd {
        const char *const *argv;   /* argv[0] is looked up in PATH (+ /usr/sbin:/sbin) */
        const char *cwd;           /* NULL: inherit */
        size_t stdout_max_bytes;   /* >0: capture stdout (bounded) into *ret_stdout */
        bool stdout_in_tail;       /* stdout joins the stderr tail (debootstrap prints E: there) */
        uint64_t timeout_ms;       /* 0: none */
} ib_cmd;

/* Runs cmd with LC_ALL=C and stdin from /dev/null. On exit 0 returns 0 (and *ret_stdout,
 * NUL-terminated, if requested). Otherwise returns a negative errno and sets err to
 * "<step>: <argv[0]> failed (exit N): <stderr tail>". The child is killed and reaped on
 * every error path. */
int ib_run(const ib_cmd *cmd, const char *step, char **ret_stdout, size_t *ret_stdout_len,
           ib_err *err);

/* Keeps the last lines of text within cap bytes; used for stderr tails. Exposed for tests. */
void ib_tail_lines(const char *buf, size_t len, size_t max_lines, char *out, size_t out_size);

/* ---- files ---- */
/* mkdir_p, rm_rf, write_file_atomic: common/fileutil.h. */
int umount_beneath(const char *dir);                    /* lazy-unmount mounts below dir (a killed
                                                         * debootstrap leaves proc/sys mounted) */
int read_file(const char *path, size_t max_bytes, char **ret, size_t *ret_len); /* NUL-terminated */
int link_or_copy(const char *src, const char *dst);     /* hard link, else copy */
int dir_usage_bytes(const char *path, uint64_t *ret);   /* du-like: allocated blocks */
char *mkdtemp_in(const char *parent, const char *prefix); /* NULL + errno */
/* Cleanup of a work dir from mkdtemp_in: unmount what is below it, remove it, free the path. */
void rm_tmpdir_freep(char **p);
#define _cleanup_rmdir_ _cleanup_(rm_tmpdir_freep)

/* ---- hashing (SHA-256, see hash.c) ---- */
typedef struct ib_hash ib_hash;
ib_hash *ib_hash_new(void);
void ib_hash_str(ib_hash *h, const char *tag, const char *s); /* tag + length-prefixed s */
void ib_hash_bytes(ib_hash *h, const void *p, size_t len);
/* Writes 64 hex chars + NUL into out[65] and frees h. */
void ib_hash_final_hex(ib_hash *h, char out[65]);
void ib_hash_free(ib_hash *h);
int ib_hash_file(ib_hash *h, const char *path); /* 0 or negative errno */

/* ---- apt sources (aptsrc.c) ---- */
/* `apt-get indextargets --format "$(TARGET_OF) $(IDENTIFIER) $(RELEASE) $(COMPONENT)
 * $(REPO_URI)"` output: the REPO_URI (trailing '/' dropped) of the first deb Packages
 * target of suite/main whose scheme debootstrap can fetch (http, https, ftp, file).
 * Returns 0 + malloc'd URI, -ENOENT if none, -ENOMEM. */
int apt_parse_indextargets(const char *text, const char *suite, char **ret_uri);
/* Runs apt-get indextargets (the host's apt configuration, APT_CONFIG honoured) and
 * picks as apt_parse_indextargets. -ENOENT (err says what to do) if apt lists none. */
int apt_find_mirror(const char *suite, char **ret_uri, ib_err *err);
/* Parses `apt-cache depends linux-image-amd64` output: first "Depends: <pkg>" whose pkg
 * starts with "linux-image-"; *ret_version (if not NULL) gets the "(= V)" version or NULL.
 * Returns 0, -ENOENT. */
int apt_parse_depends(const char *text, char **ret_pkg, char **ret_version);
/* First "Version: " field of `apt-cache show` output. */
int apt_parse_version(const char *text, char **ret_version);

/* ---- kernel module metadata (kmod.c, over libkmod) ---- */
/* depmod's indexes of one kernel, opened with libkmod. */
typedef struct ib_kmod ib_kmod;
/* Runs `depmod -b root release` (the modules are in root/lib/modules/release/) and
 * makes dst_dir (must not exist) with the index files libkmod reads and an empty
 * stand-in for each module file (libkmod stats them). 0 or negative errno (err set). */
int ib_kmod_index(const char *root, const char *release, const char *dst_dir, ib_err *err);
/* Does dir hold the indexes ib_kmod_index moves there? */
bool ib_kmod_has_index(const char *dir);
/* Opens dir's indexes; the host's modprobe.d is not read. 0, -ENOENT (no index,
 * err set), -ENOMEM. */
int ib_kmod_open(const char *dir, ib_kmod **ret, ib_err *err);
void ib_kmod_free(ib_kmod *db);
/* Closure of roots over dependencies and softdeps (softdep names resolve as modprobe
 * does: module names, else aliases, and every provider of an alias is taken). Built-in
 * modules are skipped. ret_order gets the module paths relative to the index dir
 * (e.g. kernel/fs/ext4/ext4.ko), dependencies first (pre-softdeps before their user,
 * post after). A missing root: -ENOENT with err naming it. A cycle: -ELOOP. */
int ib_kmod_resolve(ib_kmod *db, const char *const *roots, strv *ret_order, ib_err *err);
/* Make a module (its bytes in data) cheaper to load under TCG, in place; returns
 * the new length. Drops the appended signature (the kernel would hash all of it;
 * unsigned modules load on a kernel that does not enforce signatures, tainting
 * it 'E', and our guests boot without Secure Boot) and hides the .BTF section
 * (type info for BPF, which the kernel otherwise parses and checks at load:
 * measured ~100 ms for ext4 under TCG). Anything that is not such a module is
 * returned unchanged. */
size_t kmod_prepare_for_boot(uint8_t *data, size_t len);
/* A root module and when the guest needs it: when NULL or "" = always (loaded at
 * boot), else space-separated conditions of the initramfs order file
 * (docs/internals.md): "virtio:ID" (a virtio device of that ID exists), "demand"
 * (kept for the agent to load on first use). */
typedef struct kmod_root {
        const char *name;
        const char *when;
} kmod_root;
/* For each relpath of order (ib_kmod_resolve over all roots; terminated by name NULL),
 * ret_when gets its conditions: "" if an unconditional root needs it (so every
 * dependency of an unconditional module is unconditional), else the union of the
 * conditions of the roots whose closure holds it. 0, -ENOENT/-ELOOP (as
 * ib_kmod_resolve), -ENOMEM. */
int ib_kmod_conditions(ib_kmod *db, const kmod_root *roots, const strv *order, strv *ret_when, ib_err *err);

/* ---- decompression (decompress.c) ---- */
/* Decompress an xz (concatenated streams allowed) or zstd buffer into a malloc'd one.
 * size_hint (0: unknown) sizes the first allocation. 0, -EFBIG (the output would pass
 * max_bytes), -EBADMSG (corrupt or truncated), -ENOMEM. */
int ib_unxz(const void *in, size_t in_len, size_t size_hint, size_t max_bytes, void **ret, size_t *ret_len);
int ib_unzstd(const void *in, size_t in_len, size_t max_bytes, void **ret, size_t *ret_len);

/* ---- cpio newc writer (cpio.c) ---- */
typedef struct cpio_writer {
        int fd;
        uint64_t offset;
        uint32_t next_ino;
        int error; /* sticky negative errno */
} cpio_writer;
void cpio_init(cpio_writer *w, int fd);
int cpio_add_dir(cpio_writer *w, const char *name, uint32_t mode);
int cpio_add_file(cpio_writer *w, const char *name, uint32_t mode, const void *data, size_t len);
int cpio_add_chardev(cpio_writer *w, const char *name, uint32_t mode, uint32_t major, uint32_t minor);
int cpio_finish(cpio_writer *w); /* writes the trailer; returns the sticky error or 0 */

/* ---- ELF check for the init binary (initramfs.c) ---- */
/* 0 if buf is a static x86-64 ELF executable; -ENOEXEC with err set otherwise. */
/* vmlinux.c: unpack the ELF kernel from an xz bzImage (QEMU boots it directly). */
int ib_vmlinux_from_bzimage(const void *bz, size_t bz_len, void **ret, size_t *ret_len, ib_err *err);
/* Create dir/vmlinux from dir/vmlinuz unless present. 0 or negative errno (err set). */
int ib_vmlinux_ensure(const char *dir, ib_err *err);

int elf_check_static(const void *buf, size_t len, const char *path, ib_err *err);

/* ---- build steps ---- */
typedef struct ib_ctx {
        char *home, *cache, *tmp;            /* absolute */
        /* The system store's cache (read-only: its entries are used as they are,
         * copied where an image needs them); NULL when building into the system
         * store or when it has none. */
        char *shared;
        smolvm_image_progress_fn progress;
        void *ud;
        ib_err err;
} ib_ctx;
/* The cache entry file rel (e.g. "rootfs/<key>/rootfs.ext4") in this build's cache,
 * else in c->shared (*ret_shared true): malloc'd, or NULL (neither has it, or ENOMEM
 * with errno set). build.c. */
char *ib_cache_lookup(ib_ctx *c, const char *rel, bool *ret_shared);
/* A progress line through c->progress (progress.c). */
void ib_progress(ib_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct ib_kernel {
        char *key;       /* <pkg>_<version> */
        char *pkg, *version, *release;
        char *dir;       /* cache/kernel/<key>, this build's or (shared) the system store's */
        bool shared;     /* dir is the system store's: read it, never write it */
} ib_kernel;
int ib_kernel_step(ib_ctx *c, ib_kernel *ret);
/* Opens the kernel's module indexes (cache/kernel/<key>/modules.*), making them
 * from the kept .deb first if the entry predates them. */
int ib_kernel_open_kmod(ib_ctx *c, const ib_kernel *k, ib_kmod **ret);
/* Makes sure cache/kernel/<key>/modules/<relpath minus .xz/.zst> exists for each relpath,
 * re-extracting the kept .deb if a module is missing (from a shared entry: into an own
 * entry made from its .deb, which k then names). */
int ib_kernel_ensure_modules(ib_ctx *c, ib_kernel *k, const strv *relpaths);
/* "kernel/fs/ext4/ext4.ko.xz" -> "kernel/fs/ext4/ext4.ko" (malloc'd). */
char *kmod_uncompressed_path(const char *relpath);
void ib_kernel_done(ib_kernel *k);

typedef struct ib_initramfs {
        char *key, *path;
        strv modules;   /* file names in load order */
        char init_sha256[65];
} ib_initramfs;
int ib_initramfs_step(ib_ctx *c, ib_kernel *k, const char *init_path,
                      const char *const *extra_modules, ib_initramfs *ret);
void ib_initramfs_done(ib_initramfs *i);

typedef struct ib_rootfs_opts {
        const char *suite, *mirror, *from_rootfs;
        const strv *packages; /* sorted, unique */
        uint64_t size_mib;
} ib_rootfs_opts;
typedef struct ib_rootfs {
        char *key, *path;
        uint64_t size_bytes;
} ib_rootfs;
int ib_rootfs_step(ib_ctx *c, const ib_rootfs_opts *o, ib_rootfs *ret);
/* Without root, and the layer not cached here or in the system store: what
 * ib_rootfs_step will need (unpriv.h), checked before anything is downloaded.
 * 0, or -EPERM with err naming what lacks and the commands that supply it. */
int ib_rootfs_preflight(ib_ctx *c, const ib_rootfs_opts *o);
void ib_rootfs_done(ib_rootfs *r);

/* The root module set every image carries (docs/internals.md): kmod.c. */
extern const kmod_root ib_default_module_roots[];
/* The packages of the default rootfs: rootfs.c. */
extern const char *const ib_default_packages[];
