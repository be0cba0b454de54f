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
 * "paused", "already_running", "exec_unavailable", "image_error", "backend_error",
 * "busy", "corrupt", "cancelled", "no_space", "too_large", "error" (docs/cli.md). */
const char *cli_error_code_name(int code);
/* The exit code for a library failure: 124 for a timeout, else CLI_EXIT_ERROR. */
int cli_exit_code_for(int code);
/* Print a success envelope: ok=true, error=null. Steals data (NULL prints null). */
void cli_json_ok(const char *command, int exit_code, json_t *data);
/* Print a failure envelope with an explicit code name, message and recovery
 * (either may be NULL). Steals data. */
void cli_json_error(const char *command, int exit_code, const char *code, const char *message,
                    const char *recovery, json_t *data);
/* Report the library's last error (smolvm_last_error(), r its code): "smolvm:
 * message" + hint on stderr, and the envelope on stdout when json. Returns the exit
 * code to use (cli_exit_code_for(r)). */
int cli_fail(const char *command, bool json, int r);
/* Same for a usage error found by the CLI itself (code "invalid_argument", exit
 * CLI_EXIT_ERROR): the parser already printed it with cli_error(); with json, also
 * print the envelope, whose message is that last cli_error() (else message).
 * Returns CLI_EXIT_ERROR. */
int cli_usage_fail(const char *command, bool json, const char *message);
/* True if argv (after the subcommand) contains --json before a "--". For
 * commands that must emit the envelope even when their parser fails. */
bool cli_wants_json(int argc, char **argv);

/* ---- running commands (run, exec, ps) ---- */
#include <signal.h>
#include <stdint.h>

#include "smolvm/smolvm.h"

/* Exit code for a finished command: its own, 128+N for signal N, 124 on timeout. */
int cli_status_exit_code(const smolvm_exec_status *st);
/* Exit code for a failed exec: 127/126 when the guest says the command could not
 * be run (docker's), 124 when the host safety net fired, else 125. */
int cli_exec_error_exit(int r);
/* --json of run and exec: each output stream is collected as the text of its JSON
 * string (escapes included: a control byte takes 6 bytes), at most
 * CLI_JSON_OUTPUT_CAP bytes each; the rest is dropped and "truncated" set. So
 * the CLI holds at most twice the cap whatever the output (docs/cli.md). */
#define CLI_JSON_OUTPUT_CAP SMOLVM_DEFAULT_OUTPUT_CAP
typedef struct cli_json_text {
        char *buf; /* JSON string content, without the quotes */
        size_t len, cap;
        unsigned char part[4]; /* an unfinished UTF-8 sequence at the end of the last chunk */
        size_t part_len;
        bool truncated; /* something was dropped: past the cap (or out of memory) */
} cli_json_text;
typedef struct cli_capture {
        cli_json_text out, err;
        smolvm_exec_status status;
} cli_capture;
/* Append output bytes to t as JSON string text (invalid UTF-8 as U+FFFD, as
 * cli_json_string() does, also across chunk boundaries), up to the cap; what
 * does not fit (or finds no memory) is dropped and t->truncated set. final: no
 * more bytes follow (an unfinished sequence held back becomes U+FFFD). */
void cli_json_text_add(cli_json_text *t, const void *data, size_t len, bool final);
/* Free the buffers; c may be NULL. */
void cli_capture_done(cli_capture *c);
/* Print the success envelope of run/exec from c: data {exit_code, signal,
 * timed_out, stdout, stderr, stdout_truncated, stderr_truncated, duration_ms
 * [, boot_ms when >= 0]}. Streams it out: nothing is built in memory. */
void cli_json_exec_ok(const char *command, int exit_code, const cli_capture *c, int64_t boot_ms);

/* Run opts in vm: streamed to our stdout/stderr, or, when cap is given (--json),
 * collected into *cap (the caller prints it with cli_json_exec_ok and calls
 * cli_capture_done). Sets *ret_err to the library's result (0 or negative errno;
 * on failure the error is set for cli_print_lib_error) and returns the command's
 * exit code: its own, 124 on timeout (then "command timed out after N s" is
 * printed on stderr), 128+N when it or we were signalled (cancellation through
 * cancel_fd = sfd), 141 when our stdout reader went away, else
 * cli_exec_error_exit. */
int cli_exec_in_vm(smolvm_vm *vm, const smolvm_exec_opts *opts, int sfd, cli_capture *cap, int *ret_err);
/* Streaming callbacks: the command's stdout/stderr to ours. */
int cli_on_stdout(void *ud, const void *data, size_t len);
int cli_on_stderr(void *ud, const void *data, size_t len);
/* Block SIGINT/SIGTERM/SIGHUP, ignore SIGPIPE; returns a signalfd for them (the
 * library polls it as cancel_fd) or a negative errno. */
int cli_setup_signals(sigset_t *old);
/* The signal that interrupted us (read from the signalfd), or 0. */
int cli_pending_signal(int sfd);
/* One VM as JSON: {"id","name","state","created","supervisor_pid","vcpus",
 * "mem_mib","disk_mib","accel","image","ephemeral"}. */
json_t *cli_vm_info_json(const smolvm_vm_info *info);
/* Validate NAME=VALUE for --env by the guest's rules (agent_env_entry_check):
 * name [A-Za-z_][A-Za-z0-9_]*, value at most 64 KiB; prints the error. */
bool cli_env_valid(const char *v);

/* ---- commands on existing VMs ---- */

typedef struct cli_ids {
        bool json;
        bool force;      /* -f / --force, where allowed */
        char **ids;      /* into argv */
        size_t n_ids;
} cli_ids;

/* Parse "[--json] [-f|--force] ID...": at least one ID, at most max_ids. Prints
 * usage errors. Returns 0, 1 for --help, or -EINVAL. */
int cli_parse_ids(int argc, char **argv, bool allow_force, size_t max_ids, cli_ids *ret);
/* Parse `COMMAND [--json] ID` and open the VM. Returns true with *ret_vm (free with
 * smolvm_free()); false when the caller should just exit with *ret_exit (--help
 * printed, or the error reported). */
bool cli_open_vm_arg(int argc, char **argv, const char *command, const char *usage, cli_ids *a,
                     smolvm_vm **ret_vm, int *ret_exit);

/* start/stop/pause/resume: open the one VM, call op, print its id (or the
 * envelope with the VM's info as data). Returns the exit code. */
int cli_vm_op(int argc, char **argv, const char *command, const char *usage, int (*op)(smolvm_vm *vm));

struct cli_mounts;
/* vm_flags.c: the flags that describe a VM (--mem, --cpus, --boot-timeout, --accel,
 * --mount, --mount-transport, --image), shared by run and create. Returns 1 when
 * argv[*i] was one of them (value stored, *i advanced), 0 when it is not, -EINVAL
 * after reporting a bad value. */
int cli_vm_flag(int argc, char **argv, int *i, smolvm_config *cfg, struct cli_mounts *mounts);
/* Same convention: --env NAME=VALUE (repeatable) appended to env, which has room
 * for CLI_MAX_ENV_FLAGS entries and the NULL after them (run, exec, create). */
#define CLI_MAX_ENV_FLAGS 4096
int cli_env_flag(int argc, char **argv, int *i, const char **env, size_t *n_env);
/* Same convention: the command's flags, --timeout, --workdir and --env (run, exec). */
int cli_exec_flag(int argc, char **argv, int *i, smolvm_exec_opts *opts, const char **env, size_t *n_env);
