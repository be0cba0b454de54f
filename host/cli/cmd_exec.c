/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm exec ID -- CMD...: run a command in a running VM, as `run` does in a
 * fresh one: streaming output, the command's exit code. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

static const cli_cmd exec_cmd = {
        .name = "exec",
        .synopsis = "[OPTIONS] ID [--] CMD [ARG...]",
        .about = "Run CMD in the running VM ID (id, unique id prefix, or name), stream its stdout\n"
                 "and stderr, and exit with its exit code (128+N if killed by signal N, 124 on\n"
                 "timeout). Any number of execs may run at once, from any processes. stdin is\n"
                 "forwarded unless it is a terminal. The options end at ID: what follows is CMD.\n",
        .opts = cli_exec_opts, /* the options are run's without the VM's shape */
        .json_help = "print the JSON envelope instead of streaming (docs/cli.md):\n"
                     "data: {exit_code, signal, timed_out, stdout, stderr, ...}\n"
                     "(stdout, stderr: at most 64 MiB of JSON text each)",
        .footer = "Exit status: the command's; 125 if smolvm failed (e.g. the VM is not running\n"
                  "or paused); 127 if CMD was not found; 126 if it could not be executed.\n",
        .in_order = true,
};

int cmd_exec(int argc, char **argv)
{
        _cleanup_(cli_exec_args_done) cli_exec_args a;
        cli_exec_args_init(&a);
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
        cli_exec_args_finish(&a, cmd);

        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0)
                return cli_failf("exec", p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        a.opts.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_open(id, &vm);
        if (r < 0)
                return cli_fail("exec", p.json, r);
        int exit_code = cli_exec_relay(vm, &a.opts, sfd, "exec", p.json, -1);
        smolvm_free(vm);
        return exit_code;
}
