/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm resume ID */
#include "cli.h"
#include "commands.h"

static const char usage[] =
        "Usage: smolvm resume [--json] ID\n"
        "\n"
        "Thaw a paused VM.\n"
        "ID is the VM's id, a unique id prefix, or its name. Prints the id.\n"
        "\n"
        "Options:\n"
        "  --json      print the JSON envelope (docs/cli.md); data is the VM's info\n"
        "  -h, --help  show this help\n";

int cmd_resume(int argc, char **argv)
{
        return cli_vm_op(argc, argv, "resume", usage, smolvm_resume);
}
