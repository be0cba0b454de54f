/* SPDX-License-Identifier: Apache-2.0 */
/* The server's tables at scale (fs/fs_inode.c, fs/fs_handle.c): more live
 * inodes than the old fixed table of 65,536, with far fewer fds than inodes
 * (idle fds evicted and re-resolved), and what a guest sees when a limit is
 * really reached: READDIRPLUS degrades to plain entries, only the LOOKUP that
 * cannot be served fails, and forgetting makes room again. */
#include <errno.h>
#include <linux/fuse.h>

#include "check_main.h"
#include "fs_test_req.h"

#define SCALE_FILES 70000
#define NEEDLE "needle in the last file\n"

/* dir/f000000 .. f<n-1>, empty but the last one. */
static void make_files(const char *name, int n, char ret_dir[static PATH_MAX])
{
        snprintf(ret_dir, PATH_MAX, "%s/%s", tree.share, name);
        ck_assert_int_eq(mkdir(ret_dir, 0755), 0);
        int dfd = open(ret_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
        for (int i = 0; i < n; i++) {
                char fname[32];
                snprintf(fname, sizeof(fname), "f%06d", i);
                int fd = openat(dfd, fname, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                ck_assert_int_ge(fd, 0);
                if (i == n - 1)
                        ck_assert_int_eq(write(fd, NEEDLE, strlen(NEEDLE)), (ssize_t)strlen(NEEDLE));
                close(fd);
        }
        close(dfd);
}

static void file_name(int i, char ret[static 16])
{
        snprintf(ret, 16, "f%06d", i);
}

/* LOOKUP/FORGET without Check's per-assertion bookkeeping (which costs a
 * write(2) each): 70,000 of them must stay quick. Returns the nodeid or the
 * negative errno. */
static int64_t quick_lookup(uint64_t parent, const char *name)
{
        struct {
                struct fuse_in_header h;
                char name[32];
        } q = { .h = { .opcode = FUSE_LOOKUP, .nodeid = parent, .unique = 7 } };
        size_t len = strlen(name) + 1;
        memcpy(q.name, name, len);
        q.h.len = (uint32_t)(sizeof(q.h) + len);
        struct iovec in = { &q, q.h.len }, out = { outbuf, 4096 };
        ssize_t n = smolvm_fs_handle(fs, &in, 1, &out, 1);
        struct fuse_out_header oh;
        memcpy(&oh, outbuf, sizeof(oh));
        if (n < 16 || oh.len != (uint32_t)n || oh.unique != 7)
                return -EPROTO;
        if (oh.error)
                return oh.error;
        if (n != 16 + (ssize_t)sizeof(struct fuse_entry_out))
                return -EPROTO;
        struct fuse_entry_out e;
        memcpy(&e, outbuf + 16, sizeof(e));
        return (int64_t)e.nodeid;
}

static void quick_forget(uint64_t nodeid, uint64_t n)
{
        struct {
                struct fuse_in_header h;
                struct fuse_forget_in f;
        } q = { .h = { .len = sizeof(q), .opcode = FUSE_FORGET, .nodeid = nodeid, .unique = 8 }, .f = { .nlookup = n } };
        struct iovec in = { &q, sizeof(q) };
        if (smolvm_fs_handle(fs, &in, 1, NULL, 0) != 0)
                ck_abort_msg("FORGET %llu answered", (unsigned long long)nodeid);
}

/* READDIRPLUS over a whole directory, as the kernel reads it (a page or more
 * per request). Returns the entries seen (each name once: offsets advance);
 * *ret_plus counts those that came with a nodeid, which the caller may FORGET. */
static int readdirplus_all(uint64_t dirnode, uint32_t size, int *ret_plus)
{
        int64_t dh = open_op(FUSE_OPENDIR, dirnode, O_RDONLY);
        ck_assert_int_gt(dh, 0);
        uint64_t off = 0;
        int count = 0, plus = 0;
        for (;;) {
                req q;
                req_init(&q, FUSE_READDIRPLUS, dirnode);
                struct fuse_read_in in = { .fh = (uint64_t)dh, .offset = off, .size = size };
                req_add(&q, &in, sizeof(in));
                ssize_t n = req_send(&q);
                ck_assert_int_eq(reply_error(), 0);
                if (n == 16)
                        break;
                const uint8_t *p = reply_body(), *end = outbuf + n;
                while (p < end) {
                        struct fuse_entry_out e;
                        struct fuse_dirent de;
                        memcpy(&e, p, sizeof(e));
                        memcpy(&de, p + sizeof(e), sizeof(de));
                        ck_assert_uint_gt(de.namelen, 0);
                        if (e.nodeid != 0) {
                                ck_assert_uint_eq(e.attr.ino, de.ino);
                                plus++;
                        }
                        count++;
                        off = de.off;
                        p += FUSE_DIRENTPLUS_SIZE((struct fuse_direntplus *)(uintptr_t)p);
                }
        }
        ck_assert_int_eq(release_op(FUSE_RELEASEDIR, (uint64_t)dh), 0);
        *ret_plus = plus;
        return count;
}

/* Past 65,536 live inodes with the default limits and only 256 fds: every
 * lookup succeeds, the fds stay in budget, an early (evicted) inode still
 * answers, the last file reads, and forgetting everything empties the table. */
START_TEST(test_inode_table_grows)
{
        char dir[PATH_MAX];
        make_files("many", SCALE_FILES, dir);
        make_fs_fds(true, 0, 0, 256);
        uint32_t base = stats().n_inodes;
        int64_t many = lookup(1, "many", NULL);
        ck_assert_int_gt(many, 1);
        uint64_t *node = calloc(SCALE_FILES, sizeof(*node));
        ck_assert_ptr_nonnull(node);
        for (int i = 0; i < SCALE_FILES; i++) {
                char name[16];
                file_name(i, name);
                int64_t n = quick_lookup((uint64_t)many, name);
                if (n <= 1)
                        ck_abort_msg("lookup %d of %d (%s): %lld", i, SCALE_FILES, name, (long long)n);
                node[i] = (uint64_t)n;
        }
        smolvm_fs_stats s = stats();
        ck_assert_uint_eq(s.n_inodes, base + 1 + SCALE_FILES);
        ck_assert_uint_le(s.n_fds, 256);
        ck_assert_uint_ge(s.n_evictions, SCALE_FILES - 256);
        /* The default limits come from the host, not a constant; an entry
         * costs little (slot, name, bucket), and it is all accounted. */
        ck_assert_uint_ge(s.max_mem_bytes, 64u << 20);
        ck_assert_uint_gt(s.max_inodes, 65536);
        ck_assert_uint_ge(s.mem_bytes, 64ull * s.n_inodes);
        ck_assert_uint_le(s.mem_bytes, 128ull * s.n_inodes);

        /* The first file's fd was evicted long ago: re-resolved by name. */
        struct stat st;
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/f000000", dir);
        ck_assert_int_eq(stat(p, &st), 0);
        uint64_t ino = 0;
        ck_assert_int_eq(getattr_ino(node[0], &ino), 0);
        ck_assert_uint_eq(ino, st.st_ino);
        int64_t fh = open_op(FUSE_OPEN, node[SCALE_FILES - 1], O_RDONLY);
        ck_assert_int_gt(fh, 0);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 4096), (ssize_t)strlen(NEEDLE));
        ck_assert_int_eq(memcmp(reply_body(), NEEDLE, strlen(NEEDLE)), 0);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);

        for (int i = 0; i < SCALE_FILES; i++)
                quick_forget(node[i], 1);
        ck_assert_uint_eq(stats().n_inodes, base + 1);
        /* Then the kernel's way: READDIRPLUS gives every entry a nodeid. */
        int plus = 0;
        ck_assert_int_eq(readdirplus_all((uint64_t)many, 128 * 1024, &plus), SCALE_FILES + 2);
        ck_assert_int_eq(plus, SCALE_FILES);
        ck_assert_uint_eq(stats().n_inodes, base + 1 + SCALE_FILES);
        free(node);
}
END_TEST

