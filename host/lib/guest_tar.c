/* SPDX-License-Identifier: Apache-2.0 */
/* A guest command with its stdout into an archive writer or its stdin from an
 * fd (guest_tar_i.h), and the tar streams of `smolvm cp VM:/path -` and
 * `smolvm cp - VM:/dir` on it: the guest's GNU tar makes and unpacks them, the
 * host passes the bytes through untouched. */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "guest_tar_i.h"
#include "util.h"

SMOLVM_EXPORT void smolvm_archive_opts_init(smolvm_archive_opts *o)
{
        *o = (smolvm_archive_opts){ .cancel_fd = -1 };
}

int guest_dir_check(const char *what, const char *path)
{
        if (!path || path[0] != '/')
                return vm_error(-EINVAL, "give an absolute guest path, e.g. /workspace", "%s: guest path '%s' is not "
                                "absolute", what, path ? path : "");
        if (strlen(path) >= PATH_MAX)
                return vm_error(-ENAMETOOLONG, NULL, "%s: guest path longer than %d bytes", what, PATH_MAX - 1);
        return 0;
}

void archive_result_fill(smolvm_archive_result *ret, const archive_stats *st, uint64_t start_ms)
{
        *ret = (smolvm_archive_result){ .tar_bytes = st->content_bytes, .file_bytes = st->file_bytes,
                                        .duration_ms = now_ms() - start_ms, .verified = st->verified };
        snprintf(ret->io, sizeof(ret->io), "%s", st->io ? st->io : "");
        bool have_sha = st->verified || st->kind != 0;
        for (size_t i = 0; have_sha && i < sizeof(st->sha256); i++)
                snprintf(ret->sha256 + 2 * i, 3, "%02x", st->sha256[i]);
}

typedef struct cmd_run {
        const guest_cmd *c;
        uint64_t out_bytes;
        int out_err;              /* the writer's error: reported in our words, not exec's */
        char err[GUEST_CMD_STDERR_MAX];
        size_t err_len;
} cmd_run;

static int on_stdout(void *ud, const void *data, size_t len)
{
        cmd_run *x = ud;
        if (!x->c->out)
                return 0;
        uint64_t max = x->c->max_bytes, content, file;
        archive_writer_progress(x->c->out, &content, &file);
        /* Raw: checked before a byte too many is written; compressed: as soon as
         * the archive has passed it (its file is removed, a stream ends there). */
        if (max && (file > max || (x->c->out_raw && len > max - file)))
                return x->out_err = -EFBIG;
        int r = archive_writer_write(x->c->out, data, len);
        if (r < 0)
                return x->out_err = r;
        x->out_bytes += len;
        const smolvm_archive_opts *p = x->c->progress;
        if (p && p->progress) {
                archive_writer_progress(x->c->out, &content, &file);
                p->progress(p->userdata, content, file);
        }
        return 0;
}

static int on_stderr(void *ud, const void *data, size_t len)
{
        cmd_run *x = ud;
        size_t n = MIN(len, sizeof(x->err) - 1 - x->err_len);
        memcpy(x->err + x->err_len, data, n);
        x->err_len += n;
        x->err[x->err_len] = '\0';
        return 0;
}

/* The agent's answer to an exec that could not start, in our words. */
static int start_failed(const guest_cmd *c, int r)
{
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", smolvm_last_error()->message);
        bool cwd = c->cwd && !strncmp(msg, "cwd ", 4);
        if (cwd && r == -ENOENT)
                return vm_error(SMOLVM_ENOTFOUND, "check the path: smolvm exec VM -- ls -ld DIR",
                                "%s: no directory %s in the guest", c->what, c->cwd);
        if (cwd && r == -ENOTDIR)
                return vm_error(-ENOTDIR, "give a directory", "%s: %s in the guest is not a directory", c->what,
                                c->cwd);
        if (r == -ENOENT && !strncmp(msg, "exec ", 5))
                return vm_error(r, "the image needs GNU tar and a POSIX sh (Debian's default image has both)",
                                "%s: the guest has no %s", c->what, c->argv[0]);
        return r;
}

