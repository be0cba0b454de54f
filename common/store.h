/* SPDX-License-Identifier: Apache-2.0 */
/* Where smolvm keeps things on the host, spelled once for libsmolvm, the image
 * builder and smolvm-supervisor (docs/internals.md, "Paths"): $SMOLVM_HOME,
 * $SMOLVM_LIBEXECDIR, and what an image directory holds. Host-only common code
 * (the smolvm-host-common library); the VM directory's names are vmdir.h's. */
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
