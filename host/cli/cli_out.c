/* SPDX-License-Identifier: Apache-2.0 */
#include "cli_out.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "smolvm/smolvm.h"

static const char *program = "smolvm";

/* The last message cli_error() printed: the --json envelope of a usage error says
 * what was wrong, not just "see stderr". */
static char last_cli_error[512];

void cli_set_program(const char *name)
{
        program = name;
}

const char *cli_program(void)
{
        return program;
}

void cli_verror(const char *fmt, va_list ap)
{
        vsnprintf(last_cli_error, sizeof(last_cli_error), fmt, ap);
        fprintf(stderr, "%s: %s\n", program, last_cli_error);
}

void cli_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cli_verror(fmt, ap);
        va_end(ap);
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

/* ---- the error table ---- */

typedef struct error_kind {
        int code;          /* negative errno-style (smolvm.h SMOLVM_E*) */
        const char *name;  /* the envelope's error.code */
        int exit_code;
} error_kind;

/* One table for every program and command: docs/cli.md lists it. */
static const error_kind error_kinds[] = {
        { SMOLVM_ENOTFOUND, "not_found", CLI_EXIT_ERROR },
        { SMOLVM_EEXIST, "already_exists", CLI_EXIT_ERROR },
        { SMOLVM_EINVAL, "invalid_argument", CLI_EXIT_ERROR },
        { -E2BIG, "invalid_argument", CLI_EXIT_ERROR },
        { -ENAMETOOLONG, "invalid_argument", CLI_EXIT_ERROR },
        { SMOLVM_ETIMEDOUT, "timeout", 124 },
        { SMOLVM_ENOTRUNNING, "not_running", CLI_EXIT_ERROR },
        { SMOLVM_EPAUSED, "paused", CLI_EXIT_ERROR },
        { SMOLVM_EALREADY, "already_running", CLI_EXIT_ERROR },
        { SMOLVM_EUNREACHABLE, "exec_unavailable", CLI_EXIT_ERROR },
        { -ECONNREFUSED, "exec_unavailable", CLI_EXIT_ERROR },
        { -ECONNRESET, "exec_unavailable", CLI_EXIT_ERROR },
        { SMOLVM_EIMAGE, "image_error", CLI_EXIT_ERROR },
        { SMOLVM_EBACKEND, "backend_error", CLI_EXIT_ERROR },
        { SMOLVM_EBUSY, "busy", CLI_EXIT_ERROR },
        { SMOLVM_ECORRUPT, "corrupt", CLI_EXIT_ERROR },
        { -ECANCELED, "cancelled", CLI_EXIT_ERROR }, /* callers exit 128+N for signal N */
        { -ENOSPC, "no_space", CLI_EXIT_ERROR },
        { -EFBIG, "too_large", CLI_EXIT_ERROR },
        { -EADDRINUSE, "port_in_use", CLI_EXIT_ERROR },
};

static const error_kind *find_kind(int code)
{
        for (size_t i = 0; i < sizeof(error_kinds) / sizeof(error_kinds[0]); i++)
                if (error_kinds[i].code == code)
                        return &error_kinds[i];
        return NULL;
}

const char *cli_error_code_name(int code)
{
        const error_kind *k = find_kind(code);
        return k ? k->name : "error";
}

int cli_exit_code_for(int code)
{
        const error_kind *k = find_kind(code);
        return k ? k->exit_code : CLI_EXIT_ERROR;
}

/* ---- the envelope ---- */

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
json_t *cli_json_str(const char *s)
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
                json_object_set_new(o, "command", cli_json_str(command));
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
                json_object_set_new(e, "code", cli_json_str(code ? code : "error"));
                json_object_set_new(e, "message", cli_json_str(message));
                json_object_set_new(e, "recovery", cli_json_str(recovery));
                json_object_set_new(o, "ok", json_false());
                json_object_set_new(o, "command", cli_json_str(command));
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
        return cli_fail_exit(command, json, r, cli_exit_code_for(r));
}

int cli_fail_exit(const char *command, bool json, int r, int exit_code)
{
        if (json) {
                const smolvm_error *e = smolvm_last_error();
                json_t *data = NULL;
                if (e->console_tail[0]) {
                        data = json_object();
                        if (data)
                                json_object_set_new(data, "console_tail", cli_json_str(e->console_tail));
                }
                cli_json_error(command, exit_code, cli_error_code_name(r),
                               e->message[0] ? e->message : smolvm_strerror(r), e->hint, data);
        }
        /* Also with --json: stdout holds only the envelope, stderr is for people. */
        cli_print_lib_error();
        return exit_code;
}

int cli_failf(const char *command, bool json, int r, const char *code, const char *hint, const char *fmt, ...)
{
        char msg[4096 + 512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        int exit_code = cli_exit_code_for(r);
        if (json)
                cli_json_error(command, exit_code, code ? code : cli_error_code_name(r), msg, hint, NULL);
        cli_error("%s", msg);
        if (hint && hint[0])
                cli_hint("%s", hint);
        return exit_code;
}

int cli_usage_fail(const char *command, bool json)
{
        if (json) {
                char recovery[160];
                snprintf(recovery, sizeof(recovery), "run '%s %s --help' for the options", program, command);
                cli_json_error(command, CLI_EXIT_ERROR, "invalid_argument",
                               last_cli_error[0] ? last_cli_error : "invalid arguments", recovery, NULL);
        }
        return CLI_EXIT_ERROR;
}

bool cli_argv_has_json(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--"))
                        return false;
                if (!strcmp(argv[i], "--json"))
                        return true;
        }
        return false;
}
