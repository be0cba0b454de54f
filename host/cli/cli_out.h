/* SPDX-License-Identifier: Apache-2.0 */
/* What every smolvm program prints (smolvm, smolvm-fs; libsmolvm-cli): messages
 * on stderr, the --json envelope on stdout, and the one table from an error code
 * to the envelope's error.code and the exit code. docs/cli.md lists them. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#include <jansson.h>

/* smolvm's own failures, as docker does; the command's exit code otherwise. */
#define CLI_EXIT_ERROR 125

/* The program name messages start with ("smolvm: ..."); main() sets it once. */
void cli_set_program(const char *name);
const char *cli_program(void);

/* "PROG: message" on stderr. The message is also kept: the envelope of a usage
 * error says what was wrong (cli_usage_fail). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_verror(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* "hint: ..." on stderr. */
void cli_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print smolvm_last_error(): "PROG: message", "hint: ...", the console tail. */
void cli_print_lib_error(void);

/* ---- the --json envelope ----------------------------------------------------
 * Every command given --json prints exactly one object on stdout:
 *   {"ok": bool, "command": "exec", "exit_code": N, "data": {...} or null,
 *    "error": {"code": "not_found", "message": "...", "recovery": "..."} or null}
 * and nothing else on stdout (diagnostics still go to stderr). */

/* The envelope's error.code for a negative errno-style code (smolvm.h SMOLVM_E*,
 * -ECANCELED, -ENOSPC, -EFBIG, ...): "not_found", "timeout", ...; "error" for any
 * code the table does not name. */
const char *cli_error_code_name(int code);
/* The exit code for a failure with that code: 124 for a timeout, else
 * CLI_EXIT_ERROR (the same table). */
int cli_exit_code_for(int code);

/* A JSON string of s (NULL: ""); bytes of invalid UTF-8 become '?' (a guest's
 * text may hold any). NULL only without memory. */
json_t *cli_json_str(const char *s);
/* Print a success envelope: ok=true, error=null. Steals data (NULL prints null). */
void cli_json_ok(const char *command, int exit_code, json_t *data);
/* Print a failure envelope with an explicit code name, message and recovery
 * (either may be NULL). Steals data. */
void cli_json_error(const char *command, int exit_code, const char *code, const char *message,
                    const char *recovery, json_t *data);

/* Report the library's last error (smolvm_last_error(), r its code) on stderr,
 * and the envelope (data: the console tail, if any) on stdout when json. Returns
 * the exit code to use: cli_exit_code_for(r). */
int cli_fail(const char *command, bool json, int r);
/* The same with an exit code of the caller's (exec: 127 for a command not found). */
int cli_fail_exit(const char *command, bool json, int r, int exit_code);
/* Report a failure the program found itself (or the library's, in its own
 * words): "PROG: message" and "hint: hint" (if any) on stderr, the envelope with
 * code (NULL: cli_error_code_name(r)) on stdout when json. Returns
 * cli_exit_code_for(r). */
int cli_failf(const char *command, bool json, int r, const char *code, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));
/* A usage error that was already printed with cli_error() (and cli_hint()):
 * with json, the envelope too (code "invalid_argument", message: that last
 * cli_error(), recovery: "run 'PROG COMMAND --help' for the options").
 * Returns CLI_EXIT_ERROR. */
int cli_usage_fail(const char *command, bool json);
/* True if argv[1..] holds --json before any "--": for errors found before a
 * command's own parser ran (an unknown command). */
bool cli_argv_has_json(int argc, char **argv);
