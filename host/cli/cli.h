/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers every subcommand shares: flag parsing, error printing, JSON output. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* smolvm's own failures, as docker does; the command's exit code otherwise. */
#define CLI_EXIT_ERROR 125

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print smolvm_last_error(): "smolvm: message", the console tail, "hint: ...". */
void cli_print_lib_error(void);

/* If argv[*i] is --name VALUE or --name=VALUE, return VALUE (advancing *i past a
 * separate value) and set *matched. A missing value prints an error, sets *matched
 * and returns NULL. */
const char *cli_flag_value(int argc, char **argv, int *i, const char *name, bool *matched);
/* Parse a decimal unsigned integer in [min, max]; prints an error naming the flag
 * and the value on failure. Returns 0 or -EINVAL. */
int cli_parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max, unsigned long *ret);

/* Write s[0..len) as a JSON string literal (invalid UTF-8 becomes U+FFFD). */
void cli_json_string(FILE *f, const char *s, size_t len);
