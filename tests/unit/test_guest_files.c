/* SPDX-License-Identifier: Apache-2.0 */
/* The guest agent's file ops (guest-init/fileops.c) run on the host: the real
 * handler over a socketpair, on a private temp dir. write_file, read_file,
 * mkdir, list_tree, and what hostile requests to the path ops get. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest_ops_fixture.h"
#include "request.h"

/* ---- write_file ---- */

/* A write_file of no bytes: the request, then STDIN_EOF at once. */
static reply *write_empty(const char *path, bool mkdirs)
{
        int fd;
        pid_t pid = start_handler(&fd);
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\"%s}", path, mkdirs ? ",\"mkdirs\":true" : "");
        send_frame(fd, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        return finish(fd, pid);
}

START_TEST(write_file_content_mode_mkdirs)
{
        (void)umask(077); /* neither the file's nor the parents' mode may depend on it */
        int fd;
        pid_t pid = start_handler(&fd);
        const char *path = tp("w/a/b/file.txt");
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\",\"mode\":416,\"mkdirs\":true}", path);
        send_frame(fd, SMOLVM_FRAME_STDIN, "hello ", 6);
        uint8_t sig[4];
        put_le32(sig, 15);
        send_frame(fd, SMOLVM_FRAME_SIGNAL, sig, 4); /* meaningless here: ignored */
        send_frame(fd, SMOLVM_FRAME_STDIN, "", 0);
        send_frame(fd, SMOLVM_FRAME_STDIN, "world\n", 6);
        send_frame(fd, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        reply *rp = finish(fd, pid);
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "bytes"), 12);
        reply_free(rp);
        char *c = slurp(path, NULL);
        ck_assert_str_eq(c, "hello world\n");
        free(c);
        ck_assert_uint_eq(mode_of(path), 0640);
        ck_assert_uint_eq(mode_of(tp("w/a/b")), 0755);
        ck_assert_uint_eq(mode_of(tp("w/a")), 0755);
        ck_assert_int_eq(count_entries(tp("w/a/b")), 1); /* no temp file left */

        /* Replace it (new mode), with large frames: 3 MiB in 1 MiB frames. */
        size_t big = 3u << 20;
        char *data = malloc(big);
        for (size_t i = 0; i < big; i++)
                data[i] = (char)('a' + i % 23);
        pid = start_handler(&fd);
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\",\"mode\":384}", path);
        for (size_t off = 0; off < big; off += SMOLVM_FRAME_MAX_PAYLOAD)
                send_frame(fd, SMOLVM_FRAME_STDIN, data + off, SMOLVM_FRAME_MAX_PAYLOAD);
        send_frame(fd, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        rp = finish(fd, pid);
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "bytes"), (json_int_t)big);
        reply_free(rp);
        size_t len;
        c = slurp(path, &len);
        ck_assert_uint_eq(len, big);
        ck_assert(memcmp(c, data, big) == 0);
        free(c);
        free(data);
        ck_assert_uint_eq(mode_of(path), 0600);

        /* Empty file, default mode 0644. */
        rp = write_empty(tp("w/empty"), false);
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "bytes"), 0);
        reply_free(rp);
        ck_assert_uint_eq(mode_of(tp("w/empty")), 0644);
}
END_TEST

START_TEST(write_file_atomic_on_disconnect)
{
        const char *dir = tp("atomic");
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        const char *path = tp("atomic/f");
        put_file(path, "old content", 0644);

        /* The client vanishes mid-way: the old file stays, no temp file remains. */
        int fd;
        pid_t pid = start_handler(&fd);
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\"}", path);
        send_frame(fd, SMOLVM_FRAME_STDIN, "new partial", 11);
        close(fd);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        char *c = slurp(path, NULL);
        ck_assert_str_eq(c, "old content");
        free(c);
        ck_assert_int_eq(count_entries(dir), 1);

        /* A new path: nothing appears. Half-close: the client still hears why. */
        pid = start_handler(&fd);
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\"}", tp("atomic/new"));
        send_frame(fd, SMOLVM_FRAME_STDIN, "partial", 7);
        shutdown(fd, SHUT_WR);
        reply *rp = finish(fd, pid);
        ASSERT_ERROR(rp, EPIPE, "STDIN_EOF");
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), tp("atomic/new")));
        reply_free(rp);
        ck_assert_int_eq(access(tp("atomic/new"), F_OK), -1);
        ck_assert_int_eq(count_entries(dir), 1);

        /* A broken frame mid-way is the same. */
        pid = start_handler(&fd);
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\"}", tp("atomic/new"));
        send_frame(fd, SMOLVM_FRAME_STDIN, "partial", 7);
        ck_assert_int_eq(write(fd, "\x05\0\0\0\x63\0\0\0", 8), 8); /* unknown type 99 */
        rp = finish(fd, pid);
        ck_assert_ptr_nonnull(rp->error);
        ck_assert_ptr_null(rp->result);
        reply_free(rp);
        ck_assert_int_eq(access(tp("atomic/new"), F_OK), -1);
        ck_assert_int_eq(count_entries(dir), 1);
}
END_TEST

