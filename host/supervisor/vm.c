/* SPDX-License-Identifier: Apache-2.0 */
/* Bringing the VM up and tearing it down (vm.h). */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boot.h"
#include "dir.h"
#include "fileutil.h"
#include "log.h"
#include "spare.h"
#include "sup.h"
#include "util.h"
#include "vmdir.h"

#define CHAN_NAME "org.smolvm.chan0"
#define BOOT_TIMEOUT_TCG_MS 60000u
#define BOOT_TIMEOUT_KVM_MS 10000u

int sup_vm_load_config(sup *s)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_CONFIG);
        char err[512];
        int r;

        r = sup_config_load(path, &s->cfg, err, sizeof(err));
        if (r < 0) {
                sup_fail(s, false, "libsmolvm writes " VMDIR_CONFIG " before it starts the supervisor", "%s", err);
                return r;
        }
        r = smolvm_accel_choose(s->cfg.accel, &s->accel);
        if (r < 0) {
                sup_fail(s, false, s->accel.hint, "%s", s->accel.reason);
                return r;
        }
        s->boot_timeout_ms = s->cfg.boot_timeout_ms ? s->cfg.boot_timeout_ms
                             : s->accel.accel == SMOLVM_ACCEL_KVM ? BOOT_TIMEOUT_KVM_MS
                                                                  : BOOT_TIMEOUT_TCG_MS;
        const char *need[] = { s->cfg.kernel, s->cfg.initrd, s->cfg.rootfs };
        for (size_t i = 0; i < ARRAY_SIZE(need); i++)
                if (access(need[i], R_OK) < 0) {
                        sup_fail(s, false, "build the image with `smolvm image build`", "%s: %m", need[i]);
                        return -ENOENT;
                }
        return 0;
}

/* ---- signals ---- */

static void signal_cb(void *userdata, int fd, uint32_t events)
{
        sup *s = userdata;
        struct signalfd_siginfo si;

        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                        s->child_event = true; /* reaped in the main loop's next step */
                        continue;
                }
                if (!s->stop)
                        sup_log("received %s, stopping the VM", strsignal((int)si.ssi_signo));
                s->stop = true;
                s->stop_signal = (int)si.ssi_signo;
        }
}

/* ---- children ---- */

/* Descendants reparented to us (we are a child subreaper): a back-end's
 * sandboxed server outlives its parent by a moment when that parent dies.
 * Reap them as they come, so no zombie waits for teardown (reap_orphans), but
 * never the children we track, whose owners want their exit status: peek
 * first (WNOWAIT). True while an exited child is left waiting for its owner. */
bool sup_vm_reap_strays(sup *s)
{
        for (;;) {
                siginfo_t si = { 0 };
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
                        return false;
                if (s->vmm && si.si_pid == sup_vmm_pid(s->vmm))
                        return true;
                if (sup_duties_own_pid(s, si.si_pid))
                        return true;
                (void)waitpid(si.si_pid, NULL, WNOHANG);
        }
}

/* We are a child subreaper (see main()): a back-end's sandboxed server runs as
 * PID 1 of its own PID namespace under an outer process, and when the group is
 * killed it can outlive that parent by a moment and be reparented to us. Reap
 * every such descendant, bounded, so that nothing of the VM is left, not even
 * a zombie waiting for the host's init. */
static void reap_orphans(void)
{
        uint64_t deadline = now_ms() + 2000;
        for (;;) {
                pid_t p = waitpid(-1, NULL, WNOHANG);
                if (p > 0 || (p < 0 && errno == EINTR))
                        continue;
                if (p < 0 || now_ms() >= deadline) /* ECHILD: none left */
                        return;
                (void)usleep(10000);
        }
}

