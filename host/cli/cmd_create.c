/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm create: a persistent VM, started unless --no-start; prints its id. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "mount_spec.h"
#include "smolvm/smolvm.h"
#include "util.h"


typedef struct create_args {
        cli_vm_args vm;
        cli_env env;
        bool no_start;
} create_args;

static void create_args_done(create_args *a)
{
        cli_vm_args_done(&a->vm);
        cli_env_done(&a->env);
}

static const cli_opt create_opts[] = {
        CLI_STRING(create_args, vm.cfg.name, "name", 0, "NAME", "a unique name usable instead of the id"),
        CLI_UINT(create_args, vm.cfg.disk_mib, "disk", 0, "MIB", 64, 64u * 1024 * 1024, 1,
                 "root disk size (default: the image's; the guest grows\n"
                 "its file system to it at boot)"),
        CLI_CALL(create_args, env, "env", 'e', "K=V", cli_env_add,
                 "environment of every command in the VM (repeatable;\n"
                 "K: [A-Za-z_][A-Za-z0-9_]*, V: at most 64 KiB)"),
        CLI_INCLUDE(create_args, vm, cli_vm_opts),
        CLI_BOOL(create_args, no_start, "no-start", 0, "only create it ('smolvm start ID' boots it)"),
        CLI_END,
};

static const cli_cmd create_cmd = {
        .name = "create",
        .synopsis = "[OPTIONS]",
        .about = "Create a persistent microVM and boot it; print its id. It keeps running after\n"
                 "this command exits: 'smolvm exec ID -- CMD' runs commands in it, from any\n"
                 "process, until 'smolvm stop' or 'smolvm rm'. Its disk survives stop/start.\n",
        .opts = create_opts,
        .json_help = "print the JSON envelope (docs/cli.md); data: the VM's\n"
                     "info and boot times",
        .no_args = true,
};

int cmd_create(int argc, char **argv)
{
        _cleanup_(create_args_done) create_args a = { 0 };
        cli_vm_args_init(&a.vm);
        cli_parsed p;
        int r = cli_parse(&create_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        a.vm.cfg.env = a.env.v;
        cli_vm_args_finish(&a.vm);

        /* Ctrl-C while booting: give up and remove the half-made VM. */
        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd >= 0)
                a.vm.cfg.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_create(&a.vm.cfg, &vm);
        if (r < 0)
                return cli_fail("create", p.json, r);
        if (!a.no_start) {
                r = smolvm_start(vm);
                if (r < 0) {
                        /* Report the boot failure, then remove the VM: the user never saw its id. */
                        int code = cli_fail("create", p.json, r);
                        (void)smolvm_delete(vm, SMOLVM_DELETE_FORCE);
                        smolvm_free(vm);
                        if (r == -ECANCELED && sfd >= 0) {
                                int sig = cli_pending_signal(sfd);
                                return 128 + (sig ? sig : SIGINT);
                        }
                        return code;
                }
        }
        if (p.json) {
                smolvm_status_info st;
                json_t *data = NULL;
                if (smolvm_status(vm, &st) == 0 && (data = cli_vm_info_json(&st.info)) && st.have_boot) {
                        json_object_set_new(data, "boot_ms",
                                            json_integer((json_int_t)(st.boot.boot_ms ? st.boot.boot_ms
                                                                                      : st.boot.host_boot_ms)));
                        json_object_set_new(data, "accel_used", json_string(st.boot.accel));
                        json_object_set_new(data, "start", json_string(st.boot.start));
                        json_object_set_new(data, "start_note",
                                            st.boot.start_note[0] ? cli_json_str(st.boot.start_note) : json_null());
                }
                cli_json_ok("create", 0, data);
        } else {
                printf("%s\n", smolvm_id(vm));
        }
        smolvm_free(vm);
        return 0;
}
