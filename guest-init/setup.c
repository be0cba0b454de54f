/* SPDX-License-Identifier: Apache-2.0 */
/* Boot-time setup of the guest, everything before "the line": any failure here
 * that leaves the VM useless prints to the console and powers off (the host
 * sees QEMU exit and reports the console tail), since an init that exits
 * panics the kernel with a less useful message. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"
#include "init.h"
#include "util.h"

#define MODULES_DIR "/lib/smolvm/modules"
#define ROOT_DEV "/dev/vda"
#define NEWROOT "/newroot"
/* Probing is synchronous in finit_module, but the disk node appears from a
 * worker: wait for it, bounded (TCG boots are slow). */
#define ROOT_WAIT_MS 10000
#define HOSTNAME "smolvm"

static int do_mount(const char *src, const char *target, const char *type, unsigned long flags,
                    const char *data)
{
        (void)mkdir_p(target, 0755);
        if (mount(src, target, type, flags, data) < 0) {
                int r = negative_errno();
                init_log("mount %s on %s (%s): %s", src, target, type ? type : "-", strerror(-r));
                return r;
        }
        return 0;
}

/* The kernel opens /dev/console for init only if the initramfs has the node. */
static void ensure_console(void)
{
        if (fcntl(STDERR_FILENO, F_GETFD) >= 0 && fcntl(STDOUT_FILENO, F_GETFD) >= 0 &&
            fcntl(STDIN_FILENO, F_GETFD) >= 0)
                return;
        int fd = open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd < 0)
                return;
        for (int i = 0; i < 3; i++)
                if (fd != i)
                        (void)dup2(fd, i);
        if (fd > 2)
                safe_close(fd);
}

static void wait_for_root(void)
{
        uint64_t deadline = now_ms() + ROOT_WAIT_MS;
        struct stat st;
        while (stat(ROOT_DEV, &st) < 0) {
                if (now_ms() >= deadline)
                        fatal("root disk %s did not appear within %d ms (is a virtio-blk device attached, "
                              "and are virtio_mmio/virtio_blk loaded?)",
                              ROOT_DEV, ROOT_WAIT_MS);
                struct timespec ts = { 0, 2 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* Free the initramfs (it lives in RAM) before leaving it: remove everything on
 * the root filesystem, staying on that filesystem (busybox switch_root does the
 * same). Best effort. */
static void delete_contents(int dfd, dev_t rootdev)
{
        DIR *d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != rootdev)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                delete_contents(sub, rootdev);
                        (void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
                } else {
                        (void)unlinkat(dirfd(d), de->d_name, 0);
                }
        }
        closedir(d);
}

static void switch_root(void)
{
        static const char *const moves[] = { "/dev", "/proc", "/sys" };
        for (size_t i = 0; i < ARRAY_SIZE(moves); i++) {
                char target[64];
                snprintf(target, sizeof(target), NEWROOT "%s", moves[i]);
                (void)mkdir_p(target, 0755);
                if (mount(moves[i], target, NULL, MS_MOVE, NULL) < 0)
                        fatal("move %s to %s: %m", moves[i], target);
        }
        if (chdir(NEWROOT) < 0)
                fatal("chdir " NEWROOT ": %m");

        struct stat st;
        if (stat("/", &st) == 0) {
                int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd >= 0)
                        delete_contents(fd, st.st_dev);
        }

        /* The initramfs (rootfs) cannot be unmounted or pivoted away from: move
         * the new root over it and chroot into it. */
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
                fatal("move " NEWROOT " to /: %m");
        if (chroot(".") < 0)
                fatal("chroot: %m");
        if (chdir("/") < 0)
                fatal("chdir /: %m");
}

static void link_if_missing(const char *target, const char *path)
{
        struct stat st;
        if (lstat(path, &st) == 0)
                return;
        if (symlink(target, path) < 0)
                init_log("symlink %s -> %s: %m", path, target);
}

