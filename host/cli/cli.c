/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_proto.h"
#include "smolvm/smolvm.h"
#include "util.h"

/* The last message cli_error() printed: the --json envelope of a usage error says
 * what was wrong, not just "see stderr". */
static char last_cli_error[512];

void cli_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_cli_error, sizeof(last_cli_error), fmt, ap);
        va_end(ap);
        fprintf(stderr, "smolvm: %s\n", last_cli_error);
}

void cli_hint(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("hint: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

void cli_print_lib_error(void)
{
        const smolvm_error *e = smolvm_last_error();
        cli_error("%s", e->message[0] ? e->message : smolvm_strerror(e->code));
        if (e->hint[0])
                cli_hint("%s", e->hint);
        if (e->console_tail[0]) {
                fputs("--- guest console (last lines) ---\n", stderr);
                fputs(e->console_tail, stderr);
                if (e->console_tail[strlen(e->console_tail) - 1] != '\n')
                        fputc('\n', stderr);
                fputs("---\n", stderr);
        }
}

const char *cli_flag_value(int argc, char **argv, int *i, const char *name, bool *matched)
{
        const char *a = argv[*i];
        size_t n = strlen(name);
        *matched = false;
        if (strncmp(a, name, n) != 0)
                return NULL;
        if (a[n] == '=') {
                *matched = true;
                return a + n + 1;
        }
        if (a[n] != '\0')
                return NULL;
        *matched = true;
        if (*i + 1 >= argc) {
                cli_error("option %s needs a value", name);
                return NULL;
        }
        (*i)++;
        return argv[*i];
}

int cli_parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (!*s || *s == '-' || *s == '+' || *end || errno || v < min || v > max) {
                cli_error("invalid value '%s' for %s (expected a whole number from %lu to %lu)", s, flag, min, max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
        unsigned char c = p[0];
        size_t n;
        uint32_t cp;
        if (c < 0x80)
                return 1;
        if ((c & 0xe0) == 0xc0) {
                n = 2;
                cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
                n = 3;
                cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
                n = 4;
                cp = c & 0x07;
        } else {
                return 0;
        }
        if (n > left)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* No overlong forms, surrogates or code points past U+10FFFF. */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

/* Where json_escape() puts its output. Returns how many of the n bytes it took:
 * all, or (only when divisible, a run of plain ASCII) a prefix; fewer stops the
 * escaping. */
typedef size_t (*json_emit_fn)(void *ud, const char *s, size_t n, bool divisible);

/* True if p[0..left) (left < the length its lead byte announces) can still
 * become a valid UTF-8 sequence: a lead byte followed by continuation bytes. */
static bool utf8_incomplete(const unsigned char *p, size_t left)
{
        unsigned char c = p[0];
        size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || left >= n)
                return false;
        for (size_t i = 1; i < left; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return false;
        return true;
}

/* The one JSON string escaper: p[0..len) as the content of a JSON string
 * (without the quotes), invalid UTF-8 as U+FFFD, through emit. With final
 * false, bytes at the end that more input may turn into a valid UTF-8 sequence
 * are left alone (at most 3): the caller passes them again with the next bytes.
 * Returns the bytes consumed; *ret_stopped when emit refused (output full). */
static size_t json_escape(const unsigned char *p, size_t len, bool final, json_emit_fn emit, void *ud,
                          bool *ret_stopped)
{
        size_t i = 0;
        *ret_stopped = false;
        while (i < len) {
                unsigned char c = p[i];
                const char *out;
                size_t n;
                char esc[8];
                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
                        size_t j = i + 1;
                        while (j < len && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\')
                                j++;
                        size_t run = j - i, took = emit(ud, (const char *)p + i, run, true);
                        i += took;
                        if (took < run) {
                                *ret_stopped = true;
                                return i;
                        }
                        continue;
                }
                if (c >= 0x80) {
                        n = utf8_len(p + i, len - i);
                        if (n == 0 && !final && utf8_incomplete(p + i, len - i))
                                return i;
                        out = n ? (const char *)p + i : "\\ufffd";
                        if (emit(ud, out, n ? n : 6, false) == 0) {
                                *ret_stopped = true;
                                return i;
                        }
                        i += n ? n : 1;
                        continue;
                }
                switch (c) {
                case '"':
                        out = "\\\"";
                        break;
                case '\\':
                        out = "\\\\";
                        break;
                case '\n':
                        out = "\\n";
                        break;
                case '\r':
                        out = "\\r";
                        break;
                case '\t':
                        out = "\\t";
                        break;
                default: /* other control characters and DEL */
                        snprintf(esc, sizeof(esc), "\\u%04x", c);
                        out = esc;
                        break;
                }
                if (emit(ud, out, strlen(out), false) == 0) {
                        *ret_stopped = true;
                        return i;
                }
                i++;
        }
        return i;
}

static size_t emit_file(void *ud, const char *s, size_t n, bool divisible)
{
        (void)divisible;
        fwrite(s, 1, n, ud);
        return n;
}

void cli_json_string(FILE *f, const char *s, size_t len)
{
        bool stopped;
        fputc('"', f);
        (void)json_escape((const unsigned char *)s, len, true, emit_file, f, &stopped);
        fputc('"', f);
}

/* ---- the --json envelope ---- */

const char *cli_error_code_name(int code)
{
        switch (code) {
        case SMOLVM_ENOTFOUND:
                return "not_found";
        case SMOLVM_EEXIST:
                return "already_exists";
        case SMOLVM_EINVAL:
        case -E2BIG:
        case -ENAMETOOLONG:
                return "invalid_argument";
        case SMOLVM_ETIMEDOUT:
                return "timeout";
        case SMOLVM_ENOTRUNNING:
                return "not_running";
        case SMOLVM_EPAUSED:
                return "paused";
        case SMOLVM_EUNREACHABLE:
        case -ECONNREFUSED:
        case -ECONNRESET:
                return "exec_unavailable";
        case SMOLVM_EIMAGE:
                return "image_error";
        case SMOLVM_EBACKEND:
                return "backend_error";
        case SMOLVM_EBUSY:
                return "busy";
        case SMOLVM_EALREADY:
                return "already_running";
        case SMOLVM_ECORRUPT:
                return "corrupt";
        case -ECANCELED:
                return "cancelled";
        case -ENOSPC:
                return "no_space";
        case -EFBIG:
                return "too_large";
        default:
                return "error";
        }
}

int cli_exit_code_for(int code)
{
        return code == SMOLVM_ETIMEDOUT ? 124 : CLI_EXIT_ERROR;
}

static void json_print_steal(json_t *o)
{
        /* JSON_ENSURE_ASCII is not needed: jansson emits UTF-8, and the strings we
         * put in were validated by json_string(). */
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(o);
        if (s) {
                fputs(s, stdout);
                fputc('\n', stdout);
                free(s);
        } else {
                /* Out of memory, or invalid UTF-8 given to us: still one valid object. */
                fputs("{\"ok\":false,\"command\":null,\"exit_code\":125,\"data\":null,"
                      "\"error\":{\"code\":\"error\",\"message\":\"cannot encode the JSON output\","
                      "\"recovery\":\"\"}}\n",
                      stdout);
        }
        fflush(stdout);
}

/* json_string() refuses invalid UTF-8; anything from a guest may be that. */
static json_t *json_text(const char *s)
{
        if (!s)
                return json_string("");
        json_t *j = json_string(s);
        if (j)
                return j;
        size_t n = strlen(s);
        char *copy = malloc(n + 1);
        if (!copy)
                return NULL;
        for (size_t i = 0; i <= n; i++)
                copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
        j = json_string(copy);
        free(copy);
        return j;
}

void cli_json_ok(const char *command, int exit_code, json_t *data)
{
        json_t *o = json_object();
        if (o) {
                json_object_set_new(o, "ok", json_true());
                json_object_set_new(o, "command", json_text(command));
                json_object_set_new(o, "exit_code", json_integer(exit_code));
                json_object_set_new(o, "data", data ? data : json_null());
                json_object_set_new(o, "error", json_null());
        } else {
                json_decref(data);
        }
        json_print_steal(o);
}

void cli_json_error(const char *command, int exit_code, const char *code, const char *message,
                    const char *recovery, json_t *data)
{
        json_t *o = json_object(), *e = json_object();
        if (o && e) {
                json_object_set_new(e, "code", json_text(code ? code : "error"));
                json_object_set_new(e, "message", json_text(message));
                json_object_set_new(e, "recovery", json_text(recovery));
                json_object_set_new(o, "ok", json_false());
                json_object_set_new(o, "command", json_text(command));
                json_object_set_new(o, "exit_code", json_integer(exit_code));
                json_object_set_new(o, "data", data ? data : json_null());
                json_object_set_new(o, "error", e);
        } else {
                json_decref(o);
                json_decref(e);
                json_decref(data);
                o = NULL;
        }
        json_print_steal(o);
}

int cli_fail(const char *command, bool json, int r)
{
        int exit_code = cli_exit_code_for(r);
        if (json) {
                const smolvm_error *e = smolvm_last_error();
                json_t *data = NULL;
                if (e->console_tail[0]) {
                        data = json_object();
                        if (data)
                                json_object_set_new(data, "console_tail", json_text(e->console_tail));
                }
                cli_json_error(command, exit_code, cli_error_code_name(r),
                               e->message[0] ? e->message : smolvm_strerror(r), e->hint, data);
        }
        /* Also with --json: stdout holds only the envelope, stderr is for people. */
        cli_print_lib_error();
        return exit_code;
}

int cli_usage_fail(const char *command, bool json, const char *message)
{
        if (json) {
                char recovery[128];
                snprintf(recovery, sizeof(recovery), "run 'smolvm %s --help' for the options", command);
                cli_json_error(command, CLI_EXIT_ERROR, "invalid_argument",
                               last_cli_error[0] ? last_cli_error : message ? message : "invalid arguments", recovery,
                               NULL);
        }
        return CLI_EXIT_ERROR;
}

bool cli_wants_json(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--"))
                        return false;
                if (!strcmp(argv[i], "--json"))
                        return true;
        }
        return false;
}

/* ---- running commands ---- */

int cli_status_exit_code(const smolvm_exec_status *st)
{
        if (st->timed_out)
                return 124;
        if (st->signal)
                return 128 + st->signal;
        return st->exit_code;
}

int cli_exec_error_exit(int r)
{
        const smolvm_error *e = smolvm_last_error();
        if (e->from_guest && r == -ENOENT)
                return 127;
        if (e->from_guest && (r == -EACCES || r == -ENOEXEC || r == -EISDIR))
                return 126;
        if (r == -ETIMEDOUT)
                return 124;
        return CLI_EXIT_ERROR;
}

static int write_all_fd(int fd, const void *data, size_t len)
{
        const char *p = data;
        while (len) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int cli_on_stdout(void *ud, const void *data, size_t len)
{
        (void)ud;
        /* EPIPE: whoever read our stdout is gone; stop the command like a shell would. */
        return write_all_fd(STDOUT_FILENO, data, len);
}

int cli_on_stderr(void *ud, const void *data, size_t len)
{
        (void)ud;
        int r = write_all_fd(STDERR_FILENO, data, len);
        return r == -EPIPE ? 0 : r;
}

int cli_setup_signals(sigset_t *old)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        /* A closed stdout must not kill us mid-operation: EPIPE instead. */
        signal(SIGPIPE, SIG_IGN);
        if (sigprocmask(SIG_BLOCK, &set, old) < 0)
                return -errno;
        int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        return fd < 0 ? -errno : fd;
}

int cli_pending_signal(int sfd)
{
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                return (int)si.ssi_signo;
        return 0;
}

/* ---- --json for run/exec: output collected as JSON text, bounded ---- */

static size_t emit_capture(void *ud, const char *s, size_t n, bool divisible)
{
        cli_json_text *t = ud;
        size_t take = MIN(n, CLI_JSON_OUTPUT_CAP - t->len);
        if (take < n && !divisible)
                take = 0;
        if (take < n)
                t->truncated = true;
        if (take == 0)
                return 0;
        if (t->len + take > t->cap) {
                /* Doubling up to the cap; large reallocs are remaps, not copies. */
                size_t ncap = MAX(t->cap * 2, (size_t)65536);
                while (ncap < t->len + take)
                        ncap *= 2;
                ncap = MIN(ncap, (size_t)CLI_JSON_OUTPUT_CAP);
                char *nb = realloc(t->buf, ncap);
                if (!nb) {
                        /* Keep what we have: a valid, shorter string marked truncated. */
                        t->truncated = true;
                        return 0;
                }
                t->buf = nb;
                t->cap = ncap;
        }
        memcpy(t->buf + t->len, s, take);
        t->len += take;
        return take;
}

/* A UTF-8 sequence cut by the end of a chunk waits in t->part for its rest. */
void cli_json_text_add(cli_json_text *t, const void *data, size_t len, bool final)
{
        const unsigned char *p = data;
        bool stopped = false;
        size_t used;
        if (t->truncated)
                return;
        if (t->part_len > 0) {
                /* The held bytes with up to 4 new ones: enough to finish any
                 * sequence that starts among them, so what json_escape() holds
                 * back again can only be at the very end of the input (<= 3). */
                unsigned char tmp[sizeof(t->part) + 4];
                size_t k = t->part_len, add = MIN(len, (size_t)4);
                memcpy(tmp, t->part, k);
                memcpy(tmp + k, p, add);
                used = json_escape(tmp, k + add, final && add == len, emit_capture, t, &stopped);
                if (stopped)
                        return;
                t->part_len = 0;
                if (used < k) {
                        t->part_len = k + add - used;
                        memcpy(t->part, tmp + used, t->part_len);
                        return;
                }
                p += used - k;
                len -= used - k;
        }
        used = json_escape(p, len, final, emit_capture, t, &stopped);
        if (!stopped && used < len) {
                t->part_len = len - used;
                memcpy(t->part, p + used, t->part_len);
        }
}

static int capture_stdout(void *ud, const void *data, size_t len)
{
        cli_json_text_add(&((cli_capture *)ud)->out, data, len, false);
        return 0;
}

static int capture_stderr(void *ud, const void *data, size_t len)
{
        cli_json_text_add(&((cli_capture *)ud)->err, data, len, false);
        return 0;
}

void cli_capture_done(cli_capture *c)
{
        if (!c)
                return;
        free(c->out.buf);
        free(c->err.buf);
        *c = (cli_capture){ 0 };
}

static void print_bool(FILE *f, const char *key, bool v)
{
        fprintf(f, ",\"%s\":%s", key, v ? "true" : "false");
}

void cli_json_exec_ok(const char *command, int exit_code, const cli_capture *c, int64_t boot_ms)
{
        const smolvm_exec_status *st = &c->status;
        FILE *f = stdout;
        /* Printed, not built as a jansson tree: the strings are already JSON text,
         * and a tree (plus its dump) would hold the output several times over. */
        fputs("{\"ok\":true,\"command\":", f);
        cli_json_string(f, command, strlen(command));
        fprintf(f, ",\"exit_code\":%d,\"data\":{\"exit_code\":%d,\"signal\":", exit_code, cli_status_exit_code(st));
        if (st->signal)
                fprintf(f, "%d", st->signal);
        else
                fputs("null", f);
        print_bool(f, "timed_out", st->timed_out);
        fputs(",\"stdout\":\"", f);
        fwrite(c->out.buf ? c->out.buf : "", 1, c->out.len, f);
        fputs("\",\"stderr\":\"", f);
        fwrite(c->err.buf ? c->err.buf : "", 1, c->err.len, f);
        fputc('"', f);
        print_bool(f, "stdout_truncated", c->out.truncated);
        print_bool(f, "stderr_truncated", c->err.truncated);
        fprintf(f, ",\"duration_ms\":%" PRIu64, st->duration_ms);
        if (boot_ms >= 0)
                fprintf(f, ",\"boot_ms\":%" PRId64, boot_ms);
        fputs("},\"error\":null}\n", f);
        fflush(f);
}

/* The timeout message: the same whether the agent reported the timeout or the
 * library's safety net fired (exec.c). */
static void print_timed_out(const smolvm_exec_opts *opts)
{
        if (opts->timeout_ms % 1000 == 0)
                cli_error("command timed out after %u s (--timeout) and was killed", opts->timeout_ms / 1000);
        else
                cli_error("command timed out after %u ms and was killed", opts->timeout_ms);
}

int cli_exec_in_vm(smolvm_vm *vm, const smolvm_exec_opts *opts, int sfd, cli_capture *cap, int *ret_err)
{
        int r, code = CLI_EXIT_ERROR;
        smolvm_exec_status st = { 0 };
        if (cap) {
                smolvm_exec_callbacks cbs = { .on_stdout = capture_stdout, .on_stderr = capture_stderr,
                                              .userdata = cap };
                r = smolvm_exec(vm, opts, &cbs, &st);
                cli_json_text_add(&cap->out, NULL, 0, true);
                cli_json_text_add(&cap->err, NULL, 0, true);
                cap->status = st;
        } else {
                smolvm_exec_callbacks cbs = { .on_stdout = cli_on_stdout, .on_stderr = cli_on_stderr };
                r = smolvm_exec(vm, opts, &cbs, &st);
        }
        if (r == 0) {
                code = cli_status_exit_code(&st);
                if (st.timed_out)
                        print_timed_out(opts);
        } else if (r == -ECANCELED) {
                int sig = cli_pending_signal(sfd);
                code = 128 + (sig ? sig : SIGINT);
        } else if (r == -EPIPE) {
                code = 128 + SIGPIPE; /* as in a shell pipeline: quiet 141 */
        } else {
                code = cli_exec_error_exit(r);
        }
        *ret_err = r;
        return code;
}

json_t *cli_vm_info_json(const smolvm_vm_info *v)
{
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "id", json_string(v->id));
        json_object_set_new(o, "name", v->name[0] ? json_text(v->name) : json_null());
        json_object_set_new(o, "state", json_string(smolvm_state_name(v->state)));
        json_object_set_new(o, "created", json_integer(v->created_unix));
        json_object_set_new(o, "supervisor_pid", v->supervisor_pid > 0 ? json_integer(v->supervisor_pid) : json_null());
        json_object_set_new(o, "vcpus", json_integer(v->vcpus));
        json_object_set_new(o, "mem_mib", json_integer(v->mem_mib));
        json_object_set_new(o, "disk_mib", json_integer(v->disk_mib));
        json_object_set_new(o, "accel", json_text(v->accel));
        json_object_set_new(o, "image", json_text(v->image));
        json_object_set_new(o, "ephemeral", json_boolean(v->ephemeral));
        return o;
}

bool cli_env_valid(const char *v)
{
        size_t klen = 0;
        /* The guest's own rule (common/agent_proto.c): refused here, before a boot. */
        int r = agent_env_entry_check(v, &klen);
        if (r < 0 && !strchr(v, '=')) {
                cli_error("invalid value '%s' for --env (expected NAME=VALUE)", v);
        } else if (r == -EINVAL) {
                cli_error("invalid variable name '%.*s' in --env", (int)MIN(klen, (size_t)64), v);
                cli_hint("names are letters, digits and '_', not starting with a digit, at most %u bytes",
                         AGENT_ENV_MAX_KEY);
        } else if (r == -E2BIG) {
                cli_error("--env %.*s: the value is %zu bytes (at most %u)", (int)klen, v, strlen(v + klen + 1),
                          AGENT_ENV_MAX_VALUE);
        }
        return r == 0;
}

/* ---- commands on existing VMs ---- */

int cli_parse_ids(int argc, char **argv, bool allow_force, size_t max_ids, cli_ids *ret)
{
        *ret = (cli_ids){ .ids = argv + 1 };
        bool dashdash = false;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (!dashdash && a[0] == '-' && a[1]) {
                        if (!strcmp(a, "--")) {
                                dashdash = true;
                        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                                return 1;
                        } else if (!strcmp(a, "--json")) {
                                ret->json = true;
                        } else if (allow_force && (!strcmp(a, "-f") || !strcmp(a, "--force"))) {
                                ret->force = true;
                        } else {
                                cli_error("unknown option '%s'", a);
                                cli_hint("run 'smolvm %s --help' for the options", argv[0]);
                                return -EINVAL;
                        }
                        continue;
                }
                ret->ids[ret->n_ids++] = argv[i]; /* compacting in place: n_ids <= i */
        }
        if (ret->n_ids == 0) {
                cli_error("no VM given");
                cli_hint("usage: smolvm %s [OPTIONS] ID%s ('smolvm ls' lists them)", argv[0],
                         max_ids > 1 ? "..." : "");
                return -EINVAL;
        }
        if (ret->n_ids > max_ids) {
                cli_error("too many arguments: 'smolvm %s' takes one VM", argv[0]);
                return -EINVAL;
        }
        return 0;
}

bool cli_open_vm_arg(int argc, char **argv, const char *command, const char *usage, cli_ids *a,
                     smolvm_vm **ret_vm, int *ret_exit)
{
        int r = cli_parse_ids(argc, argv, false, 1, a);
        if (r == 1) {
                fputs(usage, stdout);
                *ret_exit = 0;
                return false;
        }
        if (r < 0) {
                *ret_exit = cli_usage_fail(command, cli_wants_json(argc, argv), "invalid arguments (see stderr)");
                return false;
        }
        r = smolvm_open(a->ids[0], ret_vm);
        if (r < 0) {
                *ret_exit = cli_fail(command, a->json, r);
                return false;
        }
        return true;
}

int cli_vm_op(int argc, char **argv, const char *command, const char *usage, int (*op)(smolvm_vm *vm))
{
        cli_ids a;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(argc, argv, command, usage, &a, &vm, &r))
                return r;
        r = op(vm);
        if (r < 0) {
                int code = cli_fail(command, a.json, r);
                smolvm_free(vm);
                return code;
        }
        if (a.json) {
                smolvm_status_info st;
                json_t *data = smolvm_status(vm, &st) == 0 ? cli_vm_info_json(&st.info) : NULL;
                cli_json_ok(command, 0, data);
        } else {
                printf("%s\n", smolvm_id(vm));
        }
        smolvm_free(vm);
        return 0;
}
