/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm's archive file: zstd frames between a header and a checksummed
 * trailer, written and read in constant memory through io_uring
 * (archive_io.h). Host only. Users: workspace persist/hydrate (a tar made
 * and unpacked in the guest, compressed here), `smolvm cp VM:/dir -` (the raw
 * writer), and next snapshot export/import.
 *
 * Layout (integers little-endian). Every part is a zstd frame or a zstd
 * skippable frame, so the file is an ordinary .zst: `zstd -d` and
 * `tar --zstd` read it and skip our two frames.
 *
 *   header   skippable frame, magic 0x184D2A5A, size 24:
 *              "SMOLVMAR" | u16 version (1) | u16 kind | u32 flags (0) | u64 0
 *   body     zstd frames, each with its content checksum (the low 32 bits
 *            of XXH64 of the frame's content)
 *   trailer  skippable frame, magic 0x184D2A5B, size 64:
 *              "SMOLVMEN" | u64 content bytes | u64 body end (the trailer's
 *              offset) | u32 frames | u32 flags (0) | SHA-256 of every byte
 *              before the trailer
 *
 * How damage is found, and when (the file may come from anywhere):
 *  - Truncation. For a regular file, at archive_reader_new(): before any byte
 *    is decompressed, the file must end with a trailer whose body end plus
 *    its own 72 bytes is the file's size. For a stream, at its end: EOF before
 *    the trailer, or inside a frame, fails.
 *  - Any changed byte, header and trailer included: zstd's decoding and the
 *    frame checksums, then at the end the SHA-256, the byte and frame counts
 *    of the trailer; nothing may follow the trailer. A header whose magic is
 *    damaged makes the file "not an archive" (a file starting with a
 *    skippable frame is accepted only when that frame is our header).
 *  - A window larger than the limit (ARCHIVE_WINDOW_LOG_MAX, or the caller's)
 *    is refused before it is allocated: -EFBIG.
 * Nothing read is trustworthy until archive_reader_read() returned 0: every
 * check passed. A consumer that must create nothing from a damaged archive
 * either runs archive_verify() first (a file: one more pass, fast next to
 * anything that unpacks it), or unpacks under a temporary name and renames
 * into place after the 0 (workspace hydrate stages in the guest; snapshot
 * import can build its directory as .importing-NAME).
 *
 * Plain zstd (`tar --zstd -cf`, `zstd`): read as well unless the caller asks
 * for our format (require_trailer). It has no trailer: zstd's frame checksums
 * (when the writer put them) are all there is, and a stream cut exactly
 * between two frames cannot be told from a complete one; stats.verified says
 * which was read.
 *
 * Errors: negative errno, with what went wrong in words from
 * archive_{writer,reader}_error(): -EBADMSG (damaged or truncated),
 * -EPROTONOSUPPORT (a newer archive version), -EFBIG (window over the
 * limit), -ECANCELED (the cancel fd), -ENOMEM, or the I/O's errno. Not
 * thread-safe: one thread per writer or reader at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARCHIVE_VERSION 1u
/* What the archive holds (the header's kind). */
#define ARCHIVE_KIND_TAR 1u      /* a tar stream: workspace persist */
#define ARCHIVE_KIND_SNAPSHOT 2u /* reserved: snapshot export */
/* zstd level when the caller gives 0; levels 1..ARCHIVE_LEVEL_MAX. 3 compresses
 * better than 1 at the speed the guest can produce a tar, and the host
 * keeps up at either (docs/benchmarks.md, bench/workspace.sh). */
#define ARCHIVE_DEFAULT_LEVEL 3
#define ARCHIVE_LEVEL_MAX 19
/* Largest zstd window a reader accepts by default: 2^24 = 16 MiB, what zstd
 * levels up to 19 use at most; `zstd --long` or `--ultra` archives need more
 * and are refused (-EFBIG) rather than have a stranger's file size our memory. */
#define ARCHIVE_WINDOW_LOG_MAX 24u
/* n_workers automatic: no zstd threads below this many online CPUs (measured:
 * on 2 they cost time), else one per CPU but one, at most ARCHIVE_MAX_WORKERS. */
#define ARCHIVE_MIN_CPUS_FOR_WORKERS 4
#define ARCHIVE_MAX_WORKERS 4

typedef struct archive_writer archive_writer;
typedef struct archive_reader archive_reader;

typedef struct archive_stats {
        uint64_t content_bytes; /* uncompressed bytes written or read */
        uint64_t file_bytes;    /* bytes of the file written or consumed */
        unsigned kind;          /* the header's kind; 0 for plain zstd or raw */
        bool verified;          /* reader: our trailer matched (false: plain zstd) */
        uint8_t sha256[32];     /* our format: the trailer's SHA-256 */
        const char *io;         /* "io_uring", "pwrite", "read", ... (static) */
        int uring_err;          /* why io_uring was not used, or 0 */
        unsigned n_workers;     /* writer: zstd threads used (0: the caller's thread) */
} archive_stats;

/* ---- writing ---- */

typedef enum archive_format {
        ARCHIVE_FORMAT_SMOLVM = 0, /* header + zstd + trailer (the layout above) */
        ARCHIVE_FORMAT_RAW,        /* the bytes as given, no compression (a tar to stdout) */
} archive_format;

typedef struct archive_write_opts {
        archive_format format;
        unsigned kind;    /* ARCHIVE_KIND_* for the header */
        int level;        /* 1..ARCHIVE_LEVEL_MAX; 0: ARCHIVE_DEFAULT_LEVEL */
        int n_workers;    /* zstd threads: -1 automatic (see ARCHIVE_MIN_CPUS_FOR_WORKERS),
                           * 0 none (compress in the caller's thread), N */
        int cancel_fd;    /* -1: none; readable: calls fail with -ECANCELED */
        bool no_uring;    /* pwrite even where io_uring works */
} archive_write_opts;

void archive_write_opts_init(archive_write_opts *o);
/* A writer onto fd (borrowed, never closed), from its current offset. Returns 0
 * and *ret, -EINVAL (a bad level or format), -ENOMEM, or the fd's error. */
int archive_writer_new(int fd, const archive_write_opts *o, archive_writer **ret);
/* Compress and write len bytes. 0 or a negative errno (sticky). */
int archive_writer_write(archive_writer *w, const void *data, size_t len);
/* End the last frame, write the trailer, wait for every write. On success
 * *ret (may be NULL) is filled. 0 or a negative errno. */
int archive_writer_finish(archive_writer *w, archive_stats *ret);
/* Bytes given so far and bytes written to the file so far. */
void archive_writer_progress(const archive_writer *w, uint64_t *ret_content, uint64_t *ret_file);
/* What the sticky error means ("" when none). */
const char *archive_writer_error(const archive_writer *w);
/* NULL-safe. Does not finish: an unfinished archive has no trailer. */
void archive_writer_free(archive_writer *w);

/* ---- reading ---- */

typedef struct archive_read_opts {
        bool require_trailer;     /* our format only: plain zstd is refused */
        unsigned window_log_max;  /* 0: ARCHIVE_WINDOW_LOG_MAX; at most 31 */
        int cancel_fd;            /* -1: none */
        bool no_uring;            /* pread even where io_uring works */
} archive_read_opts;

void archive_read_opts_init(archive_read_opts *o);
/* A reader of fd (borrowed), from its current offset. For a regular file the
 * header and trailer are checked here (truncation: -EBADMSG). Returns 0 and
 * *ret, or a negative errno with the reason in err (may be NULL). */
int archive_reader_new(int fd, const archive_read_opts *o, archive_reader **ret, char *err, size_t err_len);
/* Up to len bytes of content: > 0, 0 at the end once every check passed, or a
 * negative errno (sticky). Bytes returned before an error are not to be
 * trusted (see above). */
ssize_t archive_reader_read(archive_reader *r, void *buf, size_t len);
/* Bytes handed out so far and bytes of the file consumed so far. */
void archive_reader_progress(const archive_reader *r, uint64_t *ret_content, uint64_t *ret_file);
/* After the 0: what was read. */
void archive_reader_stats(const archive_reader *r, archive_stats *ret);
const char *archive_reader_error(const archive_reader *r);
void archive_reader_free(archive_reader *r);

/* Read all of fd's archive, keeping nothing: 0 when every check passed (with
 * *ret, may be NULL), else as archive_reader_read() with the reason in err. */
int archive_verify(int fd, const archive_read_opts *o, archive_stats *ret, char *err, size_t err_len);

/* ---- the output file ---- */

/* A file being written under a temporary name beside its final one, renamed
 * into place only when complete: no partial archive ever has the final name.
 * A process killed with SIGKILL leaves the hidden temporary (".NAME.XXXXXX.part"). */
typedef struct archive_file {
        int fd;      /* -1 when none */
        int dir_fd;
        char *name;  /* the final name, in dir_fd */
        char *tmp;   /* the temporary name, in dir_fd */
} archive_file;
#define ARCHIVE_FILE_NONE { .fd = -1, .dir_fd = -1 }

/* Create a temporary file for path (mode 0666 less the umask, as a shell's
 * redirection makes). The directory must exist; path must not be a directory
 * (-EISDIR). Returns 0 or a negative errno with the reason in err. */
int archive_file_create(const char *path, archive_file *ret, char *err, size_t err_len);
/* Rename it into place and close it. 0 or a negative errno (reason in err);
 * on failure the temporary file is removed. */
int archive_file_commit(archive_file *f, char *err, size_t err_len);
/* Remove the temporary file and close it. Idempotent; fine on
 * ARCHIVE_FILE_NONE and after a commit. */
void archive_file_discard(archive_file *f);
