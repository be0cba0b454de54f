/* SPDX-License-Identifier: Apache-2.0 */
/* Running a command in the guest: one hybrid-vsock stream to the agent per exec
 * (agent_proto.h), so concurrent execs share nothing but the immutable VM dir.
 * The poll loop (stdin, output, cancel, the timeout's safety net) is ours; the
 * frames and their validation are common/agent_client.h's. Memory stays bounded
 * by one frame (streaming) or the caller's cap (smolvm_run). */
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "agent_call_i.h"
#include "agent_client_io.h"
#include "agent_proto.h"
#include "smolvm_i.h"
#include "util.h"

#define MAX_ARGV 4096u

SMOLVM_EXPORT void smolvm_exec_opts_init(smolvm_exec_opts *o)
{
        *o = (smolvm_exec_opts){ .stdin_fd = -1, .cancel_fd = -1, .tty_size_fd = -1, .resize_fd = -1 };
}

typedef struct exec_ctx {
        int fd;
        smolvm_agent_client cl;   /* framing and reply validation (common/agent_client.h) */
        uint8_t *stdin_buf;       /* SMOLVM_STDIN_FD: one chunk read from stdin_fd */
        bool stdin_done;          /* STDIN_EOF queued, or nothing to send */
        uint64_t last_rx_ms;      /* when the agent last sent us something */
        const uint8_t *stdin_bytes;
        size_t stdin_left;
        bool resize_pending;      /* the window size changed: a RESIZE is to be sent */
        bool resize_gone;         /* resize_fd hung up or failed: no longer watched */
} exec_ctx;

static bool pending(const exec_ctx *c)
{
        size_t len;
        (void)smolvm_agent_client_tx_buf(&c->cl, &len);
        return len > 0;
}

/* Best effort when we give up: ask the agent to kill the command. Closing the
 * stream must make it do so anyway. */
static void send_kill(exec_ctx *c)
{
        uint8_t payload[4];
        put_le32(payload, SIGKILL);
        if (smolvm_agent_client_send(&c->cl, SMOLVM_FRAME_SIGNAL, payload, sizeof(payload)) == 0)
                (void)smolvm_agent_client_write(&c->cl, c->fd);
}

/* The terminal's size: tty_size_fd's, else the options'. */
static void tty_size(const smolvm_exec_opts *o, uint16_t *ret_rows, uint16_t *ret_cols)
{
        struct winsize ws;
        if (o->tty_size_fd >= 0 && ioctl(o->tty_size_fd, TIOCGWINSZ, &ws) == 0) {
                *ret_rows = ws.ws_row;
                *ret_cols = ws.ws_col;
        } else {
                *ret_rows = o->rows;
                *ret_cols = o->cols;
        }
}

