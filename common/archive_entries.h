/* SPDX-License-Identifier: Apache-2.0 */
/* Named files inside one archive's content (archive.h): what snapshot export
 * and import carry (ARCHIVE_KIND_SNAPSHOT). The archive gives compression, the
 * checksum and the io_uring I/O; this layer only frames files in its content
 * stream, sparse: a file's holes are never written to the archive and stay
 * holes when it is unpacked. Host only.
 *
 * Content layout (integers little-endian):
 *   entry   "SVFE" | u16 name length | u16 0 | u64 file size | name bytes,
 *           then its data chunks in increasing, non-overlapping offsets:
 *   chunk   u64 offset | u32 length (1..ARCHIVE_CHUNK_MAX) | u32 0 | the bytes
 *   end of the entry: a chunk with offset = the file size and length 0
 *   end     "SVEE" | u16 0 | u16 0 | u64 number of entries; nothing follows.
 *
 * The reader trusts nothing: names are single path components of a fixed
 * alphabet (archive_entry_name_valid), a file is never written past its size
 * (the caller bounds the size), chunks may not overlap or go backwards, and
 * damage is -EBADMSG with the reason. The archive's own checks end at its
 * last byte: unpack into a staging place, and keep nothing unless
 * archive_entries_finish() returned 0. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "archive.h"

#define ARCHIVE_ENTRY_NAME_MAX 128u
#define ARCHIVE_CHUNK_MAX ((size_t)1 << 20)

/* 1..ARCHIVE_ENTRY_NAME_MAX of [A-Za-z0-9._-], not starting with '.': a name
 * in one directory that is never "..", hidden, or a path. */
bool archive_entry_name_valid(const char *name);

/* Progress: called after each chunk (userdata as given). */
typedef void (*archive_tick)(void *userdata);

/* ---- writing ---- */

typedef struct archive_entries_writer {
        archive_writer *w; /* borrowed */
        uint64_t n_entries;
        uint64_t data_bytes; /* file bytes put, holes not counted */
        archive_tick tick;
        void *userdata;
} archive_entries_writer;

/* The regular file fd (read with pread from offset 0 to its size at the call;
 * holes found with SEEK_DATA/SEEK_HOLE) as the entry name. 0 or a negative
 * errno: -EINVAL (a bad name), the archive's error (archive_writer_error()),
 * or the read's (the reason in err). */
int archive_entries_put_file(archive_entries_writer *ew, const char *name, int fd, char *err, size_t err_len);
/* The same for len bytes in memory (no holes). */
int archive_entries_put_mem(archive_entries_writer *ew, const char *name, const void *data, size_t len, char *err,
                            size_t err_len);
/* The end marker. The caller then finishes the archive. */
int archive_entries_put_end(archive_entries_writer *ew, char *err, size_t err_len);

/* ---- reading ---- */

typedef struct archive_entry {
        char name[ARCHIVE_ENTRY_NAME_MAX + 1];
        uint64_t size;
} archive_entry;

typedef struct archive_entries_reader {
        archive_reader *r; /* borrowed */
        uint64_t n_entries;
        uint64_t data_bytes;
        bool in_entry, ended;
        archive_tick tick;
        void *userdata;
        bool no_uring;  /* extract_fd: pwrite even where io_uring works (tests) */
        const char *io; /* how the last extract_fd wrote (aio_mode_name), NULL before */
} archive_entries_reader;

/* The next entry's header: 1 with *ret (its data must be taken next with an
 * extract call), 0 at the end marker (its count checked), or a negative
 * errno with the reason in err (-EBADMSG: damaged). */
int archive_entries_next(archive_entries_reader *er, archive_entry *ret, char *err, size_t err_len);
/* The entry's data into out_fd, a new empty regular file: truncated to the
 * entry's size, each chunk written at its offset (so holes stay holes), with
 * io_uring (archive_io.h: several writes in flight while the next bytes are
 * decompressed; pwrite where io_uring is refused). The caller checked e->size
 * against its own limit first. 0 or a negative errno. */
int archive_entries_extract_fd(archive_entries_reader *er, const archive_entry *e, int out_fd, char *err,
                               size_t err_len);
/* Into buf (e->size <= buf_len: else -EFBIG), holes zeroed. */
int archive_entries_extract_mem(archive_entries_reader *er, const archive_entry *e, void *buf, size_t buf_len,
                                char *err, size_t err_len);
/* After the end marker: the archive ends there and every one of its checks
 * passed (checksum, sizes, nothing after the trailer). 0 or a negative errno. */
int archive_entries_finish(archive_entries_reader *er, char *err, size_t err_len);
