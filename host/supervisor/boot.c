/* SPDX-License-Identifier: Apache-2.0 */
/* The boot state machine, the guest channel's events and the ready line (boot.h). */
#include "boot.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dir.h"
#include "lane_duty.h"
#include "log.h"
#include "spare.h"
#include "sup.h"
#include "unixsock.h"
#include "util.h"
#include "vm.h"
#include "vmdir.h"
#include "wire.h"

/* After the channel breaks during boot, how long to wait for QEMU's exit: a
 * panicking guest closes the channel a moment before QEMU is reaped, and "kernel
 * stopped" with the console tail is the more useful message. */
#define BROKEN_GRACE_MS 1000u
/* A restore: how long a channel connection may go without the guest's HELLO
 * before it is dropped again (the guest then resets its end), and how long to
 * wait for the guest to close its port before connecting anyway. */
#define RESTORE_HELLO_MS 3000u
#define RESTORE_GUEST_CLOSE_MS 3000u
/* A restore: how long the guest may take to answer its new identity (PID 1
 * applies it in-process: milliseconds, unless the host is very loaded). */
#define RESTORE_IDENTITY_MS 15000u

/* ---- the ready line ---- */

static void ready_write(sup *s, json_t *obj)
{
        _cleanup_free_ char *line = NULL;

        if (s->ready_fd < 0 || !obj) {
                json_decref(obj);
                return;
        }
        line = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        if (line) {
                size_t n = strlen(line);
                line[n] = '\n'; /* json_dumps' NUL becomes the newline; length passed explicitly */
                if (write_all(s->ready_fd, line, n + 1) < 0)
                        sup_log("ready fd: write: %m");
        }
        s->ready_fd = safe_close(s->ready_fd);
}

void sup_fail(sup *s, bool with_console, const char *hint, const char *fmt, ...)
{
        char error[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(error, sizeof(error), fmt, ap);
        va_end(ap);
        sup_log("error: %s", error);
        if (!s->failed_why[0])
                snprintf(s->failed_why, sizeof(s->failed_why), "%s", error);
        if (s->ready_fd < 0) {
                if (sup_log_is_open()) /* else sup_log() already wrote it to stderr */
                        fprintf(stderr, "smolvm-supervisor: %s\n", error);
                return;
        }
        json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", error);
        if (o && hint)
                json_object_set_new(o, "hint", json_string(hint));
        if (o && with_console && s->con) {
                char tail[SUP_CONSOLE_TAIL_BYTES + 1];
                sup_console_drain(s->con);
                sup_console_tail(s->con, tail, sizeof(tail));
                json_object_set_new(o, "console_tail", json_string(tail));
        }
        ready_write(s, o);
}

static int64_t ms_diff(uint64_t later, uint64_t earlier)
{
        return later >= earlier ? (int64_t)(later - earlier) : 0;
}

/* The boot time split (all ms; boot_ms = t_prep + t_vmm + t_kernel + t_init):
 *   boot_ms     supervisor start -> guest HELLO received (agent ready, as the host sees it)
 *   t_prep_ms   supervisor start -> QEMU spawned (config, overlay creation, sockets)
 *   t_vmm_ms    QEMU spawned -> QEMU connected to chan.sock (QEMU's own startup: it
 *               creates chardevs before the machine, so this is process + device setup)
 *   t_kernel_ms chan.sock connect -> guest init started: machine reset, firmware,
 *               kernel load and decompression, kernel boot. Derived: the host-measured
 *               connect->HELLO interval minus the guest-measured init->ready interval.
 *   t_init_ms   init started -> agent ready (guest CLOCK_BOOTTIME: module loading,
 *               mounts, agent setup), from HELLO's init_start_ms/ready_ms
 *   t_agent_ms  reserved, 0: the guest reports a single init->ready interval today
 * guest_init_start_ms is the guest's own uptime at init start (kernel boot time as
 * the guest clock saw it; t_kernel_ms minus it ~ firmware + decompression). */
static void ready_ok(sup *s)
{
        int64_t t_init = 0, t_kernel;

        if (s->hello_has_times && s->guest_ready_ms >= s->guest_init_start_ms)
                t_init = (int64_t)(s->guest_ready_ms - s->guest_init_start_ms);
        t_kernel = ms_diff(s->t_hello, s->t_chan) - t_init;
        if (t_kernel < 0)
                t_kernel = 0;

        json_t *o = json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                              "ok", 1,
                              "accel", smolvm_accel_name(s->accel.accel),
                              "accel_reason", s->accel.reason,
                              "boot_ms", (json_int_t)ms_diff(s->t_hello, s->t_start),
                              "t_prep_ms", (json_int_t)ms_diff(s->t_spawn, s->t_start),
                              "t_vmm_ms", (json_int_t)ms_diff(s->t_chan, s->t_spawn),
                              "t_kernel_ms", (json_int_t)t_kernel,
                              "t_init_ms", (json_int_t)t_init,
                              "t_agent_ms", (json_int_t)0,
                              "vmm_pid", (json_int_t)sup_vmm_pid(s->vmm),
                              "lane", s->lane_device);
        if (o && s->hello_has_times) {
                json_object_set_new(o, "guest_init_start_ms", json_integer(s->guest_init_start_ms));
                json_object_set_new(o, "guest_ready_ms", json_integer(s->guest_ready_ms));
        }
        sup_log("guest agent ready: boot %lld ms (prep %lld, vmm %lld, kernel %lld, init %lld)",
                (long long)ms_diff(s->t_hello, s->t_start), (long long)ms_diff(s->t_spawn, s->t_start),
                (long long)ms_diff(s->t_chan, s->t_spawn), (long long)t_kernel, (long long)t_init);
        ready_write(s, o);
}

