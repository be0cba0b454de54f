/* SPDX-License-Identifier: Apache-2.0 */
/* Commands on one existing VM: parse its ID, open it, print its info. */
#include "cli.h"

json_t *cli_vm_info_json(const smolvm_vm_info *v)
{
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "id", json_string(v->id));
        json_object_set_new(o, "name", v->name[0] ? cli_json_str(v->name) : json_null());
        json_object_set_new(o, "state", json_string(smolvm_state_name(v->state)));
        json_object_set_new(o, "created", json_integer(v->created_unix));
        json_object_set_new(o, "supervisor_pid", v->supervisor_pid > 0 ? json_integer(v->supervisor_pid) : json_null());
        json_object_set_new(o, "vcpus", json_integer(v->vcpus));
        json_object_set_new(o, "mem_mib", json_integer(v->mem_mib));
        json_object_set_new(o, "disk_mib", json_integer(v->disk_mib));
        json_object_set_new(o, "accel", cli_json_str(v->accel));
        json_object_set_new(o, "image", cli_json_str(v->image));
        json_object_set_new(o, "ephemeral", json_boolean(v->ephemeral));
        return o;
}

bool cli_open_vm_arg(const cli_cmd *cmd, int argc, char **argv, void *args, cli_parsed *p, smolvm_vm **ret_vm,
                     int *ret_exit)
{
        int r = cli_parse(cmd, argc, argv, args, p);
        if (r != 0) {
                *ret_exit = cli_parse_exit(r);
                return false;
        }
        if (p->n_pos != 1) {
                *ret_exit = p->n_pos == 0 ? cli_usage(p, "no VM given ('smolvm ls' lists them)")
                                          : cli_usage(p, "too many arguments: 'smolvm %s' takes one VM", cmd->name);
                return false;
        }
        r = smolvm_open(p->pos[0], ret_vm);
        if (r < 0) {
                *ret_exit = cli_fail(cmd->name, p->json, r);
                return false;
        }
        return true;
}

int cli_vm_op(const cli_cmd *cmd, int (*op)(smolvm_vm *vm), int argc, char **argv)
{
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(cmd, argc, argv, NULL, &p, &vm, &r))
                return r;
        r = op(vm);
        if (r < 0) {
                int code = cli_fail(cmd->name, p.json, r);
                smolvm_free(vm);
                return code;
        }
        if (p.json) {
                smolvm_status_info st;
                json_t *data = smolvm_status(vm, &st) == 0 ? cli_vm_info_json(&st.info) : NULL;
                cli_json_ok(cmd->name, 0, data);
        } else {
                printf("%s\n", smolvm_id(vm));
        }
        smolvm_free(vm);
        return 0;
}
