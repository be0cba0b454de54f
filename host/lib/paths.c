/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm's side of where things live (common/store.c spells them): $SMOLVM_HOME
 * and image lookup with errors recorded, the VM directory's atomic writes,
 * restartable removal and ids. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

int smolvm_home_dir(char **ret)
{
        int r = smolvm_home_path(ret);
        if (r == -ENOENT)
                return vm_error(r, "set SMOLVM_HOME or HOME", "cannot find the home directory");
        if (r < 0)
                return vm_error(r, NULL, "$SMOLVM_HOME: %s", strerror(-r));
        return 0;
}

/* ---- restartable removal of a VM dir ---- */

/* A trash dir's "lock" goes last: while it exists, whoever holds its flock is
 * still removing the rest, and a sweeper must keep out. */
static int rm_trash(const char *path)
{
        return rm_rf_last(path, VMDIR_LOCK);
}

/* A removal or a creation that was interrupted, or is under way. */
static bool left_id(const char *name, const char *prefix, char ret_id[SMOLVM_ID_LEN + 1])
{
        size_t n = strlen(prefix);
        if (strncmp(name, prefix, n) != 0 || !vm_id_valid(name + n))
                return false;
        memcpy(ret_id, name + n, SMOLVM_ID_LEN + 1);
        return true;
}

int vm_create_lock(const char *vms_dir)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s" VM_CREATE_LOCK_SUFFIX, vms_dir);
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "open %s: %s", path, strerror(errno));
        while (flock(fd, LOCK_SH) < 0) {
                if (errno != EINTR) {
                        int r = vm_error(negative_errno(), NULL, "flock %s: %s", path, strerror(errno));
                        safe_close(fd);
                        return r;
                }
        }
        return fd;
}

/* Exclusive on the create lock without waiting: no creator at work. Returns the
 * fd, or -1 when one is (or the lock cannot be had: then staging dirs stay). */
static int no_creator_at_work(const char *vms_dir)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s" VM_CREATE_LOCK_SUFFIX, vms_dir);
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
                fd = safe_close(fd);
        return fd;
}

int vm_trash_sweep(const char *vms_dir, const char *only_id)
{
        DIR *d = opendir(vms_dir);
        if (!d)
                return errno == ENOENT ? 0 : vm_error(negative_errno(), NULL, "open %s: %s", vms_dir, strerror(errno));
        int r = 0, found = 0, creators = -2; /* -2: not asked yet */
        struct dirent *de;
        while ((de = readdir(d))) {
                char id[SMOLVM_ID_LEN + 1], path[PATH_MAX], lock[PATH_MAX + 8];
                bool staging = left_id(de->d_name, VM_NEW_PREFIX, id);
                if ((!staging && !left_id(de->d_name, VM_TRASH_PREFIX, id)) || (only_id && strcmp(id, only_id)))
                        continue;
                if (staging) {
                        /* A creator holds the create lock shared from before its mkdir
                         * to after its rename: while any does, staging dirs stay. */
                        if (creators == -2)
                                creators = no_creator_at_work(vms_dir);
                        if (creators < 0)
                                continue;
                }
                snprintf(path, sizeof(path), "%s/%s", vms_dir, de->d_name);
                snprintf(lock, sizeof(lock), "%s/" VMDIR_LOCK, path);
                /* No O_CREAT: a missing lock means the remover got to its last step. */
                _cleanup_close_ int fd = staging ? -1 : open(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* a live `smolvm rm` is at work on it */
                int k = rm_trash(path);
                if (k < 0 && r == 0)
                        r = vm_error(k, NULL, "finish removing VM %s: remove %s: %s", id, path, strerror(-k));
                else if (k == 0)
                        found = 1;
        }
        closedir(d);
        if (creators >= 0)
                safe_close(creators);
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

int vm_write_file_atomic(const char *path, const char *data, size_t len)
{
        return vm_write_file(path, data, len, true);
}

int vm_write_file(const char *path, const char *data, size_t len, bool durable)
{
        int r = durable ? write_file_atomic(path, data, len, 0600) : write_file_replace(path, data, len, 0600);
        if (r < 0) {
                char hint[512];
                snprintf(hint, sizeof(hint), "free some space on the file system of %s, or point SMOLVM_HOME "
                         "elsewhere", path);
                return vm_error(r, r == -ENOSPC ? hint : NULL, "write %s: %s", path, strerror(-r));
        }
        return 0;
}

bool vm_id_valid(const char *s)
{
        if (strlen(s) != SMOLVM_ID_LEN)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

int random_hex(char *ret, size_t n_bytes)
{
        uint8_t b[64];
        size_t got = 0;
        if (n_bytes > sizeof(b))
                return vm_error(-EINVAL, NULL, "random_hex: %zu bytes asked, at most %zu", n_bytes, sizeof(b));
        while (got < n_bytes) {
                ssize_t n = getrandom(b + got, n_bytes - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return vm_error(negative_errno(), NULL, "getrandom: %s", strerror(errno));
                }
                got += (size_t)n;
        }
        for (size_t i = 0; i < n_bytes; i++)
                snprintf(ret + 2 * i, 3, "%02x", b[i]);
        return 0;
}

int random_id(char ret[SMOLVM_ID_LEN + 1])
{
        return random_hex(ret, SMOLVM_ID_LEN / 2);
}

int resolve_image(const char *home, const char *name, char **ret_dir, image_store *ret_store)
{
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
        const char *missing;
        int r = image_dir_check(real, &missing);
        if (r < 0)
                return vm_error(r, "rebuild it with `smolvm image build`", "image '%s' is incomplete: %s/%s: %s", name,
                                real, missing, strerror(-r));
        char *s = strdup(real);
        if (!s)
                return vm_error(-ENOMEM, NULL, "out of memory");
        *ret_dir = s;
        if (ret_store)
                *ret_store = store;
        return 0;
}

void pathf(char *buf, size_t size, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}
