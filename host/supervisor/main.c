/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-supervisor's main(): the command line, the process's own set-up, the
 * list of duties, the event loop. The pieces are described in sup.h. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "boot.h"
#include "dir.h"
#include "log.h"
#include "egress.h"
#include "lane_duty.h"
#include "mounts.h"
#include "port.h"
#include "sup.h"
#include "util.h"
#include "vm.h"
#include "vmdir.h"

/* What the supervisor does for a VM besides running it (duty.h), in the order
 * their hooks are called. A new duty is one more entry here. */
static const sup_duty_ops *const duties[] = {
        &sup_mounts_duty,
        &sup_egress_duty,
        &sup_port_duty,
        &sup_lane_duty,
};

static void usage(FILE *f)
{
        fprintf(f, "usage: smolvm-supervisor --vm-dir DIR [--ephemeral] [--ready-fd N]\n"
                   "       smolvm-supervisor --vm-dir DIR --spare KEY:SNAPSHOT-ID [--idle-ms N] [--lock-fd N]\n"
                   "Runs one smolvm VM (internal: started by libsmolvm; see docs/internals.md).\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "vm-dir", required_argument, NULL, 'd' },
                { "ephemeral", no_argument, NULL, 'e' },
                { "ready-fd", required_argument, NULL, 'r' },
                { "spare", required_argument, NULL, 's' },
                { "idle-ms", required_argument, NULL, 'i' },
                { "lock-fd", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        sup s = { .ready_fd = -1, .sig_fd = -1, .chan_listen_fd = -1, .claim_listen_fd = -1, .claim_fd = -1,
                  .spare_lock_fd = -1, .spare_idle_for_ms = 60000, .t_start = now_ms() };
        pid_t parent = getppid();
        sigset_t mask;
        int c, code, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        s.vm_dir = optarg;
                        break;
                case 'e':
                        s.ephemeral = true;
                        break;
                case 'l':
                case 'r': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*optarg == '\0' || *end || v < 0 || v > INT_MAX || fcntl((int)v, F_GETFD) < 0) {
                                fprintf(stderr, "smolvm-supervisor: --%s %s: not an open fd\n",
                                        c == 'l' ? "lock-fd" : "ready-fd", optarg);
                                return SUP_EXIT_USAGE;
                        }
                        if (c == 'l')
                                s.spare_lock_fd = (int)v;
                        else
                                s.ready_fd = (int)v;
                        break;
                }
                case 's':
                        /* Written into the marker as it is: hex digits and ':' only. */
                        if (!*optarg || strlen(optarg) > 128 || strspn(optarg, "0123456789abcdef:") != strlen(optarg)) {
                                fprintf(stderr, "smolvm-supervisor: --spare %s: not KEY:SNAPSHOT-ID\n", optarg);
                                return SUP_EXIT_USAGE;
                        }
                        s.spare_tag = optarg;
                        break;
                case 'i': {
                        char *end;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (*optarg == '\0' || *end || v == 0 || v > 24ull * 3600 * 1000) {
                                fprintf(stderr, "smolvm-supervisor: --idle-ms %s: use 1 to 86400000\n", optarg);
                                return SUP_EXIT_USAGE;
                        }
                        s.spare_idle_for_ms = v;
                        break;
                }
                case 'h':
                        usage(stdout);
                        return SUP_EXIT_OK;
                case 'V':
                        printf("smolvm-supervisor %s\n", SMOLVM_VERSION);
                        return SUP_EXIT_OK;
                default:
                        usage(stderr);
                        return SUP_EXIT_USAGE;
                }
        }
        if (!s.vm_dir || optind != argc || (s.spare_tag && (s.ephemeral || s.ready_fd >= 0))) {
                usage(stderr);
                return SUP_EXIT_USAGE;
        }
        /* QEMU must not inherit the ready pipe: the CLI would never see EOF. */
        if (s.ready_fd >= 0)
                (void)fcntl(s.ready_fd, F_SETFD, FD_CLOEXEC);
        if (s.spare_lock_fd >= 0)
                (void)fcntl(s.spare_lock_fd, F_SETFD, FD_CLOEXEC);

        /* Signals arrive through the signalfd in the loop; block them before
         * arming the parent-death signal so none is lost. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN); /* clients vanish; writes report EPIPE instead */
        /* Orphaned descendants (a back-end's namespaced server) come to us, not to the
         * host's init: teardown reaps them (vm.c). */
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
        /* A spare is an ephemeral VM whose owner comes at its claim (spare.c):
         * its dir goes with it, and the claim's socket is its parent's life. */
        if (s.spare_tag)
                s.ephemeral = true;
        else if (s.ephemeral) {
                /* A killed CLI must leave nothing behind. The signal is only armed for a
                 * future death: if the parent is already gone, act as if it fired. */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent) {
                        s.stop = true;
                        s.stop_signal = SIGTERM;
                }
        }

        /* Before opening (truncating) the log: it may be another supervisor's. */
        if (sup_dir_claim(&s) < 0)
                return SUP_EXIT_USAGE;
        {
                _cleanup_free_ char *log_path = sup_dir_path(&s, VMDIR_SUPERVISOR_LOG);
                if (sup_log_open(log_path) < 0)
                        fprintf(stderr, "smolvm-supervisor: %s: %m (logging to stderr)\n", log_path);
        }
        sup_log("smolvm-supervisor %s starting for %s%s", SMOLVM_VERSION, s.vm_dir,
                s.spare_tag ? " (spare)" : s.ephemeral ? " (ephemeral)" : "");

        if (sup_vm_load_config(&s) < 0) {
                sup_vm_teardown(&s, true);
                return SUP_EXIT_USAGE;
        }
        sup_log("accel %s: %s", smolvm_accel_name(s.accel.accel), s.accel.reason);
        for (size_t i = 0; i < ARRAY_SIZE(duties); i++)
                if (sup_duty_add(&s, duties[i]) < 0) {
                        sup_vm_teardown(&s, true);
                        return SUP_EXIT_VM_FAILED;
                }
        r = sup_dir_write_pid(&s);
        if (r < 0) {
                sup_fail(&s, false, NULL, "writing %s/" VMDIR_PID ": %s", s.vm_dir, strerror(-r));
                sup_vm_teardown(&s, true);
                return SUP_EXIT_VM_FAILED;
        }
        if (s.stop) {
                sup_fail(&s, false, NULL, "parent exited before the VM started");
                sup_vm_teardown(&s, false);
                return SUP_EXIT_OK;
        }
        if (sup_vm_start(&s) < 0) {
                sup_vm_teardown(&s, true);
                return SUP_EXIT_VM_FAILED;
        }

        for (;;) {
                r = smolvm_evloop_run_once(s.loop, sup_boot_timeout_ms(&s));
                if (r < 0) {
                        sup_fail(&s, false, NULL, "event loop: %s", strerror(-r));
                        code = SUP_EXIT_VM_FAILED;
                        break;
                }
                code = sup_boot_step(&s);
                if (code >= 0)
                        break;
        }
        sup_vm_teardown(&s, code != SUP_EXIT_OK);
        return code;
}
