/* SPDX-License-Identifier: Apache-2.0 */
/* The exec relay of run and exec (libsmolvm-cli): the command's stdin, stdout and
 * stderr to ours, signals as cancellation, its end as our exit code, and the
 * --json capture. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "smolvm/smolvm.h"

/* Exit code for a finished command: its own, 128+N for signal N, 124 on timeout. */
int cli_status_exit_code(const smolvm_exec_status *st);

/* Block SIGINT/SIGTERM/SIGHUP, ignore SIGPIPE; returns a signalfd for them (the
 * library polls it as cancel_fd) or a negative errno. */
int cli_setup_signals(sigset_t *old);
/* The signal that interrupted us (read from the signalfd), or 0. */
int cli_pending_signal(int sfd);

/* Forward our stdin to the command when it is open and either interactive
 * (-i) or not a terminal. */
void cli_exec_stdin(smolvm_exec_opts *opts, bool interactive);

/* Run opts in vm and relay it: streamed to our stdout/stderr, or with json
 * collected and printed as one envelope named command (data: {exit_code, signal,
 * timed_out, pid, stdout, stderr, stdout_truncated, stderr_truncated,
 * duration_ms [, boot_ms, start, start_note: a run, boot not NULL]}; docs/cli.md). With opts->tty, the guest's
 * terminal gets ours' TERM and window size (and its changes), and our terminal
 * is raw while its stdin is forwarded, restored before anything is printed and
 * whatever ends the exec. A failure is reported on stderr (and as
 * the envelope with json). Returns the exit code: the command's own, 124 on
 * timeout (then "command timed out after N s" is printed on stderr), 128+N when
 * it or we were signalled (cancellation through cancel_fd = sfd), 141 when our
 * stdout reader went away, 127/126 when the guest could not run it, else
 * CLI_EXIT_ERROR. */
int cli_exec_relay(smolvm_vm *vm, const smolvm_exec_opts *opts, int sfd, const char *command, bool json,
                   const smolvm_boot_info *boot);

/* Start opts (detach) in vm: print the command's guest pid (with json, the
 * envelope, data: {pid, log}). Returns 0 or the exit code of the failure
 * (reported): 127/126 when the guest could not run it, else CLI_EXIT_ERROR. */
int cli_exec_detached(smolvm_vm *vm, const smolvm_exec_opts *opts, const char *command, bool json);
