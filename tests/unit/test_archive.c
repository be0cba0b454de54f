/* SPDX-License-Identifier: Apache-2.0 */
/* The archive file (common/archive.c, archive_io.c): round trips through
 * io_uring and the pread/pwrite fallback (io_uring refused by a seccomp
 * filter, as a container would), pipes both ways, every kind of damage
 * refused (truncation anywhere, a flipped bit anywhere, bytes after the end, a
 * newer version, a window over the limit), cancellation, the output file. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "archive.h"
#include "archive_io.h"
#include "check_main.h"
#include "util.h"

/* Mixed content: runs of text (compressible) and pseudo-random bytes. */
static uint8_t *make_data(size_t len, uint32_t seed)
{
        uint8_t *p = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(p);
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < len; i++) {
                x = x * 1103515245u + 12345u;
                p[i] = (i / 4096) % 3 == 0 ? (uint8_t)(x >> 24) : (uint8_t)("workspace "[i % 10] + (i / 8192) % 7);
        }
        return p;
}

static int tmp_file(void)
{
        char path[] = "/tmp/test_archive.XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        return fd;
}

static bool uring_works(void)
{
        struct io_uring ring;
        if (io_uring_queue_init(4, &ring, 0) < 0)
                return false;
        io_uring_queue_exit(&ring);
        return true;
}

/* Write data as an archive to fd; returns the writer's stats. */
static archive_stats write_archive(int fd, const void *data, size_t len, int n_workers, bool no_uring)
{
        archive_write_opts o;
        archive_write_opts_init(&o);
        o.n_workers = n_workers;
        o.no_uring = no_uring;
        archive_writer *w;
        ck_assert_int_eq(archive_writer_new(fd, &o, &w), 0);
        /* Uneven pieces, to cross buffer boundaries everywhere. */
        size_t off = 0, step = 1;
        while (off < len) {
                size_t n = MIN(step, len - off);
                ck_assert_int_eq(archive_writer_write(w, (const uint8_t *)data + off, n), 0);
                off += n;
                step = step * 7 % 300007 + 1;
        }
        archive_stats st;
        ck_assert_msg(archive_writer_finish(w, &st) == 0, "finish: %s", archive_writer_error(w));
        archive_writer_free(w);
        return st;
}

/* Read fd's archive into *ret (malloc'd, *ret_len); returns the final code:
 * 0 when the reader ended cleanly, else its error. */
static int read_archive(int fd, const archive_read_opts *o, uint8_t **ret, size_t *ret_len, archive_stats *ret_st)
{
        archive_reader *r;
        char err[256] = "";
        *ret = NULL;
        *ret_len = 0;
        int k = archive_reader_new(fd, o, &r, err, sizeof(err));
        if (k < 0) {
                ck_assert_str_ne(err, "");
                return k;
        }
        size_t cap = 1 << 16, len = 0;
        uint8_t *buf = malloc(cap);
        ssize_t n;
        for (;;) {
                if (cap - len < 4096) {
                        cap *= 2;
                        buf = realloc(buf, cap);
                        ck_assert_ptr_nonnull(buf);
                }
                n = archive_reader_read(r, buf + len, (len * 13 + 1) % (cap - len) + 1);
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        if (n < 0)
                ck_assert_str_ne(archive_reader_error(r), "");
        if (n == 0 && ret_st)
                archive_reader_stats(r, ret_st);
        archive_reader_free(r);
        *ret = buf;
        *ret_len = len;
        return (int)n;
}

static void round_trip(size_t len, int n_workers, bool w_no_uring, bool r_no_uring)
{
        _cleanup_free_ uint8_t *data = make_data(len, (uint32_t)len);
        int fd = tmp_file();
        archive_stats ws = write_archive(fd, data, len, n_workers, w_no_uring);
        ck_assert_uint_eq(ws.content_bytes, len);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(ws.file_bytes, (uint64_t)st.st_size);
        /* The fd's offset is after the archive, as write() would leave it. */
        ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), st.st_size);
        bool uring = uring_works();
        ck_assert_str_eq(ws.io, !w_no_uring && uring ? "io_uring" : "pwrite");

        archive_read_opts o;
        archive_read_opts_init(&o);
        o.no_uring = r_no_uring;
        o.require_trailer = true;
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        _cleanup_free_ uint8_t *back = NULL;
        size_t back_len;
        archive_stats rs;
        ck_assert_int_eq(read_archive(fd, &o, &back, &back_len, &rs), 0);
        ck_assert_uint_eq(back_len, len);
        ck_assert(len == 0 || memcmp(back, data, len) == 0);
        ck_assert(rs.verified);
        ck_assert_uint_eq(rs.kind, ARCHIVE_KIND_TAR);
        ck_assert_uint_eq(rs.content_bytes, len);
        ck_assert_uint_eq(rs.file_bytes, (uint64_t)st.st_size);
        ck_assert_mem_eq(rs.sha256, ws.sha256, 32);
        ck_assert_str_eq(rs.io, !r_no_uring && uring ? "io_uring" : "pread");
        close(fd);
}

