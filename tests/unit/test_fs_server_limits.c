/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE file server (fs/fs_server.c) at its limits, as a hostile guest
 * would push it: handle and inode tables full, more files than open fds
 * (eviction, also across a rename), several threads at once. Requests built
 * by hand (fs_test_req.h). */
#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>

#include "check_main.h"
#include "fs_test_req.h"

START_TEST(test_handle_exhaustion)
{
        make_fs(true, 0, 8);
        int64_t f = lookup(1, "hello.txt", NULL);
        int64_t fhs[8];
        for (int i = 0; i < 8; i++) {
                fhs[i] = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
                ck_assert_int_gt(fhs[i], 0);
        }
        ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY), -EMFILE);
        ck_assert_int_eq(open_op(FUSE_OPENDIR, 1, O_RDONLY), -EMFILE);
        ck_assert_uint_eq(stats().n_handles, 8);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fhs[3]), 0);
        int64_t again = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
        ck_assert_int_gt(again, 0);
        ck_assert_int_ne(again, fhs[3]);
        /* 20k more opens: all refused cleanly, no fd leak (100k below) */
        int before = 0;
        for (int fd = 0; fd < 4096; fd++)
                before += fcntl(fd, F_GETFD) >= 0;
        for (int i = 0; i < 20000; i++)
                ck_assert_int_eq(open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY), -EMFILE);
        int after = 0;
        for (int fd = 0; fd < 4096; fd++)
                after += fcntl(fd, F_GETFD) >= 0;
        ck_assert_int_eq(before, after);
}
END_TEST

START_TEST(test_default_handle_limit)
{
        /* Defaults: half of the fd budget (3/4 of RLIMIT_NOFILE). */
        int64_t f = lookup(1, "hello.txt", NULL);
        int ok = 0;
        for (int i = 0; i < 100000; i++) {
                int64_t r = open_op(FUSE_OPEN, (uint64_t)f, O_RDONLY);
                if (r > 0)
                        ok++;
                else
                        ck_assert(r == -EMFILE);
        }
        smolvm_fs_stats s = stats();
        ck_assert_int_gt(ok, 100);
        ck_assert_uint_eq(s.max_handles, s.max_fds / 2);
        ck_assert_int_eq(ok, (int)s.max_handles);
        ck_assert_uint_eq(s.n_handles, (uint32_t)ok);
        ck_assert_uint_le(s.n_fds, s.max_fds);
        /* the process still has fds to spare */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        close(fd);
}
END_TEST

START_TEST(test_inode_exhaustion)
{
        make_fs(true, 4, 0); /* root + 3 */
        int64_t a = lookup(1, "hello.txt", NULL), b = lookup(1, "big.bin", NULL), c = lookup(1, "dir", NULL);
        ck_assert_int_gt(a, 1);
        ck_assert_int_gt(b, 1);
        ck_assert_int_gt(c, 1);
        ck_assert_int_eq(lookup(1, "fifo", NULL), -ENFILE);
        ck_assert_int_eq(lookup(1, "hello.txt", NULL), a); /* known ones still work */
        /* a FORGET frees a slot for the next name */
        forget((uint64_t)a, 2);
        ck_assert_int_gt(lookup(1, "fifo", NULL), 1);
        ck_assert_uint_eq(stats().n_inodes, 4);
}
END_TEST

#define EVICT_FILES 200
#define EVICT_FDS 16

static void make_many(char ret_dir[static PATH_MAX])
{
        make_many_n(ret_dir, EVICT_FILES);
}

/* A guest that looks up more files than the fd budget: idle inode fds are
 * closed and re-resolved on use; the server never holds more than max_fds, every
 * file stays readable, and a name replaced on the host while evicted yields
 * ESTALE, never the other inode. */
