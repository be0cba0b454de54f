/* SPDX-License-Identifier: Apache-2.0 */
/* The VM directory the supervisor owns (dir.h). */
#include "dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "qemu_img.h"
#include "sup.h"
#include "util.h"
#include "vmdir.h"

/* The files we may create in the VM dir; with --ephemeral, also what we delete
 * (only these: never a recursive delete of a directory someone configured).
 * A duty removes its own (duty.h, destroy). */
static const char *const vm_dir_files[] = {
        VMDIR_VSOCK, VMDIR_CHAN, VMDIR_CONSOLE_LOG, VMDIR_QEMU_LOG, VMDIR_OVERLAY, VMDIR_RAM,
        VMDIR_CONFIG, VMDIR_PID, VMDIR_SUPERVISOR_LOG, VMDIR_SPARE, VMDIR_SPARE_TMP, VMDIR_SPARE_PENDING,
        VMDIR_CLAIM,
        /* libsmolvm's: the record, its lock, run state (lifecycle.c) */
        VMDIR_QMP, VMDIR_RECORD, VMDIR_LOCK, VMDIR_BOOT, VMDIR_PAUSED, VMDIR_FAILED, VMDIR_ENV_APPLIED,
        /* ... its port forwards (port.c) and egress policy and log (net.c, egress.c) */
        VMDIR_PORTS, VMDIR_PORTS_LOCK, VMDIR_NET_POLICY, VMDIR_NET_LOG, VMDIR_NET_LOG_OLD,
};

/* What a persistent VM's supervisor removes at exit: nothing may connect any
 * more, and the VM no longer runs (or is paused). */
static const char *const run_files[] = {
        VMDIR_VSOCK, VMDIR_CHAN, VMDIR_QMP, VMDIR_PAUSED, VMDIR_PID, VMDIR_RAM,
};

static _Noreturn void out_of_memory(void)
{
        fprintf(stderr, "smolvm-supervisor: out of memory\n");
        exit(SUP_EXIT_VM_FAILED);
}

char *sup_dir_path(const sup *s, const char *name)
{
        char *p;
        if (asprintf(&p, "%s/%s", s->vm_dir, name) < 0)
                out_of_memory();
        return p;
}

char *sup_dir_pathf(const sup *s, const char *fmt, ...)
{
        _cleanup_free_ char *name = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&name, fmt, ap);
        va_end(ap);
        if (n < 0)
                out_of_memory();
        return sup_dir_path(s, name);
}

const char *sup_dir_id(const sup *s)
{
        const char *slash = strrchr(s->vm_dir, '/');
        return slash ? slash + 1 : s->vm_dir;
}

/* Another live supervisor on this VM dir? (Its sockets would be stolen by ours.)
 * Returns its pid, or 0. */
static pid_t running_supervisor(const sup *s)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_PID);
        char buf[32], comm_path[64], comm[32];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        long pid;

        if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
                return 0;
        buf[n] = '\0';
        pid = strtol(buf, NULL, 10);
        if (pid <= 0 || pid > INT_MAX || pid == getpid() || kill((pid_t)pid, 0) < 0)
                return 0;
        /* A stale file whose pid was reused by something else is not a conflict. */
        snprintf(comm_path, sizeof(comm_path), "/proc/%ld/comm", pid);
        safe_close(fd);
        fd = open(comm_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (n = read(fd, comm, sizeof(comm) - 1)) <= 0)
                return 0;
        comm[n] = '\0';
        return strncmp(comm, "smolvm-supervis", 15) == 0 ? (pid_t)pid : 0;
}

int sup_dir_claim(sup *s)
{
        struct stat st = {};

        if (stat(s->vm_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                sup_fail(s, false, "libsmolvm creates the VM dir and its " VMDIR_CONFIG " first", "VM dir %s: %s",
                         s->vm_dir,
                         S_ISDIR(st.st_mode) || access(s->vm_dir, F_OK) < 0 ? strerror(errno) : "not a directory");
                return -1;
        }
        pid_t other = running_supervisor(s);
        if (other > 0) {
                sup_fail(s, false, "stop it first, or use another VM dir", "VM %s is already running (supervisor pid %d)",
                         s->vm_dir, (int)other);
                return -1;
        }
        return 0;
}

int sup_dir_write_pid(sup *s)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_PID), *tmp = sup_dir_path(s, VMDIR_PID_TMP);
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0 || write_all(fd, buf, (size_t)n) < 0 || rename(tmp, path) < 0) {
                int r = negative_errno();
                (void)unlink(tmp);
                return r;
        }
        return 0;
}