/* A table really full (a small limit, as a hostile guest that never forgets
 * would reach the real one): READDIRPLUS still lists every name, LOOKUP fails
 * only for names it cannot register, everything known keeps working, and a
 * FORGET makes room. */
START_TEST(test_inode_limit_degrades)
{
        char dir[PATH_MAX];
        make_files("many", 200, dir);
        make_fs(true, 64, 0);
        int64_t many = lookup(1, "many", NULL);
        int64_t hello = lookup(1, "hello.txt", NULL);
        ck_assert_int_gt(hello, 1);
        uint32_t base = stats().n_inodes;

        int plus = 0;
        ck_assert_int_eq(readdirplus_all((uint64_t)many, 4096, &plus), 202);
        ck_assert_int_gt(plus, 0);
        ck_assert_int_lt(plus, 200);
        ck_assert_uint_eq(stats().n_inodes, base + (uint32_t)plus);
        ck_assert_uint_le(stats().n_inodes, 64);
        /* Listing again costs nothing new and still lists everything. */
        int plus2 = 0;
        ck_assert_int_eq(readdirplus_all((uint64_t)many, 4096, &plus2), 202);
        ck_assert_uint_le(stats().n_inodes, 64);

        /* LOOKUP of names not in the table: served while there is room, then
         * ENFILE for that request only. */
        int ok = 0, enfile = 0, first_refused = -1;
        for (int i = 0; i < 200; i++) {
                char name[16];
                file_name(i, name);
                int64_t n = lookup((uint64_t)many, name, NULL);
                if (n > 1) {
                        ok++;
                } else {
                        ck_assert_int_eq(n, -ENFILE);
                        enfile++;
                        if (first_refused < 0)
                                first_refused = i;
                }
        }
        ck_assert_int_gt(enfile, 0);
        ck_assert_int_eq(ok + enfile, 200);
        ck_assert_uint_eq(stats().n_inodes, 64);
        /* Known inodes still answer; the share is not dead. */
        uint64_t ino;
        ck_assert_int_eq(getattr_ino((uint64_t)hello, &ino), 0);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)hello, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 64), (ssize_t)strlen(FS_TEST_HELLO));
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
        ck_assert_int_eq(lookup(1, "hello.txt", NULL), hello);
        /* The guest forgets one: the refused name is served now. */
        forget((uint64_t)hello, 3);
        char name[16];
        file_name(first_refused, name);
        ck_assert_int_gt(lookup((uint64_t)many, name, NULL), 1);
}
END_TEST

