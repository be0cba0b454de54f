/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over the agent stream (docs/protocol.md, "FUSE over vsock").
 *
 * fuse_mount: the host is the file server, the guest kernel its client. We only
 * mount and relay; what the guest may do is decided by the host's server
 * (MS_RDONLY here is a convenience that makes writes fail early, not a control).
 *
 * fuse_serve: the roles swap: the host kernel is the client (smolvm-fs mount on
 * the host) and we answer from the guest's own tree with the same server code,
 * read-only. The host must treat our answers as hostile; we serve as root
 * anyway, since anything here is the guest's to show. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fileutil.h"
#include "fuse_stream.h"
#include "init.h"
#include "stream.h"
#include "mountinfo.h"
#include "util.h"

/* Id of the topmost mount whose mount point is path (canonical), or -1. Read
 * from /proc/self/mountinfo, never from the mount itself: a stat of a fresh
 * FUSE mount waits for its server, which is our own client, not answering yet. */
static long top_mount_id(const char *path)
{
        mountinfo_entry e;
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -1;
        int r = mountinfo_find(f, path, &e);
        fclose(f);
        return r < 0 ? -1 : e.id;
}

int agent_fuse_mount(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        int r = mkdir_p(spec->path, 0755);
        if (r < 0) {
                (void)agent_send_errorf(fd, -r, "fuse_mount %s: %s", spec->path, strerror(-r));
                return r;
        }
        /* mountinfo shows canonical paths; resolved before our mount hides the dir. */
        _cleanup_free_ char *canon = realpath(spec->path, NULL);
        if (!canon) {
                r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_mount %s: %s", spec->path, strerror(-r));
                return r;
        }
        /* fuse is loaded at boot only for virtio-fs mounts; otherwise now. A
         * failure shows as the open error below. */
        (void)modules_load_demand();
        _cleanup_close_ int dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (dev < 0) {
                r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_mount %s: open /dev/fuse: %s", spec->path, strerror(-r));
                return r;
        }
        /* rootmode/user_id/group_id are required by the kernel; allow_other because
         * commands run as any guest user; max_read keeps READ replies within one
         * stream message (SMOLVM_FUSE_STREAM_MAX). No default_permissions: the
         * server decides. */
        char opts[160];
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,max_read=%u", dev,
                 SMOLVM_FUSE_STREAM_MAX_WRITE);
        unsigned long flags = MS_NOSUID | MS_NODEV | (spec->read_only ? MS_RDONLY : 0);
        if (mount("smolvm", canon, "fuse.smolvm", flags, opts) < 0) {
                r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_mount %s: mount: %s", spec->path, strerror(-r));
                return r;
        }
        /* If the result cannot be sent, the mount is undone: path is only
         * unmounted if our mount is still the top one there. */
        long ours = top_mount_id(canon);
        r = agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        if (r < 0) {
                dev = safe_close(dev);
                if (ours >= 0 && top_mount_id(canon) == ours && umount2(canon, MNT_DETACH) < 0)
                        init_log("fuse_mount %s: umount: %m", spec->path);
                return r;
        }
        r = smolvm_fuse_relay(dev, fd);
        if (r < 0 && r != -ECONNRESET && r != -EPIPE)
                init_log("fuse_mount %s: relay: %s", spec->path, strerror(-r));
        /* The server is gone (or the guest unmounted it): closing the last
         * /dev/fuse fd aborts the connection, so pending and later accesses fail
         * with ENOTCONN instead of hanging. The mount is left in place, like a
         * dead sshfs: detaching it would let writes meant for a :rw share land
         * silently in the directory underneath. */
        dev = safe_close(dev);
        return r < 0 ? r : 0;
}

int agent_fuse_serve(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        smolvm_fs_config cfg = { .root = spec->path, .read_only = true,
                                 .max_write = SMOLVM_FUSE_STREAM_MAX_WRITE };
        smolvm_fs *fs = NULL;
        int r = smolvm_fs_new(&cfg, &fs);
        if (r < 0) {
                (void)agent_send_errorf(fd, -r, "fuse_serve %s: %s", spec->path, strerror(-r));
                return r;
        }
        r = agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        if (r >= 0) {
                r = smolvm_fs_serve_stream(fs, fd);
                if (r < 0 && r != -ECONNRESET && r != -EPIPE)
                        init_log("fuse_serve %s: %s", spec->path, strerror(-r));
        }
        smolvm_fs_free(fs);
        return r < 0 ? r : 0;
}
