/* SPDX-License-Identifier: Apache-2.0 */
/* The archive's file I/O: io_uring where it can be set up, pread/pwrite where
 * not, poll + read/write on streams. See archive_io.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "archive_io.h"
#include "util.h"

/* Entries of the ring: one request per buffer is the most we ever have. */
#define AIO_RING_ENTRIES 8u

static int aio_fail(aio_file *f, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int aio_fail(aio_file *f, int err, const char *fmt, ...)
{
        if (f->error)
                return f->error;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->why, sizeof(f->why), fmt, ap);
        va_end(ap);
        f->error = err;
        return err;
}

const char *aio_why(const aio_file *f)
{
        return f->error ? f->why : "";
}

const char *aio_mode_name(const aio_file *f)
{
        switch (f->mode) {
        case AIO_URING:
                return "io_uring";
        case AIO_PLAIN:
                return f->writing ? "pwrite" : "pread";
        case AIO_STREAM:
        default:
                return f->writing ? "write" : "read";
        }
}

/* Has cancel_fd fired? Checked before each request on a regular file: those
 * never wait long, so this is as prompt as a poll on them would be. */
static int check_cancel(aio_file *f)
{
        if (f->cancel_fd < 0)
                return 0;
        struct pollfd p = { .fd = f->cancel_fd, .events = POLLIN };
        if (poll(&p, 1, 0) > 0)
                return aio_fail(f, -ECANCELED, "cancelled");
        return 0;
}

/* io_uring for a seekable fd. Any failure leaves the plain mode in place with
 * the reason in uring_err: the fallback is silent to the caller by design. */
static void uring_setup(aio_file *f)
{
        int r = io_uring_queue_init(AIO_RING_ENTRIES, &f->ring, 0);
        if (r < 0) {
                f->uring_err = r;
                return;
        }
        f->ring_up = true;
        f->mode = AIO_URING;
        struct iovec iov[AIO_N_BUFS];
        for (unsigned i = 0; i < AIO_N_BUFS; i++)
                iov[i] = (struct iovec){ .iov_base = f->slot[i].buf, .iov_len = AIO_BUF_BYTES };
        /* Pinning 2 MiB counts against RLIMIT_MEMLOCK on older kernels; without
         * it the kernel maps the user pages per request instead: a bit slower. */
        f->fixed = io_uring_register_buffers(&f->ring, iov, AIO_N_BUFS) == 0;
}

