/* SPDX-License-Identifier: Apache-2.0 */
/* Files between host and guest over the agent's write_file / read_file / mkdir /
 * list_tree ops (docs/protocol.md). One stream per file; data moves in frames of
 * at most SMOLVM_FRAME_DATA_CHUNK, so memory stays constant whatever the size.
 *
 * Downloads treat the guest as hostile: the tree it lists is only ever resolved
 * below the destination directory fd, one component at a time with O_NOFOLLOW,
 * after guest_relpath_valid() refused absolute paths, "..", "." and NULs. A
 * symlink the guest lists is created as a symlink and never traversed: a later
 * entry below it fails to resolve (ELOOP) and aborts the download. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "agent_call_i.h"
#include "guest_path.h"
#include "smolvm_i.h"
#include "util.h"

#define UPLOAD_MAX_DEPTH 256u
#define FILE_MODE_MASK 07777u
/* setuid/setgid from a guest would be a gift to whoever runs the file on the host. */
#define DOWNLOAD_FILE_MODE_MASK 0777u
#define DOWNLOAD_DIR_MODE_MASK 01777u

static int check_guest_path(const char *path, const char *what)
{
        if (!path || path[0] != '/')
                return vm_error(-EINVAL, "give an absolute guest path", "%s: guest path '%s' is not absolute", what,
                                path ? path : "(null)");
        if (strlen(path) > PATH_MAX)
                return vm_error(-ENAMETOOLONG, NULL, "%s: guest path too long", what);
        return 0;
}

/* {"op": op, "path": path}, or NULL (recorded) when path is not valid UTF-8. */
static json_t *request_new(const char *op, const char *path)
{
        json_t *req = json_object(), *p = json_string(path);
        if (!req || !p) {
                json_decref(req);
                json_decref(p);
                vm_error(p ? -ENOMEM : -EINVAL, NULL, "%s %s: path is not valid UTF-8", op, path);
                return NULL;
        }
        json_object_set_new(req, "op", json_string(op));
        json_object_set_new(req, "path", p);
        return req;
}

