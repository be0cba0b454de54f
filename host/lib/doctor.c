/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm_doctor(): can VMs run on this host, and how fast? Each check says what
 * it found and how to fix it. The accelerator verdict comes from the
 * supervisor's own smolvm_accel_choose() (common/accel.c, linked into both), so
 * doctor and the supervisor can never disagree. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "accel.h"
#include "smolvm_i.h"
#include "spawner.h"
#include "unpriv.h"
#include "util.h"

#define DOCTOR_CMD_TIMEOUT_MS 10000u
#define DOCTOR_MAX_CHECKS 16u

SMOLVM_EXPORT const char *smolvm_check_status_name(smolvm_check_status s)
{
        switch (s) {
        case SMOLVM_CHECK_PASS:
                return "pass";
        case SMOLVM_CHECK_WARN:
                return "warn";
        case SMOLVM_CHECK_FAIL:
                return "fail";
        default:
                return "unknown";
        }
}

static int add_check(smolvm_doctor_report *rep, const char *name, smolvm_check_status st, const char *fix,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int add_check(smolvm_doctor_report *rep, const char *name, smolvm_check_status st, const char *fix,
                     const char *fmt, ...)
{
        if (rep->n_checks >= DOCTOR_MAX_CHECKS)
                return -ENOBUFS; /* programmer error: raise DOCTOR_MAX_CHECKS */
        smolvm_doctor_check *c = &rep->checks[rep->n_checks];
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&c->message, fmt, ap);
        va_end(ap);
        if (n < 0) {
                c->message = NULL;
                return -ENOMEM;
        }
        c->fix = strdup(fix ? fix : "");
        if (!c->fix) {
                free(c->message);
                c->message = NULL;
                return -ENOMEM;
        }
        c->name = name;
        c->status = st;
        rep->n_checks++;
        if (st == SMOLVM_CHECK_WARN)
                rep->n_warn++;
        else if (st == SMOLVM_CHECK_FAIL)
                rep->n_fail++;
        return 0;
}

/* Run argv (searched in PATH) with stdout and stderr captured into out (NUL-
 * terminated, truncated to out_len - 1; the rest is drained). Returns the exit
 * status (0..255), -ENOENT when the program does not exist, -ETIMEDOUT, or a
 * negative errno. */
static int run_capture(const char *const argv[], char *out, size_t out_len)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0) {
                int r = negative_errno();
                safe_close(p[0]);
                safe_close(p[1]);
                return r;
        }
        int fds[3] = { null_fd, p[1], p[1] };
        smolvm_spawn_opts o = { .argv = (char *const *)argv, .search_path = true, .fds = fds, .n_fds = 3 };
        pid_t pid;
        int r = smolvm_spawn(&o, &pid);
        safe_close(null_fd);
        safe_close(p[1]);
        if (r < 0) {
                safe_close(p[0]);
                return r;
        }
        size_t got = 0;
        uint64_t deadline = now_ms() + DOCTOR_CMD_TIMEOUT_MS;
        bool timed_out = false;
        for (;;) {
                uint64_t now = now_ms();
                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                struct pollfd pf = { .fd = p[0], .events = POLLIN };
                int k = poll(&pf, 1, (int)(deadline - now));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        continue;
                char buf[4096];
                ssize_t n = read(p[0], buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                size_t take = MIN((size_t)n, out_len - 1 - got);
                memcpy(out + got, buf, take);
                got += take;
        }
        out[got] = '\0';
        safe_close(p[0]);
        if (timed_out)
                kill(pid, SIGKILL);
        int ws;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
                ;
        if (timed_out)
                return -ETIMEDOUT;
        if (WIFEXITED(ws))
                return WEXITSTATUS(ws);
        return -ECHILD;
}

/* This user's login name, for the commands doctor suggests. */
static const char *user_name(void)
{
        struct passwd *pw = getpwuid(getuid());
        const char *env = getenv("USER");
        return pw ? pw->pw_name : env && *env ? env : "$USER";
}

