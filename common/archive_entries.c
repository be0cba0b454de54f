/* SPDX-License-Identifier: Apache-2.0 */
/* Named sparse files in an archive's content: see archive_entries.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_entries.h"
#include "archive_io.h"
#include "fileutil.h"
#include "util.h"

#define ENTRY_MAGIC "SVFE"
#define END_MAGIC "SVEE"
#define HDR_BYTES 16u
#define CHUNK_HDR_BYTES 16u

bool archive_entry_name_valid(const char *name)
{
        return plain_name_valid(name, ARCHIVE_ENTRY_NAME_MAX);
}

/* ---- writing ---- */

static int wr(archive_entries_writer *ew, const void *p, size_t n, char *err, size_t err_len)
{
        int r = archive_writer_write(ew->w, p, n);
        return r < 0 ? errbuf_fail(r, err, err_len, "%s", archive_writer_error(ew->w)) : 0;
}

static int put_header(archive_entries_writer *ew, const char *name, uint64_t size, char *err, size_t err_len)
{
        if (!archive_entry_name_valid(name))
                return errbuf_fail(-EINVAL, err, err_len, "invalid entry name '%.64s'", name);
        uint8_t h[HDR_BYTES] = { 0 };
        memcpy(h, ENTRY_MAGIC, 4);
        put_le16(h + 4, (uint16_t)strlen(name));
        put_le64(h + 8, size);
        int r = wr(ew, h, sizeof(h), err, err_len);
        return r < 0 ? r : wr(ew, name, strlen(name), err, err_len);
}

static int put_chunk(archive_entries_writer *ew, uint64_t off, const void *data, size_t len, char *err, size_t err_len)
{
        uint8_t c[CHUNK_HDR_BYTES] = { 0 };
        put_le64(c, off);
        put_le32(c + 8, (uint32_t)len);
        int r = wr(ew, c, sizeof(c), err, err_len);
        if (r == 0 && len)
                r = wr(ew, data, len, err, err_len);
        if (r == 0 && len) {
                ew->data_bytes += len;
                if (ew->tick)
                        ew->tick(ew->userdata);
        }
        return r;
}

int archive_entries_put_mem(archive_entries_writer *ew, const char *name, const void *data, size_t len, char *err,
                            size_t err_len)
{
        int r = put_header(ew, name, len, err, err_len);
        for (size_t off = 0; r == 0 && off < len; off += ARCHIVE_CHUNK_MAX)
                r = put_chunk(ew, off, (const uint8_t *)data + off, MIN(ARCHIVE_CHUNK_MAX, len - off), err, err_len);
        if (r == 0)
                r = put_chunk(ew, len, NULL, 0, err, err_len);
        if (r == 0)
                ew->n_entries++;
        return r;
}

int archive_entries_put_file(archive_entries_writer *ew, const char *name, int fd, char *err, size_t err_len)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return errbuf_fail(negative_errno(), err, err_len, "fstat %s: %s", name, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return errbuf_fail(-EINVAL, err, err_len, "%s is not a regular file", name);
        uint64_t size = (uint64_t)st.st_size;
        int r = put_header(ew, name, size, err, err_len);
        if (r < 0)
                return r;
        _cleanup_free_ uint8_t *buf = malloc(ARCHIVE_CHUNK_MAX);
        if (!buf)
                return errbuf_fail(-ENOMEM, err, err_len, "out of memory");
        uint64_t pos = 0;
        while (pos < size) {
                off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break; /* a hole up to the end */
                if (data < 0)
                        return errbuf_fail(negative_errno(), err, err_len, "lseek %s: %s", name, strerror(errno));
                off_t hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0)
                        return errbuf_fail(negative_errno(), err, err_len, "lseek %s: %s", name, strerror(errno));
                uint64_t end = MIN((uint64_t)hole, size);
                for (pos = (uint64_t)data; pos < end;) {
                        size_t want = (size_t)MIN(end - pos, (uint64_t)ARCHIVE_CHUNK_MAX);
                        ssize_t n = pread(fd, buf, want, (off_t)pos);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return errbuf_fail(negative_errno(), err, err_len, "read %s: %s", name,
                                                   strerror(errno));
                        if (n == 0)
                                return errbuf_fail(-EIO, err, err_len, "read %s: it shrank while it was read", name);
                        r = put_chunk(ew, pos, buf, (size_t)n, err, err_len);
                        if (r < 0)
                                return r;
                        pos += (uint64_t)n;
                }
                pos = end;
        }
        r = put_chunk(ew, size, NULL, 0, err, err_len);
        if (r == 0)
                ew->n_entries++;
        return r;
}

