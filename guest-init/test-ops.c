/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the agent's file and env ops, run on the host: the real handler over
 * a socketpair, acting on a private temp dir (agent_etc_dir points into it). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "check_main.h"
#include "init.h"
#include "request.h"
#include "test_harness.h"
#include "util.h"

static char tmpdir[256];
static char etcdir[300];

/* A path under the test's temp dir (static buffers, rotated). */
static const char *tp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tp(const char *fmt, ...)
{
        static char bufs[8][4608];
        static int next;
        char *b = bufs[next++ % 8];
        int n = snprintf(b, sizeof(bufs[0]), "%s/", tmpdir);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b + n, sizeof(bufs[0]) - (size_t)n, fmt, ap);
        va_end(ap);
        return b;
}

static void put_file(const char *path, const char *content, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_all(fd, content, strlen(content)), 0);
        close(fd);
}

static char *slurp(const char *path, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        char *b = malloc((size_t)st.st_size + 1);
        ck_assert_int_eq(read_all(fd, b, (size_t)st.st_size), 0);
        b[st.st_size] = 0;
        close(fd);
        if (ret_len)
                *ret_len = (size_t)st.st_size;
        return b;
}

static int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static mode_t mode_of(const char *path)
{
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        return st.st_mode & 07777;
}

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

/* ---- env ---- */

static char *etc_file(const char *rel)
{
        char *s;
        ck_assert_int_ge(asprintf(&s, "%s/%s", etcdir, rel), 0);
        return s;
}

