/* SPDX-License-Identifier: Apache-2.0 */
/* Where smolvm keeps things on the host, spelled once for libsmolvm, the image
 * builder and smolvm-supervisor (docs/internals.md, "Paths"): $SMOLVM_HOME,
 * $SMOLVM_LIBEXECDIR, what an image directory holds, and the system image
 * store. Host-only common code (the smolvm-host-common library); the VM
 * directory's names are vmdir.h's. */
#pragma once

#include <stdbool.h>

/* $SMOLVM_HOME (a relative one anchored at the cwd now: the supervisor runs
 * elsewhere) or ~/.local/state/smolvm ($HOME, else the passwd entry), malloc'd.
 * Returns 0, -ENOENT (no home directory to be found), -ENOMEM or getcwd's
 * negative errno. */
int smolvm_home_path(char **ret);
/* $SMOLVM_LIBEXECDIR or the compile-time default. Never NULL. */
const char *smolvm_libexec_dir(void);

/* An image directory, $SMOLVM_HOME/images/<key>/ or any directory given as an
 * image. A VM boots from the first three, so they make an image; the image
 * builder also keeps the Debian bzImage vmlinux was unpacked from and its
 * description, which nothing needs to boot. */
#define IMAGE_KERNEL "vmlinux"        /* ELF kernel: QEMU loads it through its PVH note */
#define IMAGE_INITRD "initramfs.img"  /* smolvm-init and its modules */
#define IMAGE_ROOTFS "rootfs.ext4"    /* the read-only base of each VM's overlay */
#define IMAGE_BZIMAGE "vmlinuz"       /* optional: Debian's bzImage */
#define IMAGE_JSON "image.json"       /* optional: what the builder built it from */

/* Longest image name (as `smolvm image build --name` allows; keys are 64). */
#define SMOLVM_IMAGE_NAME_MAX 128u
/* A name in the image store: 1..SMOLVM_IMAGE_NAME_MAX of [A-Za-z0-9._-], not
 * starting with '.' (so neither ".." nor a hidden entry names a directory
 * outside the store). Pure: unit-tested. */
bool image_name_valid(const char *name);
/* Whether dir holds a bootable image: each of IMAGE_KERNEL, IMAGE_INITRD and
 * IMAGE_ROOTFS readable. Returns 0, or the negative errno of the first one
 * that is not, its name in *ret_missing. */
int image_dir_check(const char *dir, const char **ret_missing);

/* The system image store (docs/internals.md, "Paths"): images and layer caches
 * laid out as in $SMOLVM_HOME (images/, cache/; no vms/), built by root
 * (`smolvm image build --system`, scripts/setup.sh), readable by every user,
 * writable by none. $SMOLVM_SYSTEM_STORE when set and not empty (tests,
 * packagers), else the compile-time SMOLVM_SYSTEM_STORE (/var/lib/smolvm).
 * Never NULL. */
const char *smolvm_system_store(void);

/* Where an image was found: a name is looked up in the user's own store
 * ($SMOLVM_HOME/images) first, then in the system store's. */
typedef enum image_store {
        IMAGE_STORE_USER = 0,
        IMAGE_STORE_SYSTEM,
} image_store;

/* The entry called name (a valid image name: image_name_valid) in
 * home/images, else in the system store's images (skipped when it is the same
 * directory): the first that exists (stat: a dangling link counts as
 * missing). Returns 0 with *ret_path (malloc'd, home/images/NAME or
 * SYSTEM/images/NAME, not resolved) and *ret_store; -ENOENT when neither store
 * has it; -ENOMEM; or the negative errno of an entry that could not be looked
 * at (e.g. -EACCES: a system store closed to this user), with *ret_path and
 * *ret_store naming that entry all the same, for the message. */
int image_store_entry(const char *home, const char *name, char **ret_path, image_store *ret_store);