static int uint_field(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
        json_t *v = json_object_get(o, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
                return -EBADMSG;
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/* ---- host -> guest ---- */

/* Stream data[0..len) or, if fd >= 0, fd until EOF into guest_path. */
static int write_stream(smolvm_vm *vm, const char *guest_path, unsigned mode, const void *data, size_t len, int fd)
{
        json_t *req = request_new("write_file", guest_path);
        if (!req)
                return smolvm_last_error()->code;
        json_object_set_new(req, "mode", json_integer(mode & FILE_MODE_MASK));
        json_object_set_new(req, "mkdirs", json_true());
        const char *what = "write_file";
        agent_call c;
        int r = agent_call_open(vm, req, what, &c);
        json_decref(req);
        if (r < 0)
                return r;

        _cleanup_free_ uint8_t *buf = fd >= 0 ? malloc(SMOLVM_FRAME_DATA_CHUNK) : NULL;
        const uint8_t *p = data;
        uint64_t sent = 0;
        bool stopped = false;
        json_t *res = NULL;
        if (fd >= 0 && !buf) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        for (;;) {
                const uint8_t *chunk;
                size_t n;
                if (fd >= 0) {
                        ssize_t k = read(fd, buf, SMOLVM_FRAME_DATA_CHUNK);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0) {
                                /* The stream closes without STDIN_EOF: the agent must not
                                 * keep a file it never saw the end of. */
                                r = vm_error(negative_errno(), NULL, "read: %s", strerror(errno));
                                goto out;
                        }
                        chunk = buf;
                        n = (size_t)k;
                } else {
                        chunk = p + sent;
                        n = MIN(len - (size_t)sent, (size_t)SMOLVM_FRAME_DATA_CHUNK);
                }
                if (n == 0)
                        break;
                r = agent_call_send(&c, SMOLVM_FRAME_STDIN, chunk, (uint32_t)n);
                if (r < 0)
                        goto out;
                if (r == 1) {
                        stopped = true;
                        break;
                }
                sent += n;
        }
        if (!stopped) {
                r = agent_call_send(&c, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
                if (r < 0)
                        goto out;
        }
        r = agent_call_result(&c, what, &res);
        if (r < 0)
                goto out;
        uint64_t bytes;
        if (uint_field(res, "bytes", UINT64_MAX >> 1, &bytes) < 0)
                r = vm_error(-EBADMSG, NULL, "write_file %s: guest agent sent an invalid RESULT", guest_path);
        else if (stopped || bytes != sent)
                r = vm_error(-EIO, NULL, "write_file %s: sent %llu bytes, the guest wrote %llu", guest_path,
                             (unsigned long long)sent, (unsigned long long)bytes);
out:
        json_decref(res);
        agent_call_close(&c);
        return r;
}

SMOLVM_EXPORT int smolvm_write_file(smolvm_vm *vm, const char *guest_path, const void *data, size_t len,
                                    unsigned mode)
{
        int r = check_guest_path(guest_path, "write_file");
        if (r < 0)
                return r;
        if (len && !data)
                return vm_error(-EINVAL, NULL, "write_file %s: no data", guest_path);
        return write_stream(vm, guest_path, mode, data, len, -1);
}

static int guest_mkdir(smolvm_vm *vm, const char *guest_path, unsigned mode)
{
        json_t *req = request_new("mkdir", guest_path);
        if (!req)
                return smolvm_last_error()->code;
        json_object_set_new(req, "mode", json_integer(mode & FILE_MODE_MASK));
        json_object_set_new(req, "parents", json_true());
        json_t *res = NULL;
        int r = agent_call_simple(vm, req, "mkdir", &res);
        json_decref(req);
        json_decref(res);
        return r;
}

/* The agent has no symlink op: `ln -sfn` with the target as an argument (targets
 * are not secrets, and argv needs no quoting). */
static int guest_symlink(smolvm_vm *vm, const char *target, const char *guest_path)
{
        const char *argv[] = { "ln", "-sfn", "--", target, guest_path, NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.timeout_ms = AGENT_CALL_IDLE_TIMEOUT_MS;
        o.max_output_bytes = 4096;
        smolvm_result res;
        int r = smolvm_run(vm, &o, &res);
        if (r < 0)
                return r;
        if (res.status.exit_code != 0) {
                sanitize_text(res.stderr_data);
                r = vm_error(-EIO, NULL, "symlink %s -> %s in the guest: %s", guest_path, target,
                             res.stderr_len ? res.stderr_data : "ln failed");
        }
        smolvm_result_free(&res);
        return r;
}

static int upload_dir(smolvm_vm *vm, int dfd, const char *host_path, const char *guest_path, unsigned depth);

static int upload_entry(smolvm_vm *vm, int parent_fd, const char *name, const char *host_path,
                        const char *guest_path, unsigned depth)
{
        struct stat st;
        if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return vm_error(negative_errno(), NULL, "stat %s: %s", host_path, strerror(errno));
        if (S_ISREG(st.st_mode)) {
                _cleanup_close_ int fd = openat(parent_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return vm_error(negative_errno(), NULL, "open %s: %s", host_path, strerror(errno));
                return write_stream(vm, guest_path, st.st_mode, NULL, 0, fd);
        }
        if (S_ISDIR(st.st_mode)) {
                _cleanup_close_ int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return vm_error(negative_errno(), NULL, "open %s: %s", host_path, strerror(errno));
                int r = guest_mkdir(vm, guest_path, st.st_mode);
                if (r < 0)
                        return r;
                return upload_dir(vm, fd, host_path, guest_path, depth + 1);
        }
        if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n = readlinkat(parent_fd, name, target, sizeof(target) - 1);
                if (n < 0)
                        return vm_error(negative_errno(), NULL, "readlink %s: %s", host_path, strerror(errno));
                target[n] = '\0';
                return guest_symlink(vm, target, guest_path);
        }
        return 0; /* sockets, fifos, devices: nothing sensible to copy */
}

static int upload_dir(smolvm_vm *vm, int dfd, const char *host_path, const char *guest_path, unsigned depth)
{
        if (depth > UPLOAD_MAX_DEPTH)
                return vm_error(-ELOOP, NULL, "upload %s: more than %u directory levels", host_path, UPLOAD_MAX_DEPTH);
        int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "dup: %s", strerror(errno));
        DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return vm_error(negative_errno(), NULL, "opendir %s: %s", host_path, strerror(errno));
        }
        int r = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno)
                                r = vm_error(negative_errno(), NULL, "readdir %s: %s", host_path, strerror(errno));
                        break;
                }
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                _cleanup_free_ char *hp = NULL, *gp = NULL;
                bool root = !strcmp(guest_path, "/");
                if (asprintf(&hp, "%s/%s", host_path, de->d_name) < 0 ||
                    asprintf(&gp, "%s/%s", root ? "" : guest_path, de->d_name) < 0) {
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        break;
                }
                r = upload_entry(vm, dirfd(d), de->d_name, hp, gp, depth);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