START_TEST(test_round_trip_sizes)
{
        static const size_t sizes[] = { 0, 1, 4095, 100000, 3 * 1024 * 1024 + 17 };
        for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
                for (int mode = 0; mode < 4; mode++)
                        round_trip(sizes[i], 0, mode & 1, mode & 2);
}
END_TEST

START_TEST(test_round_trip_threads)
{
        /* zstd's threads (several jobs in one frame), io_uring both ways. */
        round_trip(24u << 20, 2, false, false);
        round_trip(9u << 20, 1, true, false);
}
END_TEST

/* io_uring refused (EPERM from io_uring_setup, as Docker's default seccomp
 * profile does): the same calls work through pread/pwrite and say why. Check
 * runs each test in its own child, so the filter dies with it. */
START_TEST(test_uring_refused_falls_back)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        ck_assert_ptr_nonnull(ctx);
        ck_assert_int_eq(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(io_uring_setup), 0), 0);
        ck_assert_int_eq(seccomp_load(ctx), 0);
        seccomp_release(ctx);

        size_t len = 2u << 20;
        _cleanup_free_ uint8_t *data = make_data(len, 9);
        int fd = tmp_file();
        archive_stats ws = write_archive(fd, data, len, 0, false);
        ck_assert_str_eq(ws.io, "pwrite");
        ck_assert_int_eq(ws.uring_err, -EPERM);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        _cleanup_free_ uint8_t *back = NULL;
        size_t back_len;
        archive_stats rs;
        ck_assert_int_eq(read_archive(fd, NULL, &back, &back_len, &rs), 0);
        ck_assert_str_eq(rs.io, "pread");
        ck_assert_int_eq(rs.uring_err, -EPERM);
        ck_assert(rs.verified);
        ck_assert_uint_eq(back_len, len);
        ck_assert_mem_eq(back, data, len);
        close(fd);
}
END_TEST

/* ---- pipes ---- */

typedef struct pump {
        int fd;
        const uint8_t *data;
        size_t len;
        uint8_t *got; /* drain: what was read */
        size_t got_len;
} pump;

static void *feed_thread(void *arg)
{
        pump *p = arg;
        /* Small, uneven writes: the reader sees many short reads. */
        for (size_t off = 0, step = 1; off < p->len;) {
                size_t n = MIN(step, p->len - off);
                if (write_all(p->fd, p->data + off, n) < 0)
                        break;
                off += n;
                step = step * 5 % 70001 + 1;
        }
        close(p->fd);
        return NULL;
}

static void *drain_thread(void *arg)
{
        pump *p = arg;
        size_t cap = 1 << 20;
        p->got = malloc(cap);
        for (;;) {
                if (p->got_len == cap)
                        p->got = realloc(p->got, cap *= 2);
                ssize_t n = read(p->fd, p->got + p->got_len, cap - p->got_len);
                if (n <= 0)
                        break;
                p->got_len += (size_t)n;
        }
        close(p->fd);
        return NULL;
}

