/* SPDX-License-Identifier: Apache-2.0 */
/* Named sparse files in an archive (common/archive_entries.c), what snapshot
 * export/import carry: a sparse round trip keeps holes and bytes; hostile
 * content inside an intact archive (a path as a name, chunks past the size,
 * overlapping or going back, a wrong count, bytes after the end marker, an
 * end inside an entry, an entry larger than the caller's buffer) is refused.
 * And the qcow2 header reader import uses on the disk chain (common/qemu_img.c). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_entries.h"
#include "archive_io.h"
#include "check_main.h"
#include "qemu_img.h"
#include "util.h"

static int tmp_file(void)
{
        char path[] = "/tmp/test_archive_entries.XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        return fd;
}

static void fill(int fd, off_t off, size_t len, uint8_t seed)
{
        uint8_t *p = malloc(len);
        ck_assert_ptr_nonnull(p);
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)(seed + i * 7 + (i >> 11));
        ck_assert_int_eq(pwrite(fd, p, len, off), (ssize_t)len);
        free(p);
}

static archive_writer *new_writer(int fd)
{
        archive_write_opts o;
        archive_write_opts_init(&o);
        o.kind = ARCHIVE_KIND_SNAPSHOT;
        o.level = 1;
        archive_writer *w = NULL;
        ck_assert_int_eq(archive_writer_new(fd, &o, &w), 0);
        return w;
}

static archive_reader *new_reader(int fd)
{
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        archive_read_opts o;
        archive_read_opts_init(&o);
        o.require_trailer = true;
        archive_reader *r = NULL;
        char err[256];
        ck_assert_int_eq(archive_reader_new(fd, &o, &r, err, sizeof(err)), 0);
        return r;
}

/* What the archive's I/O layer picks for a file here: io_uring, or pwrite where
 * it is refused (a seccomp filter, a kernel setting). */
static const char *sink_mode(void)
{
        int fd = tmp_file();
        aio_file f;
        ck_assert_int_eq(aio_open(&f, fd, true, -1, false), 0);
        const char *mode = f.mode == AIO_URING ? "io_uring" : "pwrite";
        aio_close(&f);
        close(fd);
        return mode;
}

/* Extraction writes through io_uring (several writes in flight while the next
 * chunk is decompressed) or, asked to, pwrite: the same file either way. */
static void sparse_round_trip(bool no_uring)
{
        const uint64_t size = 8u << 20;
        int src = tmp_file();
        ck_assert_int_eq(ftruncate(src, (off_t)size), 0);
        fill(src, 0, 4096, 1);
        fill(src, 1 << 20, 3u << 20, 2); /* crosses chunk boundaries */
        fill(src, (7 << 20) + 4096, 100, 3);
        int arc = tmp_file();
        archive_writer *w = new_writer(arc);
        archive_entries_writer ew = { .w = w };
        char err[256] = "";
        ck_assert_int_eq(archive_entries_put_mem(&ew, "meta.json", "{\"a\":1}", 7, err, sizeof(err)), 0);
        ck_assert_int_eq(archive_entries_put_file(&ew, "ram", src, err, sizeof(err)), 0);
        ck_assert_int_eq(archive_entries_put_end(&ew, err, sizeof(err)), 0);
        ck_assert_int_eq(archive_writer_finish(w, NULL), 0);
        archive_writer_free(w);
        /* Holes cost nothing: what was put is the data, not the size. */
        ck_assert_uint_le(ew.data_bytes, 7 + 4096 + (3u << 20) + 4096 + 100);

        archive_reader *r = new_reader(arc);
        archive_entries_reader er = { .r = r, .no_uring = no_uring };
        archive_entry e;
        char meta[64];
        ck_assert_int_eq(archive_entries_next(&er, &e, err, sizeof(err)), 1);
        ck_assert_str_eq(e.name, "meta.json");
        ck_assert_int_eq(archive_entries_extract_mem(&er, &e, meta, sizeof(meta), err, sizeof(err)), 0);
        ck_assert_int_eq(memcmp(meta, "{\"a\":1}", 7), 0);
        ck_assert_int_eq(archive_entries_next(&er, &e, err, sizeof(err)), 1);
        ck_assert_str_eq(e.name, "ram");
        ck_assert_uint_eq(e.size, size);
        int out = tmp_file();
        ck_assert_msg(archive_entries_extract_fd(&er, &e, out, err, sizeof(err)) == 0, "extract: %s", err);
        ck_assert_str_eq(er.io, no_uring ? "pwrite" : sink_mode());
        ck_assert_int_eq(archive_entries_next(&er, &e, err, sizeof(err)), 0);
        ck_assert_msg(archive_entries_finish(&er, err, sizeof(err)) == 0, "finish: %s", err);
        archive_reader_free(r);

        struct stat st;
        ck_assert_int_eq(fstat(out, &st), 0);
        ck_assert_uint_eq((uint64_t)st.st_size, size);
        uint8_t *a = malloc(size), *b = malloc(size);
        ck_assert_int_eq(pread(src, a, size, 0), (ssize_t)size);
        ck_assert_int_eq(pread(out, b, size, 0), (ssize_t)size);
        ck_assert_int_eq(memcmp(a, b, size), 0);
        free(a);
        free(b);
        /* The holes stayed holes: far less than the size is allocated, and the
         * range between the first two data extents is a hole. */
        ck_assert_uint_lt((uint64_t)st.st_blocks * 512, size / 2);
        off_t hole = lseek(out, 0, SEEK_HOLE);
        ck_assert_int_le(hole, 1 << 20);
        close(src);
        close(out);
        close(arc);
}