START_TEST(write_file_errors)
{
        /* Missing parent: ERROR at once, and the content the client still sends
         * (more than a socket buffer) is drained, not a broken pipe. */
        int fd;
        pid_t pid = start_handler(&fd);
        const char *path = tp("nodir/x/y");
        send_reqf(fd, "{\"op\":\"write_file\",\"path\":\"%s\"}", path);
        char *chunk = calloc(1, SMOLVM_FRAME_MAX_PAYLOAD);
        for (int i = 0; i < 4; i++)
                send_frame(fd, SMOLVM_FRAME_STDIN, chunk, SMOLVM_FRAME_MAX_PAYLOAD);
        free(chunk);
        send_frame(fd, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        reply *rp = finish(fd, pid);
        ASSERT_ERROR(rp, ENOENT, "write_file ");
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), path));
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), "No such file or directory"));
        reply_free(rp);

        /* The path is a directory. */
        ck_assert_int_eq(mkdir(tp("wdir"), 0755), 0);
        rp = write_empty(tp("wdir"), false);
        ASSERT_ERROR(rp, EISDIR, tp("wdir"));
        reply_free(rp);

        /* mkdirs through a regular file. */
        put_file(tp("plain"), "x", 0644);
        rp = write_empty(tp("plain/sub/f"), true);
        ASSERT_ERROR(rp, ENOTDIR, tp("plain/sub/f"));
        reply_free(rp);

        /* Trailing slash: not a file name. */
        char slashed[sizeof(tmpdir) + 1];
        snprintf(slashed, sizeof(slashed), "%s/", tmpdir);
        rp = write_empty(slashed, false);
        ASSERT_ERROR(rp, EISDIR, "write_file");
        reply_free(rp);
}
END_TEST

/* ---- read_file ---- */

START_TEST(read_file_content)
{
        size_t n = 200000 + 17;
        char *data = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
                data[i] = (char)(i * 7 % 251 + 1);
        data[n] = 0;
        const char *path = tp("r.bin");
        put_file(path, data, 0600);
        ck_assert_int_eq(chmod(path, 0751), 0);
        reply *rp = runf("{\"op\":\"read_file\",\"path\":\"%s\"}", path);
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "size"), (json_int_t)n);
        ck_assert_int_eq(jint(rp->result, "mode"), 0751);
        ck_assert_int_eq(rp->result_index, 0); /* RESULT first, then the data */
        ck_assert_int_gt(rp->first_data_index, 0);
        ck_assert_uint_le(rp->max_data_frame, SMOLVM_FRAME_DATA_CHUNK);
        ck_assert_uint_eq(rp->out_len, n);
        ck_assert(memcmp(rp->out, data, n) == 0);
        reply_free(rp);
        free(data);

        put_file(tp("r.empty"), "", 0644);
        rp = runf("{\"op\":\"read_file\",\"path\":\"%s\"}", tp("r.empty"));
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "size"), 0);
        ck_assert_uint_eq(rp->out_len, 0);
        ck_assert_int_eq(rp->n_frames, 1);
        reply_free(rp);
}
END_TEST

START_TEST(read_file_errors)
{
        reply *rp = runf("{\"op\":\"read_file\",\"path\":\"%s\"}", tp("missing"));
        ASSERT_ERROR(rp, ENOENT, tp("missing"));
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), "read_file "));
        reply_free(rp);

        ASSERT_RUN_FAILS(EISDIR, tmpdir, "{\"op\":\"read_file\",\"path\":\"%s\"}", tmpdir);

        /* A FIFO would block a plain open(): refused, promptly. */
        ck_assert_int_eq(mkfifo(tp("fifo"), 0644), 0);
        ASSERT_RUN_FAILS(EINVAL, "not a regular file", "{\"op\":\"read_file\",\"path\":\"%s\"}", tp("fifo"));
        ASSERT_RUN_FAILS(EINVAL, "/dev/null", "{\"op\":\"read_file\",\"path\":\"/dev/null\"}");
}
END_TEST

