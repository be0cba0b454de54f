/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm exec ID -- CMD...: run a command in a running VM, as `run` does in a
 * fresh one: streaming output, the command's exit code. -d starts it and
 * returns at once. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

typedef struct exec_args {
        cli_exec_args exec;
        bool detach;
} exec_args;

static void exec_args_done(exec_args *a)
{
        cli_exec_args_done(&a->exec);
}

static const cli_opt exec_opts[] = {
        CLI_INCLUDE(exec_args, exec, cli_exec_opts), /* run's, without the VM's shape */
        CLI_BOOL(exec_args, detach, "detach", 'd',
                 "start CMD, print its guest pid and return; its output goes\n"
                 "to a log in the guest: 'smolvm logs ID --pid PID'"),
        CLI_END,
};

static const cli_cmd exec_cmd = {
        .name = "exec",
        .synopsis = "[OPTIONS] ID [--] CMD [ARG...]",
        .about = "Run CMD in the running VM ID (id, unique id prefix, or name), stream its stdout\n"
                 "and stderr, and exit with its exit code (128+N if killed by signal N, 124 on\n"
                 "timeout). Any number of execs may run at once, from any processes. stdin is\n"
                 "forwarded unless it is a terminal. What CMD starts in the background (`cmd &`)\n"
                 "keeps running after it exits, as over SSH. The options end at ID: what\n"
                 "follows is CMD.\n",
        .opts = exec_opts,
        .json_help = "print the JSON envelope instead of streaming (docs/cli.md):\n"
                     "data: {exit_code, signal, timed_out, pid, stdout, stderr, ...}\n"
                     "(stdout, stderr: at most 64 MiB of JSON text each); with -d:\n"
                     "data: {pid, log}",
        .footer = "Exit status: the command's; 125 if smolvm failed (e.g. the VM is not running\n"
                  "or paused); 127 if CMD was not found; 126 if it could not be executed.\n",
        .in_order = true,
};

int cmd_exec(int argc, char **argv)
{
        _cleanup_(exec_args_done) exec_args a = { .detach = false };
        cli_exec_args_init(&a.exec);
        cli_parsed p;
        int r = cli_parse(&exec_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.dashdash)
                return cli_usage(&p, "no VM given before '--'");
        if (p.n_pos == 0)
                return cli_usage(&p, "no VM given");
        const char *id = p.pos[0];
        char **cmd = p.pos + 1;
        if (cmd[0] && !strcmp(cmd[0], "--"))
                cmd++;
        if (!cmd[0])
                return cli_usage(&p, "no command given");
        if (a.detach && (a.exec.interactive || a.exec.tty || a.exec.opts.timeout_ms))
                return cli_usage(&p, "-d cannot be combined with %s: a detached command has no stdin, terminal or "
                                     "timeout", a.exec.interactive ? "-i" : a.exec.tty ? "-t" : "--timeout");
        r = cli_exec_args_finish(&a.exec, &p, cmd);
        if (r != 0)
                return r;

        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0)
                return cli_failf("exec", p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        a.exec.opts.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_open(id, &vm);
        if (r < 0)
                return cli_fail("exec", p.json, r);
        int exit_code;
        if (a.detach) {
                a.exec.opts.detach = true;
                a.exec.opts.stdin_mode = SMOLVM_STDIN_NONE;
                exit_code = cli_exec_detached(vm, &a.exec.opts, "exec", p.json);
        } else {
                exit_code = cli_exec_relay(vm, &a.exec.opts, sfd, "exec", p.json, NULL);
        }
        smolvm_free(vm);
        return exit_code;
}