SMOLVM_EXPORT int smolvm_upload(smolvm_vm *vm, const char *host_path, const char *guest_path)
{
        int r = check_guest_path(guest_path, "upload");
        if (r < 0)
                return r;
        if (!host_path || !*host_path)
                return vm_error(-EINVAL, NULL, "upload: no host path");
        /* The top level may be a symlink the user named (as cp does); inside a tree
         * symlinks are copied as symlinks. */
        _cleanup_close_ int fd = open(host_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "open %s: %s", host_path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return vm_error(negative_errno(), NULL, "stat %s: %s", host_path, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
                r = guest_mkdir(vm, guest_path, st.st_mode);
                if (r < 0)
                        return r;
                return upload_dir(vm, fd, host_path, guest_path, 0);
        }
        if (!S_ISREG(st.st_mode))
                return vm_error(-EINVAL, NULL, "upload %s: not a regular file or directory", host_path);
        if (fcntl(fd, F_SETFL, 0) < 0)
                return vm_error(negative_errno(), NULL, "fcntl %s: %s", host_path, strerror(errno));
        return write_stream(vm, guest_path, st.st_mode, NULL, 0, fd);
}

/* ---- guest -> host ---- */

/* Open a read_file stream: on success the agent's RESULT gave size and mode and
 * the data frames follow. */
static int read_open(smolvm_vm *vm, const char *guest_path, agent_call *c, uint64_t *ret_size, unsigned *ret_mode)
{
        json_t *req = request_new("read_file", guest_path);
        if (!req)
                return smolvm_last_error()->code;
        int r = agent_call_open(vm, req, "read_file", c);
        json_decref(req);
        if (r < 0)
                return r;
        json_t *res = NULL;
        r = agent_call_result(c, "read_file", &res);
        uint64_t size = 0, mode = 0;
        if (r == 0 && (uint_field(res, "size", UINT64_MAX >> 1, &size) < 0 ||
                       uint_field(res, "mode", 07777777, &mode) < 0))
                r = vm_error(-EBADMSG, NULL, "read_file %s: guest agent sent an invalid RESULT", guest_path);
        json_decref(res);
        if (r < 0) {
                agent_call_close(c);
                return r;
        }
        *ret_size = size;
        *ret_mode = (unsigned)mode & FILE_MODE_MASK;
        return 0;
}

typedef int (*sink_fn)(void *ud, const void *data, size_t len);

/* Pass exactly size bytes of STDOUT frames to sink, then expect the stream's end. */
static int read_body(agent_call *c, const char *guest_path, uint64_t size, sink_fn sink, void *ud)
{
        uint64_t got = 0;
        for (;;) {
                uint16_t type;
                const uint8_t *p;
                uint32_t len;
                int r = agent_call_next(c, &type, &p, &len);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (type == SMOLVM_FRAME_ERROR)
                        return agent_parse_error(p, len);
                if (type != SMOLVM_FRAME_STDOUT)
                        return vm_error(-EPROTO, NULL, "read_file %s: guest agent sent an unexpected frame (type %u)",
                                        guest_path, type);
                if (len > size - got)
                        return vm_error(-EPROTO, NULL, "read_file %s: guest sent more than the %llu bytes it announced",
                                        guest_path, (unsigned long long)size);
                got += len;
                r = sink(ud, p, len);
                if (r < 0)
                        return r;
        }
        if (got != size)
                return vm_error(-EPROTO, "the file may have changed in the guest while it was read",
                                "read_file %s: guest sent %llu of the %llu bytes it announced", guest_path,
                                (unsigned long long)got, (unsigned long long)size);
        return 0;
}

typedef struct membuf {
        uint8_t *data;
        size_t len;
} membuf;

static int mem_sink(void *ud, const void *data, size_t len)
{
        membuf *m = ud;
        memcpy(m->data + m->len, data, len); /* read_body bounds the total by the size */
        m->len += len;
        return 0;
}

SMOLVM_EXPORT int smolvm_read_file(smolvm_vm *vm, const char *guest_path, void **ret_data, size_t *ret_len,
                                   size_t max_bytes)
{
        int r = check_guest_path(guest_path, "read_file");
        if (r < 0)
                return r;
        if (max_bytes == 0)
                max_bytes = SMOLVM_DEFAULT_READ_MAX;
        agent_call c;
        uint64_t size;
        unsigned mode;
        r = read_open(vm, guest_path, &c, &size, &mode);
        if (r < 0)
                return r;
        if (size > max_bytes || size >= SIZE_MAX) {
                agent_call_close(&c);
                return vm_error(-EFBIG, NULL, "read_file %s: %llu bytes, more than the limit of %zu", guest_path,
                                (unsigned long long)size, max_bytes);
        }
        membuf m = { .data = malloc((size_t)size + 1) };
        if (!m.data) {
                agent_call_close(&c);
                return vm_error(-ENOMEM, NULL, "read_file %s: out of memory", guest_path);
        }
        r = read_body(&c, guest_path, size, mem_sink, &m);
        agent_call_close(&c);
        if (r < 0) {
                free(m.data);
                return r;
        }
        m.data[m.len] = 0;
        *ret_data = m.data;
        *ret_len = m.len;
        return 0;
}

static int fd_sink(void *ud, const void *data, size_t len)
{
        int r = write_all(*(int *)ud, data, len);
        return r < 0 ? vm_error(r, NULL, "write: %s", strerror(-r)) : 0;
}

/* Receive the open read_file stream into parent_fd/leaf: a temporary file in the
 * same directory, renamed over leaf once complete. Never follows a symlink at
 * leaf (rename replaces the link itself). */
static int receive_file_at(agent_call *c, const char *guest_path, uint64_t size, unsigned mode, int parent_fd,
                           const char *leaf, const char *shown)
{
        char tmp[64];
        _cleanup_close_ int fd = -1;
        for (int tries = 0; fd < 0; tries++) {
                char id[SMOLVM_ID_LEN + 1];
                int r = random_id(id);
                if (r < 0)
                        return vm_error(r, NULL, "random: %s", strerror(-r));
                snprintf(tmp, sizeof(tmp), ".smolvm-%s.tmp", id);
                fd = openat(parent_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0 && (errno != EEXIST || tries > 8))
                        return vm_error(negative_errno(), NULL, "create a temporary file next to %s: %s", shown,
                                        strerror(errno));
        }
        int r = read_body(c, guest_path, size, fd_sink, &fd);
        if (r == 0 && fchmod(fd, mode & DOWNLOAD_FILE_MODE_MASK) < 0)
                r = vm_error(negative_errno(), NULL, "chmod %s: %s", shown, strerror(errno));
        if (r == 0 && close(TAKE_FD(fd)) < 0)
                r = vm_error(negative_errno(), NULL, "write %s: %s", shown, strerror(errno));
        if (r == 0 && renameat(parent_fd, tmp, parent_fd, leaf) < 0)
                r = vm_error(negative_errno(), NULL, "rename to %s: %s", shown, strerror(errno));
        if (r < 0)
                (void)unlinkat(parent_fd, tmp, 0);
        return r;
}

/* Open the directory rel (a validated relative path, or "" for dir_fd itself)
 * below dir_fd, component by component, never following a symlink. */
static int open_beneath(int dir_fd, const char *rel, int flags)
{
        _cleanup_free_ char *copy = strdup(rel);
        if (!copy)
                return -ENOMEM;
        int cur = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return negative_errno();
        char *save = NULL;
        for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
                int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | flags);
                int saved = errno;
                safe_close(cur);
                if (next < 0)
                        return -saved;
                cur = next;
        }
        return cur;
}

