/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm run: boot an ephemeral microVM, run one command, stream its output,
 * exit with its status, remove the VM (also on Ctrl-C / SIGTERM / SIGHUP). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "mount_spec.h"
#include "smolvm/smolvm.h"
#include "util.h"
#ifdef SMOLVM_HAVE_IMAGE_BUILDER
#include "image.h"
#endif


static void run_usage(FILE *f)
{
        fprintf(f,
                "Usage: smolvm run [OPTIONS] [--] CMD [ARG...]\n"
                "\n"
                "Boot an ephemeral microVM, run CMD in it, stream its stdout and stderr, and\n"
                "exit with its exit code (128+N if killed by signal N, 124 on timeout).\n"
                "The VM is removed afterwards, also on Ctrl-C. stdin is forwarded unless it is\n"
                "a terminal.\n"
                "\n"
                "Options:\n"
                "  --timeout SEC        kill the command after SEC seconds (exit 124)\n"
                "  --mem MIB            guest memory (default %u)\n"
                "  --cpus N             vCPUs (default %u)\n"
                "  --env K=V            set an environment variable (repeatable)\n"
                "  --workdir DIR        working directory in the guest (default /root)\n"
                "  --accel auto|kvm|tcg accelerator (default auto)\n"
                "  --image NAME         image to boot: a name from 'smolvm image ls' (default:\n"
                "                       default) or an absolute directory path\n"
                "  --mount HOST:GUEST[:ro|:rw]\n"
                "                       show host directory HOST at GUEST in the VM, read-only\n"
                "                       unless :rw (enforced on the host; repeatable, max %u)\n"
                "  --mount-transport virtiofs|vsock\n"
                "                       how mounts reach the guest (default virtiofs)\n"
                "  --boot-timeout SEC   give up booting after SEC seconds (default %u)\n"
                "  -i, --interactive    forward stdin even when it is a terminal\n"
                "  --json               print one JSON envelope instead of streaming (docs/cli.md):\n"
                "                       {ok, command, exit_code, error, data: {exit_code, signal,\n"
                "                        timed_out, stdout, stderr, duration_ms, boot_ms, ...}}\n"
                "                       (stdout, stderr: at most 64 MiB of JSON text each)\n"
                "  -h, --help           show this help\n"
                "\n"
                "Exit status: the command's; 125 if smolvm itself failed; 127 if CMD was not\n"
                "found; 126 if it could not be executed.\n",
                SMOLVM_DEFAULT_MEM_MIB, SMOLVM_DEFAULT_VCPUS, SMOLVM_MAX_MOUNTS, SMOLVM_DEFAULT_BOOT_TIMEOUT_MS / 1000u);
}

typedef struct run_args {
        smolvm_config cfg;
        smolvm_exec_opts opts;
        const char **env;
        size_t n_env;
        bool json;
        bool interactive;
        char **argv;
        cli_mounts *mounts;
} run_args;

/* Returns 0, 1 for --help, or -EINVAL (already reported). */
static int parse_args(int argc, char **argv, run_args *a)
{
        int i;
        for (i = 1; i < argc; i++) {
                const char *arg = argv[i];
                int r;
                if (!strcmp(arg, "--")) {
                        i++;
                        break;
                }
                if (arg[0] != '-' || arg[1] == '\0')
                        break; /* the command starts here */
                if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
                        return 1;
                if (!strcmp(arg, "--json")) {
                        a->json = true;
                        continue;
                }
                if (!strcmp(arg, "-i") || !strcmp(arg, "--interactive")) {
                        a->interactive = true;
                        continue;
                }
                if ((r = cli_exec_flag(argc, argv, &i, &a->opts, a->env, &a->n_env)) != 0) {
                        if (r < 0)
                                return r;
                } else if ((r = cli_vm_flag(argc, argv, &i, &a->cfg, a->mounts)) != 0) {
                        if (r < 0)
                                return r;
                } else {
                        cli_error("unknown option '%s'", arg);
                        cli_hint("run 'smolvm run --help' for the options");
                        return -EINVAL;
                }
        }
        if (i >= argc) {
                cli_error("no command given");
                cli_hint("usage: smolvm run [OPTIONS] -- CMD [ARG...]");
                return -EINVAL;
        }
        a->argv = argv + i;
        a->env[a->n_env] = NULL;
        return 0;
}

/* ---- first-use image build ---- */

#ifdef SMOLVM_HAVE_IMAGE_BUILDER
static void build_progress(void *ud, const char *line)
{
        (void)ud;
        fprintf(stderr, "smolvm: %s\n", line);
}

/* Build the default image; signals go back to their defaults meanwhile, so Ctrl-C
 * simply stops the build (the image cache is lock- and rename-protected). */
