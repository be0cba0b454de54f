/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smolvm/smolvm.h"

void cli_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("smolvm: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
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
        case -ECANCELED:
                return "cancelled";
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
        } else {
                cli_print_lib_error();
        }
        return exit_code;
}

int cli_usage_fail(const char *command, bool json, const char *message)
{
        if (json)
                cli_json_error(command, CLI_EXIT_ERROR, "invalid_argument", message ? message : "invalid arguments",
                               "run 'smolvm COMMAND --help' for the options", NULL);
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
