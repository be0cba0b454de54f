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


static void create_usage(FILE *f)
{
        fprintf(f,
                "Usage: smolvm create [OPTIONS]\n"
                "\n"
                "Create a persistent microVM and boot it; print its id. It keeps running after\n"
                "this command exits: 'smolvm exec ID -- CMD' runs commands in it, from any\n"
                "process, until 'smolvm stop' or 'smolvm rm'. Its disk survives stop/start.\n"
                "\n"
                "Options:\n"
                "  --name NAME          a unique name usable instead of the id\n"
                "  --cpus N             vCPUs (default %u)\n"
                "  --mem MIB            guest memory (default %u)\n"
                "  --disk MIB           root disk size (default: the image's; the guest grows\n"
                "                       its file system to it at boot)\n"
                "  --env K=V            environment of every command in the VM (repeatable;\n"
                "                       K: [A-Za-z_][A-Za-z0-9_]*, V: at most 64 KiB)\n"
                "  --image NAME         image to boot: a name from 'smolvm image ls' (default:\n"
                "                       default) or an absolute directory path\n"
                "  --mount HOST:GUEST[:ro|:rw]\n"
                "                       show host directory HOST at GUEST in the VM, read-only\n"
                "                       unless :rw (enforced on the host; repeatable, max %u)\n"
                "  --mount-transport virtiofs|vsock\n"
                "                       how mounts reach the guest (default virtiofs)\n"
                "  --accel auto|kvm|tcg accelerator (default auto)\n"
                "  --boot-timeout SEC   give up booting after SEC seconds (default %u)\n"
                "  --no-start           only create it ('smolvm start ID' boots it)\n"
                "  --json               print the JSON envelope (docs/cli.md); data: the VM's\n"
                "                       info and boot times\n"
                "  -h, --help           show this help\n",
                SMOLVM_DEFAULT_VCPUS, SMOLVM_DEFAULT_MEM_MIB, SMOLVM_MAX_MOUNTS, SMOLVM_DEFAULT_BOOT_TIMEOUT_MS / 1000u);
}

typedef struct create_args {
        smolvm_config cfg;
        const char **env;
        size_t n_env;
        bool json, no_start;
        cli_mounts *mounts;
} create_args;

static int parse_args(int argc, char **argv, create_args *a)
{
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *v;
                bool m;
                unsigned long n;
                int r;
                if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
                        return 1;
                if (!strcmp(arg, "--json")) {
                        a->json = true;
                } else if (!strcmp(arg, "--no-start")) {
                        a->no_start = true;
                } else if ((v = cli_flag_value(argc, argv, &i, "--name", &m)) || m) {
                        if (!v)
                                return -EINVAL;
                        a->cfg.name = v;
                } else if ((v = cli_flag_value(argc, argv, &i, "--disk", &m)) || m) {
                        if (!v || cli_parse_uint("--disk", v, 64, 64ul * 1024 * 1024, &n) < 0)
                                return -EINVAL;
                        a->cfg.disk_mib = (unsigned)n;
                } else if ((r = cli_env_flag(argc, argv, &i, a->env, &a->n_env)) != 0) {
                        if (r < 0)
                                return r;
                } else if ((r = cli_vm_flag(argc, argv, &i, &a->cfg, a->mounts)) != 0) {
                        if (r < 0)
                                return r;
                } else {
                        cli_error("%s '%s'", arg[0] == '-' ? "unknown option" : "unexpected argument", arg);
                        cli_hint("run 'smolvm create --help' for the options");
                        return -EINVAL;
                }
        }
        a->env[a->n_env] = NULL;
        return 0;
}

int cmd_create(int argc, char **argv)
{
        _cleanup_free_ const char **env = calloc(CLI_MAX_ENV_FLAGS + 1, sizeof(char *));
        if (!env) {
                cli_error("out of memory");
                return CLI_EXIT_ERROR;
        }
        _cleanup_(cli_mounts_done) cli_mounts mounts = { 0 };
        create_args a = { .env = env, .mounts = &mounts };
        smolvm_config_init(&a.cfg);
        int r = parse_args(argc, argv, &a);
        if (r == 1) {
                create_usage(stdout);
                return 0;
        }
        if (r < 0)
                return cli_usage_fail("create", cli_wants_json(argc, argv), "invalid arguments (see stderr)");
        a.cfg.env = a.n_env ? env : NULL;
        cli_mounts_apply(&mounts, &a.cfg);

        /* Ctrl-C while booting: give up and remove the half-made VM. */
        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd >= 0)
                a.cfg.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_create(&a.cfg, &vm);
        if (r < 0)
                return cli_fail("create", a.json, r);
        if (!a.no_start) {
                r = smolvm_start(vm);
                if (r < 0) {
                        /* Report the boot failure, then remove the VM: the user never saw its id. */
                        int code = cli_fail("create", a.json, r);
                        (void)smolvm_delete(vm, SMOLVM_DELETE_FORCE);
                        smolvm_free(vm);
                        if (r == -ECANCELED && sfd >= 0) {
                                int sig = cli_pending_signal(sfd);
                                return 128 + (sig ? sig : SIGINT);
                        }
                        return code;
                }
        }
        if (a.json) {
                smolvm_status_info st;
                json_t *data = NULL;
                if (smolvm_status(vm, &st) == 0 && (data = cli_vm_info_json(&st.info)) && st.have_boot) {
                        json_object_set_new(data, "boot_ms",
                                            json_integer((json_int_t)(st.boot.boot_ms ? st.boot.boot_ms
                                                                                      : st.boot.host_boot_ms)));
                        json_object_set_new(data, "accel_used", json_string(st.boot.accel));
                }
                cli_json_ok("create", 0, data);
        } else {
                printf("%s\n", smolvm_id(vm));
        }
        smolvm_free(vm);
        return 0;
}
