/* SPDX-License-Identifier: Apache-2.0 */
/* The file operations: write_file, read_file, mkdir, list_tree.
 *
 * They act on the guest's own filesystem as root (the client can run any
 * command anyway), so paths are resolved normally; what matters is that a
 * client cannot make the agent use unbounded memory, that a write is all or
 * nothing, and that every error names the path. Data moves in constant memory:
 * one frame at a time. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fileutil.h"
#include "init.h"
#include "stream.h"
#include "util.h"

/* Temp files live next to the target (rename must not cross filesystems). */
#define TEMP_TRIES 64

static uint32_t random_u32(void)
{
        uint32_t v;
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
                return v;
        return (uint32_t)now_ms() * 2654435761u ^ (uint32_t)getpid();
}

/* Create a new temp file for base in dfd (O_EXCL). Returns the fd, with its
 * name in tmp, or negative errno. */
static int create_temp(int dfd, const char *base, char *tmp, size_t tmp_len)
{
        for (int i = 0; i < TEMP_TRIES; i++) {
                /* Hidden, and short enough for NAME_MAX whatever base is. */
                snprintf(tmp, tmp_len, ".%.200s.smolvm-%08x", base, random_u32());
                int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0)
                        return fd;
                if (errno != EEXIST)
                        return negative_errno();
        }
        return -EEXIST;
}

/* After an error the client may still be sending the content: read and drop
 * frames up to STDIN_EOF (or its close), so a client that sends everything
 * before reading gets the ERROR, not a broken pipe. */
static void drain_stdin(int fd, smolvm_frame_reader *rd)
{
        uint16_t type;
        const uint8_t *p;
        uint32_t len;
        while (agent_read_frame(fd, rd, 0, &type, &p, &len) == 1)
                if (type == SMOLVM_FRAME_STDIN_EOF)
                        return;
}

int agent_write_file(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        const char *path = spec->path;
        const char *slash = strrchr(path, '/'); /* absolute: never NULL */
        const char *base = slash + 1;
        _cleanup_free_ char *dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
        _cleanup_close_ int dfd = -1, tfd = -1;
        smolvm_frame_reader rd;
        char tmp[256] = "";
        uint64_t bytes = 0;
        struct stat st;
        int r;

        if (!dir)
                return -ENOMEM;
        r = smolvm_frame_reader_init(&rd, SMOLVM_FRAME_MAX_PAYLOAD);
        if (r < 0)
                return r;
        if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
                r = -EISDIR;
                goto fail;
        }
        if (spec->parents) {
                r = mkdir_p_exact(dir, 0755);
                if (r < 0)
                        goto fail;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                r = negative_errno();
                goto fail;
        }
        /* Fail before the client sends the content, not after. */
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
                r = -EISDIR;
                goto fail;
        }
        tfd = create_temp(dfd, base, tmp, sizeof(tmp));
        if (tfd < 0) {
                r = tfd;
                tmp[0] = '\0';
                goto fail;
        }
        /* The requested mode exactly: fchmod is not subject to the umask. */
        if (fchmod(tfd, spec->mode) < 0) {
                r = negative_errno();
                goto fail;
        }

        for (;;) {
                uint16_t type;
                const uint8_t *p;
                uint32_t len;
                r = agent_read_frame(fd, &rd, 0, &type, &p, &len);
                if (r <= 0) {
                        /* The client went away (or broke framing) before STDIN_EOF:
                         * nothing may appear at path. */
                        (void)unlinkat(dfd, tmp, 0);
                        smolvm_frame_reader_done(&rd);
                        if (r == 0)
                                (void)agent_send_errorf(fd, EPIPE, "write_file %s: stream closed before STDIN_EOF",
                                                        path);
                        else
                                (void)agent_send_errorf(fd, -r, "write_file %s: bad frame: %s", path, strerror(-r));
                        return r < 0 ? r : -EPIPE;
                }
                if (type == SMOLVM_FRAME_STDIN_EOF)
                        break;
                if (type != SMOLVM_FRAME_STDIN || len == 0)
                        continue; /* SIGNAL etc.: meaningless here */
                r = write_all(tfd, p, len);
                if (r < 0)
                        goto fail_draining;
                bytes += len;
        }
        /* No fsync: rename replaces atomically for readers; ext4's auto_da_alloc
         * flushes the data of a file renamed over another before the rename
         * commits, and poweroff syncs. An fsync per file would make copying a
         * tree of small files crawl under TCG. */
        if (close(TAKE_FD(tfd)) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (renameat(dfd, tmp, dfd, base) < 0) {
                r = negative_errno();
                goto fail;
        }
        smolvm_frame_reader_done(&rd);
        return agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b,s:I}", "ok", 1, "bytes", (json_int_t)bytes));

fail_draining:
        /* Answer now, then swallow the rest of the content. */
        tfd = safe_close(tfd);
        (void)unlinkat(dfd, tmp, 0);
        (void)agent_send_errorf(fd, -r, "write_file %s: %s", path, strerror(-r));
        drain_stdin(fd, &rd);
        smolvm_frame_reader_done(&rd);
        return r;