/* ---- the channel: QEMU connects to chan.sock ---- */

static void on_hello(void *userdata, const uint8_t *payload, uint32_t len)
{
        sup *s = userdata;

        if (s->hello)
                return; /* the agent restarting in the guest: nothing to report again */
        s->hello = true;
        s->t_hello = now_ms();
        s->hello_version = get_le32(payload);
        if (len >= 16) {
                s->hello_has_times = true;
                s->guest_init_start_ms = get_le32(payload + 8);
                s->guest_ready_ms = get_le32(payload + 12);
        }
        if (len >= 20)
                s->hello_features = get_le32(payload + 16);
}

/* The guest's answer to a restore's IDENTITY (hostile: bounded, sanitised). */
static void on_control(void *userdata, uint16_t op, const uint8_t *payload, uint32_t len)
{
        sup *s = userdata;

        if (op != SMOLVM_CHAN_OP_IDENTITY_ACK || !s->identity_sent || s->identity_acked)
                return;
        s->identity_acked = true;
        if (len < 4 || len > 4 + SMOLVM_CHAN_ACK_MSG_MAX) {
                s->identity_status = EBADMSG;
                snprintf(s->identity_msg, sizeof(s->identity_msg), "malformed answer (%u bytes)", len);
                return;
        }
        s->identity_status = get_le32(payload);
        size_t n = MIN((size_t)(len - 4), sizeof(s->identity_msg) - 1);
        memcpy(s->identity_msg, payload + 4, n);
        s->identity_msg[n] = '\0';
        sanitize_text(s->identity_msg);
}

static void on_broken(void *userdata, int err, const char *why)
{
        sup *s = userdata;

        if (s->mux_broken)
                return;
        if (s->restoring && !s->hello) {
                /* Before the fresh HELLO this is still the old session's channel. */
                s->chan_hello_deadline_ms = 1;
                return;
        }
        s->mux_broken = true;
        s->mux_err = err;
        s->mux_why = why;
        /* EOF is also what a clean guest poweroff looks like until QEMU is reaped:
         * give QEMU a moment to exit. A framing violation is hostile: act now. */
        s->broken_deadline_ms = now_ms() + (err == -EMSGSIZE || err == -EPROTO ? 0 : BROKEN_GRACE_MS);
        sup_log("guest channel broken: %s (%s)", why, strerror(err < 0 ? -err : err));
}

/* Streams the guest opens go to the duty serving that host port (egress.c). */
static int on_guest_stream(void *userdata, uint32_t local_port, uint32_t peer_port)
{
        return sup_duties_accept(userdata, local_port, peer_port);
}

/* The guest asks for the lane (lane_duty.c answers, or not at all). */
static void on_lane_req(void *userdata, uint64_t epoch, uint32_t window)
{
        sup_lane_request(userdata, epoch, window);
}

static const smolvm_mux_ops mux_ops = {
        .accept = on_guest_stream,
        .lane_req = on_lane_req,
        .hello = on_hello,
        .broken = on_broken,
        .control = on_control,
};

/* The guest channel is fd: a mux over it (the HELLO comes through mux_ops). */
static void chan_start(sup *s, int fd)
{
        s->t_chan = now_ms();
        int r = smolvm_mux_new(s->loop, fd, true, &mux_ops, s, NULL, 0, &s->mux);
        if (r < 0) {
                sup_log("creating the channel mux: %s", strerror(-r));
                on_broken(s, r, "cannot create the channel mux");
        }
}