/* Run `sh -c '. file; printf %s "$key"'` and return its output. */
static char *shell_print(const char *file, const char *key)
{
        char script[512];
        snprintf(script, sizeof(script), ". '%s'; printf %%s \"$%s\"", file, key);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(p[1], 1);
                execl("/bin/sh", "sh", "-c", script, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        size_t cap = 1 << 20, len = 0;
        char *out = malloc(cap);
        ssize_t n;
        while ((n = read(p[0], out + len, cap - 1 - len)) > 0)
                len += (size_t)n;
        out[len] = 0;
        close(p[0]);
        int status;
        waitpid(pid, &status, 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return out;
}

static void clear_env_store(void)
{
        char *a = etc_file("smolvm/env.json"), *b = etc_file("profile.d/smolvm-env.sh");
        (void)unlink(a);
        (void)unlink(b);
        free(a);
        free(b);
}

START_TEST(env_set_unset_list)
{
        clear_env_store();
        reply *rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 0);
        reply_free(rp);

        const char *tricky = "it's $HOME and `id` \\ \"q\"\nline2 '' end'";
        json_t *req = json_pack("{s:s,s:{s:s,s:s,s:s}}", "op", "env_set", "vars", "FOO", "bar", "Q", tricky, "_e", "");
        char *s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        rp = run(s);
        free(s);
        ASSERT_OK(rp);
        json_t *env = json_object_get(rp->result, "env");
        ck_assert_uint_eq(json_object_size(env), 3);
        ck_assert_str_eq(jstr(env, "FOO"), "bar");
        ck_assert_str_eq(jstr(env, "Q"), tricky);
        ck_assert_str_eq(jstr(env, "_e"), "");
        reply_free(rp);

        char *store = etc_file("smolvm/env.json"), *profile = etc_file("profile.d/smolvm-env.sh");
        ck_assert_uint_eq(mode_of(store), 0600);
        ck_assert_uint_eq(mode_of(profile), 0644);
        json_t *disk = json_load_file(store, 0, NULL);
        ck_assert_ptr_nonnull(disk);
        ck_assert_str_eq(jstr(disk, "Q"), tricky);
        json_decref(disk);
        char *out = shell_print(profile, "Q");
        ck_assert_str_eq(out, tricky);
        free(out);
        out = shell_print(profile, "FOO");
        ck_assert_str_eq(out, "bar");
        free(out);
        ck_assert_int_eq(count_entries(etcdir), 2); /* smolvm, profile.d */
        char *sdir = etc_file("smolvm");
        ck_assert_int_eq(count_entries(sdir), 1); /* no temp file left */
        free(sdir);

        rp = run("{\"op\":\"env_unset\",\"keys\":[\"FOO\",\"NEVER_SET\"]}");
        ASSERT_OK(rp);
        env = json_object_get(rp->result, "env");
        ck_assert_uint_eq(json_object_size(env), 2);
        ck_assert_ptr_null(json_object_get(env, "FOO"));
        reply_free(rp);
        out = shell_print(profile, "FOO");
        ck_assert_str_eq(out, "");
        free(out);

        rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        env = json_object_get(rp->result, "env");
        ck_assert_uint_eq(json_object_size(env), 2);
        ck_assert_str_eq(jstr(env, "Q"), tricky);
        reply_free(rp);
        free(store);
        free(profile);
}
END_TEST

static reply *env_set_value(const char *key, size_t value_len, char fill)
{
        char *v = malloc(value_len + 1);
        memset(v, fill, value_len);
        v[value_len] = 0;
        json_t *req = json_pack("{s:s,s:{s:s}}", "op", "env_set", "vars", key, v);
        free(v);
        char *s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        reply *rp = run(s);
        free(s);
        return rp;
}

START_TEST(env_bad_keys_and_bounds)
{
        clear_env_store();
        ASSERT_RUN_FAILS(EINVAL, "'1BAD'", "{\"op\":\"env_set\",\"vars\":{\"GOOD\":\"1\",\"1BAD\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "'A-B'", "{\"op\":\"env_set\",\"vars\":{\"A-B\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "invalid key", "{\"op\":\"env_set\",\"vars\":{\"\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "'A=B'", "{\"op\":\"env_set\",\"vars\":{\"A=B\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "'vars.A'", "{\"op\":\"env_set\",\"vars\":{\"A\":1}}");
        ASSERT_RUN_FAILS(EINVAL, "'vars'", "{\"op\":\"env_set\",\"vars\":[\"A=1\"]}");
        ASSERT_RUN_FAILS(EINVAL, "'vars'", "{\"op\":\"env_set\"}");
        ASSERT_RUN_FAILS(EINVAL, "'NOT OK'", "{\"op\":\"env_unset\",\"keys\":[\"OK\",\"NOT OK\"]}");
        ASSERT_RUN_FAILS(EINVAL, "'keys'", "{\"op\":\"env_unset\",\"keys\":\"A\"}");
        ASSERT_RUN_FAILS(EINVAL, "JSON", "{\"op\":\"env_set\",\"vars\":{\"A\":\"a\\u0000b\"}}");
        /* Nothing of the failed requests was stored. */
        reply *rp = run("{\"op\":\"env_list\"}");
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 0);
        reply_free(rp);

        /* 64 KiB per value. */
        rp = env_set_value("BIG", AGENT_ENV_MAX_VALUE + 1, 'v');
        ASSERT_ERROR(rp, E2BIG, "'BIG'");
        reply_free(rp);
        rp = env_set_value("BIG", AGENT_ENV_MAX_VALUE, 'v');
        ASSERT_OK(rp);
        reply_free(rp);

        /* About 1 MiB in all (the answer must fit one frame): 14 more such values
         * fit, the next one does not, and is not stored. */
        for (int i = 0; i < 14; i++) {
                char key[16];
                snprintf(key, sizeof(key), "V%02d", i);
                rp = env_set_value(key, AGENT_ENV_MAX_VALUE - 8, 'w');
                ASSERT_OK(rp);
                reply_free(rp);
        }
        rp = env_set_value("LAST", AGENT_ENV_MAX_VALUE, 'x');
        ASSERT_ERROR(rp, E2BIG, "env_set: ");
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), "at most"));
        reply_free(rp);
        rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 15);
        ck_assert_ptr_null(json_object_get(json_object_get(rp->result, "env"), "LAST"));
        reply_free(rp);

        /* Values that grow 6x when escaped fit the store but not one frame. */
        clear_env_store();
        for (int i = 0; i < 2; i++) { /* 64 KiB of \u0001 is 384 KiB of JSON */
                char key[16];
                snprintf(key, sizeof(key), "C%d", i);
                rp = env_set_value(key, AGENT_ENV_MAX_VALUE, '\x01');
                ASSERT_OK(rp);
                reply_free(rp);
        }
        rp = env_set_value("C2", AGENT_ENV_MAX_VALUE, '\x01');
        ASSERT_ERROR(rp, E2BIG, "too large");
        reply_free(rp);
        rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 2);
        reply_free(rp);
        clear_env_store();
}
END_TEST

