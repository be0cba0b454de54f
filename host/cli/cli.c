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