static void chan_accept_cb(void *userdata, int lfd, uint32_t events)
{
        sup *s = userdata;
        struct ucred cred;
        socklen_t cred_len = sizeof(cred);

        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        /* The VM dir is private, but be exact: only our QEMU may be the guest. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || !s->vmm ||
            cred.pid != sup_vmm_pid(s->vmm)) {
                sup_log(VMDIR_CHAN ": connection from pid %d is not our QEMU, closing", (int)cred.pid);
                safe_close(fd);
                return;
        }
        (void)smolvm_evloop_del(s->loop, s->chan_listen_fd);
        s->chan_listen_fd = safe_close(s->chan_listen_fd);
        chan_start(s, fd);
}

/* ---- a restore: QEMU listens on chan.sock, we connect once the guest let go ---- */


static void restore_guest_reset(void *userdata)
{
        sup *s = userdata;
        if (s->restoring && !s->mux && !s->hello) {
                sup_log("restore: the guest reset its channel; connecting");
                s->chan_connect_ms = 1;
        }
}

int sup_boot_restore_begin(sup *s)
{
        s->chan_connect_ms = now_ms() + RESTORE_GUEST_CLOSE_MS;
        sup_console_watch(s->con, SMOLVM_CHAN_REOPEN_MARK, restore_guest_reset, s);
        return 0;
}

static void restore_connect(sup *s)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_CHAN);
        s->chan_connect_ms = 0;
        int fd = sup_vmm_connect(s->vmm, path);
        if (fd == -EPERM || fd == -ENAMETOOLONG) {
                on_broken(s, fd, fd == -EPERM ? "chan.sock is not our QEMU's" : "chan.sock path too long");
                return;
        }
        if (fd < 0) {
                sup_log("restore: connecting %s: %s (again in %u ms)", path, strerror(-fd), RESTORE_GUEST_CLOSE_MS);
                s->chan_connect_ms = now_ms() + RESTORE_GUEST_CLOSE_MS;
                return;
        }
        s->chan_hello_deadline_ms = now_ms() + RESTORE_HELLO_MS;
        chan_start(s, fd);
}

int sup_boot_listen_chan(sup *s)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_CHAN);
        /* QEMU connects once, synchronously, while it starts: backlog 1 suffices. */
        int fd = unix_listen(path, 1, SOCK_NONBLOCK);
        if (fd < 0)
                return fd;
        s->chan_listen_fd = fd;
        return smolvm_evloop_add(s->loop, s->chan_listen_fd, EPOLLIN, chan_accept_cb, s);
}

/* ---- a restore: the new VM's identity, in the channel handshake ---- */