START_TEST(env_merged_into_exec)
{
        clear_env_store();
        ASSERT_RUN_OK("{\"op\":\"env_set\",\"vars\":{\"STORED\":\"s1\",\"OVER\":\"stored\",\"HOME\":\"/home/x\"}}");
        reply *rp = run("{\"op\":\"exec\",\"shell\":\"printf '%s|%s|%s|%s' \\\"$STORED\\\" \\\"$OVER\\\" \\\"$HOME\\\" "
                 "\\\"$TERM\\\"\",\"env\":[\"OVER=req\"],\"cwd\":\"/\"}");
        ck_assert_ptr_nonnull(rp->exit);
        ck_assert_str_eq(rp->out, "s1|req|/home/x|xterm");
        reply_free(rp);

        /* A damaged store is ignored, the command still runs. */
        char *store = etc_file("smolvm/env.json");
        put_file(store, "{not json", 0600);
        free(store);
        rp = run("{\"op\":\"exec\",\"shell\":\"printf '%s' \\\"$STORED$HOME\\\"\",\"cwd\":\"/\"}");
        ck_assert_str_eq(rp->out, "/root");
        reply_free(rp);
        ASSERT_RUN_FAILS(EINVAL, "env.json", "{\"op\":\"env_list\"}");
        clear_env_store();
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

/* ---- rootfs growth: the superblock check ---- */

static bool have_mkfs(void)
{
        return access("/sbin/mkfs.ext4", X_OK) == 0 || access("/usr/sbin/mkfs.ext4", X_OK) == 0;
}

static uint64_t image_fs_bytes(const char *img)
{
        int fd = open(img, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        uint8_t sb[1024];
        ck_assert_int_eq(pread(fd, sb, sizeof(sb), 1024), 1024);
        close(fd);
        uint64_t bytes = 0;
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        return bytes;
}

START_TEST(ext4_superblock)
{
        uint8_t sb[1024] = { 0 };
        uint64_t bytes = 0;
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), -EINVAL); /* no magic */
        put_le16(sb + 0x38, 0xEF53);
        put_le32(sb + 0x18, 2); /* 4 KiB blocks */
        put_le32(sb + 0x4, 1000);
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        ck_assert_uint_eq(bytes, 4096000);
        put_le32(sb + 0x150, 1); /* ignored without the 64bit feature */
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        ck_assert_uint_eq(bytes, 4096000);
        put_le32(sb + 0x60, 0x80);
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        ck_assert_uint_eq(bytes, ((1ull << 32) + 1000) * 4096);
        put_le32(sb + 0x18, 40); /* absurd block size */
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), -EINVAL);
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, 100, &bytes), -EINVAL);

        if (!have_mkfs())
                return;
        /* A real filesystem, then grown offline the way the guest grows it online. */
        const char *img = tp("fs.img");
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "truncate -s 64M '%s' && PATH=$PATH:/sbin:/usr/sbin mkfs.ext4 -q -F '%s' 2>&1",
                 img, img);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_uint_eq(image_fs_bytes(img), 64ull << 20);
        snprintf(cmd, sizeof(cmd), "truncate -s 32M '%s' && PATH=$PATH:/sbin:/usr/sbin mkfs.ext4 -q -F '%s' && "
                 "truncate -s 96M '%s' && PATH=$PATH:/sbin:/usr/sbin resize2fs -f '%s' >/dev/null 2>&1",
                 img, img, img, img);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_uint_eq(image_fs_bytes(img), 96ull << 20);
}
END_TEST