/* A small memory budget (as a hostile guest would exhaust the real one): the
 * lookup that would pass it fails with ENOMEM, the charge never passes the
 * budget, READDIRPLUS still lists everything, and a FORGET makes room. */
START_TEST(test_memory_limit)
{
        char dir[PATH_MAX];
        make_files("many", 10000, dir);
        smolvm_fs_free(fs);
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true, .max_mem_bytes = 1u << 20, .keep_open = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
        ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
        ck_assert_uint_eq(stats().max_mem_bytes, 1u << 20);
        int64_t many = quick_lookup(1, "many");
        ck_assert_int_gt(many, 1);

        int plus = 0;
        ck_assert_int_eq(readdirplus_all((uint64_t)many, 64 * 1024, &plus), 10002);
        ck_assert_int_gt(plus, 1000);
        ck_assert_int_lt(plus, 10000);
        ck_assert_uint_le(stats().mem_bytes, 1u << 20);

        int ok = 0, first_refused = -1;
        uint64_t first_ok = 0;
        for (int i = 0; i < 10000; i++) {
                char name[16];
                file_name(i, name);
                int64_t n = quick_lookup((uint64_t)many, name);
                if (n > 1) {
                        ok++;
                        first_ok = first_ok ? first_ok : (uint64_t)n;
                } else if (n != -ENOMEM) {
                        ck_abort_msg("lookup %s: %lld, not ENOMEM", name, (long long)n);
                } else if (first_refused < 0) {
                        first_refused = i;
                }
        }
        ck_assert_int_gt(ok, plus);
        ck_assert_int_ge(first_refused, 0);
        smolvm_fs_stats s = stats();
        ck_assert_uint_le(s.mem_bytes, 1u << 20);
        ck_assert_uint_eq(s.n_inodes, 2 + (uint32_t)ok);
        /* Known inodes answer; after a FORGET the refused name is served. */
        uint64_t ino;
        ck_assert_int_eq(getattr_ino(first_ok, &ino), 0);
        quick_forget(first_ok, 2);
        char name[16];
        file_name(first_refused, name);
        ck_assert_int_gt(quick_lookup((uint64_t)many, name), 1);
}
END_TEST

#define N_DIRS 300
#define DEPTH 100
#define FEW_FDS 32

