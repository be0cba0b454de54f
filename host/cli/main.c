/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm: dispatch to one subcommand per file (commands.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

typedef struct command {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *help;
} command;

static const command commands[] = {
        { "run", cmd_run, "Run a command in a fresh microVM and remove it afterwards" },
        { "create", cmd_create, "Create (and boot) a persistent VM; print its id" },
        { "exec", cmd_exec, "Run a command in a running VM" },
        { "start", cmd_start, "Boot a stopped VM" },
        { "stop", cmd_stop, "Power a VM off (its disk stays)" },
        { "pause", cmd_pause, "Freeze a running VM" },
        { "resume", cmd_resume, "Thaw a paused VM" },
        { "rm", cmd_rm, "Remove VMs (-f: also running ones)" },
        { "ls", cmd_list, "List VMs and their state" },
        { "info", cmd_info, "Show a VM's configuration and state" },
        { "logs", cmd_logs, "Print a VM's guest console" },
        { "ps", cmd_ps, "List the processes in a VM" },
#ifdef SMOLVM_HAVE_IMAGE_BUILDER
        { "image", cmd_image, "Build and list VM images" },
        { "setup", cmd_setup, "Check the host and build the default image" },
#endif
        { "cp", cmd_cp, "Copy files or directories between the host and a VM" },
        { "env", cmd_env, "Set, unset or list a VM's persistent environment" },
        { "doctor", cmd_doctor, "Check that this host can run VMs, with fixes" },
};

static void usage(FILE *f)
{
        fprintf(f, "Usage: smolvm [--help] [--version] COMMAND [ARGS...]\n"
                   "\n"
                   "Run untrusted commands in disposable, hardware-isolated Linux microVMs.\n"
                   "\n"
                   "Commands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
        fprintf(f, "\n"
                   "Run 'smolvm COMMAND --help' for a command's options.\n"
                   "\n"
                   "Environment:\n"
                   "  SMOLVM_HOME        state directory (default ~/.local/state/smolvm)\n"
                   "  SMOLVM_LIBEXECDIR  where smolvm-supervisor and smolvm-init live\n"
                   "  SMOLVM_DEBUG=1     show the supervisor's log on stderr\n");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return CLI_EXIT_ERROR;
        }
        const char *name = argv[1];
        if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
                if (!strcmp(name, "help") && argc > 2) {
                        /* "smolvm help run" == "smolvm run --help" */
                        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                                if (!strcmp(argv[2], commands[i].name)) {
                                        char *sub[] = { argv[2], (char *)"--help", NULL };
                                        return commands[i].fn(2, sub);
                                }
                }
                usage(stdout);
                return 0;
        }
        if (!strcmp(name, "--version") || !strcmp(name, "-V") || !strcmp(name, "version")) {
                printf("smolvm %s\n", smolvm_version());
                return 0;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (!strcmp(name, commands[i].name))
                        return commands[i].fn(argc - 1, argv + 1);
        if (name[0] == '-')
                cli_error("unknown option '%s'", name);
        else
                cli_error("unknown command '%s'", name);
        cli_hint("run 'smolvm --help' for the list of commands");
        return CLI_EXIT_ERROR;
}