fail:
        tfd = safe_close(tfd);
        if (tmp[0] && dfd >= 0)
                (void)unlinkat(dfd, tmp, 0);
        (void)agent_send_errorf(fd, -r, "write_file %s: %s", path, strerror(-r));
        drain_stdin(fd, &rd);
        smolvm_frame_reader_done(&rd);
        return r;
}

int agent_read_file(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        const char *path = spec->path;
        struct stat st;
        /* O_NONBLOCK: opening a FIFO must not hang the handler (refused below). */
        _cleanup_close_ int ffd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (ffd < 0) {
                int r = negative_errno();
                (void)agent_send_errorf(fd, -r, "read_file %s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(ffd, &st) < 0) {
                int r = negative_errno();
                (void)agent_send_errorf(fd, -r, "read_file %s: %s", path, strerror(-r));
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                (void)agent_send_errorf(fd, EISDIR, "read_file %s: %s", path, strerror(EISDIR));
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                (void)agent_send_errorf(fd, EINVAL, "read_file %s: not a regular file", path);
                return -EINVAL;
        }
        _cleanup_free_ uint8_t *buf = malloc(SMOLVM_FRAME_HDR_SIZE + SMOLVM_FRAME_DATA_CHUNK);
        if (!buf) {
                (void)agent_send_errorf(fd, ENOMEM, "read_file %s: %s", path, strerror(ENOMEM));
                return -ENOMEM;
        }
        int r = agent_send_json(fd, SMOLVM_FRAME_RESULT,
                                json_pack("{s:b,s:I,s:i}", "ok", 1, "size", (json_int_t)st.st_size, "mode",
                                          (int)(st.st_mode & 07777)));
        if (r < 0)
                return r;
        (void)posix_fadvise(ffd, 0, 0, POSIX_FADV_SEQUENTIAL);

        /* Exactly size bytes: a file that grows is cut at the size announced; one
         * that shrinks (or fails) ends short, and the client sees the count differ. */
        uint64_t left = (uint64_t)st.st_size;
        while (left > 0) {
                ssize_t n = read(ffd, buf + SMOLVM_FRAME_HDR_SIZE, (size_t)MIN(left, (uint64_t)SMOLVM_FRAME_DATA_CHUNK));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? negative_errno() : -EIO;
                        if (n < 0)
                                (void)agent_send_errorf(fd, -r, "read_file %s: %s", path, strerror(-r));
                        else
                                (void)agent_send_errorf(fd, EIO, "read_file %s: the file shrank while being read",
                                                        path);
                        return r;
                }
                smolvm_frame_hdr_encode(SMOLVM_FRAME_STDOUT, (uint32_t)n, buf);
                r = write_all(fd, buf, SMOLVM_FRAME_HDR_SIZE + (size_t)n);
                if (r < 0)
                        return r; /* client gone */
                left -= (uint64_t)n;
        }
        return 0;
}

