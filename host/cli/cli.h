/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers every subcommand shares: flag parsing, error printing, JSON output. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

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

/* ---- the --json envelope (SmolVM's) ------------------------------------------
 * Every command given --json prints exactly one object on stdout:
 *   {"ok": bool, "command": "exec", "exit_code": N, "data": {...} or null,
 *    "error": {"code": "not_found", "message": "...", "recovery": "..."} or null}
 * and nothing else on stdout (diagnostics still go to stderr). docs/cli.md lists
 * the error codes and exit codes. */

/* The envelope's "error.code" for a negative errno-style code (smolvm.h SMOLVM_E*):
 * "not_found", "already_exists", "invalid_argument", "timeout", "not_running",
 * "paused", "exec_unavailable", "image_error", "backend_error", "busy",
 * "cancelled", "error". */
const char *cli_error_code_name(int code);
/* The exit code for a library failure: 124 for a timeout, else CLI_EXIT_ERROR. */
int cli_exit_code_for(int code);
/* Print a success envelope: ok=true, error=null. Steals data (NULL prints null). */
void cli_json_ok(const char *command, int exit_code, json_t *data);
/* Print a failure envelope with an explicit code name, message and recovery
 * (either may be NULL). Steals data. */
void cli_json_error(const char *command, int exit_code, const char *code, const char *message,
                    const char *recovery, json_t *data);
/* Report the library's last error (smolvm_last_error(), r its code): as an envelope
 * on stdout when json, else "smolvm: message" + hint on stderr. Returns the exit
 * code to use (cli_exit_code_for(r)). */
int cli_fail(const char *command, bool json, int r);
/* Same for a usage error found by the CLI itself (code "invalid_argument", exit
 * CLI_EXIT_ERROR): the message was already printed on stderr by the parser; with
 * json, also print the envelope. Returns CLI_EXIT_ERROR. */
int cli_usage_fail(const char *command, bool json, const char *message);
/* True if argv (after the subcommand) contains --json before a "--". For
 * commands that must emit the envelope even when their parser fails. */
bool cli_wants_json(int argc, char **argv);
