/* SPDX-License-Identifier: Apache-2.0 */
/* The file server's state across a snapshot (fs_state.c): saved from one
 * server, loaded into a fresh one, the guest's nodeids and open handles work on;
 * a file replaced on the host in between gives ESTALE, never its successor's
 * bytes through the old handle; hostile state files (truncated, damaged, huge
 * counts, bad slots, parents, names, cycles) are refused without a crash or an
 * unbounded allocation. */
#include <errno.h>
#include <linux/fuse.h>

#include "check_main.h"
#include "fs_test_req.h"

#define INNER "inner file bytes\n"
#define NEWER "a NEW file under the old name\n"

static uint8_t *saved;
static size_t saved_len;

/* A fresh server on the test tree that has answered nothing yet. */
static smolvm_fs *fresh(bool read_only)
{
        smolvm_fs *f = NULL;
        smolvm_fs_config cfg = { .root = tree.share, .read_only = read_only, .max_write = 128 * 1024,
                                 .keep_open = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &f), 0);
        return f;
}

static int load_into_fresh(const uint8_t *buf, size_t len, bool read_only)
{
        char err[256] = "";
        smolvm_fs_free(fs);
        fs = fresh(read_only);
        int r = smolvm_fs_state_load(fs, buf, len, err, sizeof(err));
        if (r < 0) {
                ck_assert_msg(err[0], "a refusal says why");
                /* Unusable after a failed load: replaced by a working one. */
                smolvm_fs_free(fs);
                fs = fresh(read_only);
                ck_assert_int_eq(do_init_minor(7, 37, NULL), 0);
        }
        return r;
}

static void reseal(uint8_t *buf, size_t len)
{
        put_le64(buf + len - 8, fnv1a64(FNV1A64_INIT, buf, len - 8));
}

static int64_t in_sub, in_inner, fh_inner, fh_dir;

/* sub/inner.txt looked up and opened, sub opened as a directory, then saved. */
static void state_setup(void)
{
        setup();
        char p[1024];
        snprintf(p, sizeof(p), "%s/sub", tree.share);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        ck_assert_int_eq(fs_test_write_file(p, "inner.txt", INNER, strlen(INNER)), 0);
        in_sub = lookup(FUSE_ROOT_ID, "sub", NULL);
        ck_assert_int_gt(in_sub, 1);
        in_inner = lookup((uint64_t)in_sub, "inner.txt", NULL);
        ck_assert_int_gt(in_inner, 1);
        fh_inner = open_op(FUSE_OPEN, (uint64_t)in_inner, O_RDONLY);
        ck_assert_int_gt(fh_inner, 0);
        fh_dir = open_op(FUSE_OPENDIR, (uint64_t)in_sub, O_RDONLY);
        ck_assert_int_gt(fh_dir, 0);
        ck_assert_int_eq(smolvm_fs_state_save(fs, SMOLVM_FS_STATE_MAX, &saved, &saved_len), 0);
}

static void state_teardown(void)
{
        free(saved);
        saved = NULL;
        teardown();
}

static void expect_read(int64_t fh, const char *want)
{
        ck_assert_int_eq(read_op((uint64_t)fh, 0, 4096), (ssize_t)strlen(want));
        ck_assert(memcmp(reply_body(), want, strlen(want)) == 0);
}

START_TEST(test_round_trip)
{
        ck_assert_int_eq(load_into_fresh(saved, saved_len, true), 0);
        /* No INIT again: the kernel did it with the old server. */
        ck_assert_int_eq(stats().n_inodes, 3);
        ck_assert_int_eq(stats().n_handles, 2);
        expect_read(fh_inner, INNER);
        uint64_t ino;
        ck_assert_int_eq(getattr_ino((uint64_t)in_inner, &ino), 0);
        /* The same file looked up again is the same nodeid (keyed by dev, ino). */
        ck_assert_int_eq(lookup((uint64_t)in_sub, "inner.txt", NULL), in_inner);
        ck_assert_int_eq(lookup(FUSE_ROOT_ID, "hello.txt", NULL) > 1, 1);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh_inner), 0);
        ck_assert_int_eq(release_op(FUSE_RELEASEDIR, (uint64_t)fh_dir), 0);
        ck_assert_int_eq(stats().n_handles, 0);
        /* Saved again from the restored server: loads as well (a fork of a fork). */
        free(saved);
        ck_assert_int_eq(smolvm_fs_state_save(fs, SMOLVM_FS_STATE_MAX, &saved, &saved_len), 0);
        ck_assert_int_eq(load_into_fresh(saved, saved_len, true), 0);
        ck_assert_int_eq(lookup((uint64_t)in_sub, "inner.txt", NULL), in_inner);
}
END_TEST

