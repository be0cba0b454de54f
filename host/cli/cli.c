/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
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

void cli_json_string(FILE *f, const char *s, size_t len)
{
        const unsigned char *p = (const unsigned char *)s;
        fputc('"', f);
        for (size_t i = 0; i < len;) {
                unsigned char c = p[i];
                if (c >= 0x80) {
                        size_t n = utf8_len(p + i, len - i);
                        if (n == 0) {
                                fputs("\\ufffd", f);
                                i++;
                        } else {
                                fwrite(p + i, 1, n, f);
                                i += n;
                        }
                        continue;
                }
                switch (c) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (c < 0x20 || c == 0x7f)
                                fprintf(f, "\\u%04x", c);
                        else
                                fputc(c, f);
                        break;
                }
                i++;
        }
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

int cli_exec_in_vm(smolvm_vm *vm, const smolvm_exec_opts *opts, int sfd, smolvm_result *res, int *ret_err)
{
        int r, code = CLI_EXIT_ERROR;
        if (res) {
                r = smolvm_run(vm, opts, res);
                if (r == 0)
                        code = cli_status_exit_code(&res->status);
        } else {
                smolvm_exec_callbacks cbs = { .on_stdout = cli_on_stdout, .on_stderr = cli_on_stderr };
                smolvm_exec_status st = { 0 };
                r = smolvm_exec(vm, opts, &cbs, &st);
                if (r == 0)
                        code = cli_status_exit_code(&st);
        }
        if (r == -ECANCELED) {
                int sig = cli_pending_signal(sfd);
                code = 128 + (sig ? sig : SIGINT);
        } else if (r == -EPIPE) {
                code = 128 + SIGPIPE; /* as in a shell pipeline: quiet 141 */
        } else if (r < 0) {
                code = cli_exec_error_exit(r);
        }
        *ret_err = r;
        return code;
}

/* A JSON string from bytes that may hold anything (guest output): invalid UTF-8
 * becomes U+FFFD, as cli_json_string() does. */
static json_t *json_bytes(const char *s, size_t len)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        cli_json_string(f, s ? s : "", s ? len : 0);
        fclose(f);
        json_t *j = buf ? json_loadb(buf, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
        free(buf);
        return j;
}

json_t *cli_result_json(const smolvm_result *res)
{
        const smolvm_exec_status *st = &res->status;
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "exit_code", json_integer(cli_status_exit_code(st)));
        json_object_set_new(o, "signal", st->signal ? json_integer(st->signal) : json_null());
        json_object_set_new(o, "timed_out", json_boolean(st->timed_out));
        json_object_set_new(o, "stdout", json_bytes(res->stdout_data, res->stdout_len));
        json_object_set_new(o, "stderr", json_bytes(res->stderr_data, res->stderr_len));
        json_object_set_new(o, "stdout_truncated", json_boolean(res->stdout_truncated));
        json_object_set_new(o, "stderr_truncated", json_boolean(res->stderr_truncated));
        json_object_set_new(o, "duration_ms", json_integer((json_int_t)st->duration_ms));
        return o;
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