static int build_request(const smolvm_exec_opts *o, json_t **ret)
{
        if (!o->argv || !o->argv[0])
                return vm_error(-EINVAL, NULL, "no command given");
        if (o->cwd && o->cwd[0] != '/')
                return vm_error(-EINVAL, "give an absolute guest path", "working directory '%s' is not absolute",
                                o->cwd);
        json_t *req = json_object(), *argv = json_array(), *env = json_array();
        _cleanup_free_ char *text = NULL; /* the request as sent: its size is bounded */
        int r = 0;
        if (!req || !argv || !env) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        size_t n = 0;
        for (; o->argv[n]; n++) {
                if (n >= MAX_ARGV) {
                        r = vm_error(-E2BIG, NULL, "too many arguments (max %u)", MAX_ARGV);
                        goto out;
                }
                json_t *s = json_string(o->argv[n]);
                if (!s) {
                        r = vm_error(-EINVAL, NULL, "argument %zu is not valid UTF-8", n);
                        goto out;
                }
                json_array_append_new(argv, s);
        }
        /* The agent's rules, checked here so a bad entry is named before a stream opens. */
        r = vm_env_check("exec", o->env);
        if (r < 0)
                goto out;
        if (o->tty && o->term && o->term[0]) {
                /* First, so that a TERM in env replaces it. */
                _cleanup_free_ char *kv = NULL;
                json_t *s = asprintf(&kv, "TERM=%s", o->term) < 0 ? NULL : json_string(kv);
                if (!s || agent_env_entry_check(kv, NULL) < 0) {
                        json_decref(s);
                        r = vm_error(-EINVAL, "set TERM to a terminal type's name", "invalid TERM '%.64s'", o->term);
                        goto out;
                }
                json_array_append_new(env, s);
        }
        for (n = 0; o->env && o->env[n]; n++) {
                json_t *s = json_string(o->env[n]);
                if (!s) {
                        r = vm_error(-EINVAL, NULL, "environment entry %zu is not valid UTF-8", n);
                        goto out;
                }
                json_array_append_new(env, s);
        }
        json_object_set_new(req, "op", json_string("exec"));
        json_object_set(req, "argv", argv);
        json_object_set(req, "env", env);
        if (o->cwd) {
                json_t *s = json_string(o->cwd);
                if (!s) {
                        r = vm_error(-EINVAL, NULL, "working directory is not valid UTF-8");
                        goto out;
                }
                json_object_set_new(req, "cwd", s);
        }
        json_object_set_new(req, "timeout_ms", json_integer(o->timeout_ms));
        json_object_set_new(req, "stdin", json_boolean(o->stdin_mode != SMOLVM_STDIN_NONE));
        json_object_set_new(req, "keep_background", json_boolean(!o->kill_background));
        if (o->detach)
                json_object_set_new(req, "detach", json_true());
        if (o->tty) {
                uint16_t rows, cols;
                tty_size(o, &rows, &cols);
                json_object_set_new(req, "tty", json_true());
                json_object_set_new(req, "rows", json_integer(rows));
                json_object_set_new(req, "cols", json_integer(cols));
        }
        text = json_dumps(req, JSON_COMPACT);
        if (!text) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        if (strlen(text) > SMOLVM_FRAME_MAX_PAYLOAD) {
                r = vm_error(-E2BIG, NULL, "command line and environment exceed %u bytes", SMOLVM_FRAME_MAX_PAYLOAD);
                goto out;
        }
        *ret = TAKE_PTR(req);
out:
        json_decref(argv);
        json_decref(env);
        json_decref(req);
        return r;
}

static int callback_result(int r, const char *what)
{
        if (r >= 0)
                return 0;
        return vm_error(r, NULL, "%s callback: %s", what, smolvm_strerror(r));
}

static int handle_event(const smolvm_agent_event *ev, const smolvm_exec_callbacks *cbs, smolvm_exec_status *st,
                        bool *done)
{
        switch (ev->kind) {
        case SMOLVM_AGENT_EV_STARTED:
                st->pid = ev->pid;
                return cbs && cbs->on_started ? callback_result(cbs->on_started(cbs->userdata, ev->pid), "started") : 0;
        case SMOLVM_AGENT_EV_STDOUT:
                return cbs && cbs->on_stdout ? callback_result(cbs->on_stdout(cbs->userdata, ev->data, ev->len), "stdout")
                                             : 0;
        case SMOLVM_AGENT_EV_STDERR:
                return cbs && cbs->on_stderr ? callback_result(cbs->on_stderr(cbs->userdata, ev->data, ev->len), "stderr")
                                             : 0;
        case SMOLVM_AGENT_EV_EXIT:
                st->signal = ev->exit.signal;
                st->exit_code = ev->exit.signal ? 128 + ev->exit.signal : ev->exit.exit_code;
                st->timed_out = ev->exit.timed_out;
                st->guest_duration_ms = ev->exit.duration_ms;
                *done = true;
                return 0;
        case SMOLVM_AGENT_EV_ERROR:
                return agent_error_record(ev);
        default: /* the client lets nothing else through for an exec */
                return vm_error(-EPROTO, NULL, "exec: guest agent sent an unexpected answer");
        }
}