int aio_open(aio_file *f, int fd, bool writing, int cancel_fd, bool no_uring)
{
        *f = (aio_file){ .fd = fd, .cancel_fd = cancel_fd, .writing = writing, .cur = 0 };
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return negative_errno();
        f->mem = aligned_alloc(4096, AIO_N_BUFS * AIO_BUF_BYTES);
        if (!f->mem)
                return -ENOMEM;
        for (unsigned i = 0; i < AIO_N_BUFS; i++)
                f->slot[i].buf = f->mem + (size_t)i * AIO_BUF_BYTES;
        bool seekable = (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && !(writing && (fl & O_APPEND));
        off_t pos = seekable ? lseek(fd, 0, SEEK_CUR) : -1;
        if (!seekable || pos < 0) {
                f->mode = AIO_STREAM;
                return 0;
        }
        f->next_off = (uint64_t)pos;
        f->mode = AIO_PLAIN;
        if (!no_uring)
                uring_setup(f);
        return 0;
}

/* ---- io_uring requests ---- */

static void queue_rw(aio_file *f, unsigned i)
{
        aio_slot *s = &f->slot[i];
        struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
        /* Never NULL: at most AIO_N_BUFS < AIO_RING_ENTRIES requests, each
         * submitted right away. */
        if (f->writing) {
                size_t n = s->len - s->done;
                if (f->fixed)
                        io_uring_prep_write_fixed(sqe, f->fd, s->buf + s->done, (unsigned)n, s->off + s->done, (int)i);
                else
                        io_uring_prep_write(sqe, f->fd, s->buf + s->done, (unsigned)n, s->off + s->done);
        } else {
                if (f->fixed)
                        io_uring_prep_read_fixed(sqe, f->fd, s->buf, (unsigned)s->want, s->off, (int)i);
                else
                        io_uring_prep_read(sqe, f->fd, s->buf, (unsigned)s->want, s->off);
        }
        io_uring_sqe_set_data64(sqe, i);
        s->busy = true;
}

static int submit(aio_file *f)
{
        for (;;) {
                int r = io_uring_submit(&f->ring);
                if (r >= 0)
                        return 0;
                if (r == -EINTR || r == -EAGAIN)
                        continue;
                /* Which requests the kernel took is unknown now: none is waited
                 * for, and the buffers are never freed (aio_close) since one may
                 * still be written into. */
                for (unsigned i = 0; i < AIO_N_BUFS; i++)
                        f->slot[i].busy = false;
                f->leak = true;
                return aio_fail(f, r, "io_uring_submit: %s", strerror(-r));
        }
}

/* Take one completion (waiting for it) and account for it; a short write is
 * requeued for its rest. The sticky error is set for a failed request, but the
 * slot is free again in every case: aio_close() must not wait for it. */
static int reap_one(aio_file *f)
{
        struct io_uring_cqe *cqe;
        int r;
        do
                r = io_uring_wait_cqe(&f->ring, &cqe);
        while (r == -EINTR);
        if (r < 0) {
                /* Nothing more will complete that we could see: forget them. */
                for (unsigned i = 0; i < AIO_N_BUFS; i++)
                        f->slot[i].busy = false;
                f->leak = true;
                return aio_fail(f, r, "io_uring_wait_cqe: %s", strerror(-r));
        }
        unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&f->ring, cqe);
        if (i >= AIO_N_BUFS)
                return aio_fail(f, -EIO, "io_uring: completion for an unknown request");
        aio_slot *s = &f->slot[i];
        s->busy = false;
        if (res == -EINTR || res == -EAGAIN) {
                queue_rw(f, i);
                return submit(f);
        }
        if (res < 0)
                return aio_fail(f, res, "%s at offset %llu: %s", f->writing ? "write" : "read",
                                (unsigned long long)s->off, strerror(-res));
        if (!f->writing) {
                s->len = (size_t)res;
                return 0;
        }
        if (res == 0)
                return aio_fail(f, -EIO, "write at offset %llu: no progress", (unsigned long long)(s->off + s->done));
        s->done += (size_t)res;
        if (s->done < s->len) {
                queue_rw(f, i);
                return submit(f);
        }
        s->len = s->done = 0;
        return 0;
}

static int wait_slot(aio_file *f, unsigned i)
{
        while (f->slot[i].busy) {
                int r = reap_one(f);
                if (r < 0)
                        return r;
        }
        return f->error;
}

static int wait_all(aio_file *f)
{
        int err = 0;
        for (unsigned i = 0; i < AIO_N_BUFS; i++) {
                int r = wait_slot(f, i);
                if (r < 0 && !err)
                        err = r;
        }
        return err;
}

void aio_close(aio_file *f)
{
        if (!f)
                return;
        if (f->ring_up) {
                /* The kernel owns buffers with requests in flight: wait them out
                 * (on a regular file they finish; the error, if any, is moot). */
                for (unsigned i = 0; i < AIO_N_BUFS; i++)
                        while (f->slot[i].busy)
                                (void)reap_one(f);
                io_uring_queue_exit(&f->ring);
                f->ring_up = false;
        }
        if (!f->leak)
                free(f->mem);
        f->mem = NULL;
}

/* ---- sink ---- */

