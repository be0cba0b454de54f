/* SPDX-License-Identifier: Apache-2.0 */
/* The archive format: writer and reader over archive_io.h. See archive.h for
 * the layout and for how damage is found. */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "archive.h"
#include "archive_io.h"
#include "util.h"

#define HDR_MAGIC 0x184D2A5Au /* zstd skippable frames are 0x184D2A50..5F */
#define END_MAGIC 0x184D2A5Bu
#define ZSTD_MAGIC 0xFD2FB528u
#define HDR_PAYLOAD 24u
#define END_PAYLOAD 64u
#define HDR_BYTES (8u + HDR_PAYLOAD)
#define END_BYTES (8u + END_PAYLOAD)
static const char hdr_tag[8] = { 'S', 'M', 'O', 'L', 'V', 'M', 'A', 'R' };
static const char end_tag[8] = { 'S', 'M', 'O', 'L', 'V', 'M', 'E', 'N' };

static bool is_skippable(uint32_t magic)
{
        return (magic & 0xFFFFFFF0u) == 0x184D2A50u;
}

static int vfail(int *err, char *why, size_t why_len, int code, const char *fmt, va_list ap)
        __attribute__((format(printf, 5, 0)));
static int vfail(int *err, char *why, size_t why_len, int code, const char *fmt, va_list ap)
{
        if (*err)
                return *err;
        vsnprintf(why, why_len, fmt, ap);
        *err = code;
        return code;
}

/* ---- writer ---- */

struct archive_writer {
        aio_file io;
        ZSTD_CCtx *cctx; /* NULL: ARCHIVE_FORMAT_RAW */
        struct sha256_ctx sha;
        uint64_t content;
        unsigned kind, n_workers;
        bool finished;
        int error;
        char why[256];
};

void archive_write_opts_init(archive_write_opts *o)
{
        *o = (archive_write_opts){ .format = ARCHIVE_FORMAT_SMOLVM, .kind = ARCHIVE_KIND_TAR, .n_workers = -1,
                                   .cancel_fd = -1 };
}

static int wfail(archive_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wfail(archive_writer *w, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = vfail(&w->error, w->why, sizeof(w->why), code, fmt, ap);
        va_end(ap);
        return r;
}

static int wio(archive_writer *w, int r)
{
        return r < 0 ? wfail(w, r, "%s", aio_why(&w->io)) : 0;
}

static int zstd_code(size_t ret)
{
        return ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

/* zstd's threads pay only with cores to spare: on 2 CPUs they lost to one
 * thread in wall and CPU time alike (docs/benchmarks.md), the caller's thread
 * having I/O and hashing of its own to do. */
static unsigned auto_workers(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n >= ARCHIVE_MIN_CPUS_FOR_WORKERS ? (unsigned)MIN(n - 1, (long)ARCHIVE_MAX_WORKERS) : 0;
}

/* Bytes into the file as they are, hashed when they belong to the body. */
static int emit(archive_writer *w, const void *data, size_t len, bool hash)
{
        if (hash)
                sha256_update(&w->sha, len, data);
        return wio(w, aio_out_write(&w->io, data, len));
}

static int setup_zstd(archive_writer *w, const archive_write_opts *o)
{
        int level = o->level ? o->level : ARCHIVE_DEFAULT_LEVEL;
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx)
                return -ENOMEM;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)))
                return -EINVAL;
        unsigned n = o->n_workers < 0 ? auto_workers() : (unsigned)o->n_workers;
        /* A libzstd built without threads refuses: compress in our thread then. */
        if (n && ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, (int)n)))
                n = 0;
        w->n_workers = n;
        sha256_init(&w->sha);
        uint8_t hdr[HDR_BYTES] = { 0 };
        put_le32(hdr, HDR_MAGIC);
        put_le32(hdr + 4, HDR_PAYLOAD);
        memcpy(hdr + 8, hdr_tag, sizeof(hdr_tag));
        put_le16(hdr + 16, ARCHIVE_VERSION);
        put_le16(hdr + 18, (uint16_t)w->kind);
        return emit(w, hdr, sizeof(hdr), true);
}

