/* SPDX-License-Identifier: Apache-2.0 */
/* JSON string text (libsmolvm-cli): one escaper for whole strings and for output
 * that arrives in chunks (run/exec --json), tested in tests/unit/test_cli_json.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "smolvm/smolvm.h"

/* Write s[0..len) as a JSON string literal (invalid UTF-8 becomes U+FFFD). */
void cli_json_string(FILE *f, const char *s, size_t len);

/* --json of run and exec (and smolvm mcp's results): each output stream is
 * collected as the text of its JSON string (escapes included: a control byte
 * takes 6 bytes), at most max_len (CLI_JSON_OUTPUT_CAP) bytes each; the rest is
 * dropped and "truncated" set. So the CLI holds at most twice the cap whatever
 * the output (docs/cli.md). */
#define CLI_JSON_OUTPUT_CAP SMOLVM_DEFAULT_OUTPUT_CAP
typedef struct cli_json_text {
        char *buf; /* JSON string content, without the quotes */
        size_t len, cap;
        unsigned char part[4]; /* an unfinished UTF-8 sequence at the end of the last chunk */
        size_t part_len;
        bool truncated; /* something was dropped: past the cap (or out of memory) */
        size_t max_len; /* the cap in bytes of JSON text; 0: CLI_JSON_OUTPUT_CAP (smolvm mcp
                         * sets its own, --max-output) */
} cli_json_text;

/* Append output bytes to t as JSON string text (invalid UTF-8 as U+FFFD, as
 * cli_json_string() does, also across chunk boundaries), up to the cap; what
 * does not fit (or finds no memory) is dropped and t->truncated set. final: no
 * more bytes follow (an unfinished sequence held back becomes U+FFFD). */
void cli_json_text_add(cli_json_text *t, const void *data, size_t len, bool final);