void sup_vm_teardown(sup *s, bool failed)
{
        sup_hvsock_free(s->hv);
        s->hv = NULL;
        smolvm_mux_free(s->mux);
        s->mux = NULL;
        /* After the mux: a pending connect calls back into its duty. */
        sup_duties_detach(s);
        sup_vmm_free(s->vmm); /* SIGKILL + reap */
        s->vmm = NULL;
        /* After QEMU: a back-end dying first would look like a failure to it. */
        sup_duties_destroy(s);
        reap_orphans();
        sup_spare_free(s);
        sup_console_free(s->con);
        s->con = NULL;
        if (s->chan_listen_fd >= 0) {
                (void)smolvm_evloop_del(s->loop, s->chan_listen_fd);
                s->chan_listen_fd = safe_close(s->chan_listen_fd);
        }
        if (s->sig_fd >= 0) {
                (void)smolvm_evloop_del(s->loop, s->sig_fd);
                s->sig_fd = safe_close(s->sig_fd);
        }
        smolvm_evloop_free(s->loop);
        s->loop = NULL;
        sup_config_done(&s->cfg);
        sup_dir_release(s, failed);
}

static void extra_done(sup_vm_extra *x)
{
        free(x->cmdline);
}

int sup_vm_start(sup *s)
{
        _cleanup_free_ char *overlay = sup_dir_path(s, VMDIR_OVERLAY), *chan = sup_dir_path(s, VMDIR_CHAN),
                            *vsock = sup_dir_path(s, VMDIR_VSOCK), *console_log = sup_dir_path(s, VMDIR_CONSOLE_LOG),
                            *qemu_log = sup_dir_path(s, VMDIR_QEMU_LOG), *qmp = sup_dir_path(s, VMDIR_QMP),
                            *ram = sup_dir_path(s, VMDIR_RAM), *snap_ram = NULL, *snap_state = NULL;
        _cleanup_close_ int vmm_console_fd = -1, qemu_log_fd = -1, incoming_fd = -1;
        _cleanup_(extra_done) sup_vm_extra extra = {};
        sigset_t mask;
        int r;

        sup_vmm_tsc_begin();
        r = sup_dir_prepare_overlay(s);
        if (r < 0)
                return r;
        /* A killed run's RAM must not show through in this one. */
        (void)unlink(ram);
        if (s->restoring) {
                if (asprintf(&snap_ram, "%s/" SNAPDIR_RAM, s->cfg.snapshot_dir) < 0 ||
                    asprintf(&snap_state, "%s/" SNAPDIR_STATE, s->cfg.snapshot_dir) < 0) {
                        sup_fail(s, false, NULL, "out of memory");
                        return -ENOMEM;
                }
                incoming_fd = open(snap_state, O_RDONLY | O_CLOEXEC);
                if (incoming_fd < 0 || access(snap_ram, R_OK) < 0) {
                        r = negative_errno();
                        sup_fail(s, false, "the snapshot is damaged: remove it with `smolvm snapshot rm`",
                                 "%s: %s", incoming_fd < 0 ? snap_state : snap_ram, strerror(-r));
                        return r;
                }
                sup_log("restoring the snapshot in %s", s->cfg.snapshot_dir);
                if (s->cfg.ram_copy) {
                        /* The VM's own RAM file, shared as a cold boot's. */
                        _cleanup_close_ int in = open(snap_ram, O_RDONLY | O_CLOEXEC);
                        _cleanup_close_ int out = open(ram, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                        r = in < 0 || out < 0 ? negative_errno() : copy_file_sparse(in, out, NULL);
                        if (r < 0) {
                                (void)unlink(ram);
                                sup_fail(s, false, r == -ENOSPC ? "free some space in $SMOLVM_HOME" : NULL,
                                         "copying %s to %s: %s", snap_ram, ram, strerror(-r));
                                return r;
                        }
                }
        }

        r = smolvm_evloop_new(&s->loop);
        if (r < 0)
                goto fail_errno;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->sig_fd < 0) {
                r = negative_errno();
                goto fail_errno;
        }
        if ((r = smolvm_evloop_add(s->loop, s->sig_fd, EPOLLIN, signal_cb, s)) < 0)
                goto fail_errno;
        s->child_event = true; /* a child that exited before the signalfd */

        r = sup_hvsock_new(s->loop, vsock, &s->hv);
        if (r < 0) {
                sup_fail(s, false, NULL, "listening on %s: %s", vsock, strerror(-r));
                return r;
        }
        /* A restore connects to QEMU's chan.sock instead (boot.c). */
        r = s->restoring ? 0 : sup_boot_listen_chan(s);
        if (r < 0) {
                sup_fail(s, false, NULL, "listening on %s: %s", chan, strerror(-r));
                return r;
        }
        r = sup_console_new(s->loop, console_log, &s->con, &vmm_console_fd);
        if (r < 0) {
                sup_fail(s, false, NULL, "console capture (%s): %s", console_log, strerror(-r));
                return r;
        }
        qemu_log_fd = open(qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0600);
        if (qemu_log_fd < 0) {
                r = negative_errno();
                sup_fail(s, false, NULL, "%s: %s", qemu_log, strerror(-r));
                return r;
        }

        /* The duties' kernel arguments come first, then the configured ones. */
        r = sup_duties_prepare(s, &extra);
        if (r < 0)
                return r;
        /* Every VM is smolvm-<id> with the machine-id the host keeps for it: a
         * boot learns them here, a restore in the channel handshake (its kernel
         * booted long ago, as another VM: boot.c). */
        const char *id = strrchr(s->vm_dir, '/');
        if (!s->restoring && (sup_vm_extra_arg(&extra, "smolvm.hostname=smolvm-%s", id ? id + 1 : s->vm_dir) < 0 ||
                              (s->cfg.machine_id && sup_vm_extra_arg(&extra, "smolvm.machine_id=%s", s->cfg.machine_id) < 0))) {
                sup_fail(s, false, NULL, "out of memory");
                return -ENOMEM;
        }
        if (s->cfg.cmdline_extra && *s->cfg.cmdline_extra &&
            sup_vm_extra_arg(&extra, "%s", s->cfg.cmdline_extra) < 0) {
                sup_fail(s, false, NULL, "out of memory");
                return -ENOMEM;
        }

        sup_vm_spec spec = {
                .kernel = s->cfg.kernel,
                .initrd = s->cfg.initrd,
                .disk = overlay,
                .disk_cache_unsafe = s->ephemeral,
                .cmdline_extra = extra.cmdline,
                .mem_mib = s->cfg.mem_mib,
                .cpus = s->cfg.cpus,
                .accel = s->accel.accel,
                .chan_path = chan,
                .qmp_path = qmp,
                .chan_name = CHAN_NAME,
                .console_fd = vmm_console_fd,
                .log_fd = qemu_log_fd,
                .fs = extra.fs,
                .n_fs = extra.n_fs,
                .ram_path = s->restoring && !s->cfg.ram_copy ? snap_ram : ram,
                .ram_private = s->restoring && !s->cfg.ram_copy,
                .incoming_fd = incoming_fd,
                .lane_path = extra.lane_path,
        };
        if (s->spare_tag && !s->restoring) {
                sup_fail(s, false, NULL, "a spare restores a boot template: %s has no snapshot_dir", VMDIR_CONFIG);
                return -EINVAL;
        }
        s->lane_device = extra.lane_path != NULL;
        s->t_spawn = now_ms();
        r = sup_vmm_start(&spec, &s->vmm);
        if (r == -ENOENT) {
                sup_fail(s, false, "install it: apt-get install qemu-system-x86", "%s not found", sup_vmm_binary());
                return r;
        }
        if (r < 0) {
                sup_fail(s, false, NULL, "starting %s: %s", sup_vmm_binary(), strerror(-r));
                return r;
        }
        s->deadline_ms = s->t_start + s->boot_timeout_ms;
        if (s->restoring)
                (void)sup_boot_restore_begin(s);
        return 0;

fail_errno:
        sup_fail(s, false, NULL, "supervisor setup: %s", strerror(-r));
        return r;
}