START_TEST(test_sparse_round_trip)
{
        sparse_round_trip(false);
        sparse_round_trip(true);
}
END_TEST

/* A write that fails while others are in flight (here: past RLIMIT_FSIZE, the
 * way a full disk fails a write) fails the extraction, naming the entry. Check
 * runs each test in a child of its own: the limit dies with it. */
START_TEST(test_extract_write_fails)
{
        const uint64_t size = 6u << 20;
        int src = tmp_file();
        fill(src, 0, (size_t)size, 4);
        int arc = tmp_file();
        archive_writer *w = new_writer(arc);
        archive_entries_writer ew = { .w = w };
        char err[256] = "";
        ck_assert_int_eq(archive_entries_put_file(&ew, "disk.qcow2", src, err, sizeof(err)), 0);
        ck_assert_int_eq(archive_entries_put_end(&ew, err, sizeof(err)), 0);
        ck_assert_int_eq(archive_writer_finish(w, NULL), 0);
        archive_writer_free(w);

        for (int no_uring = 0; no_uring < 2; no_uring++) {
                archive_reader *r = new_reader(arc);
                archive_entries_reader er = { .r = r, .no_uring = no_uring };
                archive_entry e;
                int out = tmp_file();
                signal(SIGXFSZ, SIG_IGN);
                struct rlimit old, lim = { .rlim_cur = 2u << 20, .rlim_max = RLIM_INFINITY };
                ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
                lim.rlim_max = old.rlim_max;
                ck_assert_int_eq(archive_entries_next(&er, &e, err, sizeof(err)), 1);
                /* The file has its size before the limit (extract's own ftruncate
                 * then grows nothing): its first 2 MiB are written, the writes
                 * past them fail. */
                ck_assert_int_eq(ftruncate(out, (off_t)size), 0);
                ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
                int k = archive_entries_extract_fd(&er, &e, out, err, sizeof(err));
                ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
                ck_assert_msg(k == -EFBIG, "extract (no_uring %d): %d %s", no_uring, k, err);
                ck_assert_msg(strstr(err, "disk.qcow2") != NULL, "no entry name in '%s'", err);
                archive_reader_free(r);
                close(out);
        }
        close(src);
        close(arc);
}
END_TEST

/* An intact archive (our own writer) whose content is the given bytes. */
static int raw_archive(const void *content, size_t len)
{
        int fd = tmp_file();
        archive_writer *w = new_writer(fd);
        ck_assert_int_eq(archive_writer_write(w, content, len), 0);
        ck_assert_int_eq(archive_writer_finish(w, NULL), 0);
        archive_writer_free(w);
        return fd;
}

static size_t entry_hdr(uint8_t *p, const char *name, uint64_t size)
{
        memcpy(p, "SVFE", 4);
        put_le16(p + 4, (uint16_t)strlen(name));
        put_le16(p + 6, 0);
        put_le64(p + 8, size);
        memcpy(p + 16, name, strlen(name));
        return 16 + strlen(name);
}