/* fuse_abort against a fake mount table and a fake fusectl (a real one needs
 * root and a FUSE mount): the connection is found by the mount's device
 * number, without touching the mount point, and its abort file written. A
 * virtio-fs mount (no fusectl entry) is fenced: a real, aborted FUSE mount on
 * top, when we may mount. */
START_TEST(fuse_abort_op)
{
        static char mountinfo[4608], fusectl[4608], vfs[4608];
        snprintf(fusectl, sizeof(fusectl), "%s", tp("fusectl"));
        snprintf(mountinfo, sizeof(mountinfo), "%s", tp("mountinfo"));
        snprintf(vfs, sizeof(vfs), "%s", tp("vfs"));
        char *table;
        ck_assert_int_ge(asprintf(&table,
                                  "1 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                                  "22 1 0:21 / /sys rw,nosuid,nodev,noexec - sysfs sysfs rw\n"
                                  "40 22 0:41 / %s rw,relatime - fusectl fusectl rw\n"
                                  "50 1 0:45 / /fuse-a rw,nosuid,nodev,relatime - fuse.sshfs host:/x rw\n"
                                  "51 1 0:46 / /with\\040space rw,relatime shared:7 - fuse.smolvm smolvm rw\n"
                                  "52 1 0:47 / /scratch rw - tmpfs tmpfs rw\n"
                                  "53 1 8:1 / /blk rw - fuseblk /dev/sda1 rw\n"
                                  "54 1 0:48 / %s ro,nosuid,nodev,relatime - virtiofs smolvm-fs-0 rw\n",
                                  fusectl, vfs),
                         0);
        put_file(mountinfo, table, 0644);
        free(table);
        agent_mountinfo_path = mountinfo;
        agent_fusectl_dir = fusectl;
        ck_assert_int_eq(mkdir(fusectl, 0755), 0);
        ck_assert_int_eq(mkdir(vfs, 0755), 0);
        ck_assert_int_eq(mkdir(tp("fusectl/45"), 0755), 0);
        put_file(tp("fusectl/45/abort"), "", 0600);
        put_file(tp("fusectl/45/waiting"), "3\n", 0600);
        ck_assert_int_eq(mkdir(tp("fusectl/8388609"), 0755), 0);
        put_file(tp("fusectl/8388609/abort"), "", 0600);

        reply *rp = run("{\"op\":\"fuse_abort\",\"path\":\"/fuse-a\"}");
        ASSERT_OK(rp);
        ck_assert_str_eq(jstr(rp->result, "method"), "abort");
        ck_assert_int_eq(jint(rp->result, "connection"), 45);
        ck_assert_str_eq(jstr(rp->result, "fstype"), "fuse.sshfs");
        ck_assert_int_eq(jint(rp->result, "waiting"), 3);
        reply_free(rp);
        char *written = slurp(tp("fusectl/45/abort"), NULL);
        ck_assert_ptr_nonnull(written);
        ck_assert_str_eq(written, "1");
        free(written);

        /* A fuseblk's connection is named by the full dev_t (major 8). */
        rp = run("{\"op\":\"fuse_abort\",\"path\":\"/blk\"}");
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "connection"), (8 << 20) | 1);
        ck_assert_int_eq(jint(rp->result, "waiting"), -1);
        reply_free(rp);

        /* Escaped mount point found; its connection is missing from fusectl. */
        ASSERT_RUN_FAILS(ENOENT, "/46/abort", "{\"op\":\"fuse_abort\",\"path\":\"/with space\"}");
        ASSERT_RUN_FAILS(EINVAL, "not a FUSE mount (tmpfs)", "{\"op\":\"fuse_abort\",\"path\":\"/scratch\"}");
        ASSERT_RUN_FAILS(ENOENT, "fuse_abort /nonexistent-smolvm/x: nothing is mounted there", "{\"op\":\"fuse_abort\",\"path\":\"/nonexistent-smolvm/x\"}");
        /* A directory that exists but is no mount point. */
        ASSERT_RUN_FAILS(EINVAL, "not a FUSE mount (fusectl)", "{\"op\":\"fuse_abort\",\"path\":\"%s\"}", fusectl);
        ASSERT_RUN_FAILS(ENOENT, "nothing is mounted there", "{\"op\":\"fuse_abort\",\"path\":\"%s\"}", tmpdir);

        /* virtio-fs: fenced, not aborted through fusectl. */
        agent_fuse_dev = "/nonexistent-smolvm/fuse";
        ASSERT_RUN_FAILS(ENOENT, "open /nonexistent-smolvm/fuse", "{\"op\":\"fuse_abort\",\"path\":\"%s\"}", vfs);
        agent_fuse_dev = "/dev/fuse";
        rp = runf("{\"op\":\"fuse_abort\",\"path\":\"%s\"}", vfs);
        if (rp->result) {
                ASSERT_OK(rp);
                ck_assert_str_eq(jstr(rp->result, "method"), "fence");
                ck_assert_str_eq(jstr(rp->result, "fstype"), "virtiofs");
                struct stat st;
                errno = 0;
                ck_assert_int_lt(stat(vfs, &st), 0);
                ck_assert_int_eq(errno, ENOTCONN);
                errno = 0;
                ck_assert_int_lt(open(tp("vfs/file"), O_RDONLY | O_CLOEXEC), 0);
                ck_assert_int_eq(errno, ENOTCONN);
                ck_assert_int_eq(umount2(vfs, MNT_DETACH), 0);
        } else {
                /* Not allowed to mount here (not root, no /dev/fuse): the step is named. */
                ck_assert_msg(strstr(jstr(rp->error, "message"), "mount fuse.smolvm-gone on ") ||
                                      strstr(jstr(rp->error, "message"), "open /dev/fuse"),
                              "message: %s", jstr(rp->error, "message"));
        }
        reply_free(rp);
}
END_TEST

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)remove(path);
        return 0;
}

