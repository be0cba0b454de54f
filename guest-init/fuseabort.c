/* SPDX-License-Identifier: Apache-2.0 */
/* fuse_abort (docs/protocol.md): the host says the file server of a mount is
 * gone; make accesses to it fail instead of hanging.
 *
 * Nothing here may touch the dead mount itself: a stat, realpath or open of a
 * path inside it sends a FUSE request no one will answer, and the process
 * (this handler) would block uninterruptibly. The mount is found in
 * /proc/self/mountinfo by its mount point; only what lies outside it is
 * resolved.
 *
 * Two ways, by file system type:
 *  - fuse, fuse.<subtype>, fuseblk: abort the connection through fusectl
 *    (/sys/fs/fuse/connections/<dev>/abort). Requests in flight end with
 *    ECONNABORTED, later ones with ENOTCONN.
 *  - virtiofs: Linux registers no fusectl entry for it (no_control) and
 *    ignores umount -f (no_force_umount), and nothing else aborts it: the
 *    requests already sent stay pending for ever. A lazy unmount would not
 *    help either: its final release sends FUSE_DESTROY and waits for the
 *    answer. So we fence it: mount on top of it a FUSE file system whose
 *    connection is aborted from the start (its /dev/fuse is closed before
 *    INIT is answered). Every path lookup at or under the mount point then
 *    fails with ENOTCONN ("Transport endpoint is not connected"), like a
 *    crashed sshfs; what still holds the old mount (an open file, a cwd, a
 *    request in flight) keeps waiting: the window is the time between the
 *    server's death and this request. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "agent_proto.h"
#include "init.h"
#include "stream.h"
#include "mountinfo.h"
#include "util.h"

/* The type the fence shows in /proc/mounts, with "smolvm-gone" as its source. */
#define FENCE_FSTYPE "fuse.smolvm-gone"

const char *agent_mountinfo_path = "/proc/self/mountinfo";
const char *agent_fusectl_dir = "/sys/fs/fuse/connections";
const char *agent_fuse_dev = "/dev/fuse";

static int find_mount(const char *path, mountinfo_entry *ret)
{
        FILE *f = fopen(agent_mountinfo_path, "re");
        if (!f)
                return negative_errno();
        int r = mountinfo_find(f, path, ret);
        fclose(f);
        return r;
}

/* The mount at path and its mount point as mountinfo shows it (malloc'd). The
 * host sends the path it asked for, which is canonical unless a symlink lies
 * on the way (e.g. /var/run): first an exact match, touching nothing; then
 * the parent canonicalised (outside the mount, so this only blocks if the
 * parent is itself in a dead FUSE mount) and the last name appended. */
static int resolve_mount(const char *path, mountinfo_entry *ret, char **ret_mountpoint)
{
        _cleanup_free_ char *canon = NULL;
        int r = find_mount(path, ret);
        if (r == 0) {
                canon = strdup(path);
                if (!canon)
                        return -ENOMEM;
                *ret_mountpoint = TAKE_PTR(canon);
                return 0;
        }
        if (r != -ENOENT)
                return r;
        _cleanup_free_ char *parent = strdup(path);
        if (!parent)
                return -ENOMEM;
        char *slash = strrchr(parent, '/');
        if (!slash || !slash[1])
                return -ENOENT;
        const char *base = slash + 1;
        *slash = '\0';
        _cleanup_free_ char *canon_parent = realpath(parent[0] ? parent : "/", NULL);
        if (!canon_parent)
                return -ENOENT;
        if (asprintf(&canon, "%s/%s", strcmp(canon_parent, "/") == 0 ? "" : canon_parent, base) < 0) {
                canon = NULL;
                return -ENOMEM;
        }
        if (strcmp(canon, path) == 0)
                return -ENOENT;
        r = find_mount(canon, ret);
        if (r < 0)
                return r;
        *ret_mountpoint = TAKE_PTR(canon);
        return 0;
}

/* fusectl shows every FUSE connection that allows it as a directory of control
 * files; mount it where the fuse module made room for it, unless it is there.
 * Two handlers racing here both mount: the second stacks on the first, which
 * is harmless (fusectl has a single super block). */
