/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm: files in and out of a VM, workspace archives and tar streams, snapshot export and import. Part of <smolvm/smolvm.h>, which includes it (the
 * types and conventions it uses are there): include that, not this file. */
#pragma once

#ifndef SMOLVM_INSIDE_SMOLVM_H
#error "include <smolvm/smolvm.h>, not this file"
#endif

/* ---- files ----------------------------------------------------------------- */
/* Guest paths are absolute. Each call uses its own stream to the guest agent, so
 * these may run concurrently with execs on the same VM. The guest is hostile:
 * sizes and byte counts it reports are checked, and a download never writes
 * outside host_path (see smolvm_download_with()). */

/* Write len bytes to guest_path (created or truncated, parents created) with
 * permission bits mode (e.g. 0644). Returns 0, -EINVAL (relative path),
 * SMOLVM_ENOTRUNNING, or the guest's error (e.g. -EISDIR, -ENOSPC). */
SMOLVM_EXPORT int smolvm_write_file(smolvm_vm *vm, const char *guest_path, const void *data, size_t len,
                                    unsigned mode);

/* Read guest_path into memory. max_bytes: 0 = 64 MiB; a larger file fails with
 * -EFBIG before any byte is transferred. On success *ret_data is malloc'd (free()
 * it), NUL-terminated for convenience (it may contain NULs), *ret_len its length.
 * Returns 0, -EFBIG, the guest's error (-ENOENT, -EISDIR, ...), -EPROTO when the
 * guest sent more or fewer bytes than it announced. */
#define SMOLVM_DEFAULT_READ_MAX ((size_t)64 * 1024 * 1024)
SMOLVM_EXPORT int smolvm_read_file(smolvm_vm *vm, const char *guest_path, void **ret_data, size_t *ret_len,
                                   size_t max_bytes);

/* Copy host_path (a file, or a directory recursively) to guest_path, which names
 * the copy itself (not a directory to copy into). Permission bits are kept,
 * missing guest parents are created, symlinks inside a directory are recreated as
 * symlinks (via `ln -s` in the guest), other special files (sockets, fifos,
 * devices) are skipped. Streams in constant memory. Returns 0 or a negative errno;
 * on failure part of the tree may have been copied. */
SMOLVM_EXPORT int smolvm_upload(smolvm_vm *vm, const char *host_path, const char *guest_path);

/* Copy guest_path (a file, or a directory recursively) to host_path, which names
 * the copy itself; its missing parents are created. Same as smolvm_download_with()
 * with SMOLVM_DOWNLOAD_AS, no size cap and no cancel fd. */
SMOLVM_EXPORT int smolvm_download(smolvm_vm *vm, const char *guest_path, const char *host_path);

/* What host_path means to smolvm_download_with(). */
typedef enum smolvm_download_dest {
        SMOLVM_DOWNLOAD_AS = 0,   /* host_path is the copy itself */
        SMOLVM_DOWNLOAD_INTO,     /* host_path is a directory (created if missing) that gets
                                   * the copy under guest_path's last component: cp's DST/ */
        SMOLVM_DOWNLOAD_AUTO,     /* INTO when host_path is an existing directory, else AS:
                                   * cp's DST */
} smolvm_download_dest;

typedef struct smolvm_download_opts {
        smolvm_download_dest dest;
        uint64_t max_bytes;       /* > 0: refuse (-EFBIG) a download whose files total more
                                   * bytes, announced or received; 0: no cap */
        int cancel_fd;            /* > 0: give up with -ECANCELED once readable (e.g. a
                                   * signalfd); 0 or -1: none. No signal handler is installed. */
} smolvm_download_opts;

/* Fill *o with the defaults (SMOLVM_DOWNLOAD_AS, no cap, cancel_fd = -1). */
SMOLVM_EXPORT void smolvm_download_opts_init(smolvm_download_opts *o);

/* Copy guest_path (a file, or a directory recursively) to the host, where
 * opts->dest says. Files are written to a temporary name and renamed into place,
 * streamed in constant memory. Permission bits are kept except setuid/setgid
 * (never trusted from a guest).
 *
 * Symlinks: the directories above host_path's last component are the caller's and
 * are resolved as usual (missing ones are created). Everything from host_path's
 * last component down is the copy's: every step is resolved below its parent with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so an existing symlink there (one
 * a previous download recreated, say) is never followed: where the copy would go
 * through it the download fails with -EEXIST naming it; a file or symlink of the
 * copy replaces a symlink at its own name (rename). Symlinks in a tree are
 * recreated verbatim. Paths the guest lists are validated (relative, no "..").
 * Modes are applied through fds the download opened, last and deepest first.
 *
 * Space: before writing, the announced sizes (the file's, or the sum of a tree's
 * files) are checked against opts->max_bytes (-EFBIG) and against the free space of
 * the destination's file system (-ENOSPC); each file is checked again when the guest
 * announces it, and the guest can never send more bytes than it announced.
 *
 * On success *ret_host_path (if not NULL) is the copy's host path, malloc'd. On
 * failure nothing is left half-written (the temporary file is removed) but earlier
 * files of a tree stay. Returns 0, -EFBIG, -ENOSPC, -ECANCELED, -EEXIST (a symlink
 * in the way), -EINVAL (INTO/AUTO with a guest path without a last component, "/"),
 * the guest's error, or -EBADMSG when the guest lists an unsafe path. */