/* Queue the next stdin frame when nothing is pending. Returns 0 or negative errno. */
static int pump_stdin(exec_ctx *c, const smolvm_exec_opts *o, bool fd_readable)
{
        if (c->stdin_done || pending(c))
                return 0;
        if (smolvm_agent_client_tx_closed(&c->cl)) {
                c->stdin_done = true;
                return 0;
        }
        if (o->stdin_mode == SMOLVM_STDIN_BYTES) {
                if (c->stdin_left == 0) {
                        c->stdin_done = true;
                        return smolvm_agent_client_send(&c->cl, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
                }
                uint32_t n = (uint32_t)MIN(c->stdin_left, (size_t)SMOLVM_FRAME_DATA_CHUNK);
                int r = smolvm_agent_client_send(&c->cl, SMOLVM_FRAME_STDIN, c->stdin_bytes, n);
                c->stdin_bytes += n;
                c->stdin_left -= n;
                return r;
        }
        if (o->stdin_mode != SMOLVM_STDIN_FD || !fd_readable)
                return 0;
        if (!c->stdin_buf && !(c->stdin_buf = malloc(SMOLVM_FRAME_DATA_CHUNK)))
                return -ENOMEM;
        ssize_t n = read(o->stdin_fd, c->stdin_buf, SMOLVM_FRAME_DATA_CHUNK);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n <= 0) {
                /* EOF, or an unreadable stdin: either way the command sees EOF. */
                c->stdin_done = true;
                return smolvm_agent_client_send(&c->cl, SMOLVM_FRAME_STDIN_EOF, NULL, 0);
        }
        return smolvm_agent_client_send(&c->cl, SMOLVM_FRAME_STDIN, c->stdin_buf, (uint32_t)n);
}

/* The safety net fired: the command's timeout passed EXEC_HOST_MARGIN_MS ago and
 * the agent has not reported its end. The command did time out, whatever else
 * went wrong, so say that first (the CLI exits 124, as for a reported timeout). */
static int timeout_error(const exec_ctx *c, const smolvm_exec_opts *o, uint64_t now)
{
        char after[32];
        if (o->timeout_ms % 1000u == 0)
                snprintf(after, sizeof(after), "%u s", o->timeout_ms / 1000u);
        else
                snprintf(after, sizeof(after), "%u ms", o->timeout_ms);
        bool talking = c->last_rx_ms && now - c->last_rx_ms < EXEC_HOST_MARGIN_MS / 3;
        return vm_error(-ETIMEDOUT,
                        talking ? "its output kept coming: an older guest agent waits for processes that "
                                  "left the command's process group (setsid) and keep its output open"
                                : "the VM may be paused, overloaded, or its agent stuck ('smolvm logs' shows "
                                  "the guest console)",
                        "command timed out after %s, and the guest did not report its end within %u s more",
                        after, EXEC_HOST_MARGIN_MS / 1000u);
}

/* resize_fd woke us: take what woke us (a signalfd's siginfo, a pipe's
 * bytes) and have the new size sent. */
