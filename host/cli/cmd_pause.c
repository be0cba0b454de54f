/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm pause ID */
#include "cli.h"
#include "commands.h"

static const char usage[] =
        "Usage: smolvm pause [--json] ID\n"
        "\n"
        "Freeze the VM's vCPUs (its memory stays). Commands fail with \"VM is paused\"\n"
        "until 'smolvm resume'.\n"
        "ID is the VM's id, a unique id prefix, or its name. Prints the id.\n"
        "\n"
        "Options:\n"
        "  --json      print the JSON envelope (docs/cli.md); data is the VM's info\n"
        "  -h, --help  show this help\n";

int cmd_pause(int argc, char **argv)
{
        return cli_vm_op(argc, argv, "pause", usage, smolvm_pause);
}
