/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel modules: which to load at boot, and the ones kept for later.
 *
 * The initramfs's order file (docs/internals.md, "Initramfs layout") lists the
 * modules, dependencies first, each with the conditions under which it is
 * needed. Loading a module costs tens of ms under TCG (the kernel copies,
 * checks and relocates it), so at boot we load only what this VM's devices
 * need, and keep "demand" modules (fuse: only fuse_mount needs it, and any
 * virtio-fs mount loads it at boot) in a tmpfs for the agent to load on first
 * use: the initramfs is deleted by switch_root. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

const char *agent_modules_dir = "/run/smolvm/modules";

/* Modules the order file lists that were not loaded at boot (PID 1 only). */
static char skipped[16][64];
static size_t n_skipped;

bool module_skipped_at_boot(const char *name)
{
        for (size_t i = 0; i < n_skipped; i++)
                if (strcmp(skipped[i], name) == 0)
                        return true;
        return false;
}

int module_line_parse(char *line, module_line *ret)
{
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL;
        char *name = strtok_r(line, " \t", &save);
        if (!name || name[0] == '#')
                return 0;
        /* A plain file name in the modules directory, nothing else. */
        if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strlen(name) > 200)
                return -EINVAL;
        module_line m = { .name = name, .always = true };
        for (char *w = strtok_r(NULL, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                m.always = false;
                if (strcmp(w, "demand") == 0) {
                        m.demand = true;
                } else if (strncmp(w, "virtio:", 7) == 0) {
                        char *end = NULL;
                        errno = 0;
                        unsigned long id = strtoul(w + 7, &end, 10);
                        if (errno || end == w + 7 || *end || id >= 64)
                                return -EINVAL;
                        m.virtio_mask |= 1ull << id;
                } else {
                        return -EINVAL;
                }
        }
        *ret = m;
        return 1;
}

bool module_wanted_at_boot(const module_line *m, uint64_t virtio_present)
{
        return m->always || (m->virtio_mask & virtio_present) != 0;
}

uint64_t virtio_devices_present(const char *sys_dir)
{
        uint64_t mask = 0;
        DIR *d = opendir(sys_dir);
        if (!d)
                return 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[512], buf[32];
                snprintf(p, sizeof(p), "%s/%s/device", sys_dir, de->d_name);
                if (read_line_file(p, buf, sizeof(buf)) < 0)
                        continue;
                char *end = NULL;
                unsigned long id = strtoul(buf, &end, 16); /* "0x0013\n" */
                if (end != buf && id < 64)
                        mask |= 1ull << id;
        }
        closedir(d);
        return mask;
}

/* "fuse.ko" -> /sys/module/fuse exists (module names use '_' for '-'). */
static bool module_loaded(const char *file)
{
        char name[256];
        snprintf(name, sizeof(name), "%s", file);
        char *dot = strstr(name, ".ko");
        if (dot)
                *dot = '\0';
        for (char *p = name; *p; p++)
                if (*p == '-')
                        *p = '_';
        char p[300];
        snprintf(p, sizeof(p), "/sys/module/%s", name);
        return access(p, F_OK) == 0;
}