START_TEST(test_pipes_both_ways)
{
        size_t len = 5u << 20;
        _cleanup_free_ uint8_t *data = make_data(len, 5);
        /* Written into a pipe. */
        int pw[2];
        ck_assert_int_eq(pipe2(pw, O_CLOEXEC), 0);
        pump drain = { .fd = pw[0] };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, drain_thread, &drain), 0);
        archive_stats ws = write_archive(pw[1], data, len, -1, false);
        ck_assert_str_eq(ws.io, "write");
        close(pw[1]);
        pthread_join(t, NULL);
        ck_assert_uint_eq(drain.got_len, ws.file_bytes);

        /* Read back from a pipe, both formats' checks on the stream path. */
        int pr[2];
        ck_assert_int_eq(pipe2(pr, O_CLOEXEC), 0);
        pump feed = { .fd = pr[1], .data = drain.got, .len = drain.got_len };
        ck_assert_int_eq(pthread_create(&t, NULL, feed_thread, &feed), 0);
        _cleanup_free_ uint8_t *back = NULL;
        size_t back_len;
        archive_stats rs;
        ck_assert_int_eq(read_archive(pr[0], NULL, &back, &back_len, &rs), 0);
        pthread_join(t, NULL);
        close(pr[0]);
        ck_assert_str_eq(rs.io, "read");
        ck_assert(rs.verified);
        ck_assert_uint_eq(back_len, len);
        ck_assert_mem_eq(back, data, len);
        free(drain.got);
}
END_TEST

/* ---- damage ---- */

/* A small archive in memory (its bytes, via a file). */
static uint8_t *archive_bytes(size_t content_len, size_t *ret_len, uint8_t **ret_data)
{
        uint8_t *data = make_data(content_len, 77);
        int fd = tmp_file();
        archive_stats ws = write_archive(fd, data, content_len, 0, false);
        uint8_t *a = malloc(ws.file_bytes);
        ck_assert_int_eq(pread(fd, a, ws.file_bytes, 0), (ssize_t)ws.file_bytes);
        close(fd);
        *ret_len = ws.file_bytes;
        *ret_data = data;
        return a;
}

static int file_of(const uint8_t *bytes, size_t len)
{
        int fd = tmp_file();
        ck_assert_int_eq(write_all(fd, bytes, len), 0);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

/* Read bytes through a pipe (the stream path: no early size check). */
static int read_via_pipe(const uint8_t *bytes, size_t len, archive_read_opts *o)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pump feed = { .fd = p[1], .data = bytes, .len = len };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, feed_thread, &feed), 0);
        uint8_t *back;
        size_t back_len;
        int r = read_archive(p[0], o, &back, &back_len, NULL);
        close(p[0]); /* the feeder gets EPIPE if the reader stopped early */
        pthread_join(t, NULL);
        free(back);
        return r;
}

START_TEST(test_truncated_refused)
{
        size_t len;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ uint8_t *a = archive_bytes(200000, &len, &data);
        size_t cuts[200], n = 0;
        for (size_t c = 0; c < len && n < 150; c += len / 140 + 1)
                cuts[n++] = c;
        static const size_t ends[] = { 1, 4, 31, 32, 33, 71, 72, 73, 76 };
        for (size_t i = 0; i < ARRAY_SIZE(ends); i++)
                cuts[n++] = len - ends[i];
        for (size_t i = 0; i < n; i++) {
                int fd = file_of(a, cuts[i]);
                archive_reader *r;
                char err[256] = "";
                int k = archive_reader_new(fd, NULL, &r, err, sizeof(err));
                /* A file: refused at open, before a byte is decompressed. */
                if (cuts[i] >= 4)
                        ck_assert_msg(k == -EBADMSG, "cut at %zu of %zu: open gave %d", cuts[i], len, k);
                if (k == 0)
                        archive_reader_free(r);
                else
                        ck_assert_msg(strstr(err, "truncated") || strstr(err, "empty") || strstr(err, "not an"),
                                      "cut at %zu: %s", cuts[i], err);
                close(fd);
                /* A stream: refused by the end at the latest. */
                int s = read_via_pipe(a, cuts[i], NULL);
                ck_assert_msg(s == -EBADMSG, "cut at %zu of %zu through a pipe: %d", cuts[i], len, s);
        }
}
END_TEST