START_TEST(test_fd_eviction)
{
        char dir[PATH_MAX];
        make_many(dir);
        make_fs_fds(true, 0, 0, EVICT_FDS);
        int64_t many = lookup(1, "many", NULL);
        ck_assert_int_gt(many, 1);
        uint64_t node[EVICT_FILES], ino[EVICT_FILES];
        for (int i = 0; i < EVICT_FILES; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d", i);
                struct fuse_entry_out e;
                int64_t n = lookup((uint64_t)many, name, &e);
                ck_assert_int_gt(n, 1);
                node[i] = (uint64_t)n;
                ino[i] = e.attr.ino;
                ck_assert_uint_le(stats().n_fds, EVICT_FDS);
        }
        ck_assert_uint_eq(stats().n_inodes, EVICT_FILES + 2);
        ck_assert_uint_ge(stats().n_evictions, EVICT_FILES - EVICT_FDS);
        /* Every one still works, in an order that defeats any recency. */
        for (int k = 0; k < 2 * EVICT_FILES; k++) {
                int i = (k * 37) % EVICT_FILES;
                uint64_t got;
                ck_assert_int_eq(getattr_ino(node[i], &got), 0);
                ck_assert_uint_eq(got, ino[i]);
                int64_t fh = open_op(FUSE_OPEN, node[i], O_RDONLY);
                ck_assert_int_gt(fh, 0);
                char want[32];
                snprintf(want, sizeof(want), "file-%d", i);
                ck_assert_int_eq(read_op((uint64_t)fh, 0, 64), (ssize_t)strlen(want));
                ck_assert_int_eq(memcmp(reply_body(), want, strlen(want)), 0);
                ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
                ck_assert_uint_le(stats().n_fds, EVICT_FDS);
        }
        /* Swap every name on the host for a new inode. */
        for (int i = 0; i < EVICT_FILES; i++) {
                char from[PATH_MAX + 32], to[PATH_MAX + 32];
                snprintf(from, sizeof(from), "%s/f%d", dir, i);
                snprintf(to, sizeof(to), "%s/moved%d", dir, i);
                ck_assert_int_eq(rename(from, to), 0);
                ck_assert_int_eq(fs_test_write_file(dir, from + strlen(dir) + 1, "impostor", 8), 0);
        }
        int stale = 0;
        for (int i = 0; i < EVICT_FILES; i++) {
                uint64_t got;
                int err = getattr_ino(node[i], &got);
                if (err == -ESTALE)
                        stale++;
                else
                        ck_assert_uint_eq(got, ino[i]); /* still pinned: the original inode */
                ck_assert_int_eq(err == 0 || err == -ESTALE, 1);
        }
        ck_assert_int_ge(stale, EVICT_FILES - EVICT_FDS);
        /* A fresh lookup of a moved file finds it under its new name and revives
         * the old nodeid there. */
        struct fuse_entry_out e;
        ck_assert_uint_eq((uint64_t)lookup((uint64_t)many, "moved7", &e), node[7]);
        uint64_t got;
        ck_assert_int_eq(getattr_ino(node[7], &got), 0);
        ck_assert_uint_eq(got, ino[7]);
}
END_TEST

/* In rw mode a RENAME through the server moves the entry with it: the evicted
 * inode is re-resolved under its new name. */
START_TEST(test_fd_eviction_rename)
{
        char dir[PATH_MAX];
        make_many(dir);
        make_fs_fds(false, 0, 0, EVICT_FDS);
        int64_t many = lookup(1, "many", NULL);
        struct fuse_entry_out e;
        int64_t f0 = lookup((uint64_t)many, "f0", &e);
        ck_assert_int_gt(f0, 1);
        req q;
        struct fuse_rename_in ri = { .newdir = 1 };
        req_init(&q, FUSE_RENAME, (uint64_t)many);
        req_add(&q, &ri, sizeof(ri));
        req_str(&q, "f0");
        req_str(&q, "renamed");
        ck_assert_int_eq(req_send(&q), 16);
        ck_assert_int_eq(reply_error(), 0);
        uint64_t evictions = stats().n_evictions;
        for (int i = 1; i < EVICT_FILES; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d", i);
                ck_assert_int_gt(lookup((uint64_t)many, name, NULL), 1);
        }
        ck_assert_uint_gt(stats().n_evictions, evictions);
        uint64_t got;
        ck_assert_int_eq(getattr_ino((uint64_t)f0, &got), 0);
        ck_assert_uint_eq(got, e.attr.ino);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)f0, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 64), 6);
        ck_assert_int_eq(memcmp(reply_body(), "file-0", 6), 0);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
        ck_assert_uint_le(stats().n_fds, EVICT_FDS);
}
END_TEST