/* ---- mkdir ---- */

START_TEST(mkdir_op)
{
        (void)umask(022);
        ASSERT_RUN_OK("{\"op\":\"mkdir\",\"path\":\"%s\",\"mode\":511,\"parents\":true}", tp("m/a/b"));
        ck_assert_uint_eq(mode_of(tp("m/a/b")), 0777); /* not 0755: the umask does not apply */
        ck_assert_uint_eq(mode_of(tp("m/a")), 0755);

        ASSERT_RUN_OK("{\"op\":\"mkdir\",\"path\":\"%s\",\"parents\":true}", tp("m/a/b"));
        ck_assert_uint_eq(mode_of(tp("m/a/b")), 0777); /* an existing dir is left alone */

        ASSERT_RUN_FAILS(EEXIST, tp("m/a/b"), "{\"op\":\"mkdir\",\"path\":\"%s\"}", tp("m/a/b"));

        ASSERT_RUN_FAILS(ENOENT, "mkdir ", "{\"op\":\"mkdir\",\"path\":\"%s\"}", tp("m/x/y"));

        ASSERT_RUN_OK("{\"op\":\"mkdir\",\"path\":\"%s\"}", tp("m/c"));
        ck_assert_uint_eq(mode_of(tp("m/c")), 0755);

        put_file(tp("m/file"), "x", 0644);
        ASSERT_RUN_FAILS(EEXIST, tp("m/file"), "{\"op\":\"mkdir\",\"path\":\"%s\",\"parents\":true}", tp("m/file"));
        ASSERT_RUN_FAILS(ENOTDIR, tp("m/file/sub"), "{\"op\":\"mkdir\",\"path\":\"%s\",\"parents\":true}", tp("m/file/sub"));
}
END_TEST

/* ---- list_tree ---- */

static json_t *find_entry(json_t *entries, const char *path, size_t *ret_index)
{
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
                if (strcmp(jstr(e, "path"), path) == 0) {
                        if (ret_index)
                                *ret_index = i;
                        return e;
                }
        }
        return NULL;
}