START_TEST(test_bit_flips_refused)
{
        size_t len;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ uint8_t *a = archive_bytes(60000, &len, &data);
        uint8_t *b = malloc(len);
        /* Every byte of the header and the trailer, a spread of the body. */
        for (size_t pos = 0; pos < len; pos += (pos < 40 || pos + 80 > len) ? 1 : 13) {
                memcpy(b, a, len);
                b[pos] ^= (uint8_t)(1u << (pos % 8));
                int fd = file_of(b, len);
                uint8_t *back;
                size_t back_len;
                int r = read_archive(fd, NULL, &back, &back_len, NULL);
                free(back);
                close(fd);
                ck_assert_msg(r < 0, "flip at byte %zu of %zu was not noticed", pos, len);
                ck_assert_msg(r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EFBIG, "flip at %zu: %d", pos, r);
        }
        free(b);
}
END_TEST

START_TEST(test_trailing_bytes_refused)
{
        size_t len;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ uint8_t *a = archive_bytes(10000, &len, &data);
        uint8_t *b = malloc(len + 1);
        memcpy(b, a, len);
        b[len] = 0;
        int fd = file_of(b, len + 1);
        uint8_t *back;
        size_t back_len;
        ck_assert_int_eq(read_archive(fd, NULL, &back, &back_len, NULL), -EBADMSG);
        free(back);
        close(fd);
        ck_assert_int_eq(read_via_pipe(b, len + 1, NULL), -EBADMSG);
        free(b);
}
END_TEST

START_TEST(test_newer_version_refused)
{
        size_t len;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ uint8_t *a = archive_bytes(1000, &len, &data);
        a[16] = ARCHIVE_VERSION + 1;
        ck_assert_int_eq(read_via_pipe(a, len, NULL), -EPROTONOSUPPORT);
}
END_TEST

/* ---- plain zstd and the window limit ---- */

/* A plain zstd stream of data with the given window (its header declares it:
 * the content size is not pledged). */
static uint8_t *plain_zstd(const uint8_t *data, size_t len, int window_log, size_t *ret_len)
{
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ck_assert_int_eq(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)), 0);
        if (window_log)
                ck_assert_int_eq(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log)), 0);
        size_t cap = ZSTD_compressBound(len) + 64;
        uint8_t *out = malloc(cap);
        ZSTD_outBuffer o = { out, cap, 0 };
        /* ZSTD_e_end on the first call would pledge the size and shrink the window. */
        ZSTD_inBuffer in = { data, len, 0 };
        ck_assert_int_eq(ZSTD_isError(ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue)), 0);
        ck_assert_uint_eq(in.pos, len);
        ZSTD_inBuffer none = { NULL, 0, 0 };
        ck_assert_uint_eq(ZSTD_compressStream2(c, &o, &none, ZSTD_e_end), 0);
        ZSTD_freeCCtx(c);
        *ret_len = o.pos;
        return out;
}