int sup_dir_prepare_overlay(sup *s)
{
        _cleanup_free_ char *overlay = sup_dir_path(s, VMDIR_OVERLAY);
        const char *base = s->cfg.rootfs, *format = "raw";
        uint64_t size_bytes = 0;
        struct stat st;
        char err[512];
        int r;

        if (access(overlay, F_OK) == 0)
                return 0; /* a persistent VM restarting keeps its disk */
        if (s->cfg.snapshot_dir) {
                /* A VM made from a snapshot starts on its own overlay over its
                 * hard link of the snapshot's disk layer (relative: the VM's
                 * layers live beside it); the first start is the restore. */
                base = s->cfg.disk_layer;
                format = "qcow2";
                s->restoring = true;
        } else if (s->cfg.disk_mib && stat(s->cfg.rootfs, &st) == 0 &&
                   s->cfg.disk_mib * 1024 * 1024 > (uint64_t)st.st_size) {
                size_bytes = s->cfg.disk_mib * 1024 * 1024;
        }
        r = qcow2_create_overlay(base, format, overlay, size_bytes, err, sizeof(err));
        if (r == -ENOSPC)
                sup_fail(s, false, "free some space there, or point SMOLVM_HOME at a bigger filesystem",
                         "disk full: no space left in %s to create " VMDIR_OVERLAY, s->vm_dir);
        else if (r < 0)
                sup_fail(s, false, NULL, "creating %s: %s", overlay, err[0] ? err : strerror(-r));
        else
                s->created_overlay = true;
        return r;
}

/* (The file may be gone with --ephemeral by the time anyone looks.) */
void sup_dir_qemu_log_first_line(const sup *s, char *buf, size_t len)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_QEMU_LOG);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        buf[0] = '\0';
        if (fd < 0 || (n = read(fd, buf, len - 1)) <= 0)
                return;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
}

static void unlink_in_dir(const sup *s, const char *name)
{
        _cleanup_free_ char *p = sup_dir_path(s, name);
        (void)unlink(p);
}

/* The disk layers a VM made from a snapshot links into its dir
 * (layer-<id>.qcow2, host/lib/snapshot.c): only names of exactly that form. */
static void unlink_layers(const sup *s)
{
        DIR *d = opendir(s->vm_dir);
        if (!d)
                return;
        size_t prefix = strlen(VMDIR_LAYER_PREFIX), suffix = strlen(VMDIR_LAYER_SUFFIX);
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n == prefix + VMDIR_LAYER_ID_LEN + suffix && !strncmp(de->d_name, VMDIR_LAYER_PREFIX, prefix) &&
                    !strcmp(de->d_name + n - suffix, VMDIR_LAYER_SUFFIX))
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

void sup_dir_release(sup *s, bool failed)
{
        if (s->ephemeral) {
                sup_log_close();
                for (size_t i = 0; i < ARRAY_SIZE(vm_dir_files); i++)
                        unlink_in_dir(s, vm_dir_files[i]);
                unlink_layers(s);
                if (rmdir(s->vm_dir) < 0)
                        fprintf(stderr, "smolvm-supervisor: rmdir %s: %m\n", s->vm_dir);
                return;
        }
        if (failed) {
                _cleanup_free_ char *p = sup_dir_path(s, VMDIR_FAILED);
                _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0 && s->failed_why[0])
                        (void)write_all(fd, s->failed_why, strlen(s->failed_why));
        }
        for (size_t i = 0; i < ARRAY_SIZE(run_files); i++)
                unlink_in_dir(s, run_files[i]);
        /* Only a boot that never ran: a VM that ran keeps its disk whatever killed it. */
        if (failed && s->created_overlay && !s->running)
                unlink_in_dir(s, VMDIR_OVERLAY);
        sup_log("stopped");
        sup_log_close();
}