static Suite *ops_suite(void)
{
        Suite *s = suite_create("guest-ops");
        TCase *tc = tcase_create("files");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, write_file_content_mode_mkdirs);
        tcase_add_test(tc, write_file_atomic_on_disconnect);
        tcase_add_test(tc, write_file_errors);
        tcase_add_test(tc, read_file_content);
        tcase_add_test(tc, read_file_errors);
        tcase_add_test(tc, mkdir_op);
        tcase_add_test(tc, list_tree_op);
        tcase_add_test(tc, list_tree_too_big);
        suite_add_tcase(s, tc);
        tc = tcase_create("env");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, env_set_unset_list);
        tcase_add_test(tc, env_bad_keys_and_bounds);
        tcase_add_test(tc, env_merged_into_exec);
        suite_add_tcase(s, tc);
        tc = tcase_create("misc");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, malformed_requests);
        tcase_add_test(tc, ext4_superblock);
        tcase_add_test(tc, fuse_abort_op);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        /* A dead handler's socket must fail our writes, not kill the test. */
        (void)signal(SIGPIPE, SIG_IGN);
        snprintf(tmpdir, sizeof(tmpdir), "%s/smolvm-ops-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(etcdir, sizeof(etcdir), "%s/etc", tmpdir);
        if (mkdir(etcdir, 0755) < 0) {
                perror("mkdir");
                return 1;
        }
        agent_etc_dir = etcdir;

        int status = run_suite(ops_suite());
        (void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return status;
}