static int check_kvm(smolvm_doctor_report *rep)
{
        smolvm_accel_choice forced, autoc;
        int rk = smolvm_accel_choose("kvm", &forced);
        (void)smolvm_accel_choose("auto", &autoc);
        snprintf(rep->accel, sizeof(rep->accel), "%s", smolvm_accel_name(autoc.accel));
        rep->accel_reason = strdup(autoc.reason);
        if (!rep->accel_reason)
                return -ENOMEM;
        rep->kvm_usable = rk == 0;
        rep->nested_pvm = rk == -EOPNOTSUPP;
        if (rk == 0)
                return add_check(rep, "kvm", SMOLVM_CHECK_PASS, NULL, "KVM is usable: VMs run with hardware acceleration");
        if (rep->nested_pvm)
                return add_check(rep, "kvm", SMOLVM_CHECK_WARN,
                                 "nothing to do for correctness; for fast boots run on a host with plain KVM "
                                 "(bare metal, or nested VMX/SVM)",
                                 "nested PVM host (kvm_pvm loaded): KVM is not usable for stock kernels, "
                                 "VMs run under TCG (software emulation, ~10x slower boots)");
        char fix[256];
        if (rk == -EACCES || rk == -EPERM) {
                /* The group that may open it (Debian's udev rule: root:kvm 0660). */
                struct stat st;
                struct group *gr = stat("/dev/kvm", &st) == 0 && st.st_gid != 0 ? getgrgid(st.st_gid) : NULL;
                const char *g = gr ? gr->gr_name : "kvm";
                snprintf(fix, sizeof(fix), "sudo usermod -aG %s %s, then log in again (or run `newgrp %s`)", g,
                         user_name(), g);
        }
        else if (rk == -ENOENT || rk == -ENXIO || rk == -ENODEV)
                snprintf(fix, sizeof(fix), "sudo modprobe kvm_intel (or kvm_amd); in a cloud VM, enable nested "
                         "virtualization");
        else
                snprintf(fix, sizeof(fix), "%s", forced.hint ? forced.hint : "check /dev/kvm");
        return add_check(rep, "kvm", SMOLVM_CHECK_WARN, fix,
                         "%s; VMs run under TCG (software emulation, ~10x slower boots)", forced.reason);
}

static int check_qemu(smolvm_doctor_report *rep)
{
        const char *env = getenv("SMOLVM_QEMU");
        const char *bin = env && *env ? env : "qemu-system-x86_64";
        char out[8192];
        const char *vargv[] = { bin, "--version", NULL };
        int r = run_capture(vargv, out, sizeof(out));
        if (r == -ENOENT) {
                int a = add_check(rep, "qemu", SMOLVM_CHECK_FAIL, "apt-get install qemu-system-x86", "%s not found",
                                  bin);
                return a < 0 ? a
                             : add_check(rep, "qemu-microvm", SMOLVM_CHECK_FAIL, "apt-get install qemu-system-x86",
                                         "cannot check: %s not found", bin);
        }
        if (r != 0) {
                int a = add_check(rep, "qemu", SMOLVM_CHECK_FAIL, "reinstall QEMU: apt-get install qemu-system-x86",
                                  "%s --version failed (%s)", bin, r < 0 ? strerror(-r) : "non-zero exit");
                return a < 0 ? a
                             : add_check(rep, "qemu-microvm", SMOLVM_CHECK_FAIL, "reinstall QEMU",
                                         "cannot check: %s does not run", bin);
        }
        /* "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)" */
        char ver[64] = "";
        const char *v = strstr(out, "version ");
        if (v)
                sscanf(v + 8, "%63[0-9.]", ver);
        rep->qemu_version = strdup(ver);
        if (!rep->qemu_version)
                return -ENOMEM;
        r = add_check(rep, "qemu", SMOLVM_CHECK_PASS, NULL, "%s version %s", bin, ver[0] ? ver : "(unknown)");
        if (r < 0)
                return r;

        const char *margv[] = { bin, "-M", "help", NULL };
        r = run_capture(margv, out, sizeof(out));
        bool microvm = false;
        for (char *line = out; r == 0 && line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (!strncmp(line, "microvm ", 8) || !strncmp(line, "microvm\n", 8))
                        microvm = true;
        if (microvm)
                return add_check(rep, "qemu-microvm", SMOLVM_CHECK_PASS, NULL, "machine type microvm is available");
        return add_check(rep, "qemu-microvm", SMOLVM_CHECK_FAIL,
                         "install a QEMU built with microvm (Debian/Ubuntu qemu-system-x86 >= 4.2)",
                         "%s -M help does not list microvm", bin);
}

static int check_program(smolvm_doctor_report *rep, const char *name, const char *check, smolvm_check_status missing,
                         const char *fix, const char *why)
{
        _cleanup_free_ char *p = smolvm_find_program(name);
        if (p)
                return add_check(rep, check, SMOLVM_CHECK_PASS, NULL, "%s found (%s)", name, p);
        return add_check(rep, check, missing, fix, "%s not found: %s", name, why);
}

static int check_supervisor(smolvm_doctor_report *rep)
{
        const char *dir = smolvm_libexec_dir();
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/smolvm-supervisor", dir);
        if (access(p, X_OK) == 0)
                return add_check(rep, "supervisor", SMOLVM_CHECK_PASS, NULL, "%s found", p);
        return add_check(rep, "supervisor", SMOLVM_CHECK_FAIL,
                         "install smolvm (meson install), or point SMOLVM_LIBEXECDIR at the build's host/supervisor",
                         "%s: %s", p, strerror(errno));
}

/* Disk use of the regular files directly in dir (the image's vmlinux, initramfs,
 * rootfs). */
static uint64_t dir_usage(const char *dir)
{
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        uint64_t total = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                        total += (uint64_t)st.st_blocks * 512u;
        }
        closedir(d);
        return total;
}

