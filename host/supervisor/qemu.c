/* SPDX-License-Identifier: Apache-2.0 */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "lane.h" /* common/ */
#include "log.h"
#include "qemu_img.h" /* common/ */
#include "spawner.h" /* common/ */
#include "util.h"

#define QEMU_BINARY "qemu-system-x86_64"
/* In the VMM, the console socket is always this fd (named in -chardev fd=); a
 * restore's device state file is fd 4 and its QMP monitor (ours) fd 5. */
#define VMM_CONSOLE_FD 3
#define VMM_INCOMING_FD 4
#define VMM_RESTORE_QMP_FD 5
#define RESTORE_QMP_TIMEOUT_MS 30000u

struct sup_vmm {
        pid_t pid; /* 0 once reaped */
        int wstatus;
        int lane_fd; /* a restore's connection to the lane's socket, until taken */
};

/* SMOLVM_QEMU overrides the binary (a QEMU build of one's own; the tests use it to
 * check the "QEMU missing" path). */
const char *sup_vmm_binary(void)
{
        const char *e = getenv("SMOLVM_QEMU");
        return e && *e ? e : QEMU_BINARY;
}

/* Start argv (PATH lookup) with the given stdio (or /dev/null) and, if
 * keep_fd >= 0, keep_fd as fd 3 (and keep_fd2 as fd 4, keep_fd3 as fd 5, when
 * >= 0): in its own
 * process group (we kill whole groups), dying with the supervisor
 * (PR_SET_PDEATHSIG SIGKILL). */
static int spawn(char *const argv[], int out_fd, int err_fd, int keep_fd, int keep_fd2, int keep_fd3,
                 pid_t *ret_pid)
{
        _cleanup_close_ int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                return negative_errno();
        int fds[6] = { null_fd, out_fd >= 0 ? out_fd : null_fd, err_fd >= 0 ? err_fd : null_fd, keep_fd, keep_fd2,
                       keep_fd3 };
        smolvm_spawn_opts o = {
                .argv = argv,
                .search_path = true,
                .fds = fds,
                .n_fds = keep_fd3 >= 0 ? 6 : keep_fd2 >= 0 ? 5 : keep_fd >= 0 ? 4 : 3,
                .new_pgroup = true,
                .pdeathsig = SIGKILL,
        };
        return smolvm_spawn(&o, ret_pid);
}


static int wait_child(pid_t pid, int *ret_wstatus)
{
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        *ret_wstatus = st;
        return 0;
}


#if defined(__x86_64__)
/* One (tsc, ns) sample, taken where rdtsc brackets clock_gettime most tightly,
 * so a preemption between the two reads does not skew it. */
static void tsc_sample(uint64_t *ret_tsc, uint64_t *ret_ns)
{
        uint64_t best_width = UINT64_MAX;

        for (int i = 0; i < 5; i++) {
                struct timespec ts;
                uint64_t a = __rdtsc();
                clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
                uint64_t b = __rdtsc();
                if (b - a < best_width) {
                        best_width = b - a;
                        *ret_tsc = a + (b - a) / 2;
                        *ret_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
                }
        }
}

#define TSC_SPAN_NS (10u * 1000 * 1000)
static uint64_t tsc_start, tsc_start_ns;

void sup_vmm_tsc_begin(void)
{
        tsc_sample(&tsc_start, &tsc_start_ns);
}

/* The host TSC rate in kHz, measured over at least 10 ms since
 * sup_vmm_tsc_begin() (the preparation of the VM usually covers them: no sleep
 * then); 0 if implausible. Under TCG the guest's rdtsc returns the host's, so
 * this is the guest TSC rate too. */
