/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm exec ID -- CMD...: run a command in a running VM, as `run` does in a
 * fresh one: streaming output, the command's exit code. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"


static void exec_usage(FILE *f)
{
        fputs("Usage: smolvm exec [OPTIONS] ID [--] CMD [ARG...]\n"
              "\n"
              "Run CMD in the running VM ID (id, unique id prefix, or name), stream its stdout\n"
              "and stderr, and exit with its exit code (128+N if killed by signal N, 124 on\n"
              "timeout). Any number of execs may run at once, from any processes. stdin is\n"
              "forwarded unless it is a terminal.\n"
              "\n"
              "Options:\n"
              "  --timeout SEC      kill the command after SEC seconds (exit 124)\n"
              "  --env K=V          set an environment variable (repeatable)\n"
              "  --workdir DIR      working directory in the guest (default /root)\n"
              "  -i, --interactive  forward stdin even when it is a terminal\n"
              "  --json             print the JSON envelope instead of streaming (docs/cli.md):\n"
              "                     data: {exit_code, signal, timed_out, stdout, stderr, ...}\n"
              "                     (stdout, stderr: at most 64 MiB of JSON text each)\n"
              "  -h, --help         show this help\n"
              "\n"
              "Exit status: the command's; 125 if smolvm failed (e.g. the VM is not running\n"
              "or paused); 127 if CMD was not found; 126 if it could not be executed.\n",
              f);
}

typedef struct exec_args {
        smolvm_exec_opts opts;
        const char **env;
        size_t n_env;
        bool json, interactive;
        const char *id;
        char **argv;
} exec_args;

static int parse_args(int argc, char **argv, exec_args *a)
{
        int i;
        for (i = 1; i < argc; i++) {
                const char *arg = argv[i];
                int r;
                if (arg[0] != '-' || arg[1] == '\0')
                        break; /* the VM id */
                if (!strcmp(arg, "--")) {
                        cli_error("no VM given before '--'");
                        return -EINVAL;
                }
                if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
                        return 1;
                if (!strcmp(arg, "--json")) {
                        a->json = true;
                } else if (!strcmp(arg, "-i") || !strcmp(arg, "--interactive")) {
                        a->interactive = true;
                } else if ((r = cli_exec_flag(argc, argv, &i, &a->opts, a->env, &a->n_env)) != 0) {
                        if (r < 0)
                                return r;
                } else {
                        cli_error("unknown option '%s'", arg);
                        cli_hint("run 'smolvm exec --help' for the options");
                        return -EINVAL;
                }
        }
        if (i >= argc) {
                cli_error("no VM given");
                cli_hint("usage: smolvm exec [OPTIONS] ID -- CMD [ARG...]");
                return -EINVAL;
        }
        a->id = argv[i++];
        if (i < argc && !strcmp(argv[i], "--"))
                i++;
        if (i >= argc) {
                cli_error("no command given");
                cli_hint("usage: smolvm exec [OPTIONS] ID -- CMD [ARG...]");
                return -EINVAL;
        }
        a->argv = argv + i;
        a->env[a->n_env] = NULL;
        return 0;
}

int cmd_exec(int argc, char **argv)
{
        _cleanup_free_ const char **env = calloc(CLI_MAX_ENV_FLAGS + 1, sizeof(char *));
        if (!env) {
                cli_error("out of memory");
                return CLI_EXIT_ERROR;
        }
        exec_args a = { .env = env };
        smolvm_exec_opts_init(&a.opts);
        int r = parse_args(argc, argv, &a);
        if (r == 1) {
                exec_usage(stdout);
                return 0;
        }
        if (r < 0)
                return cli_usage_fail("exec", cli_wants_json(argc, argv), "invalid arguments (see stderr)");
        a.opts.argv = (const char *const *)a.argv;
        a.opts.env = a.n_env ? env : NULL;
        if (fcntl(STDIN_FILENO, F_GETFD) >= 0 && (a.interactive || !isatty(STDIN_FILENO))) {
                a.opts.stdin_mode = SMOLVM_STDIN_FD;
                a.opts.stdin_fd = STDIN_FILENO;
        }

        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0) {
                cli_error("signalfd: %s", strerror(-sfd));
                return CLI_EXIT_ERROR;
        }
        a.opts.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_open(a.id, &vm);
        if (r < 0)
                return cli_fail("exec", a.json, r);

        cli_capture cap = { 0 };
        int exit_code = cli_exec_in_vm(vm, &a.opts, sfd, a.json ? &cap : NULL, &r);
        if (r == 0 && a.json) {
                cli_json_exec_ok("exec", exit_code, &cap, -1);
        } else if (r < 0 && r != -ECANCELED && r != -EPIPE) {
                if (a.json) {
                        const smolvm_error *e = smolvm_last_error();
                        cli_json_error("exec", exit_code, cli_error_code_name(r), e->message, e->hint, NULL);
                }
                cli_print_lib_error();
        }
        cli_capture_done(&cap);
        smolvm_free(vm);
        return exit_code;
}
