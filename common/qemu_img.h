/* SPDX-License-Identifier: Apache-2.0 */
/* QEMU's disk tool and option syntax, for the supervisor (a VM's first disk)
 * and libsmolvm (a snapshot's new overlay). Host only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QEMU's option parser splits on ','; a literal comma is written ",,".
 * Returns a malloc'd copy, or NULL (ENOMEM). */
char *qemu_opt_escape(const char *s);

/* What `qemu-img create -f qcow2 -F base_format -b base_path overlay_path [size]`
 * makes, written here without starting qemu-img: an empty copy-on-write disk
 * over base_path (never written; base_format "raw" or "qcow2"). A relative
 * base_path is taken relative to overlay_path's directory (and stored so).
 * size_bytes 0 = the base's size; sizes are rounded up to 512 bytes. Returns 0,
 * -ENOENT (no base), -EIO (the base is not qcow2 as said), -ENOSPC, -EFBIG
 * (over 64 TiB), -ENAMETOOLONG (a base path over 1023 bytes), or another
 * negative errno; err (may be NULL) gets a message. A partial overlay is removed. */
int qcow2_create_overlay(const char *base_path, const char *base_format, const char *overlay_path,
                            uint64_t size_bytes, char *err, size_t err_len);

/* qemu-img rebase: path's backing file becomes base_path (format base_format).
 * copy false (-u): only the name changes, the data is untouched (the caller
 * knows the new base holds the same bytes). copy true: every cluster the old
 * chain gives differently from the new base is first written into path, so
 * path reads the same afterwards (a flattening when base_path is the bottom of
 * path's chain: qemu-img then reads only what the layers between hold). 0,
 * -ENOENT (no qemu-img), -ENOSPC or -EIO (message in err). */
int qemu_img_rebase(const char *path, const char *base_path, const char *base_format, bool copy, char *err,
                    size_t err_len);

/* The backing file name recorded in the qcow2 file fd (read from its header,
 * no qemu-img: the file may be a stranger's). Returns 1 with the name in ret,
 * 0 when it has none (ret ""), -EBADMSG (not a qcow2 file of version 2 or 3,
 * or an incompatible feature we do not know), -EXDEV (its data lives in an
 * external file), -ENAMETOOLONG (a name over 1023 bytes or ret_len), or
 * pread's negative errno. */
int qcow2_backing_name(int fd, char *ret, size_t ret_len);
