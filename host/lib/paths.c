/* SPDX-License-Identifier: Apache-2.0 */
/* Where things live ($SMOLVM_HOME, $SMOLVM_LIBEXECDIR) and the file-system
 * helpers the VM directory needs: atomic writes, recursive removal, ids. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

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

/* In a directory, the entry called last (NULL: none) goes after all the others. */
static int rm_rf_at(int parent_fd, const char *name, const char *last, unsigned depth)
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
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || (last && !strcmp(de->d_name, last)))
                        continue;
                int k = rm_rf_at(dirfd(d), de->d_name, NULL, depth + 1);
                if (k < 0 && r == 0)
                        r = k;
        }
        if (last && r == 0 && unlinkat(dirfd(d), last, 0) < 0 && errno != ENOENT)
                r = negative_errno();
        closedir(d);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = negative_errno();
        return r;
}

int rm_rf(const char *path)
{
        return rm_rf_at(AT_FDCWD, path, NULL, 0);
}

/* ---- restartable removal of a VM dir ---- */

/* A trash dir's "lock" goes last: while it exists, whoever holds its flock is
 * still removing the rest, and a sweeper must keep out. */
static int rm_trash(const char *path)
{
        return rm_rf_at(AT_FDCWD, path, VMDIR_LOCK, 0);
}

/* A removal or a creation that was interrupted (or is under way: its lock tells). */
static bool trash_id(const char *name, char ret_id[SMOLVM_ID_LEN + 1])
{
        static const char *const prefixes[] = { VM_TRASH_PREFIX, VM_NEW_PREFIX };
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
                size_t n = strlen(prefixes[i]);
                if (strncmp(name, prefixes[i], n) == 0 && vm_id_valid(name + n)) {
                        memcpy(ret_id, name + n, SMOLVM_ID_LEN + 1);
                        return true;
                }
        }
        return false;
}

int vm_trash_sweep(const char *vms_dir, const char *only_id)
{
        DIR *d = opendir(vms_dir);
        if (!d)
                return errno == ENOENT ? 0 : vm_error(negative_errno(), NULL, "open %s: %s", vms_dir, strerror(errno));
        int r = 0, found = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char id[SMOLVM_ID_LEN + 1], path[PATH_MAX], lock[PATH_MAX + 8];
                if (!trash_id(de->d_name, id) || (only_id && strcmp(id, only_id)))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", vms_dir, de->d_name);
                snprintf(lock, sizeof(lock), "%s/" VMDIR_LOCK, path);
                /* No O_CREAT: a missing lock means the remover got to its last step. */
                _cleanup_close_ int fd = open(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* a live `smolvm rm` is at work on it */
                int k = rm_trash(path);
                if (k < 0 && r == 0)
                        r = vm_error(k, NULL, "finish removing VM %s: remove %s: %s", id, path, strerror(-k));
                else if (k == 0)
                        found = 1;
        }
        closedir(d);
        return r < 0 ? r : found;
}

int vm_dir_remove(const char *vms_dir, const char *id)
{
        char dir[PATH_MAX], trash[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", vms_dir, id);
        snprintf(trash, sizeof(trash), "%s/" VM_TRASH_PREFIX "%s", vms_dir, id);
        /* One atomic step takes the VM out of every listing and lookup; what is
         * left after a kill has a name the next sweep recognises. */
        if (rename(dir, trash) < 0) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return 0; /* an ephemeral VM's supervisor removes its own dir */
                if (r != -EEXIST && r != -ENOTEMPTY)
                        return vm_error(r, NULL, "rename %s to %s: %s", dir, trash, strerror(-r));
                /* An older removal of this id was interrupted: finish it first. */
                if ((r = vm_trash_sweep(vms_dir, id)) < 0)
                        return r;
                if (rename(dir, trash) < 0)
                        return vm_error(negative_errno(), NULL, "rename %s to %s: %s", dir, trash, strerror(errno));
        }
        int r = rm_trash(trash);
        if (r < 0)
                return vm_error(r, "`smolvm ls` or `smolvm rm` tries again", "remove %s: %s", trash, strerror(-r));
        return 0;
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

bool image_name_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;
        /* No '/' and no leading '.': neither ".." nor a hidden entry can name a
         * directory outside the store. */
        if (n == 0 || n > SMOLVM_IMAGE_NAME_MAX || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

int resolve_image(const char *home, const char *name, char **ret_dir, image_store *ret_store)
{
        static const char *const files[] = { "vmlinux", "initramfs.img", "rootfs.ext4" };
        _cleanup_free_ char *dir = NULL;
        image_store store = IMAGE_STORE_USER;
        bool is_default = !name || !strcmp(name, "default");
        if (!name)
                name = "default";

        if (name[0] == '/') {
                /* An explicit directory, the caller's own choice. */
                if (!(dir = strdup(name)))
                        return vm_error(-ENOMEM, NULL, "out of memory");
        } else {
                if (!image_name_valid(name))
                        return vm_error(-EINVAL,
                                        "give an image name from `smolvm image ls` (letters, digits, '.', '_', "
                                        "'-', not starting with '.') or an absolute directory path",
                                        "invalid image name '%.300s': not a name in the image store %s/images",
                                        name, home);
                int r = image_store_entry(home, name, &dir, &store);
                if (r == -ENOENT)
                        return vm_error(r, is_default ? "as root, `scripts/setup.sh` or `smolvm image build --system` "
                                                        "builds it for every user; or build your own: "
                                                        "`smolvm image build`"
                                                      : "run `smolvm image build --name NAME` to build it, "
                                                        "or `smolvm image ls` to see what is there",
                                        "image '%s' not found (not in %s/images, nor in the system store %s/images)",
                                        name, home, smolvm_system_store());
                if (r == -ENOMEM)
                        return vm_error(r, NULL, "out of memory");
                if (r < 0)
                        return vm_error(r, store == IMAGE_STORE_SYSTEM ? "as root: chmod -R a+rX the system store "
                                                                         "(it is for every user)"
                                                                       : NULL,
                                        "image '%s': %s: %s", name, dir, strerror(-r));
        }

        char real[PATH_MAX];
        if (!realpath(dir, real)) {
                int r = negative_errno();
                return vm_error(r, r == -ENOENT ? "`smolvm image ls` lists the images" : NULL, "image '%s': %s: %s",
                                name, dir, strerror(-r));
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
        if (ret_store)
                *ret_store = store;
        return 0;
}
