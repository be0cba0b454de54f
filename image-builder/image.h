/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm image builder: Debian kernel + initramfs (smolvm-init and the modules it
 * needs) + Debian rootfs, assembled into $SMOLVM_HOME/images/<key>/.
 *
 * Layout (docs/internals.md): images/<key>/{vmlinuz,initramfs.img,rootfs.ext4,image.json},
 * images/default -> <key>, layer caches under cache/{kernel,initramfs,rootfs}/<key>/.
 * Library code: nothing is printed; progress goes through the callback. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smolvm_image_build_opts {
        const char *home;            /* NULL: $SMOLVM_HOME, else ~/.local/state/smolvm */
        int system;                  /* 1 (home NULL): build into the system store every user reads
                                      * (store.h: smolvm_system_store()); needs write access there
                                      * (root). Everything made readable by all (umask 022). */
        const char *suite;           /* NULL: "bookworm" */
        const char *mirror;          /* NULL: read from the host's apt sources */
        const char *const *packages; /* NULL-terminated extra packages, or NULL */
        int no_default_packages;     /* 1: do not add python3, git, ca-certificates, procps */
        const char *from_rootfs;     /* debootstrap output dir or tarball instead of debootstrap */
        const char *init_path;       /* NULL: $SMOLVM_LIBEXECDIR/smolvm-init, else compile-time dir */
        const char *name;            /* symlink images/<name> -> <key>; NULL: "default" when
                                      * the options are the defaults, else no symlink */
        uint64_t rootfs_size_mib;    /* 0: content * 1.3 + 256 MiB */
        const char *const *extra_modules; /* NULL-terminated extra module roots, or NULL */
} smolvm_image_build_opts;

typedef struct smolvm_image_info {
        char *key;             /* image key (hex), the directory name under images/ */
        char *dir;             /* absolute path of images/<key> */
        char *vmlinuz;
        char *initramfs;
        char *rootfs;
        char *kernel_release;  /* e.g. "6.1.0-56-amd64" (NULL if image.json lacks it) */
        int cached;            /* build: 1 if nothing had to be built */
        int system;            /* resolve, list: found in the system store (read-only) */
} smolvm_image_info;

/* One human-readable line, no trailing newline, e.g.
 * "[1/4] kernel: downloading linux-image-6.1.0-56-amd64". */
typedef void (*smolvm_image_progress_fn)(void *ud, const char *line);

/* Build (or find in the cache) the image described by opts.
 * Returns 0 and fills *ret_info (free with smolvm_image_info_done()), or a negative errno
 * and, if ret_error is not NULL, a malloc'd message naming the step, the command and the
 * tail of its stderr, e.g. "rootfs: debootstrap failed (exit 1): E: ...".
 * Takes an exclusive lock on <store>/cache/lock for the duration; concurrent builds wait.
 * Layers the system store's cache holds are used from there (read-only) by builds into
 * another store. As root a fresh rootfs comes from debootstrap; without root from
 * mmdebstrap --mode=unshare (subuid ranges), and --from-rootfs goes through fakeroot,
 * keeping the owners either way (docs/internals.md, "Image builds without root"). */
int smolvm_image_build(const smolvm_image_build_opts *opts, smolvm_image_progress_fn progress,
                       void *ud, smolvm_image_info *ret_info, char **ret_error);

/* Paths of a built image. home: NULL as above; name: NULL or "default", another symlink
 * name, an image key (looked up in home/images, then in the system store's), or a
 * directory path (contains '/').
 * Returns 0, -ENOENT if the image is not built (with *ret_error saying how to build it),
 * or another negative errno. */
int smolvm_image_resolve_ex(const char *home, const char *name, smolvm_image_info *ret,
                            char **ret_error);
/* Same without the message. */
int smolvm_image_resolve(const char *home, const char *name, smolvm_image_info *ret);

/* Callback of smolvm_image_list: names is the comma-separated names (symlinks) of the
 * image, e.g. "default", or NULL. */
typedef int (*smolvm_image_list_fn)(void *ud, const char *key, const char *names,
                                    const smolvm_image_info *info);
/* Calls fn once per built image: home's sorted by key, then the system store's (info->system
 * set; not when it is home itself). Stops and returns fn's value if it is non-zero.
 * Returns 0, or negative errno. Missing images dir: 0. */
int smolvm_image_list(const char *home, smolvm_image_list_fn fn, void *ud);

/* $SMOLVM_HOME or ~/.local/state/smolvm, malloc'd, or NULL on ENOMEM / no HOME. */
char *smolvm_image_home(void);

/* Free the strings of info (not info itself); NULL-safe, idempotent. */
void smolvm_image_info_done(smolvm_image_info *info);

#ifdef __cplusplus
}
#endif
