/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm: dispatch to one subcommand per file (commands.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const cli_verb commands[] = {
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
        { "workspace", cmd_workspace, "Save a guest directory to a .tar.zst, or unpack one" },
        { "doctor", cmd_doctor, "Check that this host can run VMs, with fixes" },
        { "mcp", cmd_mcp, "Serve MCP on stdio: tools that run code in microVMs" },
        { NULL, NULL, NULL },
};

static const cli_family smolvm = {
        .about = "Run untrusted commands in disposable, hardware-isolated Linux microVMs.\n",
        .footer = "Environment:\n"
                  "  SMOLVM_HOME        state directory (default ~/.local/state/smolvm)\n"
                  "  SMOLVM_LIBEXECDIR  where smolvm-supervisor and smolvm-init live\n"
                  "  SMOLVM_DEBUG=1     show the supervisor's log on stderr\n",
        .verbs = commands,
};

int main(int argc, char **argv)
{
        cli_set_program("smolvm");
        if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version"))) {
                printf("smolvm %s\n", smolvm_version());
                return 0;
        }
        return cli_run_family(&smolvm, argc, argv);
}