/* Split a validated relative path into its parent's fd (below dest_fd) and the
 * last component. */
static int open_parent(int dest_fd, const char *rel, const char **ret_leaf)
{
        const char *slash = strrchr(rel, '/');
        if (!slash) {
                *ret_leaf = rel;
                int fd = fcntl(dest_fd, F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? negative_errno() : fd;
        }
        _cleanup_free_ char *parent = strndup(rel, (size_t)(slash - rel));
        if (!parent)
                return -ENOMEM;
        *ret_leaf = slash + 1;
        return open_beneath(dest_fd, parent, 0);
}

typedef struct tree_entry {
        const char *path;         /* validated, relative; "" = the root */
        char type;                /* 'd', 'f', 'l' */
        unsigned mode;
        const char *target;
} tree_entry;

static int parse_entry(json_t *e, const char *guest_root, tree_entry *ret)
{
        json_t *p = json_object_get(e, "path"), *t = json_object_get(e, "type"), *tg = json_object_get(e, "target");
        uint64_t mode = 0;
        if (!json_is_string(p) || !json_is_string(t))
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent an entry without path or type", guest_root);
        const char *path = json_string_value(p), *type = json_string_value(t);
        size_t plen = json_string_length(p);
        tree_entry te = { .path = path };
        if (plen == 0 || (plen == 1 && path[0] == '.'))
                te.path = "";
        else if (!guest_relpath_valid(path, plen))
                return vm_error(-EBADMSG, "the guest may be compromised; nothing was written for this entry",
                                "list_tree %s: guest sent an unsafe path", guest_root);
        if (!strcmp(type, "dir"))
                te.type = 'd';
        else if (!strcmp(type, "file"))
                te.type = 'f';
        else if (!strcmp(type, "symlink")) {
                te.type = 'l';
                if (!json_is_string(tg) || !guest_symlink_target_valid(json_string_value(tg), json_string_length(tg)))
                        return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent an invalid symlink target",
                                        guest_root);
                te.target = json_string_value(tg);
        } else {
                te.type = '?'; /* a type we do not copy (fifo, socket, ...) */
        }
        if (te.type != 'l' && te.type != '?' && uint_field(e, "mode", 07777777, &mode) < 0)
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent an entry without a valid mode", guest_root);
        if (!*te.path && te.type != 'd')
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest listed the root as a %s", guest_root, type);
        te.mode = (unsigned)mode;
        *ret = te;
        return 0;
}