START_TEST(test_replaced_file_is_stale)
{
        /* The new file is made before the old one goes: it cannot reuse its inode. */
        char p[1024], q[1024];
        snprintf(p, sizeof(p), "%s/sub", tree.share);
        ck_assert_int_eq(fs_test_write_file(p, "new.tmp", NEWER, strlen(NEWER)), 0);
        snprintf(q, sizeof(q), "%s/sub/new.tmp", tree.share);
        snprintf(p, sizeof(p), "%s/sub/inner.txt", tree.share);
        ck_assert_int_eq(rename(q, p), 0);
        ck_assert_int_eq(load_into_fresh(saved, saved_len, true), 0);
        /* The old handle and nodeid: ESTALE, never the new file's bytes. */
        ck_assert_int_eq(read_op((uint64_t)fh_inner, 0, 4096), -ESTALE);
        uint64_t ino;
        ck_assert_int_eq(getattr_ino((uint64_t)in_inner, &ino), -ESTALE);
        /* A fresh lookup finds the new file under a new nodeid. */
        int64_t n = lookup((uint64_t)in_sub, "inner.txt", NULL);
        ck_assert_int_gt(n, 1);
        ck_assert_int_ne(n, in_inner);
        int64_t fh = open_op(FUSE_OPEN, (uint64_t)n, O_RDONLY);
        ck_assert_int_gt(fh, 0);
        expect_read(fh, NEWER);
        ck_assert_int_eq(release_op(FUSE_RELEASE, (uint64_t)fh_inner), 0);
}
END_TEST

START_TEST(test_read_only_holds)
{
        /* A state claiming a writable handle, loaded by a read-only server: the
         * handle is stale, nothing is opened for writing, mutations are EROFS. */
        size_t hoff = saved_len - 8 - 2 * 16;
        for (size_t k = 0; k < 2; k++)
                if (get_le32(saved + hoff + k * 16 + 12) == 0)
                        put_le32(saved + hoff + k * 16 + 12, 2);
        reseal(saved, saved_len);
        ck_assert_int_eq(load_into_fresh(saved, saved_len, true), 0);
        ck_assert_int_eq(read_op((uint64_t)fh_inner, 0, 4096), -ESTALE);
        req q;
        req_init(&q, FUSE_MKDIR, (uint64_t)in_sub);
        struct fuse_mkdir_in mi = { .mode = 0755 };
        req_add(&q, &mi, sizeof(mi));
        req_str(&q, "evil");
        ck_assert_int_ge(req_send(&q), 16);
        ck_assert_int_eq(reply_error(), -EROFS);
}
END_TEST

START_TEST(test_truncated_and_damaged)
{
        for (size_t n = 0; n < saved_len; n++)
                ck_assert_int_lt(load_into_fresh(saved, n, true), 0);
        for (size_t i = 0; i < saved_len; i += 3) {
                saved[i] ^= 0x40;
                ck_assert_int_lt(load_into_fresh(saved, saved_len, true), 0);
                saved[i] ^= 0x40;
        }
        /* Truncated but resealed: the parser itself must notice. */
        uint8_t *cut = malloc(saved_len);
        for (size_t n = 48; n < saved_len; n++) {
                memcpy(cut, saved, n - 8);
                reseal(cut, n);
                ck_assert_int_lt(load_into_fresh(cut, n, true), 0);
        }
        free(cut);
        ck_assert_int_eq(load_into_fresh(saved, saved_len, true), 0);
}
END_TEST

static void expect_refused_with(size_t off, uint32_t v)
{
        uint8_t *b = malloc(saved_len);
        memcpy(b, saved, saved_len);
        put_le32(b + off, v);
        reseal(b, saved_len);
        ck_assert_msg(load_into_fresh(b, saved_len, true) < 0, "offset %zu = %u accepted", off, v);
        free(b);
}

