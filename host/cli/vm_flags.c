/* SPDX-License-Identifier: Apache-2.0 */
/* Flags shared by several commands, so each is accepted and checked the same
 * way everywhere: the VM's (run, create), the command's (run, exec) and --env
 * (run, exec, create). */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "mount_spec.h"

int cli_vm_flag(int argc, char **argv, int *i, smolvm_config *cfg, cli_mounts *mounts)
{
        const char *v;
        bool m;
        unsigned long n;

        if ((v = cli_flag_value(argc, argv, i, "--mem", &m)) || m) {
                if (!v || cli_parse_uint("--mem", v, 64, 262144, &n) < 0)
                        return -EINVAL;
                cfg->mem_mib = (unsigned)n;
        } else if ((v = cli_flag_value(argc, argv, i, "--cpus", &m)) || m) {
                if (!v || cli_parse_uint("--cpus", v, 1, 64, &n) < 0)
                        return -EINVAL;
                cfg->vcpus = (unsigned)n;
        } else if ((v = cli_flag_value(argc, argv, i, "--boot-timeout", &m)) || m) {
                if (!v || cli_parse_uint("--boot-timeout", v, 1, 3600, &n) < 0)
                        return -EINVAL;
                cfg->boot_timeout_ms = (unsigned)(n * 1000u);
        } else if ((v = cli_flag_value(argc, argv, i, "--accel", &m)) || m) {
                if (!v)
                        return -EINVAL;
                if (strcmp(v, "auto") && strcmp(v, "kvm") && strcmp(v, "tcg")) {
                        cli_error("invalid value '%s' for --accel (expected auto, kvm or tcg)", v);
                        return -EINVAL;
                }
                cfg->accel = v;
        } else if ((v = cli_flag_value(argc, argv, i, "--mount", &m)) || m) {
                if (!v || cli_mounts_add(mounts, v) < 0)
                        return -EINVAL;
        } else if ((v = cli_flag_value(argc, argv, i, "--mount-transport", &m)) || m) {
                if (!v || cli_mounts_set_transport(mounts, v) < 0)
                        return -EINVAL;
        } else if ((v = cli_flag_value(argc, argv, i, "--image", &m)) || m) {
                if (!v || !*v) {
                        if (v)
                                cli_error("--image needs a name");
                        return -EINVAL;
                }
                cfg->image = v;
        } else {
                return 0;
        }
        return 1;
}

int cli_env_flag(int argc, char **argv, int *i, const char **env, size_t *n_env)
{
        bool m;
        const char *v = cli_flag_value(argc, argv, i, "--env", &m);
        if (!v && !m)
                return 0;
        if (!v || !cli_env_valid(v))
                return -EINVAL;
        if (*n_env >= CLI_MAX_ENV_FLAGS) {
                cli_error("too many --env options (max %d)", CLI_MAX_ENV_FLAGS);
                return -EINVAL;
        }
        env[(*n_env)++] = v;
        return 1;
}

int cli_exec_flag(int argc, char **argv, int *i, smolvm_exec_opts *opts, const char **env, size_t *n_env)
{
        const char *v;
        bool m;
        unsigned long n;

        if ((v = cli_flag_value(argc, argv, i, "--timeout", &m)) || m) {
                if (!v || cli_parse_uint("--timeout", v, 1, 31u * 24 * 3600, &n) < 0)
                        return -EINVAL;
                opts->timeout_ms = (uint32_t)(n * 1000u);
        } else if ((v = cli_flag_value(argc, argv, i, "--workdir", &m)) || m) {
                if (!v)
                        return -EINVAL;
                if (v[0] != '/') {
                        cli_error("invalid value '%s' for --workdir (expected an absolute guest path)", v);
                        return -EINVAL;
                }
                opts->cwd = v;
        } else {
                return cli_env_flag(argc, argv, i, env, n_env);
        }
        return 1;
}
