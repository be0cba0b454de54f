/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm shell ID: a login shell in a running VM, as `ssh host` gives one: on a
 * terminal in the guest when stdin is a terminal, else reading its commands
 * from stdin. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

/* The user's shell from the guest's passwd database (/bin/sh if it names none
 * that runs), as a login shell: it reads the profile, where the VM's
 * persistent environment is (/etc/profile.d/smolvm-env.sh). */
static char *login_shell[] = {
        "/bin/sh", "-c",
        "s=$(getent passwd \"$(id -un)\" 2>/dev/null | cut -d: -f7); "
        "[ -x \"${s:-/nonexistent}\" ] || s=/bin/sh; SHELL=$s; export SHELL; exec \"$s\" -l",
        NULL,
};

static const cli_cmd shell_cmd = {
        .name = "shell",
        .synopsis = "[OPTIONS] ID",
        .about = "Open a login shell (the user's shell from the guest's passwd, e.g. bash -l) in\n"
                 "the running VM ID. With stdin a terminal, the shell gets a terminal in the\n"
                 "guest ('exec -it'); otherwise it reads its commands from stdin. Exits with\n"
                 "the shell's exit code.\n",
        .opts = cli_exec_env_opts,
        .json_help = "print the JSON envelope instead of streaming, as 'exec --json'",
        .footer = "Exit status: the shell's; 125 if smolvm failed (e.g. the VM is not running).\n",
};

int cmd_shell(int argc, char **argv)
{
        _cleanup_(cli_exec_args_done) cli_exec_args a;
        cli_exec_args_init(&a);
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&shell_cmd, argc, argv, &a, &p, &vm, &r))
                return r;
        a.interactive = true;
        a.tty = isatty(STDIN_FILENO);
        r = cli_exec_args_finish(&a, &p, login_shell);
        if (r != 0) {
                smolvm_free(vm);
                return r;
        }
        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0) {
                smolvm_free(vm);
                return cli_failf("shell", p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        }
        a.opts.cancel_fd = sfd;
        int exit_code = cli_exec_relay(vm, &a.opts, sfd, "shell", p.json, NULL);
        smolvm_free(vm);
        return exit_code;
}