int archive_entries_put_end(archive_entries_writer *ew, char *err, size_t err_len)
{
        uint8_t h[HDR_BYTES] = { 0 };
        memcpy(h, END_MAGIC, 4);
        put_le64(h + 8, ew->n_entries);
        return wr(ew, h, sizeof(h), err, err_len);
}

/* ---- reading ---- */

/* Exactly len bytes of content. The archive's error, or -EBADMSG when its
 * content (verified or not) ends first. */
static int rd(archive_entries_reader *er, void *buf, size_t len, const char *where, char *err, size_t err_len)
{
        uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = archive_reader_read(er->r, p, len);
                if (n < 0)
                        return errbuf_fail((int)n, err, err_len, "%s", *archive_reader_error(er->r)
                                                                           ? archive_reader_error(er->r)
                                                                           : strerror((int)-n));
                if (n == 0)
                        return errbuf_fail(-EBADMSG, err, err_len, "damaged: its content ends %s (entry %llu)", where,
                                           (unsigned long long)er->n_entries + 1);
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int archive_entries_next(archive_entries_reader *er, archive_entry *ret, char *err, size_t err_len)
{
        if (er->in_entry || er->ended)
                return errbuf_fail(-EINVAL, err, err_len, "archive entries: next called out of order");
        uint8_t h[HDR_BYTES];
        int r = rd(er, h, sizeof(h), "before its end marker", err, err_len);
        if (r < 0)
                return r;
        if (!memcmp(h, END_MAGIC, 4)) {
                if (get_le32(h + 4) || get_le64(h + 8) != er->n_entries)
                        return errbuf_fail(-EBADMSG, err, err_len,
                                           "damaged: its end marker counts %llu entries, %llu were read",
                                           (unsigned long long)get_le64(h + 8), (unsigned long long)er->n_entries);
                er->ended = true;
                return 0;
        }
        size_t name_len = get_le16(h + 4);
        if (memcmp(h, ENTRY_MAGIC, 4) || get_le16(h + 6) || name_len == 0 || name_len > ARCHIVE_ENTRY_NAME_MAX)
                return errbuf_fail(-EBADMSG, err, err_len, "damaged: entry %llu has no valid header",
                                   (unsigned long long)er->n_entries + 1);
        archive_entry e = { .size = get_le64(h + 8) };
        r = rd(er, e.name, name_len, "inside an entry's name", err, err_len);
        if (r < 0)
                return r;
        if (memchr(e.name, '\0', name_len) || !archive_entry_name_valid(e.name))
                return errbuf_fail(-EBADMSG, err, err_len, "damaged: entry %llu has an invalid name",
                                   (unsigned long long)er->n_entries + 1);
        if (e.size > (uint64_t)INT64_MAX)
                return errbuf_fail(-EBADMSG, err, err_len, "damaged: entry %s says %llu bytes", e.name,
                                   (unsigned long long)e.size);
        er->in_entry = true;
        *ret = e;
        return 1;
}

/* len bytes of content straight into out's buffers at file offset off: the
 * decompression fills one buffer while the kernel writes the ones before
 * (io_uring), so the writes no longer wait for it nor it for them. */
static int chunk_to_file(archive_entries_reader *er, const archive_entry *e, aio_file *out, uint64_t off,
                         size_t len, char *err, size_t err_len)
{
        int r = aio_out_seek(out, off);
        while (r == 0 && len > 0) {
                uint8_t *dst;
                size_t room;
                r = aio_out_space(out, &dst, &room);
                if (r < 0)
                        break;
                size_t n = MIN(room, len);
                r = rd(er, dst, n, "inside an entry's data", err, err_len);
                if (r < 0)
                        return r;
                r = aio_out_commit(out, n);
                len -= n;
        }
        return r < 0 ? errbuf_fail(r, err, err_len, "write %s: %s", e->name, aio_why(out)) : 0;
}

/* Walk the entry's chunks; each one's bytes go to out or into mem. */
static int extract(archive_entries_reader *er, const archive_entry *e, aio_file *out, uint8_t *mem, char *err,
                   size_t err_len)
{
        if (!er->in_entry)
                return errbuf_fail(-EINVAL, err, err_len, "archive entries: extract called out of order");
        uint64_t next = 0; /* chunks never go back below this */
        for (;;) {
                uint8_t c[CHUNK_HDR_BYTES];
                int r = rd(er, c, sizeof(c), "inside an entry", err, err_len);
                if (r < 0)
                        return r;
                uint64_t off = get_le64(c);
                uint32_t len = get_le32(c + 8);
                if (get_le32(c + 12) || len > ARCHIVE_CHUNK_MAX || off < next || off > e->size ||
                    len > e->size - off || (len == 0 && off != e->size))
                        return errbuf_fail(-EBADMSG, err, err_len,
                                           "damaged: entry %s has a chunk of %u bytes at offset %llu (file size %llu, "
                                           "next offset at least %llu)", e->name, len, (unsigned long long)off,
                                           (unsigned long long)e->size, (unsigned long long)next);
                if (len == 0)
                        break;
                r = mem ? rd(er, mem + off, len, "inside an entry's data", err, err_len)
                        : chunk_to_file(er, e, out, off, len, err, err_len);
                if (r < 0)
                        return r;
                next = off + len;
                er->data_bytes += len;
                if (er->tick)
                        er->tick(er->userdata);
        }
        if (out) {
                int r = aio_out_flush(out);
                if (r < 0)
                        return errbuf_fail(r, err, err_len, "write %s: %s", e->name, aio_why(out));
        }
        er->in_entry = false;
        er->n_entries++;
        return 0;
}

int archive_entries_extract_fd(archive_entries_reader *er, const archive_entry *e, int out_fd, char *err,
                               size_t err_len)
{
        /* The size first: what no chunk covers stays a hole. */
        if (ftruncate(out_fd, (off_t)e->size) < 0)
                return errbuf_fail(negative_errno(), err, err_len, "truncate %s to %llu bytes: %s", e->name,
                                   (unsigned long long)e->size, strerror(errno));
        aio_file out;
        int r = aio_open(&out, out_fd, true, -1, er->no_uring);
        if (r < 0) {
                aio_close(&out);
                return errbuf_fail(r, err, err_len, "write %s: %s", e->name, strerror(-r));
        }
        /* Chunks go at their offsets: only a file can take them. */
        if (out.mode == AIO_STREAM)
                r = errbuf_fail(-EINVAL, err, err_len, "%s: not a regular file", e->name);
        else
                r = extract(er, e, &out, NULL, err, err_len);
        er->io = aio_mode_name(&out);
        aio_close(&out);
        return r;
}

int archive_entries_extract_mem(archive_entries_reader *er, const archive_entry *e, void *buf, size_t buf_len,
                                char *err, size_t err_len)
{
        if (e->size > buf_len)
                return errbuf_fail(-EFBIG, err, err_len, "entry %s has %llu bytes, at most %zu expected", e->name,
                                   (unsigned long long)e->size, buf_len);
        if (e->size)
                memset(buf, 0, (size_t)e->size);
        return extract(er, e, NULL, buf, err, err_len);
}

int archive_entries_finish(archive_entries_reader *er, char *err, size_t err_len)
{
        if (!er->ended)
                return errbuf_fail(-EINVAL, err, err_len, "archive entries: finish before the end marker");
        uint8_t b;
        ssize_t n = archive_reader_read(er->r, &b, 1);
        if (n < 0)
                return errbuf_fail((int)n, err, err_len, "%s",
                                   *archive_reader_error(er->r) ? archive_reader_error(er->r) : strerror((int)-n));
        if (n > 0)
                return errbuf_fail(-EBADMSG, err, err_len, "damaged: content follows its end marker");
        archive_stats st;
        archive_reader_stats(er->r, &st);
        if (!st.verified)
                return errbuf_fail(-EBADMSG, err, err_len, "not a smolvm archive: it has no checksummed trailer");
        return 0;
}
