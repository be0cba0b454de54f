/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-init: the guest's PID 1 and command agent.
 *
 * Shape (after catatonit): setup, then "the line" after which PID 1 never
 * exits (that would panic the kernel): all signals but the fault signals are
 * blocked and read from a signalfd, children are reaped in a loop, errors are
 * logged and survived. Operations run in handler child processes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

static agent_channel *channel;

static void reap_children(void)
{
        for (;;) {
                pid_t p = waitpid(-1, NULL, WNOHANG);
                if (p > 0)
                        continue;
                if (p < 0 && errno == EINTR)
                        continue;
                return; /* 0: children alive, none exited; ECHILD: no children */
        }
}

static void power_off(int how)
{
        init_log("%s on signal", how == RB_POWER_OFF ? "powering off" : "rebooting");
        sync();
        if (reboot(how) < 0)
                init_log("reboot: %m");
}

static void on_signal(void *userdata, int fd, uint32_t events)
{
        struct signalfd_siginfo si[16];
        for (;;) {
                ssize_t n = read(fd, si, sizeof(si));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                init_log("signalfd read: %m");
                        return;
                }
                for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
                        switch (si[i].ssi_signo) {
                        case SIGCHLD:
                                reap_children();
                                break;
                        case SIGIO:
                                if (channel)
                                        agent_channel_sigio(channel);
                                break;
                        /* What busybox poweroff/halt/reboot send to init. */
                        case SIGUSR1:
                        case SIGUSR2:
                        case SIGPWR:
                                power_off(RB_POWER_OFF);
                                break;
                        case SIGTERM:
                        case SIGINT:
                                power_off(RB_AUTOBOOT);
                                break;
                        default:
                                break;
                        }
                }
        }
}

int main(int argc, char **argv)
{
        uint64_t init_start_ms = boottime_ms();

        if (argc > 1 && strcmp(argv[1], "--version") == 0) {
                printf("smolvm-init %s\n", SMOLVM_VERSION);
                return 0;
        }
        if (getpid() != 1) {
                fprintf(stderr, "smolvm-init: must run as PID 1 (the guest's init)\n");
                return 1;
        }

        setup_system();

        /* Everything PID 1 needs for its life is allocated before the line. */
        sigset_t all;
        sigfillset(&all);
        static const int fault_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS };
        for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++)
                sigdelset(&all, fault_signals[i]);
        if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
                fatal("sigprocmask: %m");
        int sfd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sfd < 0)
                fatal("signalfd: %m");
        smolvm_evloop *loop = NULL;
        int r = smolvm_evloop_new(&loop);
        if (r < 0)
                fatal("event loop: %s", strerror(-r));
        r = smolvm_evloop_add(loop, sfd, EPOLLIN, on_signal, NULL);
        if (r < 0)
                fatal("event loop: watch signalfd: %s", strerror(-r));
        uint64_t ready_ms = boottime_ms();
        r = agent_channel_new(loop, (uint32_t)init_start_ms, (uint32_t)ready_ms, &channel);
        if (r < 0)
                fatal("agent channel: %s", strerror(-r));
        net_egress *egress = NULL;
        if (net_egress_start(loop, channel, &egress) < 0)
                fatal("egress: out of memory");
        r = agent_fuse_relays_start(loop);
        if (r < 0)
                init_log("FUSE relays: %s: each FUSE-over-vsock mount is relayed by a process of its own",
                         strerror(-r));
        init_log("ready: init started at %llu ms, agent ready at %llu ms (boot time)",
                 (unsigned long long)init_start_ms, (unsigned long long)ready_ms);

        /* ---- the line: from here on PID 1 never exits ---- */
        for (;;) {
                int timeout = agent_channel_tick(channel);
                int fuse_timeout = agent_fuse_relays_tick();
                if (fuse_timeout >= 0 && (timeout < 0 || fuse_timeout < timeout))
                        timeout = fuse_timeout;
                r = smolvm_evloop_run_once(loop, timeout);
                if (r < 0) {
                        init_log("event loop: %s", strerror(-r));
                        struct timespec ts = { 0, 100 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
}
