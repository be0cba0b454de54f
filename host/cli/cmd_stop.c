/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm stop ID */
#include "cli.h"
#include "commands.h"

static const char usage[] =
        "Usage: smolvm stop [--json] ID\n"
        "\n"
        "Power the VM off gracefully (the guest syncs its disk), then kill it if it\n"
        "does not stop within 20 s. Its disk and directory stay: 'smolvm start' resumes\n"
        "from them. Stopping a stopped VM does nothing.\n"
        "ID is the VM's id, a unique id prefix, or its name. Prints the id.\n"
        "\n"
        "Options:\n"
        "  --json      print the JSON envelope (docs/cli.md); data is the VM's info\n"
        "  -h, --help  show this help\n";

int cmd_stop(int argc, char **argv)
{
        return cli_vm_op(argc, argv, "stop", usage, smolvm_stop);
}