int guest_cmd_run(smolvm_vm *vm, const guest_cmd *c)
{
        cmd_run x = { .c = c };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = c->argv;
        o.cwd = c->cwd;
        o.cancel_fd = c->cancel_fd;
        if (c->stdin_fd >= 0) {
                o.stdin_mode = SMOLVM_STDIN_FD;
                o.stdin_fd = c->stdin_fd;
        }
        smolvm_exec_callbacks cbs = { .on_stdout = on_stdout, .on_stderr = on_stderr, .userdata = &x };
        smolvm_exec_status st;
        int r = smolvm_exec(vm, &o, &cbs, &st);
        if (x.out_err == -EFBIG)
                return vm_error(-EFBIG, "raise the limit (--max-size), or archive less",
                                "%s: the guest's output passed the limit of %.1f MiB", c->what,
                                (double)c->max_bytes / (1024.0 * 1024.0));
        if (x.out_err) {
                const char *why = archive_writer_error(c->out);
                return vm_error(x.out_err, x.out_err == -ENOSPC ? "free some space, or write elsewhere" : NULL,
                                "%s: writing the archive: %s", c->what, *why ? why : strerror(-x.out_err));
        }
        if (r == -ECANCELED)
                return vm_error(r, NULL, "%s interrupted", c->what);
        if (r < 0)
                return start_failed(c, r);
        if (st.exit_code == 0 && !st.signal)
                return 0;
        sanitize_text(x.err);
        /* One line is what a user reads first: keep tar's lines but not a trailing newline. */
        while (x.err_len && (x.err[x.err_len - 1] == '\n' || x.err[x.err_len - 1] == ' '))
                x.err[--x.err_len] = '\0';
        char status[48];
        if (st.signal)
                snprintf(status, sizeof(status), "was killed by signal %d", st.signal);
        else
                snprintf(status, sizeof(status), "exited with %d", st.exit_code);
        return vm_error(-EIO, strstr(x.err, "changed as we read it") ? "a file changed while it was read: run it "
                                                                       "again once the directory is quiet" : NULL,
                        "%s: the guest's %s %s%s%s", c->what, c->argv[0], status, x.err_len ? ": " : "",
                        x.err_len ? x.err : "");
}

/* ---- stdin from a thread ---- */

#define FEED_CHUNK_BYTES ((size_t)256 * 1024)

int guest_feed_init(guest_feed *f)
{
        f->sock = -1;
        f->stop_fd = eventfd(0, EFD_CLOEXEC);
        f->done_fd = eventfd(0, EFD_CLOEXEC);
        if (f->stop_fd < 0 || f->done_fd < 0) {
                int r = negative_errno();
                guest_feed_done(f);
                return vm_error(r, NULL, "eventfd: %s", strerror(-r));
        }
        return 0;
}

void guest_feed_done(guest_feed *f)
{
        f->stop_fd = safe_close(f->stop_fd);
        f->done_fd = safe_close(f->done_fd);
        f->sock = safe_close(f->sock);
}

static void signal_fd(int fd)
{
        uint64_t one = 1;
        (void)!write(fd, &one, sizeof(one));
}

/* 0, 1 when the command stopped reading, or a negative errno. */
static int send_all(int sock, const uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                        return 1;
                if (n < 0)
                        return negative_errno();
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static void *feed_main(void *arg)
{
        guest_feed *f = arg;
        uint8_t *buf = malloc(FEED_CHUNK_BYTES);
        int r = buf ? 0 : -ENOMEM;
        while (r == 0) {
                ssize_t n = f->read(f->ud, buf, FEED_CHUNK_BYTES);
                if (n <= 0) {
                        r = (int)n;
                        break;
                }
                if (f->guest_gone)
                        continue;
                int k = send_all(f->sock, buf, (size_t)n);
                if (k < 0)
                        r = k;
                else if (k == 0)
                        f->bytes += (uint64_t)n;
                else {
                        f->guest_gone = true;
                        if (!f->drain)
                                break;
                }
        }
        /* EOF for the command, also after an error: a tar stops at once. */
        (void)shutdown(f->sock, SHUT_WR);
        free(buf);
        f->result = r;
        signal_fd(f->done_fd);
        return NULL;
}

/* Wait for the feeder to end, or for the caller's cancel fd. */
static int wait_feeder(guest_feed *f, int cancel_fd)
{
        for (;;) {
                struct pollfd p[2] = { { .fd = f->done_fd, .events = POLLIN },
                                       { .fd = cancel_fd > 0 ? cancel_fd : -1, .events = POLLIN } };
                int k = poll(p, 2, -1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 || p[1].revents) {
                        signal_fd(f->stop_fd);
                        return k < 0 ? negative_errno() : -ECANCELED;
                }
                if (p[0].revents)
                        return 0;
        }
}

int guest_cmd_run_fed(smolvm_vm *vm, const guest_cmd *c, guest_feed *f)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return vm_error(negative_errno(), NULL, "socketpair: %s", strerror(errno));
        f->sock = sv[1];
        f->guest_gone = false;
        f->bytes = 0;
        /* The caller's signals (a CLI's signalfd set) stay the caller's. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t t;
        int r = -pthread_create(&t, NULL, feed_main, f);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                safe_close(sv[0]);
                f->sock = safe_close(f->sock);
                return vm_error(r, NULL, "%s: cannot start a thread: %s", c->what, strerror(-r));
        }
        guest_cmd fed = *c;
        fed.stdin_fd = sv[0];
        r = guest_cmd_run(vm, &fed);
        vm_error_saved saved;
        vm_error_save(&saved);
        /* From here the feeder's sends fail: it drains its source or stops. */
        safe_close(sv[0]);
        /* Drain only after the command ran: a VM that is not running needs no
         * verdict on the archive. */
        if (!f->drain || (r < 0 && r != -EIO))
                signal_fd(f->stop_fd);
        else if (wait_feeder(f, c->cancel_fd) == -ECANCELED && r == 0)
                r = vm_error(-ECANCELED, NULL, "%s interrupted", c->what);
        else if (r < 0)
                vm_error_restore(&saved);
        pthread_join(t, NULL);
        f->sock = safe_close(f->sock);
        return r;
}

