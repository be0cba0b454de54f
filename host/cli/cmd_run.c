/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm run: boot an ephemeral microVM, run one command, stream its output,
 * exit with its status, remove the VM (also on Ctrl-C / SIGTERM / SIGHUP). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"
#ifdef SMOLVM_HAVE_IMAGE_BUILDER
#include "image.h"
#endif

typedef struct run_args {
        cli_exec_args exec;
        cli_vm_args vm;
} run_args;

static void run_args_done(run_args *a)
{
        cli_exec_args_done(&a->exec);
        cli_vm_args_done(&a->vm);
}

static const cli_opt run_opts[] = {
        CLI_INCLUDE(run_args, exec, cli_exec_opts),
        CLI_INCLUDE(run_args, vm, cli_vm_opts),
        CLI_END,
};

static const cli_cmd run_cmd = {
        .name = "run",
        .synopsis = "[OPTIONS] [--] CMD [ARG...]",
        .about = "Boot an ephemeral microVM, run CMD in it, stream its stdout and stderr, and\n"
                 "exit with its exit code (128+N if killed by signal N, 124 on timeout).\n"
                 "The VM is removed afterwards, also on Ctrl-C. stdin is forwarded unless it is\n"
                 "a terminal (-it: a terminal in the guest, e.g. for a REPL). The options end\n"
                 "at CMD: what follows is CMD's.\n",
        .opts = run_opts,
        .json_help = "print one JSON envelope instead of streaming (docs/cli.md):\n"
                     "{ok, command, exit_code, error, data: {exit_code, signal,\n"
                     " timed_out, stdout, stderr, duration_ms, boot_ms, start:\n"
                     " warm|cold, start_note, ...}}\n"
                     "(stdout, stderr: at most 64 MiB of JSON text each)",
        .footer = "Exit status: the command's; 125 if smolvm itself failed; 127 if CMD was not\n"
                  "found; 126 if it could not be executed.\n",
        .in_order = true,
};

/* ---- first-use image build ---- */

#ifdef SMOLVM_HAVE_IMAGE_BUILDER
static void build_progress(void *ud, const char *line)
{
        (void)ud;
        fprintf(stderr, "smolvm: %s\n", line);
}

/* Build the default image; signals go back to their defaults meanwhile, so Ctrl-C
 * simply stops the build (the image cache is lock- and rename-protected). */
static int build_default_image(const sigset_t *old_mask, bool json)
{
        sigset_t blocked;
        fprintf(stderr, "smolvm: no default image yet; building it once (this takes a minute or two)\n");
        sigprocmask(SIG_SETMASK, old_mask, &blocked);
        smolvm_image_build_opts o = { 0 };
        smolvm_image_info info = { 0 };
        char *err = NULL;
        int r = smolvm_image_build(&o, build_progress, NULL, &info, &err);
        sigprocmask(SIG_SETMASK, &blocked, NULL);
        if (r < 0)
                cli_failf("run", json, SMOLVM_EIMAGE, NULL, "run `smolvm image build` to retry and see its progress",
                          "building the default image failed: %s", err ? err : strerror(-r));
        free(err);
        smolvm_image_info_done(&info);
        return r;
}
#endif

int cmd_run(int argc, char **argv)
{
        _cleanup_(run_args_done) run_args a;
        cli_exec_args_init(&a.exec);
        cli_vm_args_init(&a.vm);
        a.vm.cfg.ephemeral = true;
        cli_parsed p;
        int r = cli_parse(&run_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos == 0)
                return cli_usage(&p, "no command given");
        cli_vm_args_finish(&a.vm);
        r = cli_exec_args_finish(&a.exec, &p, p.pos);
        if (r != 0)
                return r;

        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0)
                return cli_failf("run", p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        a.vm.cfg.cancel_fd = sfd;
        a.exec.opts.cancel_fd = sfd;

        smolvm_vm *vm = NULL;
        r = smolvm_create(&a.vm.cfg, &vm);
#ifdef SMOLVM_HAVE_IMAGE_BUILDER
        if (r == SMOLVM_EIMAGE && !(a.vm.cfg.image && strcmp(a.vm.cfg.image, "default") != 0) &&
            strstr(smolvm_last_error()->message, "not found")) {
                if (build_default_image(&old_mask, p.json) < 0)
                        return CLI_EXIT_ERROR;
                r = smolvm_create(&a.vm.cfg, &vm);
        }
#endif
        if (r < 0)
                return cli_fail_exit("run", p.json, r, CLI_EXIT_ERROR);

        r = smolvm_start(vm);
        if (r < 0) {
                int code = CLI_EXIT_ERROR;
                if (r == -ECANCELED) {
                        int sig = cli_pending_signal(sfd);
                        code = 128 + (sig ? sig : SIGINT);
                } else {
                        cli_fail_exit("run", p.json, r, code);
                }
                smolvm_free(vm);
                return code;
        }
        smolvm_boot_info boot = { 0 };
        (void)smolvm_boot_info_get(vm, &boot);

        int exit_code = cli_exec_relay(vm, &a.exec.opts, sfd, "run", p.json, &boot);
        /* Removing the VM is part of the command: report if it failed. */
        if (smolvm_destroy(vm) < 0) {
                cli_print_lib_error();
                if (exit_code == 0)
                        exit_code = CLI_EXIT_ERROR;
        }
        smolvm_free(vm);
        return exit_code;
}