START_TEST(list_tree_op)
{
        ck_assert_int_eq(mkdir(tp("t"), 0755), 0);
        ck_assert_int_eq(mkdir(tp("t/sub"), 0750), 0);
        ck_assert_int_eq(mkdir(tp("t/sub/deeper"), 0700), 0);
        put_file(tp("t/f"), "12345", 0600);
        put_file(tp("t/sub/g"), "", 0644);
        put_file(tp("t/sub/deeper/h"), "hh", 0644);
        ck_assert_int_eq(symlink("f", tp("t/link")), 0);
        ck_assert_int_eq(symlink("/nonexistent/target", tp("t/dangling")), 0);
        /* Followed, this would list the whole host. */
        ck_assert_int_eq(symlink("/", tp("t/sub/rootlink")), 0);
        ck_assert_int_eq(mkfifo(tp("t/fifo"), 0644), 0);

        for (int trailing = 0; trailing < 2; trailing++) {
                reply *rp = runf("{\"op\":\"list_tree\",\"path\":\"%s%s\"}", tp("t"), trailing ? "/" : "");
                ASSERT_OK(rp);
                json_t *entries = json_object_get(rp->result, "entries");
                ck_assert(json_is_array(entries));
                ck_assert_uint_eq(json_array_size(entries), 8); /* no root, no FIFO */
                size_t i_sub, i_g, i_deeper, i_h;
                json_t *e = find_entry(entries, "f", NULL);
                ck_assert_ptr_nonnull(e);
                ck_assert_str_eq(jstr(e, "type"), "file");
                ck_assert_int_eq(jint(e, "mode"), 0600);
                ck_assert_int_eq(jint(e, "size"), 5);
                ck_assert_ptr_null(json_object_get(e, "target"));
                e = find_entry(entries, "sub", &i_sub);
                ck_assert_str_eq(jstr(e, "type"), "dir");
                ck_assert_int_eq(jint(e, "mode"), 0750);
                e = find_entry(entries, "sub/g", &i_g);
                ck_assert_str_eq(jstr(e, "type"), "file");
                e = find_entry(entries, "sub/deeper", &i_deeper);
                ck_assert_int_eq(jint(e, "mode"), 0700);
                e = find_entry(entries, "sub/deeper/h", &i_h);
                ck_assert_int_eq(jint(e, "size"), 2);
                ck_assert_uint_lt(i_sub, i_g);
                ck_assert_uint_lt(i_sub, i_deeper);
                ck_assert_uint_lt(i_deeper, i_h);
                e = find_entry(entries, "link", NULL);
                ck_assert_str_eq(jstr(e, "type"), "symlink");
                ck_assert_str_eq(jstr(e, "target"), "f");
                e = find_entry(entries, "dangling", NULL);
                ck_assert_str_eq(jstr(e, "type"), "symlink");
                ck_assert_str_eq(jstr(e, "target"), "/nonexistent/target");
                e = find_entry(entries, "sub/rootlink", NULL);
                ck_assert_str_eq(jstr(e, "type"), "symlink");
                ck_assert_str_eq(jstr(e, "target"), "/");
                ck_assert_ptr_null(find_entry(entries, "fifo", NULL));
                ck_assert_ptr_null(find_entry(entries, "", NULL));
                reply_free(rp);
        }

        /* A file: one entry, path "". A symlink: itself, not its target. */
        reply *rp = runf("{\"op\":\"list_tree\",\"path\":\"%s\"}", tp("t/f"));
        ASSERT_OK(rp);
        json_t *entries = json_object_get(rp->result, "entries");
        ck_assert_uint_eq(json_array_size(entries), 1);
        json_t *e = json_array_get(entries, 0);
        ck_assert_str_eq(jstr(e, "path"), "");
        ck_assert_str_eq(jstr(e, "type"), "file");
        ck_assert_int_eq(jint(e, "size"), 5);
        reply_free(rp);
        rp = runf("{\"op\":\"list_tree\",\"path\":\"%s\"}", tp("t/sub/rootlink"));
        ASSERT_OK(rp);
        entries = json_object_get(rp->result, "entries");
        ck_assert_uint_eq(json_array_size(entries), 1);
        ck_assert_str_eq(jstr(json_array_get(entries, 0), "type"), "symlink");
        reply_free(rp);

        /* An empty directory. */
        ck_assert_int_eq(mkdir(tp("t/empty"), 0755), 0);
        rp = runf("{\"op\":\"list_tree\",\"path\":\"%s\"}", tp("t/empty"));
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_array_size(json_object_get(rp->result, "entries")), 0);
        reply_free(rp);

        ASSERT_RUN_FAILS(ENOENT, tp("t/missing"), "{\"op\":\"list_tree\",\"path\":\"%s\"}", tp("t/missing"));
        ASSERT_RUN_FAILS(EINVAL, tp("t/fifo"), "{\"op\":\"list_tree\",\"path\":\"%s\"}", tp("t/fifo"));
}
END_TEST

START_TEST(list_tree_too_big)
{
        const char *dir = tp("many");
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
        /* ~80 bytes of JSON each: 20000 entries are ~1.6 MiB. */
        for (int i = 0; i < 20000; i++) {
                char name[64];
                snprintf(name, sizeof(name), "file-number-%06d-of-a-rather-large-tree", i);
                int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                ck_assert_int_ge(fd, 0);
                close(fd);
        }
        close(dfd);
        reply *rp = runf("{\"op\":\"list_tree\",\"path\":\"%s\"}", dir);
        ASSERT_ERROR(rp, E2BIG, "too many entries");
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), dir));
        reply_free(rp);

        /* Below the bound, a big answer still arrives whole. */
        const char *dir2 = tp("some");
        ck_assert_int_eq(mkdir(dir2, 0755), 0);
        for (int i = 0; i < 5000; i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s/file-number-%06d-of-a-rather-large-tree", dir2, i);
                put_file(name, "", 0644);
        }
        rp = runf("{\"op\":\"list_tree\",\"path\":\"%s\"}", dir2);
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_array_size(json_object_get(rp->result, "entries")), 5000);
        reply_free(rp);
}
END_TEST

/* ---- hostile requests ---- */