static uint32_t host_tsc_khz(void)
{
        uint64_t tsc0 = tsc_start, ns0 = tsc_start_ns, tsc1, ns1;

        if (!ns0)
                tsc_sample(&tsc0, &ns0);
        for (;;) {
                tsc_sample(&tsc1, &ns1);
                if (ns1 < ns0 || ns1 - ns0 >= TSC_SPAN_NS)
                        break;
                struct timespec pause = { .tv_nsec = (long)(TSC_SPAN_NS - (ns1 - ns0)) };
                (void)nanosleep(&pause, NULL); /* EINTR: sampled again above */
        }
        if (ns1 <= ns0 || tsc1 <= tsc0)
                return 0;
        uint64_t khz = (tsc1 - tsc0) * 1000000u / (ns1 - ns0);
        return khz >= 100000 && khz <= 10000000 ? (uint32_t)khz : 0; /* 0.1 .. 10 GHz */
}
#else
void sup_vmm_tsc_begin(void)
{
}

static uint32_t host_tsc_khz(void)
{
        return 0;
}
#endif

/* The next answer on a blocking monitor socket, after writing send (if not
 * NULL): the greeting when what is NULL, else command what's: 0 on "return",
 * -EPROTO on "error" (logged), -ETIMEDOUT, -ECONNRESET. Events are skipped. */
static int restore_qmp(int fd, const char *send, const char *what, char *buf, size_t size, size_t *len,
                       uint64_t deadline)
{
        if (send && write_all(fd, send, strlen(send)) < 0)
                return negative_errno();
        for (;;) {
                char *nl = memchr(buf, '\n', *len);
                if (nl) {
                        size_t line = (size_t)(nl - buf) + 1;
                        json_t *o = json_loadb(buf, line - 1, 0, NULL);
                        memmove(buf, buf + line, *len - line);
                        *len -= line;
                        bool ret = o && json_object_get(o, "return"), greet = o && json_object_get(o, "QMP");
                        json_t *err = o ? json_object_get(o, "error") : NULL;
                        if (err) {
                                json_t *d = json_object_get(err, "desc");
                                sup_log("restore: QMP %s: %s", what ? what : "greeting",
                                        json_is_string(d) ? json_string_value(d) : "error");
                        }
                        json_decref(o);
                        if (err)
                                return -EPROTO;
                        if (ret || (greet && !what))
                                return 0;
                        continue;
                }
                if (*len == size)
                        return -EMSGSIZE;
                int r = fd_wait(fd, POLLIN, deadline, -1);
                if (r < 0)
                        return r;
                ssize_t n = read(fd, buf + *len, size - *len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? negative_errno() : -ECONNRESET;
                *len += (size_t)n;
        }
}

int sup_vmm_connect(const sup_vmm *vmm, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        /* The VM dir is private, but be exact: only our QEMU may listen there. */
        struct ucred cred = { 0 };
        socklen_t cred_len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || !vmm || cred.pid != vmm->pid) {
                sup_log("%s: listened on by pid %d, not our QEMU", path, (int)cred.pid);
                return -EPERM;
        }
        return TAKE_FD(fd);
}

int sup_vmm_take_lane_fd(sup_vmm *vmm)
{
        int fd = vmm ? vmm->lane_fd : -1;
        if (vmm)
                vmm->lane_fd = -1;
        return fd;
}

/* Connect to QEMU's socket at path (sup_vmm_connect), which QEMU creates in a
 * thread of its own (-netdev stream's listener), so it may not be there yet:
 * an inotify watch on its directory wakes us when it appears, until deadline.
 * Between QEMU's bind and its listen (microseconds) the connect is refused:
 * then again a millisecond later. */
static int connect_when_there(const sup_vmm *vmm, const char *path, uint64_t deadline)
{
        _cleanup_free_ char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (!slash)
                return dir ? -EINVAL : -ENOMEM;
        *slash = '\0';
        _cleanup_close_ int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (in < 0 || inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO) < 0)
                return negative_errno();
        for (;;) {
                /* After the watch is set: a socket made in between is seen here. */
                int r = sup_vmm_connect(vmm, path);
                if (r != -ENOENT && r != -ECONNREFUSED)
                        return r;
                uint64_t until = r == -ECONNREFUSED ? MIN(now_ms() + 1, deadline) : deadline;
                int k = fd_wait(in, POLLIN, until, -1);
                if (k == -ETIMEDOUT && now_ms() < deadline)
                        continue;
                if (k < 0)
                        return k;
                char ev[4096];
                while (read(in, ev, sizeof(ev)) > 0)
                        ;
        }
}