START_TEST(test_plain_zstd)
{
        size_t len = 300000, zlen;
        _cleanup_free_ uint8_t *data = make_data(len, 3);
        _cleanup_free_ uint8_t *z = plain_zstd(data, len, 0, &zlen);
        int fd = file_of(z, zlen);
        _cleanup_free_ uint8_t *back = NULL;
        size_t back_len;
        archive_stats rs;
        ck_assert_int_eq(read_archive(fd, NULL, &back, &back_len, &rs), 0);
        ck_assert(!rs.verified);
        ck_assert_uint_eq(rs.kind, 0);
        ck_assert_uint_eq(back_len, len);
        ck_assert_mem_eq(back, data, len);
        /* Not when our format is required. */
        archive_read_opts o;
        archive_read_opts_init(&o);
        o.require_trailer = true;
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        uint8_t *b2;
        ck_assert_int_eq(read_archive(fd, &o, &b2, &back_len, NULL), -EBADMSG);
        free(b2);
        close(fd);
        /* Cut inside its frame: refused at the end. */
        ck_assert_int_eq(read_via_pipe(z, zlen - 3, NULL), -EBADMSG);
        /* Not zstd at all (a tar's first bytes). */
        static const uint8_t tarish[600] = "./workspace/file";
        ck_assert_int_eq(read_via_pipe(tarish, sizeof(tarish), NULL), -EBADMSG);
}
END_TEST

START_TEST(test_window_limit)
{
        size_t len = 1u << 20, zlen;
        _cleanup_free_ uint8_t *data = make_data(len, 4);
        _cleanup_free_ uint8_t *z = plain_zstd(data, len, 26, &zlen);
        /* 2^26 > the default 2^24: refused before the window is allocated. */
        int fd = file_of(z, zlen);
        uint8_t *back;
        size_t back_len;
        ck_assert_int_eq(read_archive(fd, NULL, &back, &back_len, NULL), -EFBIG);
        free(back);
        /* Allowed by a caller that raises the limit. */
        archive_read_opts o;
        archive_read_opts_init(&o);
        o.window_log_max = 26;
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        ck_assert_int_eq(read_archive(fd, &o, &back, &back_len, NULL), 0);
        ck_assert_uint_eq(back_len, len);
        ck_assert_mem_eq(back, data, len);
        free(back);
        close(fd);
}
END_TEST

/* ---- cancellation, the raw writer, the output file ---- */

START_TEST(test_cancel)
{
        int efd = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_ge(efd, 0);
        uint64_t one = 1;
        ck_assert_int_eq(write(efd, &one, sizeof(one)), (ssize_t)sizeof(one));
        size_t len = 4u << 20;
        _cleanup_free_ uint8_t *data = make_data(len, 1);
        for (int no_uring = 0; no_uring < 2; no_uring++) {
                int fd = tmp_file();
                archive_write_opts o;
                archive_write_opts_init(&o);
                o.cancel_fd = efd;
                o.no_uring = no_uring;
                o.level = 1;
                archive_writer *w;
                ck_assert_int_eq(archive_writer_new(fd, &o, &w), 0);
                int r = archive_writer_write(w, data, len);
                if (r == 0)
                        r = archive_writer_finish(w, NULL);
                ck_assert_int_eq(r, -ECANCELED);
                archive_writer_free(w);
                close(fd);
        }
        /* A reader on an idle pipe wakes up for the cancel. */
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        archive_read_opts ro;
        archive_read_opts_init(&ro);
        ro.cancel_fd = efd;
        archive_reader *r;
        ck_assert_int_eq(archive_reader_new(p[0], &ro, &r, NULL, 0), 0);
        uint8_t buf[64];
        ck_assert_int_eq(archive_reader_read(r, buf, sizeof(buf)), -ECANCELED);
        archive_reader_free(r);
        close(p[0]);
        close(p[1]);
        close(efd);
}
END_TEST

/* A sparse sink (aio_out_seek, what snapshot import writes its files with):
 * bytes land at the offsets asked for, with io_uring and with pwrite, a seek
 * to where the bytes go anyway changes nothing, the gaps stay holes; a stream
 * cannot seek. */