static int identity_send(sup *s, uint64_t now)
{
        uint8_t p[SMOLVM_CHAN_IDENTITY_LEN] = { 0 };
        uint8_t *entropy = p + 12, *mid = entropy + SMOLVM_CHAN_IDENTITY_ENTROPY;
        char *name = (char *)mid + 16;
        int r = 0;

        /* An older VM record has no machine-id: a fresh one (as before). At most
         * 256 bytes from getrandom() never come short once the pool is ready. */
        if (getrandom(entropy, SMOLVM_CHAN_IDENTITY_ENTROPY, 0) != SMOLVM_CHAN_IDENTITY_ENTROPY ||
            (!s->cfg.machine_id && getrandom(mid, 16, 0) != 16))
                r = -EIO;
        for (size_t i = 0; r == 0 && s->cfg.machine_id && i < 16; i++) {
                unsigned v;
                (void)sscanf(s->cfg.machine_id + 2 * i, "%2x", &v); /* validated by config.c */
                mid[i] = (uint8_t)v;
        }
        snprintf(name, SMOLVM_CHAN_IDENTITY_HOSTNAME_MAX, "smolvm-%s", sup_dir_id(s));
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        put_le64(p + 4, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
        if (r == 0)
                r = smolvm_mux_send_control(s->mux, SMOLVM_CHAN_OP_IDENTITY, p, sizeof(p));
        explicit_bzero(p, sizeof(p));
        if (r < 0) {
                sup_fail(s, false, NULL, "restore: sending the guest its identity: %s", strerror(-r));
                return r;
        }
        s->identity_sent = true;
        s->identity_deadline_ms = now + RESTORE_IDENTITY_MS;
        return 0;
}

/* 1 once the restored guest took its identity, 0 while waiting, negative
 * (after sup_fail) when it refused or did not answer. */
static int identity_step(sup *s, uint64_t now)
{
        static const char hint[] = "the VM was stopped: retry, or take the snapshot again with this smolvm";
        if (!s->identity_sent) {
                if (!(s->hello_features & SMOLVM_HELLO_F_IDENTITY)) {
                        sup_fail(s, false, "take the snapshot again with this smolvm (`smolvm image build` first)",
                                 "the restored guest's smolvm-init is older than this smolvm: it cannot take the "
                                 "new VM's identity (RNG seed, clock, hostname, machine-id)");
                        return -EPROTO;
                }
                return identity_send(s, now) < 0 ? -EIO : 0;
        }
        if (s->identity_acked && s->identity_status) {
                sup_fail(s, false, hint, "the restored guest did not take its new identity (RNG seed, clock, hostname, "
                         "machine-id): %s", s->identity_msg[0] ? s->identity_msg
                                                              : strerror((int)MIN(s->identity_status, 4095u)));
                return -EPROTO;
        }
        if (s->identity_acked) {
                s->identity_done = true;
                sup_log("restore: the guest took its identity in %llu ms",
                        (unsigned long long)(now - (s->identity_deadline_ms - RESTORE_IDENTITY_MS)));
                return 1;
        }
        if (now >= s->identity_deadline_ms) {
                sup_fail(s, true, hint, "the restored guest did not answer its new identity within %u s",
                         RESTORE_IDENTITY_MS / 1000);
                return -ETIMEDOUT;
        }
        return 0;
}

static void describe_exit(int wstatus, char *buf, size_t len)
{
        if (WIFSIGNALED(wstatus))
                snprintf(buf, len, "killed by signal %d", WTERMSIG(wstatus));
        else
                snprintf(buf, len, "exit status %d", WEXITSTATUS(wstatus));
}

int sup_boot_step(sup *s)
{
        uint64_t now = now_ms();
        char how[64];
        int wstatus, r;

        r = sup_spare_step(s, now);
        if (r >= 0)
                return r;
        if (s->spare_failed)
                return SUP_EXIT_VM_FAILED;
        if (s->restoring && s->mux && !s->hello && s->chan_hello_deadline_ms && now >= s->chan_hello_deadline_ms) {
                /* No HELLO on that connection (we connected before the guest let
                 * go, on the fallback): drop it; the guest sees the close now. */
                sup_log("restore: no HELLO on the channel within %u ms, dropping it again", RESTORE_HELLO_MS);
                smolvm_mux_free(s->mux);
                s->mux = NULL;
                s->mux_broken = false;
                s->chan_hello_deadline_ms = 0;
                s->chan_connect_ms = now + RESTORE_GUEST_CLOSE_MS;
                sup_console_watch(s->con, SMOLVM_CHAN_REOPEN_MARK, restore_guest_reset, s);
        }
        if (s->restoring && !s->mux && !s->hello && s->chan_connect_ms && now >= s->chan_connect_ms)
                restore_connect(s);
        if (s->hello && !s->running) {
                if (s->hello_version != SMOLVM_CHAN_VERSION) {
                        sup_fail(s, false, "rebuild the image with `smolvm image build` so smolvm-init matches this smolvm",
                                 "guest agent speaks channel version %u, expected %u", s->hello_version,
                                 SMOLVM_CHAN_VERSION);
                        return SUP_EXIT_VM_FAILED;
                }
                /* A spare parks here, restored and its channel up: its identity
                 * is its claimant's (spare.c), which then goes on from here. */
                if (s->spare_tag && !s->spare_parked && sup_spare_park(s, s->spare_tag) < 0)
                        return SUP_EXIT_VM_FAILED;
                /* A restore: the guest first takes its identity, before any stream. */
                if (s->spare_tag)
                        r = 0;
                else
                        r = s->restoring && !s->identity_done ? identity_step(s, now) : 1;
                if (r < 0)
                        return SUP_EXIT_VM_FAILED;
                r = r > 0 ? sup_duties_guest_up(s, now) : 0;
                if (r < 0)
                        return SUP_EXIT_VM_FAILED;
                if (r > 0) {
                        s->running = true;
                        ready_ok(s);
                        sup_hvsock_set_mux(s->hv, s->mux);
                }
        }

        /* Children only after a SIGCHLD (or while one is left waitable), not on
         * every wake-up: a FUSE request wakes the loop several times. Cleared
         * before the waits, so an exit during them brings a new SIGCHLD. */
        bool children = s->child_event;
        s->child_event = false;
        pid_t vmm_pid = s->vmm ? sup_vmm_pid(s->vmm) : 0; /* 0 once reaped */
        r = s->vmm && children ? sup_vmm_poll(s->vmm, &wstatus) : 0;
        if (r > 0) {
                describe_exit(wstatus, how, sizeof(how));
                if (s->running) {
                        /* A guest powering off (or panicking: panic=-1, -no-reboot) makes
                         * QEMU exit 0; anything else nobody asked for is a failure, and
                         * the VM's state must say so ("error"), not "stopped". */
                        if (!s->stop && (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)) {
                                const char *id = sup_dir_id(s);
                                snprintf(s->failed_why, sizeof(s->failed_why),
                                         "QEMU (pid %d) died unexpectedly (%s): the VM stopped; `smolvm start %s` "
                                         "boots it again",
                                         (int)vmm_pid, how, id);
                                sup_log("error: %s", s->failed_why);
                                char line[600];
                                snprintf(line, sizeof(line), "error: %s", s->failed_why);
                                sup_console_note(s->con, line);
                                return SUP_EXIT_VM_FAILED;
                        }
                        sup_log("QEMU exited (%s): the VM stopped", how);
                        return SUP_EXIT_OK;
                }
                /* A guest that panics or powers off makes QEMU exit 0 (panic=-1 and
                 * -no-reboot); a non-zero exit is QEMU itself failing (it creates the
                 * chardevs, so connects to chan.sock, before it checks the devices). */
                char first[256];
                sup_dir_qemu_log_first_line(s, first, sizeof(first));
                if (!s->t_chan || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
                        sup_fail(s, false, "see " VMDIR_QEMU_LOG " in the VM dir", "%s failed to start (%s)%s%s", sup_vmm_binary(),
                                 how, first[0] ? ": " : "", first);
                } else {
                        sup_fail(s, true, "see the guest console below; rebuild the image with `smolvm image build`",
                                 "guest kernel stopped during boot (%s)", how);
                }
                return SUP_EXIT_VM_FAILED;
        }

        /* The duties' children: reaped after QEMU, so that a back-end's own exit
         * when QEMU goes away is not taken for a failure. */
        if (children) {
                sup_duties_reap(s, now);
                s->child_event = sup_vm_reap_strays(s);
        }

        if (s->stop) {
                if (!s->running)
                        sup_fail(s, false, NULL, "stopped by %s during boot", strsignal(s->stop_signal));
                return SUP_EXIT_OK;
        }

        if (s->mux_broken && now >= s->broken_deadline_ms) {
                if (s->running) {
                        snprintf(s->failed_why, sizeof(s->failed_why), "the guest channel broke (%s)", s->mux_why);
                        sup_log("%s: stopping the VM", s->failed_why);
                        /* Also where `smolvm logs` looks: the user's first stop after "error". */
                        char line[600];
                        snprintf(line, sizeof(line), "error: %s: the VM was stopped", s->failed_why);
                        sup_console_note(s->con, line);
                        return SUP_EXIT_VM_FAILED;
                }
                sup_fail(s, true, "see the guest console below", "guest channel broke during boot: %s", s->mux_why);
                return SUP_EXIT_VM_FAILED;
        }

        if (sup_duties_step(s, now) < 0)
                return SUP_EXIT_VM_FAILED;

        /* Once HELLO came the duties bound their own waits (guest_up). */
        if (!s->running && !s->hello && now >= s->deadline_ms) {
                sup_fail(s, true,
                         "the guest agent did not answer in time: see the guest console below; on slow (TCG) "
                         "hosts raise --boot-timeout, else rebuild the image with `smolvm image build`",
                         "agent not reachable within %llu s", (unsigned long long)(s->boot_timeout_ms + 999) / 1000);
                return SUP_EXIT_VM_FAILED;
        }
        return -1;
}

int sup_boot_timeout_ms(const sup *s)
{
        uint64_t now = now_ms(), until;

        until = s->running || s->hello ? UINT64_MAX : s->deadline_ms;
        if (s->mux_broken && s->broken_deadline_ms < until)
                until = s->broken_deadline_ms;
        until = MIN(until, sup_duties_deadline(s));
        until = MIN(until, sup_spare_deadline(s));
        if (s->restoring && s->mux && !s->hello && s->chan_hello_deadline_ms)
                until = MIN(until, s->chan_hello_deadline_ms);
        if (s->restoring && !s->mux && !s->hello && s->chan_connect_ms)
                until = MIN(until, s->chan_connect_ms);
        if (s->restoring && s->identity_sent && !s->identity_acked && !s->running)
                until = MIN(until, s->identity_deadline_ms);
        if (until == UINT64_MAX)
                return -1;
        return until > now ? (int)MIN(until - now, (uint64_t)INT_MAX) : 0;
}