int archive_writer_new(int fd, const archive_write_opts *o, archive_writer **ret)
{
        archive_write_opts d;
        if (!o) {
                archive_write_opts_init(&d);
                o = &d;
        }
        if ((o->format != ARCHIVE_FORMAT_SMOLVM && o->format != ARCHIVE_FORMAT_RAW) || o->level < 0 ||
            o->level > ARCHIVE_LEVEL_MAX || o->kind > UINT16_MAX)
                return -EINVAL;
        archive_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->kind = o->kind;
        int r = aio_open(&w->io, fd, true, o->cancel_fd, o->no_uring);
        if (r == 0 && o->format == ARCHIVE_FORMAT_SMOLVM)
                r = setup_zstd(w, o);
        if (r < 0) {
                archive_writer_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

/* Run zstd on in until it is consumed (ZSTD_e_continue) or the frame is
 * complete (ZSTD_e_end), compressing straight into the I/O buffers. */
static int compress(archive_writer *w, ZSTD_inBuffer *in, ZSTD_EndDirective end)
{
        for (;;) {
                uint8_t *p;
                size_t room;
                int r = wio(w, aio_out_space(&w->io, &p, &room));
                if (r < 0)
                        return r;
                ZSTD_outBuffer out = { p, room, 0 };
                size_t left = ZSTD_compressStream2(w->cctx, &out, in, end);
                if (ZSTD_isError(left))
                        return wfail(w, zstd_code(left), "zstd: %s", ZSTD_getErrorName(left));
                sha256_update(&w->sha, out.pos, p);
                r = wio(w, aio_out_commit(&w->io, out.pos));
                if (r < 0)
                        return r;
                if (end == ZSTD_e_end ? left == 0 : in->pos == in->size)
                        return 0;
        }
}

int archive_writer_write(archive_writer *w, const void *data, size_t len)
{
        if (w->error)
                return w->error;
        if (w->finished)
                return wfail(w, -EINVAL, "write after finish");
        if (len == 0)
                return 0;
        w->content += len;
        if (!w->cctx)
                return wio(w, aio_out_write(&w->io, data, len));
        ZSTD_inBuffer in = { data, len, 0 };
        return compress(w, &in, ZSTD_e_continue);
}

int archive_writer_finish(archive_writer *w, archive_stats *ret)
{
        if (w->error)
                return w->error;
        if (w->finished)
                return wfail(w, -EINVAL, "finished twice");
        w->finished = true;
        archive_stats st = { .content_bytes = w->content, .kind = w->cctx ? w->kind : 0, .n_workers = w->n_workers };
        if (w->cctx) {
                ZSTD_inBuffer in = { NULL, 0, 0 };
                int r = compress(w, &in, ZSTD_e_end);
                if (r < 0)
                        return r;
                uint8_t end[END_BYTES] = { 0 };
                put_le32(end, END_MAGIC);
                put_le32(end + 4, END_PAYLOAD);
                memcpy(end + 8, end_tag, sizeof(end_tag));
                put_le64(end + 16, w->content);
                put_le64(end + 24, w->io.bytes);
                put_le32(end + 32, 1); /* one frame: zstd's threads share it */
                sha256_digest(&w->sha, sizeof(st.sha256), st.sha256);
                memcpy(end + 40, st.sha256, sizeof(st.sha256));
                r = emit(w, end, sizeof(end), false);
                if (r < 0)
                        return r;
        }
        int r = wio(w, aio_out_flush(&w->io));
        if (r < 0)
                return r;
        st.file_bytes = w->io.bytes;
        st.io = aio_mode_name(&w->io);
        st.uring_err = w->io.uring_err;
        if (ret)
                *ret = st;
        return 0;
}

void archive_writer_progress(const archive_writer *w, uint64_t *ret_content, uint64_t *ret_file)
{
        *ret_content = w->content;
        *ret_file = w->io.bytes;
}

const char *archive_writer_error(const archive_writer *w)
{
        return w->error ? w->why : "";
}

void archive_writer_free(archive_writer *w)
{
        if (!w)
                return;
        /* zstd's threads first: they may still be compressing into their own
         * buffers, never ours. */
        ZSTD_freeCCtx(w->cctx);
        aio_close(&w->io);
        free(w);
}

/* ---- reader ---- */

typedef enum rd_state {
        RD_START,    /* nothing read yet */
        RD_BOUNDARY, /* ours: between frames; a zstd frame or the trailer comes next */
        RD_PLAIN,    /* plain zstd: between frames; anything zstd reads, or the end */
        RD_FRAME,    /* inside a frame */
        RD_TRAILER,  /* ours: the trailer's magic was seen */
        RD_AFTER,    /* ours: after the trailer; only the end may come */
        RD_DONE,
} rd_state;

struct archive_reader {
        aio_file io;
        ZSTD_DCtx *dctx;
        struct sha256_ctx sha;
        bool require_trailer, ours;
        unsigned window_log_max, kind;
        rd_state st;
        const uint8_t *chunk;     /* the I/O layer's buffer */
        size_t chunk_len, chunk_pos;
        uint8_t peek[END_BYTES];  /* a header, magic or trailer gathered across chunks */
        size_t peek_len, peek_fed;
        uint64_t consumed;        /* bytes of the file consumed: offsets in messages */
        uint64_t content;
        uint32_t frames;
        uint8_t digest[32];
        int error;
        char why[256];
};

void archive_read_opts_init(archive_read_opts *o)
{
        *o = (archive_read_opts){ .cancel_fd = -1 };
}

static int rfail(archive_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rfail(archive_reader *r, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int e = vfail(&r->error, r->why, sizeof(r->why), code, fmt, ap);
        va_end(ap);
        return e;
}

static int truncated(archive_reader *r, const char *where)
{
        return rfail(r, -EBADMSG, "truncated: the file ends %s, after %llu bytes", where,
                     (unsigned long long)r->consumed);
}

/* 1 with a fresh chunk, 0 at the end of the file, or a negative errno. */
static int next_chunk(archive_reader *r)
{
        const uint8_t *p = NULL;
        ssize_t n = aio_in_next(&r->io, &p);
        if (n < 0)
                return rfail(r, (int)n, "%s", aio_why(&r->io));
        r->chunk = p;
        r->chunk_len = (size_t)n;
        r->chunk_pos = 0;
        return n > 0;
}

/* Gather peek[0..need): 1 when complete, 0 at the end of the file first. */
static int gather(archive_reader *r, size_t need)
{
        while (r->peek_len < need) {
                if (r->chunk_pos == r->chunk_len) {
                        int k = next_chunk(r);
                        if (k <= 0)
                                return k;
                }
                size_t n = MIN(need - r->peek_len, r->chunk_len - r->chunk_pos);
                memcpy(r->peek + r->peek_len, r->chunk + r->chunk_pos, n);
                r->peek_len += n;
                r->chunk_pos += n;
        }
        return 1;
}

static void take_peek(archive_reader *r, bool hash)
{
        if (hash)
                sha256_update(&r->sha, r->peek_len, r->peek);
        r->consumed += r->peek_len;
        r->peek_len = r->peek_fed = 0;
}

static int check_header(archive_reader *r, const uint8_t *h)
{
        if (get_le32(h + 4) != HDR_PAYLOAD || memcmp(h + 8, hdr_tag, sizeof(hdr_tag)))
                return rfail(r, -EBADMSG, "damaged: its header is not a smolvm archive header");
        unsigned version = get_le16(h + 16);
        if (version == 0)
                return rfail(r, -EBADMSG, "damaged: its header says version 0");
        if (version > ARCHIVE_VERSION || get_le32(h + 20))
                return rfail(r, -EPROTONOSUPPORT, "made by a newer smolvm (archive version %u; this one reads %u)",
                             version, ARCHIVE_VERSION);
        r->kind = get_le16(h + 18);
        return 0;
}

static int start(archive_reader *r)
{
        int k = gather(r, 4);
        if (k < 0)
                return k;
        if (k == 0 && r->peek_len == 0)
                return rfail(r, -EBADMSG, "empty: not an archive");
        if (k == 0)
                return rfail(r, -EBADMSG, "not an archive: %zu bytes", r->peek_len);
        uint32_t magic = get_le32(r->peek);
        if (magic == HDR_MAGIC) {
                k = gather(r, HDR_BYTES);
                if (k <= 0)
                        return k < 0 ? k : truncated(r, "inside its header");
                k = check_header(r, r->peek);
                if (k < 0)
                        return k;
                r->ours = true;
                take_peek(r, true);
                r->st = RD_BOUNDARY;
                return 0;
        }
        if (magic == ZSTD_MAGIC && !r->require_trailer) {
                r->st = RD_FRAME; /* the 4 bytes in peek are fed first */
                return 0;
        }
        if (magic == ZSTD_MAGIC)
                return rfail(r, -EBADMSG, "plain zstd, not a smolvm archive (no header or checksum)");
        if (is_skippable(magic))
                return rfail(r, -EBADMSG, "not a smolvm archive: it starts with a skippable frame that is not "
                                          "our header (damaged, or pzstd's format)");
        return rfail(r, -EBADMSG, "not a zstd archive: it starts with %02x %02x %02x %02x", r->peek[0], r->peek[1],
                     r->peek[2], r->peek[3]);
}

static int boundary(archive_reader *r)
{
        int k = gather(r, 4);
        if (k < 0)
                return k;
        if (k == 0 && r->peek_len == 0)
                return rfail(r, -EBADMSG, "truncated: the file ends after %u frame%s (%llu bytes) without its "
                                          "trailer", r->frames, r->frames == 1 ? "" : "s",
                             (unsigned long long)r->consumed);
        if (k == 0)
                return truncated(r, "inside a frame header");
        uint32_t magic = get_le32(r->peek);
        if (magic == END_MAGIC) {
                r->st = RD_TRAILER;
                return 0;
        }
        if (magic != ZSTD_MAGIC)
                return rfail(r, -EBADMSG, "damaged at byte %llu: neither a zstd frame nor the trailer",
                             (unsigned long long)r->consumed);
        r->st = RD_FRAME;
        return 0;
}

static int trailer(archive_reader *r)
{
        int k = gather(r, END_BYTES);
        if (k <= 0)
                return k < 0 ? k : truncated(r, "inside its trailer");
        const uint8_t *t = r->peek;
        sha256_digest(&r->sha, sizeof(r->digest), r->digest);
        if (get_le32(t + 4) != END_PAYLOAD || memcmp(t + 8, end_tag, sizeof(end_tag)) || get_le32(t + 36))
                return rfail(r, -EBADMSG, "damaged: its trailer is not a smolvm archive trailer");
        if (get_le64(t + 16) != r->content || get_le64(t + 24) != r->consumed || get_le32(t + 32) != r->frames)
                return rfail(r, -EBADMSG,
                             "damaged: its trailer says %llu bytes in %u frames ending at byte %llu; read %llu bytes "
                             "in %u frames ending at byte %llu", (unsigned long long)get_le64(t + 16),
                             get_le32(t + 32), (unsigned long long)get_le64(t + 24), (unsigned long long)r->content,
                             r->frames, (unsigned long long)r->consumed);
        if (memcmp(t + 40, r->digest, sizeof(r->digest)))
                return rfail(r, -EBADMSG, "damaged: the SHA-256 of its %llu bytes does not match its trailer",
                             (unsigned long long)r->consumed);
        take_peek(r, false);
        r->st = RD_AFTER;
        return 0;
}

static int after(archive_reader *r)
{
        size_t extra = r->chunk_len - r->chunk_pos;
        int k = extra ? 1 : next_chunk(r);
        if (k < 0)
                return k;
        if (k > 0)
                return rfail(r, -EBADMSG, "damaged: bytes follow its trailer at byte %llu",
                             (unsigned long long)r->consumed);
        r->st = RD_DONE;
        return 0;
}

static int zstd_error(archive_reader *r, size_t ret)
{
        ZSTD_ErrorCode code = ZSTD_getErrorCode(ret);
        if (code == ZSTD_error_frameParameter_windowTooLarge)
                return rfail(r, -EFBIG, "frame %u needs a window over the limit of %llu MiB (made with zstd --long or "
                                        "--ultra?): recompress it with zstd -19 or less, without --long",
                             r->frames + 1, (1ull << r->window_log_max) >> 20);
        if (code == ZSTD_error_memory_allocation)
                return rfail(r, -ENOMEM, "zstd: %s", ZSTD_getErrorName(ret));
        return rfail(r, -EBADMSG, "damaged: zstd: %s in frame %u (near byte %llu)", ZSTD_getErrorName(ret),
                     r->frames + 1, (unsigned long long)r->consumed);
}

/* Decompress into out until it is full or the frame ends. */
static int frame(archive_reader *r, ZSTD_outBuffer *out)
{
        for (int stuck = 0;;) {
                bool from_peek = r->peek_fed < r->peek_len;
                const uint8_t *src = from_peek ? r->peek + r->peek_fed : r->chunk + r->chunk_pos;
                size_t avail = from_peek ? r->peek_len - r->peek_fed : r->chunk_len - r->chunk_pos;
                ZSTD_inBuffer in = { src, avail, 0 };
                size_t before = out->pos;
                size_t ret = ZSTD_decompressStream(r->dctx, out, &in);
                if (r->ours)
                        sha256_update(&r->sha, in.pos, src);
                r->consumed += in.pos;
                if (from_peek)
                        r->peek_fed += in.pos;
                else
                        r->chunk_pos += in.pos;
                r->content += out->pos - before;
                if (ZSTD_isError(ret))
                        return zstd_error(r, ret);
                if (ret == 0) {
                        r->frames++;
                        r->peek_len = r->peek_fed = 0;
                        r->st = r->ours ? RD_BOUNDARY : RD_PLAIN;
                        return 0;
                }
                if (out->pos == out->size)
                        return 0;
                if (in.pos < in.size) {
                        /* zstd returns with input left only when out is full. */
                        if (out->pos == before && in.pos == 0 && ++stuck > 2)
                                return rfail(r, -EIO, "zstd made no progress");
                        continue;
                }
                if (from_peek)
                        continue;
                int k = next_chunk(r);
                if (k < 0)
                        return k;
                if (k == 0)
                        return truncated(r, "inside a frame");
        }
}

/* Plain zstd between frames: the end, or more for zstd (the next frame, a
 * skippable frame, or garbage it refuses). */
static int plain_boundary(archive_reader *r)
{
        int k = r->chunk_pos < r->chunk_len ? 1 : next_chunk(r);
        if (k < 0)
                return k;
        r->st = k ? RD_FRAME : RD_DONE;
        return 0;
}

ssize_t archive_reader_read(archive_reader *r, void *buf, size_t len)
{
        if (len == 0)
                return -EINVAL;
        ZSTD_outBuffer out = { buf, len, 0 };
        while (!r->error && r->st != RD_DONE && out.pos < out.size) {
                switch (r->st) {
                case RD_START:
                        (void)start(r);
                        break;
                case RD_BOUNDARY:
                        (void)boundary(r);
                        break;
                case RD_PLAIN:
                        (void)plain_boundary(r);
                        break;
                case RD_FRAME:
                        (void)frame(r, &out);
                        break;
                case RD_TRAILER:
                        (void)trailer(r);
                        break;
                case RD_AFTER:
                        (void)after(r);
                        break;
                case RD_DONE:
                default:
                        break;
                }
        }
        /* What came before an error is handed out; the error comes next call. */
        if (out.pos > 0)
                return (ssize_t)out.pos;
        return r->error ? r->error : 0;
}

/* A regular file can be checked for truncation before anything is read: it
 * must end with a trailer that puts its end exactly there. */
static int check_file_end(archive_reader *r, int fd)
{
        struct stat st;
        off_t pos = lseek(fd, 0, SEEK_CUR);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || pos < 0 || st.st_size < pos)
                return 0;
        uint64_t size = (uint64_t)(st.st_size - pos);
        uint8_t head[4], end[END_BYTES];
        if (size < 4 || pread(fd, head, sizeof(head), pos) != (ssize_t)sizeof(head) || get_le32(head) != HDR_MAGIC)
                return 0; /* the stream checks say what it is */
        if (size < HDR_BYTES + END_BYTES ||
            pread(fd, end, sizeof(end), pos + (off_t)(size - END_BYTES)) != (ssize_t)sizeof(end) ||
            get_le32(end) != END_MAGIC || get_le32(end + 4) != END_PAYLOAD || memcmp(end + 8, end_tag, sizeof(end_tag)) ||
            get_le64(end + 24) != size - END_BYTES)
                return rfail(r, -EBADMSG, "truncated or damaged: its %llu bytes do not end with its trailer (cut "
                                          "short, or bytes were added)", (unsigned long long)size);
        return 0;
}

int archive_reader_new(int fd, const archive_read_opts *o, archive_reader **ret, char *err, size_t err_len)
{
        archive_read_opts d;
        if (!o) {
                archive_read_opts_init(&d);
                o = &d;
        }
        unsigned wlog = o->window_log_max ? o->window_log_max : ARCHIVE_WINDOW_LOG_MAX;
        if (wlog < 10 || wlog > 31)
                return -EINVAL;
        archive_reader *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->require_trailer = o->require_trailer;
        r->window_log_max = wlog;
        sha256_init(&r->sha);
        int k = aio_open(&r->io, fd, false, o->cancel_fd, o->no_uring);
        if (k < 0)
                rfail(r, k, "%s", strerror(-k));
        r->dctx = k == 0 ? ZSTD_createDCtx() : NULL;
        if (k == 0 && !r->dctx)
                k = rfail(r, -ENOMEM, "out of memory");
        if (k == 0 && ZSTD_isError(ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, (int)wlog)))
                k = rfail(r, -EINVAL, "zstd refuses a window limit of 2^%u", wlog);
        if (k == 0)
                k = check_file_end(r, fd);
        if (k < 0) {
                if (err)
                        snprintf(err, err_len, "%s", r->why);
                archive_reader_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

void archive_reader_progress(const archive_reader *r, uint64_t *ret_content, uint64_t *ret_file)
{
        *ret_content = r->content;
        *ret_file = r->consumed;
}

void archive_reader_stats(const archive_reader *r, archive_stats *ret)
{
        *ret = (archive_stats){ .content_bytes = r->content, .file_bytes = r->consumed, .kind = r->kind,
                                .verified = r->ours && r->st == RD_DONE && !r->error, .io = aio_mode_name(&r->io),
                                .uring_err = r->io.uring_err };
        if (ret->verified)
                memcpy(ret->sha256, r->digest, sizeof(ret->sha256));
}

const char *archive_reader_error(const archive_reader *r)
{
        return r->error ? r->why : "";
}

void archive_reader_free(archive_reader *r)
{
        if (!r)
                return;
        ZSTD_freeDCtx(r->dctx);
        aio_close(&r->io);
        free(r);
}

int archive_verify(int fd, const archive_read_opts *o, archive_stats *ret, char *err, size_t err_len)
{
        archive_reader *r;
        int k = archive_reader_new(fd, o, &r, err, err_len);
        if (k < 0)
                return k;
        _cleanup_free_ uint8_t *buf = malloc(AIO_BUF_BYTES);
        ssize_t n = buf ? 1 : -ENOMEM;
        while (n > 0)
                n = archive_reader_read(r, buf, AIO_BUF_BYTES);
        if (n < 0 && err)
                snprintf(err, err_len, "%s", r->error ? r->why : strerror((int)-n));
        if (n == 0 && ret)
                archive_reader_stats(r, ret);
        archive_reader_free(r);
        return (int)n;
}

/* ---- the output file ---- */

int archive_file_create(const char *path, archive_file *ret, char *err, size_t err_len)
{
        *ret = (archive_file)ARCHIVE_FILE_NONE;
        size_t n = strlen(path);
        if (n == 0 || path[n - 1] == '/')
                return errbuf_fail(-EISDIR, err, err_len, "%s: a file name is needed, not a directory", path);
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        _cleanup_free_ char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        char *name = strdup(base);
        if (!dir || !name) {
                free(name);
                return errbuf_fail(-ENOMEM, err, err_len, "out of memory");
        }
        archive_file f = { .fd = -1, .name = name };
        int r = 0;
        f.dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (f.dir_fd < 0) {
                r = errbuf_fail(negative_errno(), err, err_len, "open the directory %s: %s", dir, strerror(errno));
                goto fail;
        }
        struct stat st;
        if (fstatat(f.dir_fd, name, &st, 0) == 0 && S_ISDIR(st.st_mode)) {
                r = errbuf_fail(-EISDIR, err, err_len, "%s is a directory: name the archive file", path);
                goto fail;
        }
        /* The final name in the temporary one tells a user whose leftover it is;
         * a long one would pass NAME_MAX, and is left out. */
        for (int tries = 0; f.fd < 0; tries++) {
                uint8_t rnd[6];
                if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
                        r = errbuf_fail(-EIO, err, err_len, "getrandom failed");
                        goto fail;
                }
                free(f.tmp);
                if (asprintf(&f.tmp, ".%s.%02x%02x%02x%02x%02x%02x.part", strlen(name) <= 200 ? name : "smolvm",
                             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) < 0) {
                        f.tmp = NULL;
                        r = errbuf_fail(-ENOMEM, err, err_len, "out of memory");
                        goto fail;
                }
                f.fd = openat(f.dir_fd, f.tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
                if (f.fd < 0 && (errno != EEXIST || tries >= 8)) {
                        r = errbuf_fail(negative_errno(), err, err_len, "create a file in %s: %s", dir,
                                        strerror(errno));
                        goto fail;
                }
        }
        *ret = f;
        return 0;
fail:
        f.dir_fd = safe_close(f.dir_fd);
        free(f.tmp);
        free(f.name);
        return r;
}

int archive_file_commit(archive_file *f, char *err, size_t err_len)
{
        int r = 0;
        if (close(TAKE_FD(f->fd)) < 0) {
                r = errbuf_fail(negative_errno(), err, err_len, "write %s: %s", f->name, strerror(errno));
        } else if (renameat(f->dir_fd, f->tmp, f->dir_fd, f->name) < 0) {
                r = errbuf_fail(negative_errno(), err, err_len, "rename to %s: %s", f->name, strerror(errno));
        } else {
                free(f->tmp);
                f->tmp = NULL;
        }
        archive_file_discard(f);
        return r;
}

void archive_file_discard(archive_file *f)
{
        f->fd = safe_close(f->fd);
        if (f->tmp && f->dir_fd >= 0)
                (void)unlinkat(f->dir_fd, f->tmp, 0);
        f->dir_fd = safe_close(f->dir_fd);
        free(f->tmp);
        free(f->name);
        f->tmp = f->name = NULL;
}