static void on_resize(exec_ctx *c, const smolvm_exec_opts *o)
{
        uint8_t buf[4096];
        ssize_t n = read(o->resize_fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                c->resize_gone = true; /* a closed pipe would wake us forever */
        c->resize_pending = true;
}

/* Queue a RESIZE with the terminal's current size, when there is room. */
static void send_resize(exec_ctx *c, const smolvm_exec_opts *o)
{
        uint8_t ws[4];
        uint16_t rows, cols;
        tty_size(o, &rows, &cols);
        put_le16(ws, rows);
        put_le16(ws + 2, cols);
        /* -ENOBUFS: behind a full STDIN frame; sent once it is written. Any
         * other failure (the agent stopped reading) is not worth an error. */
        if (smolvm_agent_client_send(&c->cl, SMOLVM_FRAME_RESIZE, ws, sizeof(ws)) != -ENOBUFS)
                c->resize_pending = false;
}

static int exec_loop(exec_ctx *c, const smolvm_exec_opts *o, const smolvm_exec_callbacks *cbs,
                     smolvm_exec_status *st, uint64_t start)
{
        uint64_t deadline = o->timeout_ms ? start + o->timeout_ms + EXEC_HOST_MARGIN_MS : 0;
        bool done = false;
        for (;;) {
                int r = pump_stdin(c, o, false);
                if (r < 0)
                        return vm_error(r, NULL, "stdin: %s", strerror(-r));
                if (c->resize_pending)
                        send_resize(c, o);
                if (smolvm_agent_client_write(&c->cl, c->fd) < 0)
                        return agent_client_record(&c->cl, "exec");

                bool want_stdin = o->stdin_mode == SMOLVM_STDIN_FD && !c->stdin_done && !pending(c);
                bool want_resize = o->tty && o->resize_fd > 0 && !c->resize_gone;
                struct pollfd p[4] = {
                        { .fd = c->fd, .events = POLLIN | (pending(c) ? POLLOUT : 0) },
                        { .fd = want_stdin ? o->stdin_fd : -1, .events = POLLIN },
                        { .fd = o->cancel_fd > 0 ? o->cancel_fd : -1, .events = POLLIN },
                        { .fd = want_resize ? o->resize_fd : -1, .events = POLLIN },
                };
                int timeout = -1;
                if (deadline) {
                        uint64_t now = now_ms();
                        if (now >= deadline) {
                                send_kill(c);
                                return timeout_error(c, o, now);
                        }
                        timeout = (int)MIN(deadline - now, 60000u);
                }
                int k = poll(p, 4, timeout);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return vm_error(negative_errno(), NULL, "poll: %s", strerror(errno));
                }
                if (k == 0)
                        continue;
                if (p[2].revents) {
                        send_kill(c);
                        return vm_error(-ECANCELED, NULL, "interrupted");
                }
                if (p[1].revents) {
                        r = pump_stdin(c, o, true);
                        if (r < 0)
                                return vm_error(r, NULL, "stdin: %s", strerror(-r));
                }
                if (p[3].revents)
                        on_resize(c, o);
                if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                /* One read of at most the rest of a frame; a read error or the
                 * agent's EOF comes back from the client below. */
                (void)smolvm_agent_client_read(&c->cl, c->fd);
                c->last_rx_ms = now_ms();
                for (;;) {
                        smolvm_agent_event ev;
                        r = smolvm_agent_client_next(&c->cl, &ev);
                        if (r == 0)
                                break;
                        if (r < 0) {
                                send_kill(c);
                                return agent_client_record(&c->cl, "exec");
                        }
                        r = handle_event(&ev, cbs, st, &done);
                        if (r < 0) {
                                send_kill(c);
                                return r;
                        }
                        if (done)
                                return 0;
                }
        }
}

/* Detached: a request/answer operation; RESULT {"ok", "pid", "log"}. */
static int exec_detached(smolvm_vm *vm, json_t *req, const smolvm_exec_opts *o, const smolvm_exec_callbacks *cbs,
                         smolvm_exec_status *ret_status)
{
        agent_call c;
        int r = agent_call_open(vm, req, "exec", SMOLVM_AGENT_REPLY_ANSWER, &c);
        if (r < 0)
                return r;
        c.cancel_fd = o->cancel_fd;
        json_auto_t *res = NULL;
        r = agent_call_result(&c, &res);
        agent_call_close(&c);
        if (r < 0)
                return r;
        json_t *jpid = json_object_get(res, "pid");
        if (!json_is_integer(jpid) || json_integer_value(jpid) < 1 || json_integer_value(jpid) > INT32_MAX)
                return vm_error(-EBADMSG, NULL, "exec: the guest agent's answer to a detached exec has no valid pid");
        int pid = (int)json_integer_value(jpid);
        if (cbs && cbs->on_started) {
                r = callback_result(cbs->on_started(cbs->userdata, pid), "started");
                if (r < 0)
                        return r;
        }
        *ret_status = (smolvm_exec_status){ .pid = pid };
        return 0;
}