/* -incoming defer: x-ignore-shared (the RAM is the snapshot's file, mapped),
 * then the state from fd 4; QEMU starts the guest once it is loaded (the
 * snapshot carries no runstate: store-global-state=off). The settings go in
 * one write, before QEMU even greets (it answers them in order once its main
 * loop runs); migrate-incoming only after their answers. */
static int restore_incoming(sup_vmm *vmm, int fd, const char *lane_path)
{
        _cleanup_free_ char *buf = malloc(64 * 1024);
        size_t len = 0;
        uint64_t deadline = now_ms() + RESTORE_QMP_TIMEOUT_MS;
        static const char settings[] =
                "{\"execute\":\"qmp_capabilities\"}\n"
                "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
                "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}\n"
                /* No self-announce (a RARP per NIC once the state is loaded):
                 * nobody on the lane learns MACs, and it is sent while the VM
                 * is not running yet, so QEMU queues it and flushes it at
                 * vm_start to a stream that may have no client yet: QEMU 7.2
                 * crashes there (SIGSEGV in qio_channel_writev; seen in about
                 * 1 restore of 10 before this). */
                "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"announce-rounds\":0}}\n";
        char incoming[128];
        snprintf(incoming, sizeof(incoming),
                 "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:%d\"}}\n", VMM_INCOMING_FD);
        if (!buf)
                return -ENOMEM;
        if (write_all(fd, settings, sizeof(settings) - 1) < 0)
                return negative_errno();
        /* Before the state loads, so that the lane's device has its peer when
         * the guest resumes and sends what was in its ring at the snapshot
         * (QEMU 7.2 crashes delivering a packet to a stream nobody
         * connected). Best effort: without it, the lane duty connects on
         * LANE_REQ. */
        if (lane_path) {
                int r = connect_when_there(vmm, lane_path, deadline);
                if (r < 0)
                        sup_log("restore: connecting to the lane's socket before the state loads: %s", strerror(-r));
                vmm->lane_fd = r < 0 ? -1 : r;
        }
        /* The greeting, the settings' answers, then the state. */
        const struct {
                const char *send, *what;
        } steps[] = {
                { NULL, NULL },
                { NULL, "qmp_capabilities" },
                { NULL, "migrate-set-capabilities" },
                { NULL, "migrate-set-parameters" },
                { incoming, "migrate-incoming" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
                int r = restore_qmp(fd, steps[i].send, steps[i].what, buf, 64 * 1024, &len, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

int sup_vmm_start(const sup_vm_spec *spec, sup_vmm **ret)
{
        _cleanup_free_ sup_vmm *vmm = calloc(1, sizeof(*vmm));
        _cleanup_free_ char *disk = NULL, *chan = NULL, *append = NULL, *drive = NULL, *chardev_chan = NULL,
                            *port = NULL;
        _cleanup_free_ char *qmp = NULL;
        char mem[32], smp[32], chardev_console[64];
        int r;

        if (!vmm)
                return -ENOMEM;
        vmm->lane_fd = -1;
        disk = qemu_opt_escape(spec->disk);
        chan = qemu_opt_escape(spec->chan_path);
        if (!disk || !chan)
                return -ENOMEM;
        /* Under TCG, microvm gives the guest no HPET and no ACPI PM timer, so the
         * kernel can only calibrate the TSC against the PIT, which fails whenever
         * the host is busy ("tsc: Unable to calibrate against PIT"); the boot then
         * hangs before any console output (measured: most boots at load 5 on 2
         * cores). Tell it the rate instead; the guest TSC is the host's, so it is
         * also reliable as a clocksource (no watchdog flapping to jiffies). */
        char tsc_args[64] = "";
        /* Not for a restore: its kernel calibrated long ago (the command
         * line reaches only fw_cfg), and measuring takes up to 10 ms. */
        if (spec->accel == SMOLVM_ACCEL_TCG && spec->incoming_fd < 0) {
                uint32_t khz = host_tsc_khz();
                if (khz)
                        snprintf(tsc_args, sizeof(tsc_args), " tsc_early_khz=%u tsc=reliable", khz);
                else
                        sup_log("could not measure the host TSC rate; the guest may hang calibrating it");
        }
        if (asprintf(&append, "console=ttyS0 panic=-1 quiet smolvm.chan=%s%s%s%s", spec->chan_name, tsc_args,
                     spec->cmdline_extra && *spec->cmdline_extra ? " " : "",
                     spec->cmdline_extra ? spec->cmdline_extra : "") < 0)
                return -ENOMEM;
        /* cache=unsafe drops guest flushes: right for a disk that dies with the VM
         * (nothing survives a host crash anyway), wrong for a persistent VM, whose
         * qcow2 metadata must survive one: writeback honours flushes. */
        if (asprintf(&drive, "id=root,file=%s,format=qcow2,if=none,cache=%s,discard=unmap", disk,
                     spec->disk_cache_unsafe ? "unsafe" : "writeback") < 0)
                return -ENOMEM;
        if (asprintf(&chardev_chan, "socket,id=chan,path=%s", chan) < 0)
                return -ENOMEM;
        if (asprintf(&port, "virtserialport,chardev=chan,name=%s", spec->chan_name) < 0)
                return -ENOMEM;
        /* A path too long for sun_path would make QEMU fail: then no pause/resume. */
        if (spec->qmp_path && strlen(spec->qmp_path) < 108) {
                _cleanup_free_ char *q = qemu_opt_escape(spec->qmp_path);
                if (!q || asprintf(&qmp, "unix:%s,server=on,wait=off", q) < 0)
                        return -ENOMEM;
        }
        snprintf(mem, sizeof(mem), "%u", spec->mem_mib);
        snprintf(smp, sizeof(smp), "%u", spec->cpus);
        snprintf(chardev_console, sizeof(chardev_console), "socket,id=console,fd=%d", VMM_CONSOLE_FD);

        /* Guest RAM is a file in the VM dir, always: a snapshot freezes it by
         * copying the file while the VM is paused, and migrates only the device
         * state (x-ignore-shared skips shared RAM); vhost-user back-ends map it
         * too. A restored VM maps the snapshot's frozen copy privately. */
        _cleanup_free_ char *ram = qemu_opt_escape(spec->ram_path ? spec->ram_path : "");
        _cleanup_free_ char *memobj = NULL;
        char machine[128];
        if (!ram || asprintf(&memobj, "memory-backend-file,id=mem,size=%uM,mem-path=%s,share=%s", spec->mem_mib, ram,
                             spec->ram_private ? "off" : "on") < 0)
                return -ENOMEM;
        snprintf(machine, sizeof(machine), "microvm,x-option-roms=off,rtc=on,memory-backend=mem");
        char restore_mon[64];
        snprintf(restore_mon, sizeof(restore_mon), "socket,id=restore,fd=%d", VMM_RESTORE_QMP_FD);
        _cleanup_close_ int qmp_ours = -1, qmp_theirs = -1;
        if (spec->incoming_fd >= 0) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                        return negative_errno();
                qmp_ours = sv[0];
                qmp_theirs = sv[1];
        }
        /* A restored guest must learn that its host side is new. QEMU listens
         * on chan.sock: at the load nobody is connected, so virtio-serial tells
         * the guest its host side closed (the migrated state said connected);
         * the guest drops every stream, says so on the console, and reopens its
         * port; the supervisor connects on that line (boot.c), so the close
         * and the reopen never merge. */
        if (spec->incoming_fd >= 0) {
                free(chardev_chan);
                if (asprintf(&chardev_chan, "socket,id=chan,path=%s,server=on,wait=off", chan) < 0) {
                        chardev_chan = NULL;
                        return -ENOMEM;
                }
        }

        bool kvm = spec->accel == SMOLVM_ACCEL_KVM;
        char *base_argv[] = {
                (char *)sup_vmm_binary(),
                /* microvm: no PCI, no firmware option ROMs. ACPI stays on: the Debian
                 * kernel finds virtio-mmio devices only through ACPI (it lacks
                 * VIRTIO_MMIO_CMDLINE_DEVICES). PIT and PIC stay: without them the
                 * kernel hangs calibrating timers under TCG (measured). */
                (char *)"-M", machine,
                (char *)"-accel", kvm ? (char *)"kvm" : (char *)"tcg",
                /* erms=off under TCG: with ERMS the guest kernel copies with
                 * `rep movsb` (copy_to/from_user, memcpy, clear_page), which
                 * QEMU 7.2's TCG runs one byte per iteration; without it the
                 * kernel picks `rep movsq`, 8 bytes per iteration. Every byte
                 * the channel moves is copied 2-3 times in the guest: this
                 * tripled exec's stdin rate (docs/benchmarks.md, issue 11). */
                (char *)"-cpu", kvm ? (char *)"host" : (char *)"max,erms=off",
                (char *)"-m", mem,
                (char *)"-smp", smp,
                (char *)"-nodefaults", (char *)"-no-user-config", (char *)"-nographic", (char *)"-no-reboot",
                /* modern virtio-mmio: required by vhost-user devices (virtio-fs later). */
                (char *)"-global", (char *)"virtio-mmio.force-legacy=false",
                (char *)"-kernel", (char *)spec->kernel,
                (char *)"-initrd", (char *)spec->initrd,
                (char *)"-append", append,
                (char *)"-drive", drive,
                (char *)"-device", (char *)"virtio-blk-device,drive=root",
                /* Port 0 is reserved for a virtconsole; ours is port 1. Fewer ports =
                 * fewer virtqueues for the guest driver to set up. */
                (char *)"-device", (char *)"virtio-serial-device,max_ports=2",
                (char *)"-chardev", chardev_chan,
                (char *)"-device", port,
                (char *)"-chardev", chardev_console,
                (char *)"-serial", (char *)"chardev:console",
                qmp ? (char *)"-qmp" : NULL, qmp,
                NULL,
        };
        /* base_argv plus, per virtio-fs device, -chardev and -device (4), plus the
         * memory backend (2), the restore arguments (6) and the lane (4). */
        enum { MAX_FS = 16 };
        if (spec->n_fs > MAX_FS)
                return -E2BIG;
        char *argv[ARRAY_SIZE(base_argv) + 12 + 4 * MAX_FS];
        char *fs_args[2 * MAX_FS] = { 0 };
        size_t argc = 0;
        for (char **a = base_argv; *a; a++)
                argv[argc++] = *a;
        argv[argc++] = (char *)"-object";
        argv[argc++] = memobj;
        /* Without the runstate in the stream, a restore starts running as soon
         * as the state is loaded (a snapshot is taken with the VM paused, which
         * the destination would otherwise keep). Harmless for a plain boot. */
        argv[argc++] = (char *)"-global";
        argv[argc++] = (char *)"migration.store-global-state=off";
        if (qmp_theirs >= 0) {
                /* x-ignore-shared is no -global property in QEMU 7.2: it is set over
                 * a monitor of our own before the incoming migration starts. */
                argv[argc++] = (char *)"-chardev";
                argv[argc++] = restore_mon;
                argv[argc++] = (char *)"-mon";
                argv[argc++] = (char *)"chardev=restore,mode=control";
                argv[argc++] = (char *)"-incoming";
                argv[argc++] = (char *)"defer";
        }
        r = 0;
        for (size_t i = 0; i < spec->n_fs && r == 0; i++) {
                _cleanup_free_ char *sock = qemu_opt_escape(spec->fs[i].socket_path);
                if (!sock || asprintf(&fs_args[2 * i], "socket,id=fs%zu,path=%s", i, sock) < 0 ||
                    asprintf(&fs_args[2 * i + 1], "vhost-user-fs-device,chardev=fs%zu,tag=%s", i, spec->fs[i].tag) < 0)
                        r = -ENOMEM;
                argv[argc++] = (char *)"-chardev";
                argv[argc++] = fs_args[2 * i];
                argv[argc++] = (char *)"-device";
                argv[argc++] = fs_args[2 * i + 1];
        }
        /* The lane (common/lane.h): its own NIC with no IP, carrying only our
         * frames; QEMU listens and the supervisor connects (lane.c). A large
         * MTU so one frame carries ~64 KiB, a deep receive queue so a window
         * of them fits. Last, after every other device: the others keep the
         * virtio-mmio slots a snapshot without the lane recorded. */
        _cleanup_free_ char *lane_netdev = NULL;
        char lane_dev[160];
        if (r == 0 && spec->lane_path) {
                _cleanup_free_ char *lp = qemu_opt_escape(spec->lane_path);
                if (!lp || asprintf(&lane_netdev, "stream,id=lane,server=on,addr.type=unix,addr.path=%s", lp) < 0) {
                        lane_netdev = NULL;
                        r = -ENOMEM;
                } else {
                        snprintf(lane_dev, sizeof(lane_dev),
                                 "virtio-net-device,netdev=lane,mac=%s,host_mtu=%u,rx_queue_size=1024",
                                 SMOLVM_LANE_GUEST_MAC_STR, SMOLVM_LANE_MTU);
                        argv[argc++] = (char *)"-netdev";
                        argv[argc++] = lane_netdev;
                        argv[argc++] = (char *)"-device";
                        argv[argc++] = lane_dev;
                }
        }
        argv[argc] = NULL;
        if (r < 0) {
                for (size_t i = 0; i < ARRAY_SIZE(fs_args); i++)
                        free(fs_args[i]);
                return r;
        }

        {
                /* The exact command line, for whoever debugs a boot. */
                char cmd[4096];
                size_t off = 0;
                for (char **a = argv; *a && off < sizeof(cmd) - 1; a++) {
                        int n = snprintf(cmd + off, sizeof(cmd) - off, "%s%s", a == argv ? "" : " ", *a);
                        if (n < 0)
                                break;
                        off += (size_t)n;
                }
                sup_log("exec: %s", cmd);
        }
        r = spawn(argv, spec->log_fd, spec->log_fd, spec->console_fd, spec->incoming_fd, qmp_theirs, &vmm->pid);
        for (size_t i = 0; i < ARRAY_SIZE(fs_args); i++)
                free(fs_args[i]);
        if (r < 0)
                return r;
        sup_log("started %s pid %d (accel %s, %u MiB, %u cpus)", sup_vmm_binary(), (int)vmm->pid,
                smolvm_accel_name(spec->accel), spec->mem_mib, spec->cpus);
        if (qmp_ours >= 0) {
                qmp_theirs = safe_close(qmp_theirs);
                r = restore_incoming(vmm, qmp_ours, spec->lane_path);
                if (r < 0) {
                        sup_log("restore: QEMU refused the incoming state (see qemu.log): %s", strerror(-r));
                        (void)sup_vmm_stop(vmm); /* kill and reap */
                        return r;
                }
        }
        *ret = TAKE_PTR(vmm);
        return 0;
}

pid_t sup_vmm_pid(const sup_vmm *vmm)
{
        return vmm->pid;
}

int sup_vmm_poll(sup_vmm *vmm, int *ret_wstatus)
{
        int st;
        pid_t p;

        if (vmm->pid == 0) {
                *ret_wstatus = vmm->wstatus;
                return 1;
        }
        do
                p = waitpid(vmm->pid, &st, WNOHANG);
        while (p < 0 && errno == EINTR);
        if (p < 0)
                return negative_errno();
        if (p == 0)
                return 0;
        vmm->pid = 0;
        vmm->wstatus = st;
        *ret_wstatus = st;
        return 1;
}

int sup_vmm_stop(sup_vmm *vmm)
{
        int st;

        if (vmm->pid == 0)
                return -1;
        /* The whole group: QEMU may have helper processes. SIGKILL is fine while the
         * disk dies with the VM; a graceful poweroff via the agent comes with
         * persistence. */
        if (kill(-vmm->pid, SIGKILL) < 0)
                (void)kill(vmm->pid, SIGKILL);
        if (wait_child(vmm->pid, &st) < 0)
                st = 0;
        vmm->pid = 0;
        vmm->wstatus = st;
        return st;
}

void sup_vmm_free(sup_vmm *vmm)
{
        if (!vmm)
                return;
        (void)sup_vmm_stop(vmm);
        safe_close(vmm->lane_fd);
        free(vmm);
}