START_TEST(test_hostile_fields)
{
        /* Header: version, flags, minor, counts and slot counts, huge and off by one. */
        expect_refused_with(8, 2);
        expect_refused_with(12, 3);
        expect_refused_with(16, 5);
        expect_refused_with(16, 9999);
        for (size_t off = 20; off <= 32; off += 4) {
                expect_refused_with(off, 0xffffffffu);
                expect_refused_with(off, 1u << 26);
                if (off <= 24) /* one entry more than there are (slot counts may be larger) */
                        expect_refused_with(off, get_le32(saved + off) + 1);
        }
        /* Fewer slots than the entries use. */
        expect_refused_with(28, 2);
        expect_refused_with(32, 1);
        expect_refused_with(28, 0);
        expect_refused_with(36, 1);
        /* The first inode entry (at 40): slot 0, out of range, parent out of
         * range, its own parent, bad type, name length past the end. */
        expect_refused_with(40, 0);
        expect_refused_with(40, 9999);
        expect_refused_with(48, 9999);
        expect_refused_with(48, get_le32(saved + 40));
        expect_refused_with(52, 0x000f);
        expect_refused_with(52, 0xffff0000u | get_le16(saved + 52));
        /* Generation 0 (a free slot's nodeid). */
        expect_refused_with(44, 0);
        /* Handles (the last 32 bytes before the trailer): bad inode slot, unknown flags, slot twice. */
        size_t hoff = saved_len - 8 - 2 * 16;
        expect_refused_with(hoff + 8, 9999);
        expect_refused_with(hoff + 8, 0xffffffffu);
        expect_refused_with(hoff + 12, 0x80);
        expect_refused_with(hoff + 16, get_le32(saved + hoff));
        expect_refused_with(hoff + 4, 0);
        /* The file handle on the directory, the directory handle on the file. */
        ck_assert_uint_ne(get_le32(saved + hoff + 8), get_le32(saved + hoff + 16 + 8));
        expect_refused_with(hoff + 8, get_le32(saved + hoff + 16 + 8));
        expect_refused_with(hoff + 16 + 8, get_le32(saved + hoff + 8));
}
END_TEST

/* Two entries made each other's parent, or a file made a parent; a bad name. */
START_TEST(test_bad_tree)
{
        uint8_t *b = malloc(saved_len);
        /* Entry 0 at 40 (name "sub" or "inner.txt"), entry 1 after it. */
        size_t e1 = 40 + 40 + get_le16(saved + 54);
        uint32_t s0 = get_le32(saved + 40), s1 = get_le32(saved + e1);
        memcpy(b, saved, saved_len);
        put_le32(b + 48, s1);
        put_le32(b + e1 + 8, s0);
        reseal(b, saved_len);
        ck_assert_int_lt(load_into_fresh(b, saved_len, true), 0);
        /* The file as the parent of the directory. */
        memcpy(b, saved, saved_len);
        bool first_is_dir = get_le16(saved + 52) == (S_IFDIR >> 12);
        put_le32(b + (first_is_dir ? 48 : e1 + 8), first_is_dir ? s1 : s0);
        reseal(b, saved_len);
        ck_assert_int_lt(load_into_fresh(b, saved_len, true), 0);
        /* Names: "..", with a slash, with a NUL. */
        memcpy(b, saved, saved_len);
        memcpy(b + 80, "..", 2);
        put_le16(b + 54, 2);
        ck_assert_uint_ge(get_le16(saved + 54), 3u);
        memmove(b + 82, saved + 80 + get_le16(saved + 54), saved_len - 80 - get_le16(saved + 54));
        size_t shorter = saved_len - (get_le16(saved + 54) - 2);
        reseal(b, shorter);
        ck_assert_int_lt(load_into_fresh(b, shorter, true), 0);
        memcpy(b, saved, saved_len);
        b[81] = '/';
        reseal(b, saved_len);
        ck_assert_int_lt(load_into_fresh(b, saved_len, true), 0);
        b[81] = '\0';
        reseal(b, saved_len);
        ck_assert_int_lt(load_into_fresh(b, saved_len, true), 0);
        /* The same identity twice: entry 1 given entry 0's (dev, ino). */
        memcpy(b, saved, saved_len);
        memcpy(b + e1 + 24, saved + 40 + 24, 16);
        reseal(b, saved_len);
        ck_assert_int_lt(load_into_fresh(b, saved_len, true), 0);
        free(b);
}
END_TEST

START_TEST(test_busy_and_cap)
{
        char err[256];
        /* A server that has served (INIT) refuses a state. */
        ck_assert_int_eq(smolvm_fs_state_load(fs, saved, saved_len, err, sizeof(err)), -EBUSY);
        uint8_t *b = NULL;
        size_t n = 0;
        ck_assert_int_eq(smolvm_fs_state_save(fs, 64, &b, &n), -EFBIG);
        ck_assert_ptr_null(b);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fs_state");
        TCase *tc = tcase_create("state");
        tcase_add_checked_fixture(tc, state_setup, state_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_replaced_file_is_stale);
        tcase_add_test(tc, test_read_only_holds);
        tcase_add_test(tc, test_truncated_and_damaged);
        tcase_add_test(tc, test_hostile_fields);
        tcase_add_test(tc, test_bad_tree);
        tcase_add_test(tc, test_busy_and_cap);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