static void seek_sink(bool no_uring)
{
        const size_t big = AIO_BUF_BYTES + 300000; /* crosses a buffer boundary */
        _cleanup_free_ uint8_t *data = make_data(big, 5);
        int fd = tmp_file();
        aio_file f;
        ck_assert_int_eq(aio_open(&f, fd, true, -1, no_uring), 0);
        ck_assert_str_eq(aio_mode_name(&f), !no_uring && uring_works() ? "io_uring" : "pwrite");
        ck_assert_int_eq(aio_out_write(&f, "head", 4), 0);
        ck_assert_int_eq(aio_out_seek(&f, 4), 0); /* where it goes anyway */
        ck_assert_int_eq(aio_out_write(&f, "+more", 5), 0);
        ck_assert_int_eq(aio_out_seek(&f, (1u << 20) + 5), 0);
        ck_assert_int_eq(aio_out_write(&f, data, big), 0);
        ck_assert_int_eq(aio_out_seek(&f, 4u << 20), 0);
        ck_assert_int_eq(aio_out_write(&f, "tail", 4), 0);
        /* Every buffer filled and submitted, then a seek: the current buffer is
         * one whose write is still in flight (io_uring), none of it pending. */
        const size_t all = AIO_N_BUFS * AIO_BUF_BYTES;
        _cleanup_free_ uint8_t *full = make_data(all, 6);
        ck_assert_int_eq(aio_out_seek(&f, 8u << 20), 0);
        ck_assert_int_eq(aio_out_write(&f, full, all), 0);
        ck_assert_int_eq(aio_out_seek(&f, 16u << 20), 0);
        ck_assert_int_eq(aio_out_write(&f, "end", 3), 0);
        ck_assert_int_eq(aio_out_flush(&f), 0);
        aio_close(&f);

        struct stat st;
        char head[9];
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (16 << 20) + 3);
        _cleanup_free_ uint8_t *full_back = malloc(all);
        ck_assert_int_eq(pread(fd, full_back, all, 8 << 20), (ssize_t)all);
        ck_assert_mem_eq(full_back, full, all);
        ck_assert_int_eq(pread(fd, head, 3, 16 << 20), 3);
        ck_assert_mem_eq(head, "end", 3);
        ck_assert_int_eq(pread(fd, head, 9, 0), 9);
        ck_assert_mem_eq(head, "head+more", 9);
        _cleanup_free_ uint8_t *back = malloc(big);
        ck_assert_int_eq(pread(fd, back, big, (1 << 20) + 5), (ssize_t)big);
        ck_assert_mem_eq(back, data, big);
        ck_assert_int_eq(pread(fd, head, 4, 4 << 20), 4);
        ck_assert_mem_eq(head, "tail", 4);
        /* Nothing was written between the pieces. */
        ck_assert_int_le(lseek(fd, 0, SEEK_HOLE), 4096);
        ck_assert_int_ge(lseek(fd, 4096, SEEK_DATA), 1 << 20);
        ck_assert_int_le(lseek(fd, (1 << 20) + 5 + (off_t)big, SEEK_HOLE), (1 << 20) + (off_t)big + 4096);
        ck_assert_int_le(lseek(fd, (4 << 20) + 4, SEEK_HOLE), (4 << 20) + 4096);
        ck_assert_int_eq(lseek(fd, (4 << 20) + 4096, SEEK_DATA), 8 << 20);
        ck_assert_int_eq(lseek(fd, (8 << 20) + (off_t)all, SEEK_DATA), 16 << 20);
        close(fd);
}

/* The last commit fills a buffer exactly, then flush: the buffer after it may
 * still be in flight; it must not be written again (it was, at the end of the
 * file: 512 KiB too many). */
static void sink_ends_on_buffer(bool no_uring, uint64_t start)
{
        const size_t all = (AIO_N_BUFS + 1) * AIO_BUF_BYTES;
        _cleanup_free_ uint8_t *data = make_data(all, 7);
        int fd = tmp_file();
        aio_file f;
        ck_assert_int_eq(aio_open(&f, fd, true, -1, no_uring), 0);
        ck_assert_int_eq(aio_out_seek(&f, start), 0);
        ck_assert_int_eq(aio_out_write(&f, data, all), 0);
        ck_assert_int_eq(aio_out_flush(&f), 0);
        aio_close(&f);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)(start + all));
        _cleanup_free_ uint8_t *back = malloc(all);
        ck_assert_int_eq(pread(fd, back, all, (off_t)start), (ssize_t)all);
        ck_assert_mem_eq(back, data, all);
        close(fd);
}