static int download_entry(smolvm_vm *vm, int dest_fd, const char *guest_root, const char *host_root,
                          const tree_entry *te)
{
        if (!*te->path || te->type == '?')
                return 0;
        _cleanup_free_ char *shown = NULL, *gpath = NULL;
        bool root = !strcmp(guest_root, "/");
        if (asprintf(&shown, "%s/%s", host_root, te->path) < 0 ||
            asprintf(&gpath, "%s/%s", root ? "" : guest_root, te->path) < 0)
                return vm_error(-ENOMEM, NULL, "out of memory");
        const char *leaf;
        _cleanup_close_ int pfd = open_parent(dest_fd, te->path, &leaf);
        if (pfd < 0)
                return vm_error(pfd == -ELOOP || pfd == -ENOTDIR ? -EBADMSG : pfd,
                                pfd == -ELOOP || pfd == -ENOTDIR ? "the guest listed an entry below a symlink or a file"
                                                                  : NULL,
                                "open the parent of %s: %s", shown, strerror(-pfd));
        switch (te->type) {
        case 'd': {
                if (mkdirat(pfd, leaf, 0700) == 0)
                        return 0;
                int saved = errno;
                struct stat st;
                bool exists = saved == EEXIST && fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0;
                if (exists && S_ISDIR(st.st_mode))
                        return 0;
                if (exists && S_ISLNK(st.st_mode))
                        return vm_error(-EEXIST, "downloads never follow symlinks: remove it, or download elsewhere",
                                        "mkdir %s: a symlink is in the way", shown);
                return vm_error(-saved, NULL, "mkdir %s: %s", shown, strerror(saved));
        }
        case 'l': {
                char tmp[64], id[SMOLVM_ID_LEN + 1];
                int r = random_id(id);
                if (r < 0)
                        return vm_error(r, NULL, "random: %s", strerror(-r));
                snprintf(tmp, sizeof(tmp), ".smolvm-%s.tmp", id);
                if (symlinkat(te->target, pfd, tmp) < 0)
                        return vm_error(negative_errno(), NULL, "symlink %s: %s", shown, strerror(errno));
                if (renameat(pfd, tmp, pfd, leaf) < 0) {
                        r = vm_error(negative_errno(), NULL, "rename to %s: %s", shown, strerror(errno));
                        (void)unlinkat(pfd, tmp, 0);
                        return r;
                }
                return 0;
        }
        case 'f': {
                agent_call c;
                uint64_t size;
                unsigned mode;
                int r = read_open(vm, gpath, &c, &size, &mode);
                if (r < 0)
                        return r;
                r = receive_file_at(&c, gpath, size, mode, pfd, leaf, shown);
                agent_call_close(&c);
                return r;
        }
        default:
                return 0;
        }
}

