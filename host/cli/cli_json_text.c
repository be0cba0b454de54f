/* SPDX-License-Identifier: Apache-2.0 */
/* The one JSON string escaper (libsmolvm-cli): whole strings onto a FILE, and
 * output arriving in chunks into a bounded buffer of JSON text (run/exec --json). */
#include "cli_json_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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

/* ---- --json for run/exec: output collected as JSON text, bounded ---- */

static size_t emit_capture(void *ud, const char *s, size_t n, bool divisible)
{
        cli_json_text *t = ud;
        size_t max = t->max_len ? t->max_len : CLI_JSON_OUTPUT_CAP;
        size_t take = MIN(n, max - t->len);
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
                ncap = MIN(ncap, max);
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
        /* The final call may carry no data (NULL): memcpy and pointer arithmetic
         * on a null pointer are undefined even for 0 bytes. */
        const unsigned char *p = len ? data : (const unsigned char *)"";
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

