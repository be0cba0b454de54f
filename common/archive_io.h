/* SPDX-License-Identifier: Apache-2.0 */
/* The archive's file I/O (archive.c's only way to its fd): a sink or a source
 * over one fd, in fixed buffers the caller fills or drains in place, so
 * compressed bytes are never copied on their way to or from the kernel.
 *
 * Regular files (and block devices) go through io_uring: up to AIO_N_BUFS
 * buffers in flight at their file offsets, write-behind for a sink and
 * read-ahead for a source, the buffers registered with the ring when the
 * kernel lets us pin them (RLIMIT_MEMLOCK may not). Where io_uring cannot be
 * set up at all (io_uring_queue_init fails: a seccomp filter such as a
 * container's, kernel.io_uring_disabled, a kernel before 5.1) the same calls
 * fall back to pwrite/pread and aio_file.uring_err says why; nothing else
 * changes.
 *
 * Pipes, sockets and terminals (stdin/stdout: `-o -`, `hydrate VM -`) use
 * poll + read/write, which watch the cancel fd between calls. io_uring works on
 * a pipe too, but with one read in flight it gains nothing, and a request
 * parked in the kernel's worker on an idle pipe is harder to cancel than a
 * poll. A file opened O_APPEND is written in order with write() as well: its
 * positional writes would land in completion order.
 *
 * Memory: AIO_N_BUFS * AIO_BUF_BYTES per file, whatever its size. Not
 * thread-safe: one thread uses an aio_file at a time. */
#pragma once

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AIO_N_BUFS 4u
#define AIO_BUF_BYTES ((size_t)512 * 1024)

typedef enum aio_mode {
        AIO_STREAM = 0, /* poll + read/write: pipes, sockets, O_APPEND files */
        AIO_PLAIN,      /* pread/pwrite at offsets: io_uring unavailable or refused */
        AIO_URING,      /* io_uring, several requests in flight */
} aio_mode;

typedef struct aio_slot {
        uint8_t *buf;
        size_t len;  /* sink: bytes to write; source: bytes read into buf */
        size_t done; /* sink: bytes the kernel took so far */
        size_t want; /* source: bytes asked for */
        uint64_t off; /* file offset of buf[0] */
        bool busy;   /* a request on it is in flight */
} aio_slot;

typedef struct aio_file {
        /* read-only for users: */
        aio_mode mode;
        bool fixed;        /* AIO_URING: the buffers are registered with the ring */
        int uring_err;     /* why io_uring is not used (negative errno), 0 when it is
                            * (or was not tried: a stream, or asked not to) */
        uint64_t bytes;    /* sink: bytes committed; source: bytes handed out */
        /* private: */
        int fd, cancel_fd;
        bool writing, ring_up, eof, resync;
        bool leak;         /* the kernel may still use mem: never free it */
        struct io_uring ring;
        uint8_t *mem;
        aio_slot slot[AIO_N_BUFS];
        unsigned cur;      /* sink: slot being filled; source: slot handed out last */
        bool handed;       /* source: slot[cur] was handed out and may be reused */
        uint64_t next_off; /* seekable: offset of the next request */
        int error;         /* sticky, negative errno */
        char why[200];
} aio_file;

/* Set up f over fd (borrowed: never closed here) for writing or reading.
 * cancel_fd (-1: none): once readable, calls fail with -ECANCELED. no_uring:
 * use pwrite/pread even where io_uring works (tests, benchmarks). Writes and
 * reads start at fd's current offset; a seekable sink leaves the offset after
 * the last byte (aio_out_flush). Returns 0, -ENOMEM, or fstat's error. */
int aio_open(aio_file *f, int fd, bool writing, int cancel_fd, bool no_uring);
/* Wait for requests still in flight (their buffers are the kernel's until
 * then), free everything. NULL-safe and idempotent on a zeroed struct. */
void aio_close(aio_file *f);
/* What the sticky error means ("" when none). */
const char *aio_why(const aio_file *f);
/* The mode as a word for messages and --json: "io_uring", "pread/pwrite", "read/write". */
const char *aio_mode_name(const aio_file *f);

/* ---- sink ---- */
/* Room to write into: *ret and *ret_len (> 0), valid until aio_out_commit().
 * May wait for an earlier write of the same buffer. 0 or a negative errno
 * (sticky: every later call returns it). */
int aio_out_space(aio_file *f, uint8_t **ret, size_t *ret_len);
/* n bytes (<= what aio_out_space gave) were put at *ret; a full buffer is
 * submitted. 0 or a negative errno. */
int aio_out_commit(aio_file *f, size_t n);
/* Copy len bytes in (aio_out_space + memcpy + aio_out_commit). */
int aio_out_write(aio_file *f, const void *data, size_t len);
/* A seekable sink (AIO_STREAM: -ESPIPE) goes on at file offset off: what is
 * buffered is submitted first (at its own offset), the next bytes committed
 * land at off. Nothing is written between: a gap in a file stays a hole (or
 * keeps what was there). For sparse files (archive_entries.c). 0 or a
 * negative errno (sticky). */
int aio_out_seek(aio_file *f, uint64_t off);
/* Submit what is buffered and wait until every byte is written. 0 or a
 * negative errno (-ENOSPC, -EIO, -EPIPE, -ECANCELED, ...). */
int aio_out_flush(aio_file *f);

/* ---- source ---- */
/* The next bytes of the file: returns their count (> 0) with *ret, valid until
 * the next call; 0 at the end of the file; or a negative errno (sticky). */
ssize_t aio_in_next(aio_file *f, const uint8_t **ret);
