/* SPDX-License-Identifier: Apache-2.0 */
/* Option fragments shared by several commands, so each option is declared,
 * accepted and checked once: the VM's shape (run, create), an exec's options
 * (run, exec; -e and -w also shell) and --env (run, exec, shell, create). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_proto.h"
#include "cli.h"
#include "util.h"

/* The help texts say the defaults; these keep them true. */
_Static_assert(SMOLVM_DEFAULT_MEM_MIB == 512, "update --mem's help");
_Static_assert(SMOLVM_DEFAULT_VCPUS == 1, "update --cpus's help");
_Static_assert(SMOLVM_DEFAULT_BOOT_TIMEOUT_MS == 60000, "update --boot-timeout's help");
_Static_assert(SMOLVM_MAX_MOUNTS == 16, "update --mount's help");
_Static_assert(CLI_JSON_OUTPUT_CAP == 64u * 1024 * 1024, "update the --json help of run and exec");

/* ---- --env ---- */

bool cli_env_valid(const char *v)
{
        size_t klen = 0;
        /* The guest's own rule (common/agent_proto.c): refused here, before a boot. */
        int r = agent_env_entry_check(v, &klen);
        if (r < 0 && !strchr(v, '=')) {
                cli_error("invalid value '%s' for --env (expected NAME=VALUE)", v);
        } else if (r == -EINVAL) {
                cli_error("invalid variable name '%.*s' in --env", (int)MIN(klen, (size_t)64), v);
                cli_hint("names are letters, digits and '_', not starting with a digit, at most %u bytes",
                         AGENT_ENV_MAX_KEY);
        } else if (r == -E2BIG) {
                cli_error("--env %.*s: the value is %zu bytes (at most %u)", (int)klen, v, strlen(v + klen + 1),
                          AGENT_ENV_MAX_VALUE);
        }
        return r == 0;
}

int cli_env_add(const char *arg, void *field)
{
        cli_env *e = field;
        if (!cli_env_valid(arg))
                return -EINVAL;
        if (e->n >= CLI_MAX_ENV_FLAGS) {
                cli_error("too many --env options (max %d)", CLI_MAX_ENV_FLAGS);
                return -EINVAL;
        }
        const char **v = realloc(e->v, (e->n + 2) * sizeof(*v));
        if (!v) {
                cli_error("out of memory");
                return -ENOMEM;
        }
        v[e->n++] = arg;
        v[e->n] = NULL;
        e->v = v;
        return 0;
}

void cli_env_done(cli_env *e)
{
        free(e->v);
        *e = (cli_env){ 0 };
}

/* ---- the VM's shape: run, create ---- */

static int parse_accel(const char *arg, void *field)
{
        if (strcmp(arg, "auto") && strcmp(arg, "kvm") && strcmp(arg, "tcg")) {
                cli_error("invalid value '%s' for --accel (expected auto, kvm or tcg)", arg);
                return -EINVAL;
        }
        *(const char **)field = arg;
        return 0;
}

/* --image and --from-snapshot: a non-empty name. */
static int parse_image(const char *arg, void *field)
{
        if (!*arg) {
                cli_error("--image and --from-snapshot need a name");
                return -EINVAL;
        }
        *(const char **)field = arg;
        return 0;
}

static int parse_mount(const char *arg, void *field)
{
        return cli_mounts_add(field, arg);
}

static int parse_mount_transport(const char *arg, void *field)
{
        return cli_mounts_set_transport(field, arg);
}

/* ---- the network: --allow-host, --deny-host, --add-host, --net ---- */

#define CLI_MAX_NET_FLAGS 256

static int net_add(cli_vm_args *a, size_t which, const char *arg)
{
        cli_net *n = &a->net;
        if (n->n[which] >= CLI_MAX_NET_FLAGS) {
                cli_error("too many network options (max %d of each)", CLI_MAX_NET_FLAGS);
                return -EINVAL;
        }
        const char **v = realloc(n->v[which], (n->n[which] + 2) * sizeof(*v));
        if (!v) {
                cli_error("out of memory");
                return -ENOMEM;
        }
        v[n->n[which]++] = arg;
        v[n->n[which]] = NULL;
        n->v[which] = v;
        n->any = true;
        return 0;
}

/* The field is cli_vm_args.net: the parser gets the whole args back from it. */
#define NET_ARGS(field) ((cli_vm_args *)((char *)(field) - offsetof(cli_vm_args, net)))

static int parse_allow_host(const char *arg, void *field)
{
        return net_add(NET_ARGS(field), 0, arg);
}

static int parse_deny_host(const char *arg, void *field)
{
        return net_add(NET_ARGS(field), 1, arg);
}

static int parse_add_host(const char *arg, void *field)
{
        return net_add(NET_ARGS(field), 2, arg);
}

static int parse_net(const char *arg, void *field)
{
        cli_net *n = field;
        if (strcmp(arg, "open") != 0) {
                cli_error("invalid value '%s' for --net (expected open)", arg);
                return -EINVAL;
        }
        n->open = n->any = true;
        return 0;
}