SMOLVM_EXPORT int smolvm_exec(smolvm_vm *vm, const smolvm_exec_opts *opts, const smolvm_exec_callbacks *cbs,
                              smolvm_exec_status *ret_status)
{
        if (!vm || !opts)
                return vm_error(-EINVAL, NULL, "smolvm_exec: no VM or options");
        if (opts->stdin_mode == SMOLVM_STDIN_FD && opts->stdin_fd < 0)
                return vm_error(-EBADF, NULL, "smolvm_exec: invalid stdin fd");
        if (opts->stdin_mode == SMOLVM_STDIN_BYTES && opts->stdin_len && !opts->stdin_data)
                return vm_error(-EINVAL, NULL, "smolvm_exec: no stdin data");
        if (opts->detach && (opts->tty || opts->stdin_mode != SMOLVM_STDIN_NONE || opts->timeout_ms))
                return vm_error(-EINVAL, "a detached command has no terminal, no stdin and no timeout",
                                "smolvm_exec: detach cannot be combined with %s",
                                opts->tty ? "tty" : opts->timeout_ms ? "a timeout" : "stdin");

        /* A detached exec's call checks this itself. */
        int r = opts->detach ? 0 : vm_check_exec_ready(vm);
        if (r < 0)
                return r;
        json_auto_t *jreq = NULL;
        r = build_request(opts, &jreq);
        if (r < 0)
                return r;
        if (opts->detach)
                return exec_detached(vm, jreq, opts, cbs, ret_status);
        _cleanup_free_ char *req = json_dumps(jreq, JSON_COMPACT);
        if (!req)
                return vm_error(-ENOMEM, NULL, "out of memory");

        exec_ctx c = { .fd = -1, .stdin_done = opts->stdin_mode == SMOLVM_STDIN_NONE,
                       .stdin_bytes = opts->stdin_data, .stdin_left = opts->stdin_len };
        r = smolvm_agent_client_init(&c.cl, SMOLVM_AGENT_REPLY_EXEC, 0);
        if (r == 0)
                r = smolvm_agent_client_request(&c.cl, req, strlen(req));
        if (r < 0) {
                vm_error(r, NULL, "out of memory");
                goto out;
        }
        /* vm->dir is immutable after create: no lock needed. */
        c.fd = vsock_connect(vm->dir, SMOLVM_AGENT_PORT, opts->cancel_fd);
        if (c.fd < 0) {
                r = c.fd;
                goto out;
        }
        uint64_t start = now_ms();
        smolvm_exec_status st = { 0 };
        r = exec_loop(&c, opts, cbs, &st, start);
        if (r == 0) {
                st.duration_ms = now_ms() - start;
                *ret_status = st;
        }
out:
        safe_close(c.fd);
        smolvm_agent_client_done(&c.cl);
        free(c.stdin_buf);
        return r;
}

/* ---- buffered convenience ---- */

typedef struct capbuf {
        char *data;
        size_t len, cap, max;
        bool truncated;
} capbuf;