START_TEST(malformed_requests)
{
        static const char *const ops[] = { "write_file", "read_file", "mkdir", "list_tree", "fuse_abort" };
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
                ASSERT_RUN_FAILS(EINVAL, "missing field 'path'", "{\"op\":\"%s\"}", ops[i]);
                ASSERT_RUN_FAILS(EINVAL, "absolute", "{\"op\":\"%s\",\"path\":\"relative/x\"}", ops[i]);
                ASSERT_RUN_FAILS(EINVAL, "absolute", "{\"op\":\"%s\",\"path\":\"\"}", ops[i]);
                ASSERT_RUN_FAILS(EINVAL, "JSON", "{\"op\":\"%s\",\"path\":\"/tmp/a\\u0000b\"}", ops[i]);
                ASSERT_RUN_FAILS(EINVAL, "'path'", "{\"op\":\"%s\",\"path\":42}", ops[i]);
                ASSERT_RUN_FAILS(EINVAL, "'path'", "{\"op\":\"%s\",\"path\":[\"/x\"]}", ops[i]);
                char *longpath = malloc(6000);
                memset(longpath, 'a', 5999);
                longpath[0] = '/';
                longpath[5999] = 0;
                ASSERT_RUN_FAILS(ENAMETOOLONG, "'path'", "{\"op\":\"%s\",\"path\":\"%s\"}", ops[i], longpath);
                free(longpath);
        }
        ASSERT_RUN_FAILS(EINVAL, "'mode'", "{\"op\":\"write_file\",\"path\":\"%s\",\"mode\":\"644\"}", tp("x"));
        ASSERT_RUN_FAILS(EINVAL, "'mode'", "{\"op\":\"write_file\",\"path\":\"%s\",\"mode\":4096}", tp("x"));
        ASSERT_RUN_FAILS(EINVAL, "'mode'", "{\"op\":\"write_file\",\"path\":\"%s\",\"mode\":-1}", tp("x"));
        ASSERT_RUN_FAILS(EINVAL, "'mkdirs'", "{\"op\":\"write_file\",\"path\":\"%s\",\"mkdirs\":\"yes\"}", tp("x"));
        ASSERT_RUN_FAILS(EINVAL, "'parents'", "{\"op\":\"mkdir\",\"path\":\"%s\",\"parents\":1}", tp("x"));
        ASSERT_RUN_FAILS(EINVAL, "'mode'", "{\"op\":\"mkdir\",\"path\":\"%s\",\"mode\":1.5}", tp("x"));
        ck_assert_int_eq(access(tp("x"), F_OK), -1);
        /* null means default */
        ASSERT_RUN_OK("{\"op\":\"mkdir\",\"path\":\"%s\",\"mode\":null,\"parents\":null}", tp("x"));

        /* The request parser alone, for the unit-level contract. */
        agent_request req;
        char err[256];
        const char *j = "{\"op\":\"write_file\",\"path\":\"/a/b\",\"mode\":420,\"mkdirs\":true}";
        ck_assert_int_eq(agent_request_parse(j, strlen(j), &req, err, sizeof(err)), 0);
        ck_assert_int_eq(req.op, AGENT_OP_WRITE_FILE);
        ck_assert_str_eq(req.file.path, "/a/b");
        ck_assert_uint_eq(req.file.mode, 0644);
        ck_assert(req.file.parents);
        agent_request_done(&req);
        ck_assert(agent_env_key_valid("_"));
        ck_assert(agent_env_key_valid("a9_Z"));
        ck_assert(!agent_env_key_valid("9a"));
        ck_assert(!agent_env_key_valid(""));
        ck_assert(!agent_env_key_valid("é"));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("guest-files");
        TCase *tc_files = tcase_create("files");
        tcase_set_timeout(tc_files, 60);
        tcase_add_test(tc_files, write_file_content_mode_mkdirs);
        tcase_add_test(tc_files, write_file_atomic_on_disconnect);
        tcase_add_test(tc_files, write_file_errors);
        tcase_add_test(tc_files, read_file_content);
        tcase_add_test(tc_files, read_file_errors);
        tcase_add_test(tc_files, mkdir_op);
        tcase_add_test(tc_files, list_tree_op);
        tcase_add_test(tc_files, list_tree_too_big);
        suite_add_tcase(s, tc_files);
        TCase *tc_requests = tcase_create("requests");
        tcase_set_timeout(tc_requests, 60);
        tcase_add_test(tc_requests, malformed_requests);
        suite_add_tcase(s, tc_requests);
        return guest_ops_main(s);
}
