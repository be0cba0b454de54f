/* SPDX-License-Identifier: Apache-2.0 */
/* Host directories shared with the guest over virtio-fs. The supervisor names
 * each on the kernel command line (docs/internals.md, "Host directory mounts"):
 *
 *     smolvm.mount=TAG:PATH:ro|rw     e.g. smolvm.mount=smolvm-fs-0:/workspace:ro
 *
 * and we mount -t virtiofs TAG PATH, creating PATH. Read-only is the host's to
 * enforce (its server answers EROFS); MS_RDONLY here only makes writes fail
 * early and clearly. Best effort, after "the line" is near: a mount that fails
 * is logged and the boot carries on (the command sees a missing or empty dir). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"
#include "init.h"
#include "util.h"

#define MOUNT_KEY "smolvm.mount"
/* The device may still be probing when we get here on a slow boot. */
#define MOUNT_RETRY_MS 2000

int mount_arg_parse(char *value, const char **ret_tag, const char **ret_path, bool *ret_ro)
{
        char *c1 = strchr(value, ':'), *c2 = strrchr(value, ':');
        if (!c1 || c1 == value || c2 == c1 || c1[1] != '/' || c2[1] == '\0')
                return -EINVAL;
        bool ro;
        if (strcmp(c2 + 1, "ro") == 0)
                ro = true;
        else if (strcmp(c2 + 1, "rw") == 0)
                ro = false;
        else
                return -EINVAL;
        *c1 = '\0';
        *c2 = '\0';
        if (strlen(value) > 36 || strcmp(c1 + 1, "/") == 0)
                return -EINVAL;
        *ret_tag = value;
        *ret_path = c1 + 1;
        *ret_ro = ro;
        return 0;
}

/* virtio-fs: the back-end was serving before the boot, so a stat of the mount
 * is answered (a FUSE-over-vsock mount finds its device in mountinfo instead). */
static void raise_readahead(const char *path)
{
        struct stat st;
        if (stat(path, &st) == 0)
                agent_raise_readahead(path, major(st.st_dev), minor(st.st_dev));
}

static void mount_one(const char *tag, const char *path, bool ro)
{
        int r = mkdir_p(path, 0755);
        if (r < 0) {
                init_log("mount %s: mkdir %s: %s (skipped)", tag, path, strerror(-r));
                return;
        }
        unsigned long flags = MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0);
        uint64_t deadline = now_ms() + MOUNT_RETRY_MS;
        for (;;) {
                if (mount(tag, path, "virtiofs", flags, NULL) == 0) {
                        raise_readahead(path);
                        init_log("mounted host directory %s at %s (%s)", tag, path, ro ? "read-only" : "read-write");
                        return;
                }
                r = negative_errno();
                /* virtio-fs answers EINVAL for a tag it does not know (yet). */
                if ((r != -EINVAL && r != -ENODEV) || now_ms() >= deadline)
                        break;
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        init_log("mount -t virtiofs %s %s: %s (skipped)", tag, path, strerror(-r));
}

static void mount_arg(char *value, void *ud)
{
        (void)ud;
        char orig[512];
        snprintf(orig, sizeof(orig), "%s", value);
        const char *tag, *path;
        bool ro;
        if (mount_arg_parse(value, &tag, &path, &ro) < 0) {
                init_log("ignoring malformed kernel argument '" MOUNT_KEY "=%s'", orig);
                return;
        }
        mount_one(tag, path, ro);
}

void setup_mounts(void)
{
        cmdline_foreach(MOUNT_KEY, mount_arg, NULL);
}