static int fusectl_ensure(void)
{
        mountinfo_entry e;
        int r = find_mount(agent_fusectl_dir, &e);
        if (r == 0 && strcmp(e.fstype, "fusectl") == 0)
                return 0;
        if (r < 0 && r != -ENOENT)
                return r;
        if (mount("fusectl", agent_fusectl_dir, "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return negative_errno();
        return 0;
}

/* A fusectl file holding a number ("waiting": requests sent and not answered),
 * or -1 if unknown. */
static long read_number(const char *path)
{
        char buf[32];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        char *end;
        long v = strtol(buf, &end, 10);
        return end == buf || v < 0 ? -1 : v;
}

static int abort_connection(int fd, const char *path, const mountinfo_entry *e)
{
        char conn_dir[4096], file[4200];
        int r = fusectl_ensure();
        if (r < 0) {
                (void)agent_send_errorf(fd, -r, "fuse_abort %s: mount -t fusectl fusectl %s: %s%s", path,
                                        agent_fusectl_dir, strerror(-r),
                                        r == -ENOENT ? " (is the fuse module loaded?)" : "");
                return r;
        }
        unsigned conn = mountinfo_fuse_conn_id(e);
        snprintf(conn_dir, sizeof(conn_dir), "%s/%u", agent_fusectl_dir, conn);
        snprintf(file, sizeof(file), "%s/waiting", conn_dir);
        long waiting = read_number(file);
        snprintf(file, sizeof(file), "%s/abort", conn_dir);
        /* Any write aborts: requests in flight fail with ECONNABORTED, later
         * ones with ENOTCONN. */
        _cleanup_close_ int afd = open(file, O_WRONLY | O_CLOEXEC);
        if (afd < 0 || write(afd, "1", 1) != 1) {
                r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_abort %s: %s %s: %s", path, afd < 0 ? "open" : "write", file,
                                        strerror(-r));
                return r;
        }
        init_log("fuse_abort %s: aborted FUSE connection %u (%s, %ld request(s) waiting): its file server is gone, "
                 "accesses now fail with ENOTCONN",
                 path, conn, e->fstype, waiting);
        return agent_send_json(fd, SMOLVM_FRAME_RESULT,
                               json_pack("{s:b,s:s,s:s,s:I,s:I}", "ok", 1, "method", "abort", "fstype", e->fstype,
                                         "connection", (json_int_t)conn, "waiting", (json_int_t)waiting));
}

static int fence(int fd, const char *path, const char *mountpoint, const mountinfo_entry *e)
{
        _cleanup_close_ int dev = open(agent_fuse_dev, O_RDWR | O_CLOEXEC);
        if (dev < 0) {
                int r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_abort %s: open %s: %s", path, agent_fuse_dev, strerror(-r));
                return r;
        }
        /* Resolving mountpoint crosses into the dead mount's root but sends no
         * request: FUSE does not revalidate a root dentry, and the last
         * component of a path is not permission-checked. */
        char opts[128];
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", dev);
        if (mount("smolvm-gone", mountpoint, FENCE_FSTYPE, MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, opts) < 0) {
                int r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_abort %s: mount %s on %s: %s", path, FENCE_FSTYPE, mountpoint,
                                        strerror(-r));
                return r;
        }
        /* Closing the only /dev/fuse fd of a connection aborts it: INIT and
         * everything after it fail with ENOTCONN. */
        dev = safe_close(dev);
        init_log("fuse_abort %s: its file server is gone; Linux cannot abort a %s connection, so the mount is "
                 "covered with an aborted one: accesses now fail with ENOTCONN (processes already waiting on it "
                 "keep waiting)",
                 path, e->fstype);
        return agent_send_json(fd, SMOLVM_FRAME_RESULT,
                               json_pack("{s:b,s:s,s:s}", "ok", 1, "method", "fence", "fstype", e->fstype));
}

int agent_fuse_abort(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        mountinfo_entry e;
        _cleanup_free_ char *mountpoint = NULL;
        int r = resolve_mount(spec->path, &e, &mountpoint);
        if (r == -ENOENT) {
                (void)agent_send_errorf(fd, ENOENT, "fuse_abort %s: nothing is mounted there", spec->path);
                return r;
        }
        if (r < 0) {
                (void)agent_send_errorf(fd, -r, "fuse_abort %s: reading %s: %s", spec->path, agent_mountinfo_path,
                                        strerror(-r));
                return r;
        }
        if (!mountinfo_is_fuse(e.fstype)) {
                (void)agent_send_errorf(fd, EINVAL, "fuse_abort %s: not a FUSE mount (%s)", spec->path, e.fstype);
                return -EINVAL;
        }
        if (strcmp(e.fstype, "virtiofs") == 0)
                return fence(fd, spec->path, mountpoint, &e);
        return abort_connection(fd, spec->path, &e);
}