static int capbuf_add(capbuf *b, const void *data, size_t len)
{
        if (b->len + len > b->max) {
                b->truncated = true;
                len = b->max - b->len;
        }
        if (len == 0)
                return 0;
        if (b->len + len + 1 > b->cap) {
                size_t ncap = MAX(b->cap * 2, (size_t)65536);
                while (ncap < b->len + len + 1)
                        ncap *= 2;
                ncap = MIN(ncap, b->max + 1);
                char *nb = realloc(b->data, ncap);
                if (!nb)
                        return -ENOMEM;
                b->data = nb;
                b->cap = ncap;
        }
        memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

typedef struct run_bufs {
        capbuf out, err;
} run_bufs;

static int run_on_stdout(void *ud, const void *data, size_t len)
{
        return capbuf_add(&((run_bufs *)ud)->out, data, len);
}

static int run_on_stderr(void *ud, const void *data, size_t len)
{
        return capbuf_add(&((run_bufs *)ud)->err, data, len);
}

static char *capbuf_take(capbuf *b)
{
        if (!b->data)
                return calloc(1, 1);
        return TAKE_PTR(b->data);
}

SMOLVM_EXPORT int smolvm_run(smolvm_vm *vm, const smolvm_exec_opts *opts, smolvm_result *ret)
{
        size_t max = opts && opts->max_output_bytes ? opts->max_output_bytes : SMOLVM_DEFAULT_OUTPUT_CAP;
        run_bufs b = { .out = { .max = max }, .err = { .max = max } };
        smolvm_exec_callbacks cbs = { .on_stdout = run_on_stdout, .on_stderr = run_on_stderr, .userdata = &b };
        smolvm_exec_status st;
        int r = smolvm_exec(vm, opts, &cbs, &st);
        if (r == 0) {
                smolvm_result res = { .status = st,
                                      .stdout_len = b.out.len, .stdout_truncated = b.out.truncated,
                                      .stderr_len = b.err.len, .stderr_truncated = b.err.truncated };
                res.stdout_data = capbuf_take(&b.out);
                res.stderr_data = capbuf_take(&b.err);
                if (!res.stdout_data || !res.stderr_data) {
                        free(res.stdout_data);
                        free(res.stderr_data);
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                } else {
                        *ret = res;
                }
        }
        free(b.out.data);
        free(b.err.data);
        return r;
}

SMOLVM_EXPORT void smolvm_result_free(smolvm_result *r)
{
        if (!r)
                return;
        free(r->stdout_data);
        free(r->stderr_data);
        r->stdout_data = r->stderr_data = NULL;
}

/* ---- exec logs ---- */

SMOLVM_EXPORT int smolvm_exec_log(smolvm_vm *vm, int pid, void **ret_data, size_t *ret_len, size_t max_bytes)
{
        if (pid < 1)
                return vm_error(-EINVAL, NULL, "exec log: invalid pid %d", pid);
        char path[sizeof(SMOLVM_EXEC_LOG_DIR) + 32], old[sizeof(path) + 2];
        snprintf(path, sizeof(path), SMOLVM_EXEC_LOG_DIR "/%d.log", pid);
        snprintf(old, sizeof(old), "%s.1", path);
        /* The newest file first: if it is missing, so is the log. */
        _cleanup_free_ char *cur = NULL, *prev = NULL;
        size_t cur_len = 0, prev_len = 0;
        int r = smolvm_read_file(vm, path, (void **)&cur, &cur_len, max_bytes);
        if (r == -ENOENT && smolvm_last_error()->from_guest)
                return vm_error(-ENOENT, "only detached commands (exec -d) and execs whose background processes "
                                         "wrote after they ended have one; it lasts until the VM stops",
                                "no exec log for pid %d in the VM (%s)", pid, path);
        if (r < 0)
                return r;
        r = smolvm_read_file(vm, old, (void **)&prev, &prev_len, max_bytes);
        if (r == -ENOENT)
                prev_len = 0;
        else if (r < 0)
                return r;
        char *all = malloc(prev_len + cur_len + 1);
        if (!all)
                return vm_error(-ENOMEM, NULL, "out of memory");
        if (prev_len)
                memcpy(all, prev, prev_len);
        if (cur_len)
                memcpy(all + prev_len, cur, cur_len);
        all[prev_len + cur_len] = '\0';
        *ret_data = all;
        *ret_len = prev_len + cur_len;
        return 0;
}