static int stream_write(aio_file *f, const uint8_t *p, size_t len)
{
        while (len > 0) {
                int r = fd_wait(f->fd, POLLOUT, 0, f->cancel_fd);
                if (r == -ECANCELED)
                        return aio_fail(f, r, "cancelled");
                if (r < 0)
                        return aio_fail(f, r, "poll: %s", strerror(-r));
                ssize_t n = write(f->fd, p, len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return aio_fail(f, negative_errno(), "write: %s", strerror(errno));
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int plain_write(aio_file *f, const uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = pwrite(f->fd, p, len, (off_t)f->next_off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return aio_fail(f, negative_errno(), "write at offset %llu: %s",
                                        (unsigned long long)f->next_off, strerror(errno));
                if (n == 0)
                        return aio_fail(f, -EIO, "write at offset %llu: no progress",
                                        (unsigned long long)f->next_off);
                p += n;
                len -= (size_t)n;
                f->next_off += (uint64_t)n;
        }
        return 0;
}

/* Hand the current buffer to the kernel and move on to the next one. */
static int submit_current(aio_file *f)
{
        aio_slot *s = &f->slot[f->cur];
        /* Busy: the buffer the last full one moved on to, its earlier write
         * not reaped yet; none of its bytes are new (aio_out_flush right after
         * a buffer filled exactly wrote it a second time, past the end). */
        if (s->len == 0 || s->busy)
                return 0;
        int r = check_cancel(f);
        if (r < 0)
                return r;
        if (f->mode == AIO_STREAM) {
                r = stream_write(f, s->buf, s->len);
                s->len = 0;
                return r;
        }
        if (f->mode == AIO_PLAIN) {
                r = plain_write(f, s->buf, s->len);
                s->len = 0;
                return r;
        }
        s->off = f->next_off;
        s->done = 0;
        f->next_off += s->len;
        queue_rw(f, f->cur);
        f->cur = (f->cur + 1) % AIO_N_BUFS;
        return submit(f);
}

int aio_out_space(aio_file *f, uint8_t **ret, size_t *ret_len)
{
        if (f->error)
                return f->error;
        int r = f->mode == AIO_URING ? wait_slot(f, f->cur) : 0;
        if (r < 0)
                return r;
        aio_slot *s = &f->slot[f->cur];
        *ret = s->buf + s->len;
        *ret_len = AIO_BUF_BYTES - s->len;
        return 0;
}

int aio_out_commit(aio_file *f, size_t n)
{
        if (f->error)
                return f->error;
        aio_slot *s = &f->slot[f->cur];
        s->len += n;
        f->bytes += n;
        return s->len == AIO_BUF_BYTES ? submit_current(f) : 0;
}

int aio_out_write(aio_file *f, const void *data, size_t len)
{
        const uint8_t *p = data;
        while (len > 0) {
                uint8_t *dst;
                size_t room;
                int r = aio_out_space(f, &dst, &room);
                if (r < 0)
                        return r;
                size_t n = MIN(room, len);
                memcpy(dst, p, n);
                r = aio_out_commit(f, n);
                if (r < 0)
                        return r;
                p += n;
                len -= n;
        }
        return 0;
}

int aio_out_seek(aio_file *f, uint64_t off)
{
        if (f->error)
                return f->error;
        if (f->mode == AIO_STREAM)
                return aio_fail(f, -ESPIPE, "seek to offset %llu: the output is a stream",
                                (unsigned long long)off);
        /* Bytes filled in the current buffer go at next_off when it is
         * submitted (both modes); a buffer still in flight (io_uring: its
         * write not yet reaped) holds none of ours. */
        aio_slot *s = &f->slot[f->cur];
        size_t pending = s->busy ? 0 : s->len;
        if (off == f->next_off + pending)
                return 0;
        int r = submit_current(f);
        if (r < 0)
                return r;
        f->next_off = off;
        return 0;
}

int aio_out_flush(aio_file *f)
{
        if (f->error)
                return f->error;
        int r = submit_current(f);
        if (r == 0 && f->mode == AIO_URING)
                r = wait_all(f);
        if (r < 0)
                return r;
        /* Positional writes leave the fd's offset alone: put it after our
         * bytes, as write() would have (`smolvm ... -o - > file; echo >> ...`). */
        if (f->mode != AIO_STREAM && lseek(f->fd, (off_t)f->next_off, SEEK_SET) < 0)
                return aio_fail(f, negative_errno(), "lseek: %s", strerror(errno));
        return 0;
}

/* ---- source ---- */

static ssize_t stream_read(aio_file *f, aio_slot *s)
{
        for (;;) {
                int r = fd_wait(f->fd, POLLIN, 0, f->cancel_fd);
                if (r == -ECANCELED)
                        return aio_fail(f, r, "cancelled");
                if (r < 0)
                        return aio_fail(f, r, "poll: %s", strerror(-r));
                ssize_t n = read(f->fd, s->buf, AIO_BUF_BYTES);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return aio_fail(f, negative_errno(), "read: %s", strerror(errno));
                return n;
        }
}

static ssize_t plain_read(aio_file *f, aio_slot *s)
{
        for (;;) {
                ssize_t n = pread(f->fd, s->buf, AIO_BUF_BYTES, (off_t)f->next_off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return aio_fail(f, negative_errno(), "read at offset %llu: %s",
                                        (unsigned long long)f->next_off, strerror(errno));
                f->next_off += (uint64_t)n;
                return n;
        }
}

static void queue_read(aio_file *f, unsigned i)
{
        aio_slot *s = &f->slot[i];
        s->off = f->next_off;
        s->want = AIO_BUF_BYTES;
        s->len = 0;
        f->next_off += AIO_BUF_BYTES;
        queue_rw(f, i);
}

/* io_uring read-ahead: every slot has a read in flight at consecutive offsets;
 * they are handed out in file order. A short read that is not the end (a file
 * that grew, an odd file system) makes the reads queued behind it wrong: they
 * are drained and discarded, and reading resumes right after the short one. */
static ssize_t uring_next(aio_file *f, const uint8_t **ret)
{
        unsigned i;
        if (!f->handed) {
                for (i = 0; i < AIO_N_BUFS; i++)
                        queue_read(f, i);
                i = 0;
        } else if (f->resync) {
                int r = wait_all(f);
                if (r < 0)
                        return r;
                f->resync = false;
                for (unsigned k = 0; k < AIO_N_BUFS; k++)
                        queue_read(f, (f->cur + 1 + k) % AIO_N_BUFS);
                i = (f->cur + 1) % AIO_N_BUFS;
        } else {
                /* The slot handed out last is free: queue it behind the others. */
                queue_read(f, f->cur);
                i = (f->cur + 1) % AIO_N_BUFS;
        }
        int r = submit(f);
        if (r == 0)
                r = wait_slot(f, i);
        if (r < 0)
                return r;
        aio_slot *s = &f->slot[i];
        f->cur = i;
        f->handed = true;
        if (s->len == 0) {
                f->eof = true;
                return 0;
        }
        if (s->len < s->want) {
                f->resync = true;
                f->next_off = s->off + s->len;
        }
        *ret = s->buf;
        return (ssize_t)s->len;
}

ssize_t aio_in_next(aio_file *f, const uint8_t **ret)
{
        if (f->error)
                return f->error;
        if (f->eof)
                return 0;
        int r = check_cancel(f);
        if (r < 0)
                return r;
        ssize_t n;
        if (f->mode == AIO_URING) {
                n = uring_next(f, ret);
        } else {
                aio_slot *s = &f->slot[0];
                n = f->mode == AIO_STREAM ? stream_read(f, s) : plain_read(f, s);
                if (n > 0)
                        *ret = s->buf;
                else if (n == 0)
                        f->eof = true;
        }
        if (n > 0)
                f->bytes += (uint64_t)n;
        return n;
}