static size_t chunk(uint8_t *p, uint64_t off, uint32_t len)
{
        put_le64(p, off);
        put_le32(p + 8, len);
        put_le32(p + 12, 0);
        memset(p + 16, 'x', len);
        return 16 + len;
}

static size_t end_marker(uint8_t *p, uint64_t n)
{
        memcpy(p, "SVEE", 4);
        put_le32(p + 4, 0);
        put_le64(p + 8, n);
        return 16;
}

/* Read every entry of fd into a tmp file each; the first failure's errno. */
static int read_entries(int fd, char *err, size_t err_len)
{
        archive_reader *r = new_reader(fd);
        archive_entries_reader er = { .r = r };
        archive_entry e;
        int k;
        while ((k = archive_entries_next(&er, &e, err, err_len)) > 0) {
                int out = tmp_file();
                k = archive_entries_extract_fd(&er, &e, out, err, err_len);
                close(out);
                if (k < 0)
                        break;
        }
        if (k == 0)
                k = archive_entries_finish(&er, err, err_len);
        archive_reader_free(r);
        return k;
}

START_TEST(test_hostile_content_refused)
{
        uint8_t buf[1024];
        char err[256];
        size_t n;
        int fd;

        /* The well-formed baseline passes. */
        n = entry_hdr(buf, "ok", 10);
        n += chunk(buf + n, 0, 4);
        n += chunk(buf + n, 10, 0);
        n += end_marker(buf + n, 1);
        fd = raw_archive(buf, n);
        ck_assert_msg(read_entries(fd, err, sizeof(err)) == 0, "baseline: %s", err);
        close(fd);

        static const char *const bad_names[] = { "../etc", "a/b", ".hidden", "sp ace" };
        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
                n = entry_hdr(buf, bad_names[i], 1);
                n += chunk(buf + n, 1, 0);
                n += end_marker(buf + n, 1);
                fd = raw_archive(buf, n);
                ck_assert_int_eq(read_entries(fd, err, sizeof(err)), -EBADMSG);
                ck_assert_ptr_nonnull(strstr(err, "invalid name"));
                close(fd);
        }

        /* A chunk past the size, one going back, a zero chunk before the end. */
        const struct { uint64_t off1; uint32_t len1; uint64_t off2; uint32_t len2; } bad_chunks[] = {
                { 8, 4, 10, 0 }, /* 8 + 4 > 10 */
                { 4, 4, 2, 2 },  /* back below 8 */
                { 0, 2, 5, 0 },  /* ends before the size */
        };
        for (size_t i = 0; i < sizeof(bad_chunks) / sizeof(bad_chunks[0]); i++) {
                n = entry_hdr(buf, "f", 10);
                n += chunk(buf + n, bad_chunks[i].off1, bad_chunks[i].len1);
                n += chunk(buf + n, bad_chunks[i].off2, bad_chunks[i].len2);
                n += chunk(buf + n, 10, 0);
                n += end_marker(buf + n, 1);
                fd = raw_archive(buf, n);
                ck_assert_int_eq(read_entries(fd, err, sizeof(err)), -EBADMSG);
                ck_assert_ptr_nonnull(strstr(err, "chunk"));
                close(fd);
        }

        /* The end marker counts 2, one entry was read. */
        n = entry_hdr(buf, "f", 1);
        n += chunk(buf + n, 1, 0);
        n += end_marker(buf + n, 2);
        fd = raw_archive(buf, n);
        ck_assert_int_eq(read_entries(fd, err, sizeof(err)), -EBADMSG);
        close(fd);

        /* Content after the end marker. */
        n = end_marker(buf, 0);
        memcpy(buf + n, "more", 4);
        fd = raw_archive(buf, n + 4);
        ck_assert_int_eq(read_entries(fd, err, sizeof(err)), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "follows its end marker"));
        close(fd);

        /* The content ends inside an entry. */
        n = entry_hdr(buf, "f", 10);
        n += chunk(buf + n, 0, 4);
        fd = raw_archive(buf, n);
        ck_assert_int_eq(read_entries(fd, err, sizeof(err)), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "ends"));
        close(fd);

        /* An entry larger than the caller's buffer: -EFBIG before any byte. */
        n = entry_hdr(buf, "f", 100);
        n += chunk(buf + n, 100, 0);
        n += end_marker(buf + n, 1);
        fd = raw_archive(buf, n);
        archive_reader *r = new_reader(fd);
        archive_entries_reader er = { .r = r };
        archive_entry e;
        char small[10];
        ck_assert_int_eq(archive_entries_next(&er, &e, err, sizeof(err)), 1);
        ck_assert_int_eq(archive_entries_extract_mem(&er, &e, small, sizeof(small), err, sizeof(err)), -EFBIG);
        archive_reader_free(r);
        close(fd);
}
END_TEST

