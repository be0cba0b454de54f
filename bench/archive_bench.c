/* SPDX-License-Identifier: Apache-2.0 */
/* The archive library alone (common/archive.c) on a host file, for
 * bench/workspace.sh to time against zstd(1) on the same bytes:
 *   archive_bench c IN OUT [LEVEL [WORKERS [uring|plain]]]   IN -> smolvm archive
 *   archive_bench d IN OUT [uring|plain]                     archive -> content
 * WORKERS: -1 automatic (the library's default), 0 none, N. Prints one line
 * on stderr: bytes, MB/s, the I/O used. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"

#define CHUNK ((size_t)1 << 20)

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
        fprintf(stderr, "usage: archive_bench c IN OUT [LEVEL [WORKERS [uring|plain]]]\n"
                        "       archive_bench d IN OUT [uring|plain]\n");
        return 2;
}

static int compress(int in, int out, int level, int workers, bool no_uring)
{
        archive_write_opts o;
        archive_write_opts_init(&o);
        o.level = level;
        o.n_workers = workers;
        o.no_uring = no_uring;
        archive_writer *w;
        int r = archive_writer_new(out, &o, &w);
        if (r < 0) {
                fprintf(stderr, "archive_bench: %s\n", strerror(-r));
                return 1;
        }
        char *buf = malloc(CHUNK);
        double t0 = now_s();
        ssize_t n;
        while (buf && (n = read(in, buf, CHUNK)) > 0)
                if ((r = archive_writer_write(w, buf, (size_t)n)) < 0)
                        break;
        archive_stats st;
        if (r == 0)
                r = archive_writer_finish(w, &st);
        double t = now_s() - t0;
        if (r < 0)
                fprintf(stderr, "archive_bench: %s\n", archive_writer_error(w));
        else
                fprintf(stderr, "compress: %llu -> %llu bytes, %.0f MB/s in, io %s, %u zstd threads\n",
                        (unsigned long long)st.content_bytes, (unsigned long long)st.file_bytes,
                        (double)st.content_bytes / t / 1e6, st.io, st.n_workers);
        archive_writer_free(w);
        free(buf);
        return r < 0;
}

static int decompress(int in, int out, bool no_uring)
{
        archive_read_opts o;
        archive_read_opts_init(&o);
        o.no_uring = no_uring;
        archive_reader *r;
        char err[256];
        int k = archive_reader_new(in, &o, &r, err, sizeof(err));
        if (k < 0) {
                fprintf(stderr, "archive_bench: %s\n", err);
                return 1;
        }
        char *buf = malloc(CHUNK);
        double t0 = now_s();
        ssize_t n = buf ? 1 : -ENOMEM;
        while (n > 0) {
                n = archive_reader_read(r, buf, CHUNK);
                if (n > 0 && write(out, buf, (size_t)n) != n)
                        n = -EIO;
        }
        double t = now_s() - t0;
        archive_stats st;
        archive_reader_stats(r, &st);
        if (n < 0)
                fprintf(stderr, "archive_bench: %s\n", archive_reader_error(r));
        else
                fprintf(stderr, "decompress: %llu -> %llu bytes, %.0f MB/s out, io %s, verified %d\n",
                        (unsigned long long)st.file_bytes, (unsigned long long)st.content_bytes,
                        (double)st.content_bytes / t / 1e6, st.io, st.verified);
        archive_reader_free(r);
        free(buf);
        return n < 0;
}

int main(int argc, char **argv)
{
        if (argc < 4 || (strcmp(argv[1], "c") && strcmp(argv[1], "d")))
                return usage();
        int in = open(argv[2], O_RDONLY | O_CLOEXEC);
        int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (in < 0 || out < 0) {
                fprintf(stderr, "archive_bench: %s: %s\n", in < 0 ? argv[2] : argv[3], strerror(errno));
                return 1;
        }
        if (argv[1][0] == 'c') {
                int level = argc > 4 ? atoi(argv[4]) : 0;
                int workers = argc > 5 ? atoi(argv[5]) : -1;
                bool plain = argc > 6 && !strcmp(argv[6], "plain");
                return compress(in, out, level, workers, plain);
        }
        return decompress(in, out, argc > 4 && !strcmp(argv[4], "plain"));
}