START_TEST(test_sink_seek)
{
        seek_sink(false);
        seek_sink(true);
        for (unsigned k = 0; k < 2; k++) {
                sink_ends_on_buffer(k, 0);
                sink_ends_on_buffer(k, 3u << 20);
        }
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        aio_file f;
        ck_assert_int_eq(aio_open(&f, p[1], true, -1, false), 0);
        ck_assert_int_eq(aio_out_seek(&f, 10), -ESPIPE);
        aio_close(&f);
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(test_raw_writer_at_offset)
{
        int fd = tmp_file();
        ck_assert_int_eq(write_all(fd, "head", 4), 0);
        size_t len = 1500000;
        _cleanup_free_ uint8_t *data = make_data(len, 8);
        archive_write_opts o;
        archive_write_opts_init(&o);
        o.format = ARCHIVE_FORMAT_RAW;
        archive_writer *w;
        ck_assert_int_eq(archive_writer_new(fd, &o, &w), 0);
        ck_assert_int_eq(archive_writer_write(w, data, len), 0);
        archive_stats st;
        ck_assert_int_eq(archive_writer_finish(w, &st), 0);
        archive_writer_free(w);
        ck_assert_uint_eq(st.file_bytes, len);
        ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), (off_t)(len + 4));
        uint8_t *back = malloc(len);
        ck_assert_int_eq(pread(fd, back, len, 4), (ssize_t)len);
        ck_assert_mem_eq(back, data, len);
        free(back);
        close(fd);
}
END_TEST

START_TEST(test_output_file)
{
        char dir[] = "/tmp/test_archive_dir.XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        char path[128], err[256];
        snprintf(path, sizeof(path), "%s/ws.tar.zst", dir);
        /* Discarded: nothing left. */
        archive_file f;
        ck_assert_int_eq(archive_file_create(path, &f, err, sizeof(err)), 0);
        ck_assert_int_eq(write_all(f.fd, "x", 1), 0);
        archive_file_discard(&f);
        archive_file_discard(&f);
        ck_assert_int_ne(access(path, F_OK), 0);
        ck_assert_int_eq(rmdir(dir), 0); /* empty: no temporary left */
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        /* Committed: the final name, complete. */
        ck_assert_int_eq(archive_file_create(path, &f, err, sizeof(err)), 0);
        ck_assert_int_ne(access(path, F_OK), 0);
        ck_assert_int_eq(write_all(f.fd, "abc", 3), 0);
        ck_assert_int_eq(archive_file_commit(&f, err, sizeof(err)), 0);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_size, 3);
        archive_file_discard(&f); /* after a commit: harmless */
        ck_assert_int_eq(stat(path, &st), 0);
        /* A directory is refused up front. */
        ck_assert_int_eq(archive_file_create(dir, &f, err, sizeof(err)), -EISDIR);
        ck_assert_ptr_nonnull(strstr(err, "is a directory"));
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *archive_suite(void)
{
        Suite *s = suite_create("archive");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 240);
        tcase_add_test(tc, test_round_trip_sizes);
        tcase_add_test(tc, test_round_trip_threads);
        tcase_add_test(tc, test_uring_refused_falls_back);
        tcase_add_test(tc, test_pipes_both_ways);
        tcase_add_test(tc, test_truncated_refused);
        tcase_add_test(tc, test_bit_flips_refused);
        tcase_add_test(tc, test_trailing_bytes_refused);
        tcase_add_test(tc, test_newer_version_refused);
        tcase_add_test(tc, test_plain_zstd);
        tcase_add_test(tc, test_window_limit);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_raw_writer_at_offset);
        tcase_add_test(tc, test_sink_seek);
        tcase_add_test(tc, test_output_file);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        /* A reader that refuses early closes its pipe: the feeder must see EPIPE,
         * not die of SIGPIPE (as the CLI, which ignores it, does). */
        signal(SIGPIPE, SIG_IGN);
        return run_suite(archive_suite());
}
