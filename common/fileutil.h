/* SPDX-License-Identifier: Apache-2.0 */
/* The file-system helpers every side uses (libsmolvm, the image builder, the
 * guest's init): mkdir -p, rm -rf, atomic writes. One copy for the tree: the
 * guest links it statically, so it needs nothing but libc. */
#pragma once

#include <sys/types.h>

/* mkdir -p with mode for each missing component, then an O_PATH directory fd
 * of path. Components that exist are the caller's and are resolved as usual
 * (symlinks followed); those it creates are opened with O_NOFOLLOW, so a
 * symlink raced into their place is never followed. An existing component
 * that is not a directory: -ENOTDIR. Returns the fd or a negative errno. */
int mkdir_p_open(const char *path, mode_t mode);
/* The same, closing the fd: 0 or a negative errno. The umask applies to mode. */
int mkdir_p(const char *path, mode_t mode);
/* The same with mode exactly, whatever the umask (what the guest agent's
 * mkdir promises): each directory it creates is chmod'ed through an fd. */
int mkdir_p_exact(const char *path, mode_t mode);

/* rm -rf path, never following a symlink and never descending into another
 * file system (a mount point below path fails with -EBUSY and stays, as does
 * what is under it). A missing path is fine. Returns 0 or the first negative
 * errno (it goes on removing what it can). */
int rm_rf(const char *path);
/* The same, but the entry called last directly in path (a directory) goes
 * after all the others, just before path itself: a lock file whose holder
 * must keep others out until the rest is gone. */
int rm_rf_last(const char *path, const char *last);

/* Replace path with data atomically: a temp file beside it (O_EXCL, hidden
 * name), written, chmod'ed to mode exactly (the umask does not apply), fsynced,
 * renamed over path, then the directory fsynced. Readers see the old or the
 * new content, never a part; nothing is left behind on failure. Returns 0 or
 * a negative errno. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* The same without the fsyncs: readers still see the old or the new content,
 * but a crash may lose the change. For files rewritten at every boot. */
int write_file_replace(const char *path, const void *data, size_t len, mode_t mode);
/* Small files rewritten at every boot and restore (hostname, machine-id): when
 * path is already a regular file of exactly len bytes and mode, its bytes are
 * overwritten in place (no new inode, no rename: on ext4 a rename over a file
 * starts the writeback of its data at once, ~100 ms in a TCG guest); otherwise
 * write_file_replace(). Readers may see a mix of old and new bytes for a moment;
 * a crash may keep either. 0 or a negative errno. */
int write_file_overwrite(const char *path, const void *data, size_t len, mode_t mode);

/* All len bytes at offset off (EINTR and short writes retried). 0 or a
 * negative errno. */
int pwrite_all(int fd, const void *data, size_t len, off_t off);

/* Copy in_fd's whole content to out_fd (an empty regular file) keeping holes:
 * a reflink (FICLONE) where the file system shares extents, else the data
 * extents only (SEEK_DATA/SEEK_HOLE) with copy_file_range (pread/pwrite across
 * file systems), then out_fd is
 * sized like in_fd. *ret_data_bytes (may be NULL) gets the bytes copied (0 for
 * a reflink). Returns 0 or a negative errno (-ENOSPC: disk full). */
int copy_file_sparse(int in_fd, int out_fd, unsigned long long *ret_data_bytes);
