/* SPDX-License-Identifier: Apache-2.0 */
/* Where things live ($SMOLVM_HOME, $SMOLVM_LIBEXECDIR) and the file-system
 * helpers the VM directory needs: atomic writes, recursive removal, ids. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "smolvm_i.h"
#include "util.h"

int smolvm_home_dir(char **ret)
{
        const char *env = getenv("SMOLVM_HOME");
        char *s = NULL;
        if (env && *env) {
                if (env[0] == '/')
                        s = strdup(env);
                else {
                        /* Relative: anchor it now, the supervisor runs with another cwd. */
                        char cwd[PATH_MAX];
                        if (!getcwd(cwd, sizeof(cwd)))
                                return vm_error(negative_errno(), NULL, "getcwd: %s", strerror(errno));
                        if (asprintf(&s, "%s/%s", cwd, env) < 0)
                                s = NULL;
                }
        } else {
                const char *home = getenv("HOME");
                if (!home || !*home) {
                        struct passwd *pw = getpwuid(getuid());
                        home = pw ? pw->pw_dir : NULL;
                }
                if (!home)
                        return vm_error(-ENOENT, "set SMOLVM_HOME or HOME",
                                        "cannot find the home directory");
                if (asprintf(&s, "%s/.local/state/smolvm", home) < 0)
                        s = NULL;
        }
        if (!s)
                return vm_error(-ENOMEM, NULL, "out of memory");
        *ret = s;
        return 0;
}

const char *smolvm_libexec_dir(void)
{
        const char *env = getenv("SMOLVM_LIBEXECDIR");
        return env && *env ? env : SMOLVM_LIBEXECDIR;
}

int mkdir_p_open(const char *path, mode_t mode)
{
        if (!*path)
                return -ENOENT;
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        _cleanup_close_ int cur = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return negative_errno();
        bool created = false;
        char *save = NULL;
        for (char *comp = strtok_r(p, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
                int next = -1;
                /* What exists is the caller's path: resolved as usual, symlinks included. */
                if (!created)
                        next = openat(cur, comp, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (next < 0 && (created || errno == ENOENT)) {
                        if (mkdirat(cur, comp, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        /* What we create is ours: never go through a symlink raced into its place. */
                        created = true;
                        next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (next < 0)
                        return negative_errno();
                safe_close(cur);
                cur = next;
        }
        return TAKE_FD(cur);
}

int mkdir_parents(const char *path, mode_t mode)
{
        int fd = mkdir_p_open(path, mode);
        safe_close(fd);
        return fd < 0 ? fd : 0;
}

static int rm_rf_at(int parent_fd, const char *name, unsigned depth)
{
        if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return negative_errno();
        if (depth > 16)
                return -ELOOP;
        int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                int k = rm_rf_at(dirfd(d), de->d_name, depth + 1);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(d);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = negative_errno();
        return r;
}

int rm_rf(const char *path)
{
        return rm_rf_at(AT_FDCWD, path, 0);
}

int write_file_atomic(const char *path, const char *data, size_t len)
{
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
                return vm_error(-ENOMEM, NULL, "out of memory");
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "open %s: %s", tmp, strerror(errno));
        int r = write_all(fd, data, len);
        if (r == 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r < 0) {
                safe_close(fd);
                unlink(tmp);
                char hint[512];
                snprintf(hint, sizeof(hint), "free some space on the file system of %s, or point SMOLVM_HOME "
                         "elsewhere", path);
                return vm_error(r, r == -ENOSPC ? hint : NULL, "write %s: %s", path, strerror(-r));
        }
        if (close(fd) < 0 && errno != EINTR) {
                r = negative_errno();
                unlink(tmp);
                return vm_error(r, NULL, "write %s: %s", path, strerror(-r));
        }
        if (rename(tmp, path) < 0) {
                r = negative_errno();
                unlink(tmp);
                return vm_error(r, NULL, "rename %s: %s", tmp, strerror(-r));
        }
        return 0;
}

int random_id(char ret[SMOLVM_ID_LEN + 1])
{
        uint8_t b[SMOLVM_ID_LEN / 2];
        size_t got = 0;
        while (got < sizeof(b)) {
                ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return vm_error(negative_errno(), NULL, "getrandom: %s", strerror(errno));
                }
                got += (size_t)n;
        }
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(ret + 2 * i, 3, "%02x", b[i]);
        return 0;
}

static bool valid_image_name(const char *name)
{
        if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) > 255)
                return false;
        for (const char *p = name; *p; p++)
                if (*p == '/' || (unsigned char)*p < 0x20)
                        return false;
        return true;
}

int resolve_image(const char *home, const char *name, char **ret_dir)
{
        static const char *const files[] = { "vmlinux", "initramfs.img", "rootfs.ext4" };
        _cleanup_free_ char *dir = NULL;
        bool is_default = !name || !strcmp(name, "default");
        if (!name)
                name = "default";

        if (strchr(name, '/')) {
                dir = strdup(name);
        } else {
                if (!valid_image_name(name))
                        return vm_error(-EINVAL, "image names are single path components",
                                        "invalid image name '%s'", name);
                if (asprintf(&dir, "%s/images/%s", home, name) < 0)
                        dir = NULL;
        }
        if (!dir)
                return vm_error(-ENOMEM, NULL, "out of memory");

        char real[PATH_MAX];
        if (!realpath(dir, real)) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return vm_error(r, is_default ? "run `smolvm image build` to build it"
                                                      : "run `smolvm image build --name NAME` to build it, "
                                                        "or `smolvm image ls` to see what is there",
                                        "image '%s' not found (%s)", name, dir);
                return vm_error(r, NULL, "image '%s': %s: %s", name, dir, strerror(-r));
        }
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                char p[PATH_MAX + 32];
                snprintf(p, sizeof(p), "%s/%s", real, files[i]);
                if (access(p, R_OK) < 0) {
                        int r = negative_errno();
                        return vm_error(r, "rebuild it with `smolvm image build`",
                                        "image '%s' is incomplete: %s: %s", name, p, strerror(-r));
                }
        }
        char *s = strdup(real);
        if (!s)
                return vm_error(-ENOMEM, NULL, "out of memory");
        *ret_dir = s;
        return 0;
}