const cli_opt cli_vm_opts[] = {
        CLI_UINT(cli_vm_args, cfg.mem_mib, "mem", 0, "MIB", 64, 262144, 1, "guest memory (default 512)"),
        CLI_UINT(cli_vm_args, cfg.vcpus, "cpus", 0, "N", 1, 64, 1, "vCPUs (default 1)"),
        CLI_CALL(cli_vm_args, cfg.image, "image", 0, "NAME", parse_image,
                 "image to boot: a name from 'smolvm image ls' (default:\n"
                 "default) or an absolute directory path"),
        CLI_CALL(cli_vm_args, cfg.from_snapshot, "from-snapshot", 0, "NAME", parse_image,
                 "continue from a snapshot (`smolvm snapshot ls`): its\n"
                 "processes, memory and disk; image and shape are its own"),
        CLI_CALL(cli_vm_args, mounts, "mount", 0, "HOST:GUEST[:ro|:rw]", parse_mount,
                 "show host directory HOST at GUEST in the VM, read-only\n"
                 "unless :rw (enforced on the host; repeatable, max 16)"),
        CLI_CALL(cli_vm_args, mounts, "mount-transport", 0, "virtiofs|vsock", parse_mount_transport,
                 "how mounts reach the guest (default virtiofs)"),
        CLI_CALL(cli_vm_args, ports, "publish", 'p', "[HOST_PORT:]GUEST_PORT", cli_publish_add,
                 "forward host 127.0.0.1:HOST_PORT (default: a free port)\n"
                 "to the guest's TCP port (repeatable; see 'smolvm port')"),
        CLI_BOOL(cli_vm_args, cfg.cold, "cold", 0,
                 "boot from scratch instead of from the image's boot\n"
                 "template (warm start, the default where the options\n"
                 "allow it: see docs/cli.md, \"Warm start\")"),
        CLI_CALL(cli_vm_args, cfg.accel, "accel", 0, "auto|kvm|tcg", parse_accel, "accelerator (default auto)"),
        CLI_UINT(cli_vm_args, cfg.boot_timeout_ms, "boot-timeout", 0, "SEC", 1, 3600, 1000,
                 "give up booting after SEC seconds (default 60)"),
        CLI_CALL(cli_vm_args, net, "allow-host", 0, "PATTERN", parse_allow_host,
                 "let the guest reach PATTERN over TCP, by name: NAME,\n"
                 "*.SUFFIX or an IP address, each optionally :PORT\n"
                 "(repeatable; the host decides at connect time; no\n"
                 "network without a network option)"),
        CLI_CALL(cli_vm_args, net, "net", 0, "open", parse_net,
                 "let the guest reach every public name (--deny-host\n"
                 "subtracts)"),
        CLI_CALL(cli_vm_args, net, "deny-host", 0, "PATTERN", parse_deny_host,
                 "refuse PATTERN even if allowed (repeatable)"),
        CLI_CALL(cli_vm_args, net, "add-host", 0, "NAME:IP", parse_add_host,
                 "connect NAME to IP (may be private or loopback), like\n"
                 "/etc/hosts but on the host side (repeatable)"),
        CLI_END,
};

void cli_vm_args_init(cli_vm_args *a)
{
        *a = (cli_vm_args){ 0 };
        smolvm_config_init(&a->cfg);
}

void cli_vm_args_finish(cli_vm_args *a)
{
        cli_mounts_apply(&a->mounts, &a->cfg);
        if (a->net.any) {
                a->net.net = (smolvm_net){ .open = a->net.open, .allow = a->net.v[0], .deny = a->net.v[1],
                                           .hosts = a->net.v[2] };
                a->cfg.net = &a->net.net;
        }
        a->cfg.ports = a->ports.n ? a->ports.v : NULL;
        a->cfg.n_ports = a->ports.n;
}

void cli_vm_args_done(cli_vm_args *a)
{
        cli_mounts_done(&a->mounts);
        for (size_t i = 0; i < 3; i++)
                free(a->net.v[i]);
}

/* ---- an exec's options: run, exec ---- */

static int parse_workdir(const char *arg, void *field)
{
        if (arg[0] != '/') {
                cli_error("invalid value '%s' for --workdir (expected an absolute guest path)", arg);
                return -EINVAL;
        }
        *(const char **)field = arg;
        return 0;
}

const cli_opt cli_exec_env_opts[] = {
        CLI_CALL(cli_exec_args, env, "env", 'e', "K=V", cli_env_add,
                 "set an environment variable (repeatable)"),
        CLI_CALL(cli_exec_args, opts.cwd, "workdir", 'w', "DIR", parse_workdir,
                 "working directory in the guest (default /root)"),
        CLI_END,
};

const cli_opt cli_exec_opts[] = {
        { .kind = CLI_OPT_INCLUDE, .offset = 0, .include = cli_exec_env_opts },
        CLI_BOOL(cli_exec_args, interactive, "interactive", 'i', "forward stdin even when it is a terminal"),
        CLI_BOOL(cli_exec_args, tty, "tty", 't',
                 "run CMD on a terminal in the guest (stdin must be one:\n"
                 "-it for a shell; Ctrl-C goes to CMD)"),
        CLI_UINT(cli_exec_args, opts.timeout_ms, "timeout", 0, "SEC", 1, 31u * 24 * 3600, 1000,
                 "kill the command after SEC seconds (exit 124)"),
        CLI_END,
};

void cli_exec_args_init(cli_exec_args *a)
{
        *a = (cli_exec_args){ 0 };
        smolvm_exec_opts_init(&a->opts);
}

int cli_exec_args_finish(cli_exec_args *a, const cli_parsed *p, char **argv)
{
        a->opts.argv = (const char *const *)argv;
        a->opts.env = a->env.v;
        /* docker's rule and words: a terminal in the guest needs one here. */
        if (a->tty && !isatty(STDIN_FILENO)) {
                cli_error("the input device is not a TTY");
                cli_hint("-t needs stdin to be a terminal; without -t, stdin is forwarded as it is");
                return cli_usage_fail(p->cmd->name, p->json);
        }
        a->opts.tty = a->tty;
        cli_exec_stdin(&a->opts, a->interactive);
        return 0;
}

void cli_exec_args_done(cli_exec_args *a)
{
        cli_env_done(&a->env);
}