static void setup_new_root(void)
{
        /* devpts with its own ptmx (mode 0666) so unprivileged users get ptys;
         * /dev/ptmx must point into it. gid 5 is "tty" in Debian. */
        if (do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620,gid=5") == 0) {
                (void)unlink("/dev/ptmx");
                if (symlink("pts/ptmx", "/dev/ptmx") < 0)
                        init_log("symlink /dev/ptmx: %m");
        }
        (void)do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        (void)do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
        (void)do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        /* devtmpfs lacks these; shells' process substitution needs /dev/fd. */
        link_if_missing("/proc/self/fd", "/dev/fd");
        link_if_missing("/proc/self/fd/0", "/dev/stdin");
        link_if_missing("/proc/self/fd/1", "/dev/stdout");
        link_if_missing("/proc/self/fd/2", "/dev/stderr");
        (void)mkdir_p("/root", 0700);
        /* The default directory of `smolvm workspace persist/hydrate` (the Agents
         * SDK's workspace): on the root disk, so it lasts as the VM does; a share
         * mounted there later covers it. */
        (void)mkdir_p("/workspace", 0755);

        _cleanup_free_ char *name = cmdline_get("smolvm.hostname");
        if (name && !agent_hostname_valid(name)) {
                init_log("smolvm.hostname=%s: not 1..%u of [a-z0-9-]; using %s", name, AGENT_HOSTNAME_MAX, HOSTNAME);
                free(name);
                name = NULL;
        }
        int k = agent_set_hostname(name ? name : HOSTNAME);
        if (k < 0)
                init_log("hostname %s: %s", name ? name : HOSTNAME, strerror(-k));
        /* The host owns the machine-id (kept with the VM, given on every boot
         * and restore), so the guest's copy need not be durable. */
        _cleanup_free_ char *mid = cmdline_get("smolvm.machine_id");
        if (mid && (k = agent_set_machine_id(mid)) < 0)
                init_log("smolvm.machine_id=%s: %s", mid, strerror(-k));
        setenv("PATH", AGENT_DEFAULT_PATH, 1);
        setenv("HOME", "/root", 1);
        (void)umask(022);
}

/* Bring lo up so localhost works; the kernel assigns 127.0.0.1/8 and ::1 itself. */
static void loopback_up(void)
{
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                init_log("socket(AF_INET): %m");
                return;
        }
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
                init_log("SIOCGIFFLAGS lo: %m");
        } else {
                ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                        init_log("SIOCSIFFLAGS lo: %m");
        }
        safe_close(fd);
}

void setup_system(void)
{
        /* The initramfs is writable (rootfs), so mount points can be created. */
        if (do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                fatal("cannot mount /proc");
        if (do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                fatal("cannot mount /sys");
        if (do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0)
                fatal("cannot mount /dev");
        ensure_console();

        /* Boot-time phases, logged in one line (a console write costs under TCG). */
        uint64_t t[6];
        t[0] = boottime_ms();
        module_stash stash;
        modules_load_boot(MODULES_DIR, &stash);
        t[1] = boottime_ms();
        wait_for_root();
        t[2] = boottime_ms();
        (void)mkdir_p(NEWROOT, 0755);
        if (mount(ROOT_DEV, NEWROOT, "ext4", 0, NULL) < 0)
                fatal("mount " ROOT_DEV " (ext4) on " NEWROOT ": %m");
        t[3] = boottime_ms();
        switch_root();
        setup_new_root();
        modules_keep(&stash);
        t[4] = boottime_ms();
        /* After switch_root: resize2fs lives in the rootfs. */
        grow_root_fs(ROOT_DEV);
        loopback_up();
        /* After switch_root and the tmpfs mounts: a share may live under /tmp. */
        setup_mounts();
        t[5] = boottime_ms();
        init_log("boot phases (ms): modules %llu, root disk %llu, mount %llu, switch_root %llu, grow+lo+shares %llu",
                 (unsigned long long)(t[1] - t[0]), (unsigned long long)(t[2] - t[1]),
                 (unsigned long long)(t[3] - t[2]), (unsigned long long)(t[4] - t[3]),
                 (unsigned long long)(t[5] - t[4]));
}