static int build_default_image(const sigset_t *old_mask)
{
        sigset_t blocked;
        fprintf(stderr, "smolvm: no default image yet; building it once (this takes a minute or two)\n");
        sigprocmask(SIG_SETMASK, old_mask, &blocked);
        smolvm_image_build_opts o = { 0 };
        smolvm_image_info info = { 0 };
        char *err = NULL;
        int r = smolvm_image_build(&o, build_progress, NULL, &info, &err);
        sigprocmask(SIG_SETMASK, &blocked, NULL);
        if (r < 0) {
                cli_error("building the default image failed: %s", err ? err : strerror(-r));
                cli_hint("run `smolvm image build` to retry and see its progress");
        }
        free(err);
        smolvm_image_info_done(&info);
        return r;
}
#endif

/* The envelope with the library's last error (also printed on stderr). */
static void print_json_error(int exit_code)
{
        const smolvm_error *e = smolvm_last_error();
        json_t *data = NULL;
        if (e->console_tail[0] && (data = json_object()))
                json_object_set_new(data, "console_tail", json_string(e->console_tail));
        cli_json_error("run", exit_code, cli_error_code_name(e->code), e->message, e->hint, data);
}

static bool stdin_usable(void)
{
        return fcntl(STDIN_FILENO, F_GETFD) >= 0;
}

int cmd_run(int argc, char **argv)
{
        _cleanup_free_ const char **env = calloc(CLI_MAX_ENV_FLAGS + 1, sizeof(char *));
        if (!env) {
                cli_error("out of memory");
                return CLI_EXIT_ERROR;
        }
        _cleanup_(cli_mounts_done) cli_mounts mounts = { 0 };
        run_args a = { .env = env, .mounts = &mounts };
        smolvm_config_init(&a.cfg);
        smolvm_exec_opts_init(&a.opts);
        a.cfg.ephemeral = true;

        int r = parse_args(argc, argv, &a);
        if (r == 1) {
                run_usage(stdout);
                return 0;
        }
        if (r < 0)
                return cli_usage_fail("run", cli_wants_json(argc, argv), "invalid arguments (see stderr)");

        cli_mounts_apply(&mounts, &a.cfg);
        a.opts.argv = (const char *const *)a.argv;
        a.opts.env = a.n_env ? env : NULL;
        if (stdin_usable() && (a.interactive || !isatty(STDIN_FILENO))) {
                a.opts.stdin_mode = SMOLVM_STDIN_FD;
                a.opts.stdin_fd = STDIN_FILENO;
        }

        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0) {
                cli_error("signalfd: %s", strerror(-sfd));
                return CLI_EXIT_ERROR;
        }
        a.cfg.cancel_fd = sfd;
        a.opts.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_create(&a.cfg, &vm);
#ifdef SMOLVM_HAVE_IMAGE_BUILDER
        if (r == SMOLVM_EIMAGE && !(a.cfg.image && strcmp(a.cfg.image, "default") != 0) && strstr(smolvm_last_error()->message, "not found")) {
                if (build_default_image(&old_mask) < 0) {
                        if (a.json)
                                print_json_error(CLI_EXIT_ERROR);
                        return CLI_EXIT_ERROR;
                }
                r = smolvm_create(&a.cfg, &vm);
        }
#endif
        if (r < 0) {
                cli_print_lib_error();
                if (a.json)
                        print_json_error(CLI_EXIT_ERROR);
                return CLI_EXIT_ERROR;
        }

        int exit_code = CLI_EXIT_ERROR;
        r = smolvm_start(vm);
        if (r < 0) {
                if (r == -ECANCELED) {
                        int sig = cli_pending_signal(sfd);
                        smolvm_free(vm);
                        return 128 + (sig ? sig : SIGINT);
                }
                cli_print_lib_error();
                if (a.json)
                        print_json_error(CLI_EXIT_ERROR);
                smolvm_free(vm);
                return CLI_EXIT_ERROR;
        }
        smolvm_boot_info boot = { 0 };
        (void)smolvm_boot_info_get(vm, &boot);
        uint64_t boot_ms = boot.boot_ms ? boot.boot_ms : boot.host_boot_ms;

        cli_capture cap = { 0 };
        exit_code = cli_exec_in_vm(vm, &a.opts, sfd, a.json ? &cap : NULL, &r);
        if (r == 0 && a.json) {
                cli_json_exec_ok("run", exit_code, &cap, (int64_t)boot_ms);
        } else if (r < 0 && r != -ECANCELED && r != -EPIPE) {
                cli_print_lib_error();
                if (a.json)
                        print_json_error(exit_code);
        }
        cli_capture_done(&cap);
        /* Removing the VM is part of the command: report if it failed. */
        if (smolvm_destroy(vm) < 0) {
                cli_print_lib_error();
                if (exit_code == 0)
                        exit_code = CLI_EXIT_ERROR;
        }
        smolvm_free(vm);
        return exit_code;
}
