/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm start ID */
#include "cli.h"
#include "commands.h"

static const char usage[] =
        "Usage: smolvm start [--json] ID\n"
        "\n"
        "Boot a created or stopped VM and wait until its guest agent is ready.\n"
        "A VM whose supervisor was killed is cleaned up and started again.\n"
        "ID is the VM's id, a unique id prefix, or its name. Prints the id.\n"
        "\n"
        "Options:\n"
        "  --json      print the JSON envelope (docs/cli.md); data is the VM's info\n"
        "  -h, --help  show this help\n";

int cmd_start(int argc, char **argv)
{
        return cli_vm_op(argc, argv, "start", usage, smolvm_start);
}
