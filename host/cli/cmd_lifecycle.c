/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm start|stop|pause|resume ID: one library call on one VM each, so each is
 * only a declaration (cli_vm_op does the rest). */
#include "cli.h"
#include "commands.h"

#define VM_OP_JSON_HELP "print the JSON envelope (docs/cli.md); data is the VM's info"
#define VM_OP_ID "ID is the VM's id, a unique id prefix, or its name. Prints the id.\n"

static const cli_cmd start_cmd = {
        .name = "start",
        .synopsis = "[--json] ID",
        .about = "Boot a created or stopped VM and wait until its guest agent is ready.\n"
                 "A VM whose supervisor was killed is cleaned up and started again.\n" VM_OP_ID,
        .json_help = VM_OP_JSON_HELP,
};

static const cli_cmd stop_cmd = {
        .name = "stop",
        .synopsis = "[--json] ID",
        .about = "Power the VM off gracefully (the guest syncs its disk), then kill it if it\n"
                 "does not stop within 20 s. Its disk and directory stay: 'smolvm start' resumes\n"
                 "from them. Stopping a stopped VM does nothing.\n" VM_OP_ID,
        .json_help = VM_OP_JSON_HELP,
};

static const cli_cmd pause_cmd = {
        .name = "pause",
        .synopsis = "[--json] ID",
        .about = "Freeze the VM's vCPUs (its memory stays). Commands fail with \"VM is paused\"\n"
                 "until 'smolvm resume'.\n" VM_OP_ID,
        .json_help = VM_OP_JSON_HELP,
};

static const cli_cmd resume_cmd = {
        .name = "resume",
        .synopsis = "[--json] ID",
        .about = "Thaw a paused VM.\n" VM_OP_ID,
        .json_help = VM_OP_JSON_HELP,
};

_Static_assert(SMOLVM_STOP_TIMEOUT_MS == 20000, "update stop's help");

int cmd_start(int argc, char **argv)
{
        return cli_vm_op(&start_cmd, smolvm_start, argc, argv);
}

int cmd_stop(int argc, char **argv)
{
        return cli_vm_op(&stop_cmd, smolvm_stop, argc, argv);
}

int cmd_pause(int argc, char **argv)
{
        return cli_vm_op(&pause_cmd, smolvm_pause, argc, argv);
}

int cmd_resume(int argc, char **argv)
{
        return cli_vm_op(&resume_cmd, smolvm_resume, argc, argv);
}
