/* SPDX-License-Identifier: Apache-2.0 */
/* Files between host and guest over the agent's write_file / read_file / mkdir
 * ops (docs/protocol.md): uploads, smolvm_write_file, smolvm_read_file, and the
 * read_file stream that download.c shares. One stream per file; data moves in
 * frames of at most SMOLVM_FRAME_DATA_CHUNK, so memory stays constant whatever
 * the size. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "files_i.h"
#include "util.h"

#define UPLOAD_MAX_DEPTH 256u

int check_guest_path(const char *path, const char *what)
{
        if (!path || path[0] != '/')
                return vm_error(-EINVAL, "give an absolute guest path", "%s: guest path '%s' is not absolute", what,
                                path ? path : "(null)");
        if (strlen(path) > PATH_MAX)
                return vm_error(-ENAMETOOLONG, NULL, "%s: guest path too long", what);
        return 0;
}

json_t *request_new(const char *op, const char *path)
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

int uint_field(json_t *o, const char *key, uint64_t max, uint64_t *ret)
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
        int r = agent_call_open(vm, req, what, SMOLVM_AGENT_REPLY_ANSWER, &c);
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
        r = agent_call_result(&c, &res);
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

int read_open(smolvm_vm *vm, const char *guest_path, int cancel_fd, agent_call *c, uint64_t *ret_size,
              unsigned *ret_mode)
{
        json_t *req = request_new("read_file", guest_path);
        if (!req)
                return smolvm_last_error()->code;
        int r = agent_call_open(vm, req, "read_file", SMOLVM_AGENT_REPLY_STREAM, c);
        json_decref(req);
        if (r < 0)
                return r;
        c->cancel_fd = cancel_fd;
        json_t *res = NULL;
        r = agent_call_result(c, &res);
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

int read_body(agent_call *c, const char *guest_path, uint64_t size, sink_fn sink, void *ud)
{
        uint64_t got = 0;
        for (;;) {
                /* After the RESULT the client lets only STDOUT, an ERROR or the end through. */
                smolvm_agent_event ev;
                int r = agent_call_next(c, &ev);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (ev.len > size - got)
                        return vm_error(-EPROTO, NULL, "read_file %s: guest sent more than the %llu bytes it announced",
                                        guest_path, (unsigned long long)size);
                got += ev.len;
                r = sink(ud, ev.data, ev.len);
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
        r = read_open(vm, guest_path, -1, &c, &size, &mode);
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