SMOLVM_EXPORT int smolvm_download_with(smolvm_vm *vm, const char *guest_path, const char *host_path,
                                       const smolvm_download_opts *opts, char **ret_host_path);

/* ---- workspace archives and tar streams ------------------------------------ */
/* A guest directory as a tar stream made and unpacked by the guest's own GNU tar
 * (run through the agent like any command, as root, --numeric-owner), so names of
 * any bytes, modes, owners, symlinks, hard links and empty directories are tar's
 * business; the host never parses the tar, it compresses, decompresses or passes
 * it through, in constant memory. Archives are smolvm's .tar.zst: a zstd stream
 * with a checksummed header and trailer (`tar --zstd -tf FILE` lists it), read and
 * written on the host with io_uring where the kernel allows. */

/* Where workspace persist and hydrate look by default; the guest's init creates it
 * at boot when it is missing. */
#define SMOLVM_WORKSPACE_DIR "/workspace"

typedef struct smolvm_archive_opts {
        const char *guest_path;   /* the guest directory; NULL: SMOLVM_WORKSPACE_DIR
                                   * (the tar stream calls require one) */
        int level;                /* persist: zstd level 1..19; 0: the default, 3 */
        uint64_t max_bytes;       /* persist, tar from the guest: > 0 stops with -EFBIG once the
                                   * guest's output written to the host passes this many bytes
                                   * (a guest can send without end); 0: no cap */
        int cancel_fd;            /* > 0: give up with -ECANCELED once readable (e.g. a
                                   * signalfd); what was begun is removed; 0 or -1: none */
        /* Called as the transfer moves (tar bytes so far, archive bytes so far), from
         * the calling thread, or for hydrate from a thread of the library. May be NULL. */
        void (*progress)(void *userdata, uint64_t tar_bytes, uint64_t file_bytes);
        void *userdata;
} smolvm_archive_opts;

typedef struct smolvm_archive_result {
        uint64_t tar_bytes;       /* the tar stream's size */
        uint64_t file_bytes;      /* the archive's (or the raw stream's) size */
        uint64_t duration_ms;
        bool verified;            /* hydrate: smolvm's trailer was there and matched (false:
                                   * a plain .tar.zst, checked by zstd's frame checksums only) */
        char sha256[65];          /* persist, verified hydrate: the trailer's SHA-256, hex */
        char io[16];              /* how the host file was read or written: "io_uring",
                                   * "pread", "pwrite", "read", "write" */
} smolvm_archive_result;

/* Fill *o with the defaults (zeroes, cancel_fd = -1). */
SMOLVM_EXPORT void smolvm_archive_opts_init(smolvm_archive_opts *o);

/* Archive o->guest_path (the directory's contents, as "./...") into host_path, a
 * new or replaced file (its directory must exist), written under a temporary name
 * and renamed into place when complete: on any failure or cancellation no file is
 * left (SIGKILL may leave the hidden ".NAME.XXXXXXXXXXXX.part"). Returns 0 with
 * *ret (may be NULL) filled, SMOLVM_ENOTFOUND (no such guest directory), -EIO (the
 * guest's tar failed: its stderr is in the message; a file that changed while it
 * was read fails too), -ENOSPC, -EFBIG (o->max_bytes), -ECANCELED, -EISDIR
 * (host_path is a directory). */
SMOLVM_EXPORT int smolvm_workspace_persist(smolvm_vm *vm, const char *host_path, const smolvm_archive_opts *o,
                                           smolvm_archive_result *ret);
/* The same into fd (a file, written at its offset, or a pipe); fd is not closed. On
 * failure what was written stays in fd: it has no trailer, so hydrate refuses it. */
SMOLVM_EXPORT int smolvm_workspace_persist_fd(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                              smolvm_archive_result *ret);