static int check_image(smolvm_doctor_report *rep)
{
        _cleanup_free_ char *dir = NULL;
        image_store store = IMAGE_STORE_USER;
        int r = resolve_image(rep->home, "default", &dir, &store);
        if (r < 0) {
                const smolvm_error *e = smolvm_last_error();
                char fix[512];
                if (r == -EACCES || r == -EPERM)
                        snprintf(fix, sizeof(fix), "as root: chmod -R a+rX %s (the system store is for every user)",
                                 rep->system_store);
                else
                        snprintf(fix, sizeof(fix), "as root, `scripts/setup.sh` or `smolvm image build --system` "
                                 "builds it for every user; or build your own: `smolvm image build`");
                return add_check(rep, "image", SMOLVM_CHECK_FAIL, fix, "%s",
                                 e->message[0] ? e->message : "default image not built");
        }
        rep->image_bytes = dir_usage(dir);
        rep->image_shared = store == IMAGE_STORE_SYSTEM;
        const char *key = strrchr(dir, '/');
        return add_check(rep, "image", SMOLVM_CHECK_PASS, NULL, "default image %.12s (%.1f MiB) in %s: %s",
                         key ? key + 1 : dir, (double)rep->image_bytes / (1024.0 * 1024.0),
                         store == IMAGE_STORE_SYSTEM ? "the system store" : "your store", dir);
}

/* Cuts the path p back to its nearest existing ancestor, *st its stat:
 * $SMOLVM_HOME may not exist yet, and that is where it will be made. Returns
 * 0, or the negative errno of a failure other than a missing component. */
static int nearest_existing(char *p, struct stat *st)
{
        while (stat(p, st) < 0) {
                int r = negative_errno();
                char *slash = strrchr(p, '/');
                if (r != -ENOENT || !slash || (slash == p && !p[1]))
                        return r;
                slash[slash == p] = '\0'; /* "/x" -> "/" */
        }
        return 0;
}

/* $SMOLVM_HOME holds this user's VMs: it must be theirs to write, and vms/
 * closed to others (their sockets take commands as root in the guest). */
static int check_home(smolvm_doctor_report *rep)
{
        _cleanup_free_ char *p = strdup(rep->home);
        if (!p)
                return -ENOMEM;
        struct stat st;
        int r = nearest_existing(p, &st);
        if (r < 0)
                return add_check(rep, "home", SMOLVM_CHECK_FAIL, "point SMOLVM_HOME at a directory of yours", "%s: %s",
                                 p, strerror(-r));
        char fix[512];
        if (!S_ISDIR(st.st_mode) || access(p, W_OK | X_OK) < 0) {
                snprintf(fix, sizeof(fix), "sudo chown -R %s %s, or point SMOLVM_HOME at a directory of yours",
                         user_name(), p);
                return add_check(rep, "home", SMOLVM_CHECK_FAIL, fix,
                                 "%s (for your VMs: $SMOLVM_HOME) is not a directory you can write%s%s", rep->home,
                                 strcmp(p, rep->home) ? ": " : "", strcmp(p, rep->home) ? p : "");
        }
        _cleanup_free_ char *vms = NULL;
        if (asprintf(&vms, "%s/vms", rep->home) < 0)
                return -ENOMEM;
        if (stat(vms, &st) == 0 && (st.st_mode & 077)) {
                snprintf(fix, sizeof(fix), "chmod 700 %s", vms);
                return add_check(rep, "home", SMOLVM_CHECK_WARN, fix,
                                 "%s is open to other users (mode %03o): they could reach your VMs' sockets", vms,
                                 (unsigned)(st.st_mode & 0777));
        }
        return add_check(rep, "home", SMOLVM_CHECK_PASS, NULL, "%s is yours: your VMs%s", rep->home,
                         strcmp(p, rep->home) ? " (created on first use)" : "");
}

