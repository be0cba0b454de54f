/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm rm [-f] ID...: remove VMs, every file and process of each. */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

typedef struct rm_args {
        bool force;
} rm_args;

static const cli_opt rm_opts[] = {
        CLI_BOOL(rm_args, force, "force", 'f', "remove running VMs too"),
        CLI_END,
};

static const cli_cmd rm_cmd = {
        .name = "rm",
        .synopsis = "[-f] [--json] ID...",
        .about = "Remove VMs: their disk, directory and processes. A running VM is refused\n"
                 "unless -f is given (then it is killed: its disk is going away anyway).\n"
                 "A removal that was interrupted (killed) is finished by the next rm, ls or\n"
                 "create.\n",
        .opts = rm_opts,
        .json_help = "print the JSON envelope (docs/cli.md); data: {\"removed\": [ids]}",
};

int cmd_rm(int argc, char **argv)
{
        rm_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&rm_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos == 0)
                return cli_usage(&p, "no VM given ('smolvm ls' lists them)");
        json_t *removed = json_array();
        int first_err = 0;
        /* Go on after a failure, as rm(1) does; report the first one. With --json
         * only one error fits the envelope: the first; the others go to stderr. */
        char msg[1024] = "", hint[512] = "";
        for (int i = 0; i < p.n_pos; i++) {
                smolvm_vm *vm = NULL;
                const char *removed_id = p.pos[i];
                r = smolvm_open(p.pos[i], &vm);
                if (r == 0) {
                        removed_id = smolvm_id(vm);
                        r = smolvm_delete(vm, a.force ? SMOLVM_DELETE_FORCE : 0);
                } else if (r == SMOLVM_ECORRUPT ||
                           (r == SMOLVM_ENOTFOUND && strlen(p.pos[i]) == 12 &&
                            strspn(p.pos[i], "0123456789abcdef") == 12)) {
                        /* A damaged record must not make the VM impossible to remove,
                         * nor a removal that was killed part-way (the library
                         * finishes it by id). */
                        r = smolvm_delete_id(p.pos[i], a.force ? SMOLVM_DELETE_FORCE : 0);
                }
                if (r < 0) {
                        cli_print_lib_error();
                        if (!first_err) {
                                first_err = r;
                                snprintf(msg, sizeof(msg), "%s", smolvm_last_error()->message);
                                snprintf(hint, sizeof(hint), "%s", smolvm_last_error()->hint);
                        }
                } else {
                        if (!p.json)
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
                if (p.json)
                        cli_json_error("rm", code, cli_error_code_name(first_err), msg, hint, data);
                else
                        json_decref(data);
                return code;
        }
        if (p.json)
                cli_json_ok("rm", 0, data);
        else
                json_decref(data);
        return 0;
}