/* finit_module of dir/name; already loaded is success. Returns 0 or negative errno. */
static int load_one(int dir_fd, const char *name)
{
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

static bool module_is_essential(const char *name)
{
        return strcmp(name, "virtio_blk.ko") == 0 || strcmp(name, "ext4.ko") == 0;
}

void modules_load_boot(const char *dir, module_stash *ret_stash)
{
        *ret_stash = (module_stash){ 0 };
        uint64_t t0 = boottime_ms();
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char path[300];
        snprintf(path, sizeof(path), "%s/order", dir);
        FILE *f = dfd >= 0 ? fopen(path, "re") : NULL;
        if (!f) {
                /* A kernel with the drivers built in needs no modules. */
                init_log("no %s (%m): loading no modules", path);
                return;
        }
        module_line lines[64];
        char text[64][256];
        size_t n = 0;
        while (n < ARRAY_SIZE(lines) && fgets(text[n], sizeof(text[n]), f)) {
                int r = module_line_parse(text[n], &lines[n]);
                if (r < 0)
                        init_log("module order: ignoring malformed line '%s'", text[n]);
                else if (r > 0)
                        n++;
        }
        fclose(f);

        /* Unconditional modules first (virtio_mmio among them: only then do the
         * virtio devices show in sysfs). None of them needs a conditional one:
         * the image builder marks every dependency of an unconditional module
         * unconditional, so the order stays valid across the two passes. */
        uint64_t present = 0;
        unsigned loaded = 0;
        /* smolvm.trace=1 (SMOLVM_KERNEL_APPEND on the host): time each module. */
        _cleanup_free_ char *trace = cmdline_get("smolvm.trace");
        bool tracing = trace && strcmp(trace, "1") == 0;
        for (int pass = 0; pass < 2; pass++) {
                if (pass == 1)
                        present = virtio_devices_present("/sys/bus/virtio/devices");
                for (size_t i = 0; i < n; i++) {
                        const module_line *m = &lines[i];
                        if (pass == 0 ? !m->always : m->always || !module_wanted_at_boot(m, present))
                                continue;
                        uint64_t t1 = tracing ? boottime_ms() : 0;
                        int r = load_one(dfd, m->name);
                        if (tracing)
                                init_log("trace: module %s: %llu ms (%s)", m->name,
                                         (unsigned long long)(boottime_ms() - t1), r < 0 ? strerror(-r) : "ok");
                        if (r < 0) {
                                if (module_is_essential(m->name))
                                        fatal("load module %s/%s: %s", dir, m->name, strerror(-r));
                                init_log("load module %s/%s: %s (continuing)", dir, m->name, strerror(-r));
                        } else {
                                loaded++;
                        }
                }
        }
        for (size_t i = 0; i < n && n_skipped < ARRAY_SIZE(skipped); i++)
                if (!module_wanted_at_boot(&lines[i], present))
                        snprintf(skipped[n_skipped++], sizeof(skipped[0]), "%s", lines[i].name);
        /* Keep the demand modules not loaded now open: the files go with the initramfs. */
        for (size_t i = 0; i < n && ret_stash->n < ARRAY_SIZE(ret_stash->fds); i++) {
                const module_line *m = &lines[i];
                if (!m->demand || module_wanted_at_boot(m, present))
                        continue;
                int fd = openat(dfd, m->name, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        init_log("keep module %s/%s: %m", dir, m->name);
                        continue;
                }
                snprintf(ret_stash->names[ret_stash->n], sizeof(ret_stash->names[0]), "%s", m->name);
                ret_stash->fds[ret_stash->n++] = fd;
        }
        init_log("modules: %u of %zu loaded in %llu ms (virtio devices 0x%llx), %zu kept for later", loaded, n,
                 (unsigned long long)(boottime_ms() - t0), (unsigned long long)present, ret_stash->n);
}

static int copy_fd_to(int in, int dir_fd, const char *name)
{
        _cleanup_close_ int out = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
        if (out < 0)
                return negative_errno();
        char buf[65536];
        off_t off = 0;
        for (;;) {
                ssize_t n = pread(in, buf, sizeof(buf), off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return 0;
                if (write_all(out, buf, (size_t)n) < 0)
                        return negative_errno();
                off += n;
        }
}

void modules_keep(module_stash *stash)
{
        if (stash->n == 0)
                return;
        /* /run is a fresh tmpfs: create the directory chain. */
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "%s", agent_modules_dir);
        for (char *p = tmp + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        (void)mkdir(tmp, 0755);
                        *p = '/';
                }
        (void)mkdir(tmp, 0700);
        _cleanup_close_ int dfd = open(agent_modules_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_free_ char *order = NULL;
        size_t order_len = 0;
        FILE *of = open_memstream(&order, &order_len);
        for (size_t i = 0; i < stash->n; i++) {
                int r = dfd < 0 ? -ENOENT : copy_fd_to(stash->fds[i], dfd, stash->names[i]);
                if (r < 0)
                        init_log("keep module %s in %s: %s", stash->names[i], agent_modules_dir, strerror(-r));
                else if (of)
                        fprintf(of, "%s\n", stash->names[i]);
                stash->fds[i] = safe_close(stash->fds[i]);
        }
        stash->n = 0;
        if (!of || fclose(of) != 0 || dfd < 0)
                return;
        _cleanup_close_ int fd = openat(dfd, "order", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
        if (fd < 0 || write_all(fd, order, order_len) < 0)
                init_log("write %s/order: %m", agent_modules_dir);
}

int modules_load_demand(void)
{
        _cleanup_close_ int dfd = open(agent_modules_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : negative_errno(); /* nothing was kept */
        _cleanup_close_ int ofd = openat(dfd, "order", O_RDONLY | O_CLOEXEC);
        if (ofd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        char buf[4096];
        ssize_t len = read(ofd, buf, sizeof(buf) - 1);
        if (len < 0)
                return negative_errno();
        buf[len] = '\0';
        int ret = 0;
        char *save = NULL;
        for (char *name = strtok_r(buf, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
                if (strchr(name, '/') || module_loaded(name))
                        continue;
                int r = load_one(dfd, name);
                if (r < 0) {
                        init_log("load module %s/%s: %s", agent_modules_dir, name, strerror(-r));
                        if (ret == 0)
                                ret = r;
                }
        }
        return ret;
}