START_TEST(test_names)
{
        ck_assert(archive_entry_name_valid("layer-0123456789ab.qcow2"));
        ck_assert(archive_entry_name_valid("ram"));
        ck_assert(!archive_entry_name_valid(""));
        ck_assert(!archive_entry_name_valid(".."));
        ck_assert(!archive_entry_name_valid("a/b"));
        ck_assert(!archive_entry_name_valid("a\nb"));
        char longname[ARCHIVE_ENTRY_NAME_MAX + 2];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ck_assert(!archive_entry_name_valid(longname));
        longname[ARCHIVE_ENTRY_NAME_MAX] = '\0';
        ck_assert(archive_entry_name_valid(longname));
        /* The writer refuses what the reader would. */
        int fd = tmp_file();
        archive_writer *w = new_writer(fd);
        archive_entries_writer ew = { .w = w };
        char err[256];
        ck_assert_int_eq(archive_entries_put_mem(&ew, "../x", "a", 1, err, sizeof(err)), -EINVAL);
        archive_writer_free(w);
        close(fd);
}
END_TEST

/* A qcow2 header: version, backing name at 512 (or none), incompatible features. */
static int qcow2_file(uint32_t version, const char *backing, uint64_t incompat)
{
        uint8_t h[1024] = { 0 };
        h[0] = 'Q';
        h[1] = 'F';
        h[2] = 'I';
        h[3] = 0xfb;
        h[7] = (uint8_t)version;
        if (backing) {
                h[8 + 6] = 0x02; /* offset 512, big-endian */
                h[16 + 3] = (uint8_t)strlen(backing);
                memcpy(h + 512, backing, strlen(backing));
        }
        for (int i = 0; i < 8; i++)
                h[72 + i] = (uint8_t)(incompat >> (56 - 8 * i));
        int fd = tmp_file();
        ck_assert_int_eq(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
        return fd;
}

START_TEST(test_qcow2_backing_name)
{
        char name[256];
        int fd = qcow2_file(3, "layer-0123456789ab.qcow2", 0);
        ck_assert_int_eq(qcow2_backing_name(fd, name, sizeof(name)), 1);
        ck_assert_str_eq(name, "layer-0123456789ab.qcow2");
        close(fd);
        fd = qcow2_file(3, NULL, 0);
        ck_assert_int_eq(qcow2_backing_name(fd, name, sizeof(name)), 0);
        close(fd);
        /* Its data in an external file: refused, whatever the backing name. */
        fd = qcow2_file(3, "x", 1u << 2);
        ck_assert_int_eq(qcow2_backing_name(fd, name, sizeof(name)), -EXDEV);
        close(fd);
        fd = qcow2_file(3, "x", 1ull << 40);
        ck_assert_int_eq(qcow2_backing_name(fd, name, sizeof(name)), -EBADMSG);
        close(fd);
        fd = qcow2_file(4, "x", 0);
        ck_assert_int_eq(qcow2_backing_name(fd, name, sizeof(name)), -EBADMSG);
        close(fd);
        fd = qcow2_file(3, "a-name-longer-than-the-buffer", 0);
        ck_assert_int_eq(qcow2_backing_name(fd, name, 8), -ENAMETOOLONG);
        close(fd);
        fd = tmp_file();
        uint8_t junk[104];
        memset(junk, 'x', sizeof(junk));
        ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
        ck_assert_int_eq(qcow2_backing_name(fd, name, sizeof(name)), -EBADMSG);
        close(fd);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("archive_entries");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_sparse_round_trip);
        tcase_add_test(tc, test_extract_write_fails);
        tcase_add_test(tc, test_hostile_content_refused);
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_qcow2_backing_name);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