/* Unpack the archive host_path (smolvm's, or any .tar.zst) into o->guest_path,
 * created if missing; existing entries with the archive's names are replaced, others
 * stay, and the directory itself keeps its mode and owner. The guest unpacks into a
 * hidden directory inside it and moves the entries
 * into place only once the whole archive passed its checks and tar succeeded, so a
 * damaged, truncated or foreign file, a failing tar or a cancellation leaves the
 * directory as it was. Windows over 16 MiB (zstd --long, --ultra) are refused.
 * Returns 0 with *ret (may be NULL), SMOLVM_ECORRUPT (damaged or truncated: the
 * message says where), -EPROTONOSUPPORT (made by a newer smolvm), -EFBIG (window
 * too large), -EIO (the guest's tar failed, with its stderr), -ECANCELED. */
SMOLVM_EXPORT int smolvm_workspace_hydrate(smolvm_vm *vm, const char *host_path, const smolvm_archive_opts *o,
                                           smolvm_archive_result *ret);
/* The same from fd (a file from its offset, or a pipe); fd is not closed. */
SMOLVM_EXPORT int smolvm_workspace_hydrate_fd(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                              smolvm_archive_result *ret);

/* Write an uncompressed tar of the guest path o->guest_path (a directory or a file)
 * to fd, its entries named from the path's last component ("dir/...") as docker
 * cp's tar streams are. fd is not closed. Returns 0 with *ret (may be NULL),
 * SMOLVM_ENOTFOUND, -EIO (the guest's tar failed), -EPIPE (fd's reader went away),
 * -EFBIG (o->max_bytes), -ECANCELED. */
SMOLVM_EXPORT int smolvm_tar_from_guest(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                        smolvm_archive_result *ret);
/* Unpack an uncompressed tar read from fd (until EOF) into the existing guest
 * directory o->guest_path, as `tar -x` does there (unlike hydrate, in place: a
 * failure may leave part of it). Returns 0 with *ret (may be NULL),
 * SMOLVM_ENOTFOUND (no such directory), -EIO (the guest's tar failed, e.g. on a
 * stream that is not a tar), -ECANCELED. */
SMOLVM_EXPORT int smolvm_tar_to_guest(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                      smolvm_archive_result *ret);

/* ---- snapshot export and import (docs/cli.md, "snapshot export") ----------- */
/* A snapshot as one self-contained file: a smolvm archive (zstd, SHA-256
 * trailer, io_uring) holding its record, device state, RAM (holes stay holes)
 * and every disk layer, plus the key of the image it needs. The smolvm_archive_opts
 * used: level (0: 1, the fastest), cancel_fd, progress (bytes of content, bytes of
 * file) and userdata; ret (may be NULL): tar_bytes is the content's size. */

/* Write the snapshot id_or_name to host_path (replaced if it exists), under a
 * temporary name renamed into place when complete (no file is left on failure).
 * Returns 0, SMOLVM_ENOTFOUND, SMOLVM_ECORRUPT (a damaged snapshot), SMOLVM_EIMAGE
 * (its image is gone), SMOLVM_EINVAL (its image is no image-store entry), -ENOSPC,
 * -ECANCELED, -EISDIR. */
SMOLVM_EXPORT int smolvm_snapshot_export(const char *id_or_name, const char *host_path,
                                         const smolvm_archive_opts *o, smolvm_archive_result *ret);
/* The same into fd (a file at its offset, or a pipe); fd is not closed. */
SMOLVM_EXPORT int smolvm_snapshot_export_fd(const char *id_or_name, int fd, const smolvm_archive_opts *o,
                                            smolvm_archive_result *ret);
/* A new snapshot (a new id) from an exported one, named name (NULL: the name it
 * had, if any). Everything is checked before it appears (checksum, sizes, record,
 * names, the disk chain): it is unpacked into a hidden staging dir removed on any
 * failure or cancellation (one a SIGKILL leaves is swept by the next snapshot
 * create or import). Its image must be here (same key: built by the same smolvm
 * with the same options). Returns 0 with *ret_info and *ret (each may be NULL),
 * SMOLVM_ECORRUPT (damaged, truncated, or not a snapshot export), SMOLVM_EIMAGE
 * (the image is missing: the message names it and how to build it), SMOLVM_EEXIST
 * (the name is taken), -EPROTONOSUPPORT, -ENOSPC, -ECANCELED. Only import archives
 * from sources you trust like the VM itself: QEMU loads the device state. */
SMOLVM_EXPORT int smolvm_snapshot_import(const char *host_path, const char *name, const smolvm_archive_opts *o,
                                         smolvm_snapshot_info *ret_info, smolvm_archive_result *ret);
/* The same from fd (a file from its offset, or a pipe); fd is not closed. */
SMOLVM_EXPORT int smolvm_snapshot_import_fd(int fd, const char *name, const smolvm_archive_opts *o,
                                            smolvm_snapshot_info *ret_info, smolvm_archive_result *ret);