static void read_expect(uint64_t nodeid, const char *want)
{
        int64_t fh = open_op(FUSE_OPEN, nodeid, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 64), (ssize_t)strlen(want));
        ck_assert_int_eq(memcmp(reply_body(), want, strlen(want)), 0);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh), 0);
}

/* Directories give up their fds too: many more known directories than fds
 * (each with a known child, as the guest's cached dentries keep them) all stay
 * usable, a file whose directory was evicted as well is re-resolved from the
 * nearest ancestor that has an fd (here a hundred levels up), and ".." of an
 * evicted directory's child works. */
START_TEST(test_dir_eviction)
{
        char p[PATH_MAX + 64];
        snprintf(p, sizeof(p), "%s/dirs", tree.share);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        for (int i = 0; i < N_DIRS; i++) {
                char body[16];
                snprintf(p, sizeof(p), "%s/dirs/d%03d", tree.share, i);
                ck_assert_int_eq(mkdir(p, 0755), 0);
                snprintf(body, sizeof(body), "d%03d", i);
                ck_assert_int_eq(fs_test_write_file(p, "f", body, strlen(body)), 0);
        }
        int n = snprintf(p, sizeof(p), "%s/deep", tree.share);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        for (int d = 0; d < DEPTH; d++) {
                n += snprintf(p + n, sizeof(p) - (size_t)n, "/a");
                ck_assert_int_lt(n, (int)sizeof(p) - 8);
                ck_assert_int_eq(mkdir(p, 0755), 0);
        }
        ck_assert_int_eq(fs_test_write_file(p, "leaf", "bottom", 6), 0);
        make_fs_fds(true, 0, 0, FEW_FDS);

        /* A chain of a hundred directories, then the 300 directories and their
         * files push every fd of the chain out. */
        int64_t deep = quick_lookup(1, "deep"), chain[DEPTH + 1];
        ck_assert_int_gt(deep, 1);
        chain[0] = deep;
        for (int d = 1; d <= DEPTH; d++) {
                chain[d] = quick_lookup((uint64_t)chain[d - 1], "a");
                ck_assert_int_gt(chain[d], 1);
        }
        int64_t leaf = quick_lookup((uint64_t)chain[DEPTH], "leaf");
        ck_assert_int_gt(leaf, 1);
        int64_t dirs = quick_lookup(1, "dirs"), dn[N_DIRS], fn[N_DIRS];
        for (int i = 0; i < N_DIRS; i++) {
                char name[16];
                snprintf(name, sizeof(name), "d%03d", i);
                dn[i] = quick_lookup((uint64_t)dirs, name);
                fn[i] = dn[i] > 1 ? quick_lookup((uint64_t)dn[i], "f") : dn[i];
                if (dn[i] <= 1 || fn[i] <= 1)
                        ck_abort_msg("lookup of dirs/%s/f: %lld, %lld", name, (long long)dn[i], (long long)fn[i]);
        }
        smolvm_fs_stats s = stats();
        ck_assert_uint_le(s.n_fds, FEW_FDS);
        ck_assert_uint_eq(s.n_inodes, 3 + DEPTH + 1 + 2 * N_DIRS);

        for (int k = 0; k < N_DIRS; k++) {
                int i = (k * 37) % N_DIRS;
                char want[16];
                snprintf(want, sizeof(want), "d%03d", i);
                read_expect((uint64_t)fn[i], want);
                ck_assert_uint_le(stats().n_fds, FEW_FDS);
        }
        read_expect((uint64_t)leaf, "bottom");
        ck_assert_uint_le(stats().n_fds, FEW_FDS);
        /* ".." of a directory whose parent was evicted again meanwhile. */
        for (int i = 0; i < N_DIRS; i++)
                ck_assert_int_eq(lookup((uint64_t)dn[i], "f", NULL), fn[i]);
        ck_assert_int_eq(lookup((uint64_t)chain[DEPTH], "..", NULL), chain[DEPTH - 1]);
        ck_assert_int_eq(lookup((uint64_t)chain[DEPTH / 2], "a", NULL), chain[DEPTH / 2 + 1]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fs_scale");
        TCase *tc = tcase_create("scale");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 280);
        tcase_add_test(tc, test_inode_table_grows);
        tcase_add_test(tc, test_inode_limit_degrades);
        tcase_add_test(tc, test_memory_limit);
        tcase_add_test(tc, test_dir_eviction);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