/* ---- cp's tar streams ---- */

/* The parent directory and the last component of an absolute guest path, as
 * tar -C PARENT NAME wants them; "/" is ("/", "."). Records the error. */
static int split_guest_path(const char *what, const char *path, char **ret_parent, char **ret_name)
{
        size_t end = strlen(path);
        while (end > 1 && path[end - 1] == '/')
                end--;
        size_t start = end;
        while (start > 0 && path[start - 1] != '/')
                start--;
        char *parent = start <= 1 ? strdup("/") : strndup(path, start - 1);
        char *name = end == 1 ? strdup(".") : strndup(path + start, end - start);
        if (!parent || !name) {
                free(parent);
                free(name);
                return vm_error(-ENOMEM, NULL, "out of memory");
        }
        if (!strcmp(name, ".") && end != 1) {
                free(parent);
                free(name);
                return vm_error(-EINVAL, "name the directory itself", "%s: %s has no last component to name the "
                                "stream's entries", what, path);
        }
        *ret_parent = parent;
        *ret_name = name;
        return 0;
}

SMOLVM_EXPORT int smolvm_tar_from_guest(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                        smolvm_archive_result *ret)
{
        static const char what[] = "tar from the guest";
        if (!vm || !o || fd < 0)
                return vm_error(-EINVAL, NULL, "smolvm_tar_from_guest: no VM, options or fd");
        int r = guest_dir_check(what, o->guest_path);
        if (r < 0)
                return r;
        _cleanup_free_ char *parent = NULL, *name = NULL;
        r = split_guest_path(what, o->guest_path, &parent, &name);
        if (r < 0)
                return r;
        uint64_t start = now_ms();
        archive_write_opts wo;
        archive_write_opts_init(&wo);
        wo.format = ARCHIVE_FORMAT_RAW;
        wo.cancel_fd = o->cancel_fd;
        archive_writer *w;
        r = archive_writer_new(fd, &wo, &w);
        if (r < 0)
                return vm_error(r, NULL, "%s: %s", what, strerror(-r));
        /* "--" : a name may start with '-'. */
        const char *argv[] = { "tar", "-c", "-b", GUEST_TAR_RECORD_BLOCKS, "-f", "-", "--numeric-owner", "--",
                               name, NULL };
        guest_cmd c = { .what = what, .argv = argv, .cwd = parent, .cancel_fd = o->cancel_fd, .out = w,
                        .stdin_fd = -1, .progress = o, .max_bytes = o->max_bytes, .out_raw = true };
        r = guest_cmd_run(vm, &c);
        archive_stats st;
        if (r == 0 && (r = archive_writer_finish(w, &st)) < 0)
                r = vm_error(r, NULL, "%s: %s", what, archive_writer_error(w));
        archive_writer_free(w);
        if (r == 0 && ret)
                archive_result_fill(ret, &st, start);
        return r;
}

typedef struct raw_source {
        int fd, stop_fd;
        const smolvm_archive_opts *o;
        uint64_t bytes;
} raw_source;

static ssize_t raw_read(void *ud, void *buf, size_t len)
{
        raw_source *s = ud;
        for (;;) {
                int r = fd_wait(s->fd, POLLIN, 0, s->stop_fd);
                if (r < 0)
                        return r;
                ssize_t n = read(s->fd, buf, len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return negative_errno();
                s->bytes += (uint64_t)n;
                if (n > 0 && s->o->progress)
                        s->o->progress(s->o->userdata, s->bytes, s->bytes);
                return n;
        }
}

SMOLVM_EXPORT int smolvm_tar_to_guest(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                      smolvm_archive_result *ret)
{
        static const char what[] = "tar into the guest";
        if (!vm || !o || fd < 0)
                return vm_error(-EINVAL, NULL, "smolvm_tar_to_guest: no VM, options or fd");
        int r = guest_dir_check(what, o->guest_path);
        if (r < 0)
                return r;
        uint64_t start = now_ms();
        raw_source src = { .fd = fd, .o = o };
        guest_feed f = { .read = raw_read, .ud = &src };
        r = guest_feed_init(&f);
        if (r < 0)
                return r;
        src.stop_fd = f.stop_fd;
        const char *argv[] = { "tar", "-x", "-b", GUEST_TAR_RECORD_BLOCKS, "-f", "-", "--numeric-owner", NULL };
        guest_cmd c = { .what = what, .argv = argv, .cwd = o->guest_path, .cancel_fd = o->cancel_fd };
        r = guest_cmd_run_fed(vm, &c, &f);
        guest_feed_done(&f);
        /* The command finished: a stop of the feeder afterwards is no failure. */
        if (r == 0 && f.result < 0 && f.result != -ECANCELED)
                r = vm_error(f.result, NULL, "%s: reading the stream: %s", what, strerror(-f.result));
        if (r == 0 && ret)
                *ret = (smolvm_archive_result){ .tar_bytes = src.bytes, .file_bytes = src.bytes,
                                                .duration_ms = now_ms() - start, .io = "read" };
        return r;
}