/* What `smolvm image build` needs here: debootstrap as root; without root
 * fakeroot (--from-rootfs) and mmdebstrap's unshare mode (common/unpriv.c,
 * the builder's own preflight). Only a warning: VMs run from a built image. */
static int check_image_build(smolvm_doctor_report *rep)
{
        if (geteuid() == 0)
                return check_program(rep, "debootstrap", "image-build", SMOLVM_CHECK_WARN,
                                     "apt-get install debootstrap", "needed only to build images");
        unpriv_lacks l;
        unpriv_build_check(user_name(), true, &l);
        if (l.n) {
                char fix[640];
                snprintf(fix, sizeof(fix), "as root: %s", l.fix);
                return add_check(rep, "image-build", SMOLVM_CHECK_WARN, fix,
                                 "`smolvm image build` without root lacks %s (not needed to run VMs from a built "
                                 "image)", l.missing);
        }
        return add_check(rep, "image-build", SMOLVM_CHECK_PASS, NULL,
                         "`smolvm image build` works without root: --from-rootfs through fakeroot, a fresh Debian "
                         "rootfs through mmdebstrap --mode=unshare");
}

static int check_disk(smolvm_doctor_report *rep)
{
        /* $SMOLVM_HOME may not exist yet: measure its nearest existing ancestor. */
        _cleanup_free_ char *p = strdup(rep->home);
        if (!p)
                return -ENOMEM;
        struct stat st;
        struct statvfs sv;
        int r = nearest_existing(p, &st);
        if (r == 0 && statvfs(p, &sv) < 0)
                r = negative_errno();
        if (r < 0)
                return add_check(rep, "disk", SMOLVM_CHECK_WARN, "check that $SMOLVM_HOME is accessible",
                                 "statvfs %s: %s", rep->home, strerror(-r));
        rep->free_disk_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        double mib = (double)rep->free_disk_bytes / (1024.0 * 1024.0);
        if (rep->free_disk_bytes < SMOLVM_DOCTOR_DISK_FAIL_BYTES)
                return add_check(rep, "disk", SMOLVM_CHECK_FAIL,
                                 "free some space, or point SMOLVM_HOME at a bigger file system",
                                 "%.0f MiB free in %s: VM disks cannot grow (need at least 512 MiB)", mib, rep->home);
        if (rep->free_disk_bytes < SMOLVM_DOCTOR_DISK_WARN_BYTES)
                return add_check(rep, "disk", SMOLVM_CHECK_WARN,
                                 "free some space, or point SMOLVM_HOME at a bigger file system",
                                 "only %.0f MiB free in %s (2 GiB recommended)", mib, rep->home);
        return add_check(rep, "disk", SMOLVM_CHECK_PASS, NULL, "%.1f GiB free in %s", mib / 1024.0, rep->home);
}

SMOLVM_EXPORT void smolvm_doctor_report_free(smolvm_doctor_report *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_checks; i++) {
                free(r->checks[i].message);
                free(r->checks[i].fix);
        }
        free(r->checks);
        free(r->accel_reason);
        free(r->qemu_version);
        free(r->home);
        free(r->system_store);
        free(r);
}

SMOLVM_EXPORT int smolvm_doctor(smolvm_doctor_report **ret)
{
        smolvm_doctor_report *rep = calloc(1, sizeof(*rep));
        if (!rep)
                return vm_error(-ENOMEM, NULL, "out of memory");
        rep->checks = calloc(DOCTOR_MAX_CHECKS, sizeof(*rep->checks));
        int r = rep->checks ? 0 : -ENOMEM;
        if (r == 0)
                r = smolvm_home_dir(&rep->home);
        if (r == 0)
                r = check_kvm(rep);
        if (r == 0)
                r = check_qemu(rep);
        if (r == 0)
                r = check_program(rep, "qemu-img", "qemu-img", SMOLVM_CHECK_FAIL, "apt-get install qemu-utils",
                                  "needed to create each VM's disk overlay");
        if (r == 0)
                r = check_supervisor(rep);
        if (r == 0 && !(rep->system_store = strdup(smolvm_system_store())))
                r = -ENOMEM;
        if (r == 0)
                r = check_image(rep);
        if (r == 0)
                r = check_home(rep);
        if (r == 0)
                r = check_disk(rep);
        if (r == 0)
                r = check_image_build(rep);
        if (r == 0 && !rep->qemu_version)
                rep->qemu_version = strdup("");
        if (r == 0 && !rep->qemu_version)
                r = -ENOMEM;
        if (r < 0) {
                smolvm_doctor_report_free(rep);
                return r == -ENOMEM ? vm_error(r, NULL, "out of memory") : r;
        }
        *ret = rep;
        return 0;
}