int agent_mkdir(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        const char *path = spec->path;
        int r = 0;
        if (spec->parents) {
                /* The ancestors 0755 whatever the umask; path itself spec->mode. */
                const char *slash = strrchr(path, '/'); /* absolute: never NULL */
                _cleanup_free_ char *dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
                r = dir ? mkdir_p_exact(dir, 0755) : -ENOMEM;
        }
        if (r == 0) {
                if (mkdir(path, spec->mode) == 0) {
                        /* The mode asked for, not what the umask leaves of it. */
                        if (chmod(path, spec->mode) < 0)
                                r = negative_errno();
                } else {
                        r = negative_errno();
                        struct stat st;
                        if (r == -EEXIST && spec->parents && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                                r = 0; /* mkdir -p: an existing directory is fine */
                }
        }
        if (r < 0) {
                (void)agent_send_errorf(fd, -r, "mkdir %s: %s", path, strerror(-r));
                return r;
        }
        return agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
}

/* ---- list_tree ---- */

static const char list_head[] = "{\"ok\":true,\"entries\":[";
static const char list_tail[] = "]}";

/* nftw() has no user pointer: the walk's state. A handler serves one request. */
static struct tree_walk {
        size_t root_len;
        char *json; /* list_head, then entries separated by ',' */
        size_t len, cap;
        size_t n_entries;
        int err;    /* positive errno that stopped the walk */
        char what[128];
} walk;

/* Append n bytes, keeping room for list_tail unless this is it. */
static int walk_append(const char *s, size_t n)
{
        size_t reserve = s == list_tail ? 0 : sizeof(list_tail) - 1;
        if (walk.len + n + reserve > SMOLVM_FRAME_MAX_PAYLOAD)
                return -E2BIG;
        if (walk.len + n + 1 > walk.cap) {
                size_t cap = MAX(walk.cap * 2, walk.len + n + 1);
                cap = MIN(cap, (size_t)SMOLVM_FRAME_MAX_PAYLOAD + 1); /* + the NUL */
                char *nj = realloc(walk.json, cap);
                if (!nj)
                        return -ENOMEM;
                walk.json = nj;
                walk.cap = cap;
        }
        memcpy(walk.json + walk.len, s, n);
        walk.len += n;
        walk.json[walk.len] = '\0';
        return 0;
}

static int walk_stop(int err, const char *what)
{
        walk.err = err;
        snprintf(walk.what, sizeof(walk.what), "%s", what);
        return 1; /* non-zero: nftw stops and returns it */
}

static int walk_visit(const char *fpath, const struct stat *st, int typeflag, struct FTW *ftw)
{
        const char *rel = fpath + MIN(walk.root_len, strlen(fpath));
        while (*rel == '/')
                rel++;
        const char *type;
        switch (typeflag) {
        case FTW_D:
                if (ftw->level == 0)
                        return 0; /* the root directory itself is not listed */
                type = "dir";
                break;
        case FTW_DNR:
                return walk_stop(errno ? errno : EACCES, "cannot read a directory");
        case FTW_NS:
                if (errno == ENOENT && ftw->level > 0)
                        return 0; /* removed while we walk (think /proc): not there */
                return walk_stop(errno ? errno : EIO, "cannot stat an entry");
        case FTW_SL:
        case FTW_SLN:
                type = "symlink";
                break;
        case FTW_F:
                if (!S_ISREG(st->st_mode)) {
                        /* FIFOs, sockets, devices: nothing a copy could reproduce. */
                        if (ftw->level == 0)
                                return walk_stop(EINVAL, "not a directory, regular file or symlink");
                        return 0;
                }
                type = "file";
                break;
        default:
                return 0;
        }

        json_t *jpath = json_string(rel);
        if (!jpath)
                return walk_stop(EILSEQ, "a file name is not valid UTF-8");
        json_t *e = json_pack("{s:o,s:s,s:i,s:I}", "path", jpath, "type", type, "mode", (int)(st->st_mode & 07777),
                              "size", (json_int_t)st->st_size);
        if (!e)
                return walk_stop(ENOMEM, "out of memory");
        if (typeflag == FTW_SL || typeflag == FTW_SLN) {
                char target[AGENT_MAX_PATH + 1];
                ssize_t n = readlink(fpath, target, sizeof(target) - 1);
                if (n < 0) {
                        int err = errno;
                        json_decref(e);
                        if (err == ENOENT && ftw->level > 0)
                                return 0; /* removed since nftw's lstat */
                        return walk_stop(err, "cannot read a symlink");
                }
                target[n] = '\0';
                json_t *jt = json_string(target);
                if (!jt) {
                        json_decref(e);
                        return walk_stop(EILSEQ, "a symlink target is not valid UTF-8");
                }
                json_object_set_new(e, "target", jt);
        }
        char *s = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        if (!s)
                return walk_stop(ENOMEM, "out of memory");
        int r = walk.n_entries > 0 ? walk_append(",", 1) : 0;
        if (r == 0)
                r = walk_append(s, strlen(s));
        free(s);
        if (r == -E2BIG)
                return walk_stop(E2BIG, "the tree has too many entries for one answer (1 MiB of JSON); "
                                        "list smaller subtrees");
        if (r < 0)
                return walk_stop(-r, "out of memory");
        walk.n_entries++;
        return 0;
}

int agent_list_tree(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        _cleanup_free_ char *root = strdup(spec->path);
        if (!root)
                return -ENOMEM;
        /* "/a/b/" -> "/a/b", so relative paths are computed from a fixed prefix. */
        size_t n = strlen(root);
        while (n > 1 && root[n - 1] == '/')
                root[--n] = '\0';

        walk = (struct tree_walk){ .root_len = n };
        int r = walk_append(list_head, sizeof(list_head) - 1);
        if (r < 0)
                return r;
        errno = 0;
        /* FTW_PHYS: symlinks are listed, never followed. Pre-order: parents first. */
        int w = nftw(root, walk_visit, 16, FTW_PHYS);
        if (w < 0 && !walk.err) {
                r = negative_errno();
                (void)agent_send_errorf(fd, -r, "list_tree %s: %s", spec->path, strerror(-r));
        } else if (walk.err) {
                r = -walk.err;
                if (walk.err == E2BIG || walk.err == EINVAL || walk.err == EILSEQ)
                        (void)agent_send_errorf(fd, walk.err, "list_tree %s: %s", spec->path, walk.what);
                else
                        (void)agent_send_errorf(fd, walk.err, "list_tree %s: %s: %s", spec->path, walk.what,
                                                strerror(walk.err));
        } else {
                r = walk_append(list_tail, sizeof(list_tail) - 1);
                if (r == 0)
                        r = smolvm_frame_send(fd, SMOLVM_FRAME_RESULT, walk.json, (uint32_t)walk.len);
        }
        free(walk.json);
        walk = (struct tree_walk){ 0 };
        return r;
}
