/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm rm [-f] ID...: remove VMs, every file and process of each. */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const char usage[] =
        "Usage: smolvm rm [-f] [--json] ID...\n"
        "\n"
        "Remove VMs: their disk, directory and processes. A running VM is refused\n"
        "unless -f is given (then it is killed: its disk is going away anyway).\n"
        "A removal that was interrupted (killed) is finished by the next rm, ls or\n"
        "create.\n"
        "\n"
        "Options:\n"
        "  -f, --force  remove running VMs too\n"
        "  --json       print the JSON envelope (docs/cli.md); data: {\"removed\": [ids]}\n"
        "  -h, --help   show this help\n";

int cmd_rm(int argc, char **argv)
{
        cli_ids a;
        int r = cli_parse_ids(argc, argv, true, (size_t)argc, &a);
        if (r == 1) {
                fputs(usage, stdout);
                return 0;
        }
        if (r < 0)
                return cli_usage_fail("rm", cli_wants_json(argc, argv), "invalid arguments (see stderr)");
        json_t *removed = json_array();
        int first_err = 0;
        /* Go on after a failure, as rm(1) does; report the first one. With --json
         * only one error fits the envelope: the first; the others go to stderr. */
        char msg[1024] = "", hint[512] = "";
        for (size_t i = 0; i < a.n_ids; i++) {
                smolvm_vm *vm = NULL;
                const char *removed_id = a.ids[i];
                r = smolvm_open(a.ids[i], &vm);
                if (r == 0) {
                        removed_id = smolvm_id(vm);
                        r = smolvm_delete(vm, a.force ? SMOLVM_DELETE_FORCE : 0);
                } else if (r == SMOLVM_ECORRUPT ||
                           (r == SMOLVM_ENOTFOUND && strlen(a.ids[i]) == 12 &&
                            strspn(a.ids[i], "0123456789abcdef") == 12)) {
                        /* A damaged record must not make the VM impossible to remove,
                         * nor a removal that was killed part-way (the library
                         * finishes it by id). */
                        r = smolvm_delete_id(a.ids[i], a.force ? SMOLVM_DELETE_FORCE : 0);
                }
                if (r < 0) {
                        cli_print_lib_error();
                        if (!first_err) {
                                first_err = r;
                                snprintf(msg, sizeof(msg), "%s", smolvm_last_error()->message);
                                snprintf(hint, sizeof(hint), "%s", smolvm_last_error()->hint);
                        }
                } else {
                        if (!a.json)
                                printf("%s\n", removed_id);
                        json_array_append_new(removed, json_string(removed_id));
                }
                smolvm_free(vm);
        }
        json_t *data = json_object();
        if (data)
                json_object_set_new(data, "removed", removed);
        else
                json_decref(removed);
        if (first_err) {
                int code = cli_exit_code_for(first_err);
                if (a.json)
                        cli_json_error("rm", code, cli_error_code_name(first_err), msg, hint, data);
                else
                        json_decref(data);
                return code;
        }
        if (a.json)
                cli_json_ok("rm", 0, data);
        else
                json_decref(data);
        return 0;
}