/* ---- threads ---- */

static void *hammer(void *arg)
{
        (void)arg;
        uint8_t inb[256], *ob = malloc(256 * 1024);
        for (int i = 0; i < 3000; i++) {
                struct {
                        struct fuse_in_header h;
                        char name[16];
                } lk = { .h = { .opcode = FUSE_LOOKUP, .nodeid = 1, .unique = 1 } };
                strcpy(lk.name, (i & 1) ? "big.bin" : "dir");
                lk.h.len = (uint32_t)(sizeof(lk.h) + strlen(lk.name) + 1);
                struct iovec in = { &lk, lk.h.len }, out = { ob, 256 * 1024 };
                if (smolvm_fs_handle(fs, &in, 1, &out, 1) != 16 + (ssize_t)sizeof(struct fuse_entry_out))
                        continue;
                struct fuse_entry_out e;
                memcpy(&e, ob + 16, sizeof(e));
                struct fuse_in_header h = { .len = 16 + sizeof(struct fuse_open_in), .nodeid = e.nodeid,
                                            .unique = 2, .opcode = (i & 1) ? FUSE_OPEN : FUSE_OPENDIR };
                struct fuse_open_in oi = {0};
                memcpy(inb, &h, 16);
                memcpy(inb + 16, &oi, sizeof(oi));
                in = (struct iovec){ inb, h.len };
                uint64_t fh = 0;
                if (smolvm_fs_handle(fs, &in, 1, &out, 1) == 32) {
                        memcpy(&fh, ob + 16, 8);
                        struct fuse_read_in ri = { .fh = fh, .size = 64 * 1024, .offset = (uint64_t)i * 7 };
                        h = (struct fuse_in_header){ .len = 16 + sizeof(ri), .unique = 3,
                                                     .opcode = (i & 1) ? FUSE_READ : FUSE_READDIRPLUS };
                        memcpy(inb, &h, 16);
                        memcpy(inb + 16, &ri, sizeof(ri));
                        in = (struct iovec){ inb, h.len };
                        smolvm_fs_handle(fs, &in, 1, &out, 1);
                        struct fuse_release_in rl = { .fh = fh };
                        h = (struct fuse_in_header){ .len = 16 + sizeof(rl), .unique = 4,
                                                     .opcode = (i & 1) ? FUSE_RELEASE : FUSE_RELEASEDIR };
                        memcpy(inb, &h, 16);
                        memcpy(inb + 16, &rl, sizeof(rl));
                        in = (struct iovec){ inb, h.len };
                        smolvm_fs_handle(fs, &in, 1, &out, 1);
                }
                struct fuse_forget_in fi = { .nlookup = 1 };
                h = (struct fuse_in_header){ .len = 16 + sizeof(fi), .nodeid = e.nodeid, .unique = 5,
                                             .opcode = FUSE_FORGET };
                memcpy(inb, &h, 16);
                memcpy(inb + 16, &fi, sizeof(fi));
                in = (struct iovec){ inb, h.len };
                smolvm_fs_handle(fs, &in, 1, &out, 1);
        }
        free(ob);
        return NULL;
}

START_TEST(test_threads)
{
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        smolvm_fs_stats s = stats();
        ck_assert_uint_eq(s.n_handles, 0);
        /* READDIRPLUS lookups are not forgotten by the hammer: only root, dir,
         * big.bin and root's entries may remain. */
        ck_assert_uint_le(s.n_inodes, 20);
}
END_TEST
int main(void)
{
        Suite *s = suite_create("fs_server_limits");
        TCase *tc = tcase_create("limits");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 280);
        tcase_add_test(tc, test_handle_exhaustion);
        tcase_add_test(tc, test_default_handle_limit);
        tcase_add_test(tc, test_inode_exhaustion);
        tcase_add_test(tc, test_threads);
        tcase_add_test(tc, test_fd_eviction);
        tcase_add_test(tc, test_fd_eviction_rename);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