/* Directory modes last and deepest first: a read-only directory must not stop
 * us from creating its children. */
static int apply_dir_modes(int dest_fd, const char *host_root, const tree_entry *ents, size_t n)
{
        for (size_t i = n; i-- > 0;) {
                if (ents[i].type != 'd')
                        continue;
                _cleanup_close_ int fd = open_beneath(dest_fd, ents[i].path, 0);
                if (fd < 0 || fchmod(fd, ents[i].mode & DOWNLOAD_DIR_MODE_MASK) < 0) {
                        int e = fd < 0 ? -fd : errno;
                        return vm_error(-e, NULL, "chmod %s/%s: %s", host_root, ents[i].path, strerror(e));
                }
        }
        return 0;
}

/* list_tree does not list its root: ask for the root's mode with stat(1). Best
 * effort: returns 0 and *ret_mode, or a negative errno (not recorded). */
static int guest_mode(smolvm_vm *vm, const char *guest_path, unsigned *ret_mode)
{
        const char *argv[] = { "stat", "-c", "%a", "--", guest_path, NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.timeout_ms = AGENT_CALL_IDLE_TIMEOUT_MS;
        o.max_output_bytes = 64;
        smolvm_result res;
        int r = smolvm_run(vm, &o, &res);
        if (r < 0)
                return r;
        char *end = NULL;
        unsigned long m = strtoul(res.stdout_data, &end, 8);
        if (res.status.exit_code != 0 || end == res.stdout_data || (*end && *end != '\n') || m > 07777)
                r = -EBADMSG;
        else
                *ret_mode = (unsigned)m;
        smolvm_result_free(&res);
        return r;
}

static int download_tree(smolvm_vm *vm, const char *guest_path, const char *host_path)
{
        json_t *req = request_new("list_tree", guest_path);
        if (!req)
                return smolvm_last_error()->code;
        json_t *res = NULL;
        int r = agent_call_simple(vm, req, "list_tree", &res);
        json_decref(req);
        if (r < 0)
                return r;
        json_t *arr = json_object_get(res, "entries");
        size_t n = json_array_size(arr);
        _cleanup_free_ tree_entry *ents = NULL;
        _cleanup_close_ int dest_fd = -1;
        if (!json_is_array(arr)) {
                r = vm_error(-EBADMSG, NULL, "list_tree %s: guest agent sent no entries", guest_path);
                goto out;
        }
        ents = calloc(n ? n : 1, sizeof(*ents));
        if (!ents) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        /* Validate everything before writing anything. */
        for (size_t i = 0; i < n; i++) {
                r = parse_entry(json_array_get(arr, i), guest_path, &ents[i]);
                if (r < 0)
                        goto out;
        }
        r = mkdir_parents(host_path, 0755);
        if (r < 0) {
                r = vm_error(r, NULL, "mkdir %s: %s", host_path, strerror(-r));
                goto out;
        }
        dest_fd = open(host_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dest_fd < 0) {
                r = vm_error(negative_errno(), NULL, "open %s: %s", host_path, strerror(errno));
                goto out;
        }
        for (size_t i = 0; i < n && r == 0; i++)
                r = download_entry(vm, dest_fd, guest_path, host_path, &ents[i]);
        if (r == 0)
                r = apply_dir_modes(dest_fd, host_path, ents, n);
        unsigned root_mode;
        if (r == 0 && guest_mode(vm, guest_path, &root_mode) == 0 &&
            fchmod(dest_fd, root_mode & DOWNLOAD_DIR_MODE_MASK) < 0)
                r = vm_error(negative_errno(), NULL, "chmod %s: %s", host_path, strerror(errno));
out:
        json_decref(res);
        return r;
}

SMOLVM_EXPORT int smolvm_download(smolvm_vm *vm, const char *guest_path, const char *host_path)
{
        int r = check_guest_path(guest_path, "download");
        if (r < 0)
                return r;
        if (!host_path || !*host_path)
                return vm_error(-EINVAL, NULL, "download: no host path");
        agent_call c;
        uint64_t size;
        unsigned mode;
        r = read_open(vm, guest_path, &c, &size, &mode);
        if (r == -EISDIR)
                return download_tree(vm, guest_path, host_path);
        if (r < 0)
                return r;

        /* A single file: host_path is the user's choice, its parents are created. */
        _cleanup_free_ char *parent = strdup(host_path);
        _cleanup_close_ int pfd = -1;
        if (!parent) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        char *slash = strrchr(parent, '/');
        const char *leaf = host_path;
        if (slash) {
                leaf = host_path + (slash - parent) + 1;
                if (slash == parent)
                        slash[1] = '\0';
                else
                        *slash = '\0';
                r = mkdir_parents(parent, 0755);
                if (r < 0) {
                        r = vm_error(r, NULL, "mkdir %s: %s", parent, strerror(-r));
                        goto out;
                }
        }
        if (!*leaf) {
                r = vm_error(-EISDIR, "name the file, not a directory to put it in", "download to %s", host_path);
                goto out;
        }
        pfd = open(slash ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0) {
                r = vm_error(negative_errno(), NULL, "open %s: %s", slash ? parent : ".", strerror(errno));
                goto out;
        }
        r = receive_file_at(&c, guest_path, size, mode, pfd, leaf, host_path);
out:
        agent_call_close(&c);
        return r;
}
