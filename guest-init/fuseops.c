/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over the agent stream (docs/protocol.md, "FUSE over vsock").
 *
 * fuse_mount: the host is the file server, the guest kernel its client. We only
 * mount and relay; what the guest may do is decided by the host's server
 * (MS_RDONLY here is a convenience that makes writes fail early, not a control).
 * The relay runs in PID 1's loop (fuserelay.c): this handler mounts, answers,
 * hands /dev/fuse and the stream over and exits; only if PID 1 cannot take
 * them does it relay in its own process (relay_with_reattach).
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
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fdpass.h"
#include "fileutil.h"
#include "fuse_stream.h"
#include "init.h"
#include "stream.h"
#include "mountinfo.h"
#include "util.h"

/* The topmost mount whose mount point is path (canonical). Read from
 * /proc/self/mountinfo, never from the mount itself: a stat of a fresh FUSE
 * mount waits for its server, which is our own client, not answering yet.
 * Returns 0 or negative errno. */
static int top_mount(const char *path, mountinfo_entry *ret)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();
        int r = mountinfo_find(f, path, ret);
        fclose(f);
        return r;
}

/* Id of the topmost mount at path, or -1. */
static long top_mount_id(const char *path)
{
        mountinfo_entry e;
        return top_mount(path, &e) < 0 ? -1 : e.id;
}

/* The kernel's readahead window for a FUSE file system is its bdi's, 128 KiB
 * by default, and the INIT reply can only lower it: sequential reads then go
 * to the server as 128 KiB READs, a round trip each (under TCG ~1 ms over
 * virtio-fs, several over FUSE-over-vsock). The server allows READs of
 * max_write (1 MiB, fs_server.c's INIT reply), so the window is raised to that
 * after the mount, on the bdi named by the mount's device ("MAJ:MIN"). Best
 * effort: reads work either way. */
#define FUSE_READAHEAD_KB "1024"

void agent_raise_readahead(const char *path, unsigned dev_major, unsigned dev_minor)
{
        char knob[96];
        snprintf(knob, sizeof(knob), "/sys/class/bdi/%u:%u/read_ahead_kb", dev_major, dev_minor);
        _cleanup_close_ int fd = open(knob, O_WRONLY | O_CLOEXEC);
        int r = fd < 0 ? negative_errno() : write_all(fd, FUSE_READAHEAD_KB, strlen(FUSE_READAHEAD_KB));
        if (r < 0)
                init_log("%s: readahead stays at the kernel's default: %s: %s", path, knob, strerror(-r));
}

/* ---- reattaching after a snapshot restore (docs/internals.md, "Mounts
 * across snapshots") ----
 * PID 1 parks and reattaches the mounts it relays itself (fuserelay.c). A
 * mount relayed by a handler process (the fallback) works as follows: the
 * relay listens on an abstract socket named after the guest
 * path as the host gave it (never resolved: a stat of the mount would wait for
 * the very relay that is waiting). When its stream ends because the channel
 * was reset (a restore), it keeps /dev/fuse open, so the kernel's connection
 * lives on, and waits for the host's new server: a fuse_mount with "reattach"
 * arrives on a new stream, whose handler passes that stream here (SCM_RIGHTS). */

/* agent_channel_generation(): NULL until agent_channel_generation_init(). */
static _Atomic uint32_t *chan_generation;

void agent_channel_generation_init(void)
{
        if (chan_generation)
                return;
        void *p = mmap(NULL, sizeof(*chan_generation), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        chan_generation = p == MAP_FAILED ? NULL : p;
}

void agent_channel_generation_bump(void)
{
        if (chan_generation)
                atomic_fetch_add(chan_generation, 1);
}

uint32_t agent_channel_generation(void)
{
        return chan_generation ? atomic_load(chan_generation) : 0;
}

static void reattach_addr(const char *path, struct sockaddr_un *sa, socklen_t *len)
{
        uint64_t h = fnv1a64(FNV1A64_INIT, path, strlen(path));
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "smolvm-fuse-%016llx", (unsigned long long)h);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int reattach_listen(const char *path)
{
        struct sockaddr_un sa;
        socklen_t len;
        reattach_addr(path, &sa, &len);
        _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, len) < 0 || listen(s, 4) < 0)
                return negative_errno();
        return TAKE_FD(s);
}

/* Accept one reattach (from root) and receive its stream. */
static int reattach_accept(int lfd)
{
        _cleanup_close_ int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        if (c < 0)
                return negative_errno();
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0)
                return -EPERM;
        struct pollfd p = { .fd = c, .events = POLLIN };
        if (poll(&p, 1, 5000) <= 0)
                return -ETIMEDOUT;
        char byte;
        int nfd;
        size_t n_fds = 0;
        if (fdpass_recv(c, &byte, 1, &nfd, 1, &n_fds, 0) != 1 || n_fds != 1) {
                if (n_fds == 1)
                        safe_close(nfd);
                return -EPROTO;
        }
        return nfd;
}

/* fuse_mount with "reattach" for a mount PID 1 relays (fuserelay.c). */
static int fuse_reattach_pid1(int fd, const agent_path_spec *spec)
{
        /* The answer first: once PID 1 has the stream, FUSE flows on it. */
        int r = agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        if (r < 0)
                return r;
        r = agent_fuse_handoff(AGENT_FUSE_REATTACH, spec->path, -1, fd);
        if (r < 0)
                init_log("fuse_mount %s: reattach: %s", spec->path, strerror(-r));
        return r;
}

/* fuse_mount with "reattach": hand this stream to the mount's waiting relay:
 * PID 1's, or a handler process's of its own (fuse_mount's fallback). */
static int fuse_reattach(int fd, const agent_path_spec *spec)
{
        if (agent_fuse_handoff(AGENT_FUSE_WAITING, spec->path, -1, -1) == 0)
                return fuse_reattach_pid1(fd, spec);
        struct sockaddr_un sa;
        socklen_t len;
        reattach_addr(spec->path, &sa, &len);
        _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, len) < 0) {
                int r = negative_errno();
                (void)agent_send_errorf(fd, -r, "fuse_mount %s: no FUSE mount there waiting to be reattached (%s)",
                                        spec->path, strerror(-r));
                return r;
        }
        /* The answer first: once the relay has the stream, FUSE flows on it. */
        int r = agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        if (r < 0)
                return r;
        ssize_t n = fdpass_send(s, "F", 1, &fd, 1, 0);
        if (n < 0) {
                init_log("fuse_mount %s: reattach: %s", spec->path, strerror((int)-n));
                return (int)n;
        }
        return 0;
}

/* Relay until the mount ends; across a channel reset, park and take the new
 * stream (into fd's number). Returns the last relay result. */
static int relay_with_reattach(int dev, int fd, const char *path)
{
        static smolvm_fuse_pending pending; /* one mount per handler process */
        _cleanup_close_ int lfd = reattach_listen(path);
        if (lfd < 0)
                init_log("fuse_mount %s: no reattach listener (%s): the mount will not survive a snapshot restore",
                         path, strerror(-lfd));
        for (;;) {
                uint32_t gen = agent_channel_generation();
                int r = smolvm_fuse_relay_tracked(dev, fd, lfd, &pending);
                /* The counter moves before the mux resets the streams (its
                 * "resetting" op), so it has moved by the time we see our EOF. */
                bool reset = r == -ECANCELED ||
                             ((r == 0 || r == -ECONNRESET || r == -EPIPE) && agent_channel_generation() != gen);
                if (lfd < 0 || !reset)
                        return r == -ECANCELED ? 0 : r;
                /* Park: /dev/fuse stays open (the kernel's connection lives, its
                 * requests wait) until the new server's stream comes. */
                struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = dev, .events = 0 } };
                int k;
                do
                        k = poll(p, 2, AGENT_FUSE_REATTACH_WAIT_MS);
                while (k < 0 && errno == EINTR);
                if (k <= 0 || !(p[0].revents & POLLIN)) {
                        init_log("fuse_mount %s: %s", path, k == 0 ? "no server came back within 60 s after the "
                                 "channel reset: aborting the mount" : "the mount went away while waiting");
                        return k < 0 ? negative_errno() : -ETIMEDOUT;
                }
                int nfd = reattach_accept(lfd);
                if (nfd < 0) {
                        init_log("fuse_mount %s: reattach: %s", path, strerror(-nfd));
                        continue;
                }
                /* The requests the old server never answered: the kernel must
                 * not wait for ever (docs/internals.md). */
                unsigned failed = smolvm_fuse_pending_fail(&pending, dev, -EIO);
                if (dup3(nfd, fd, O_CLOEXEC) < 0) {
                        r = negative_errno();
                        safe_close(nfd);
                        return r;
                }
                safe_close(nfd);
                init_log("fuse_mount %s: reattached to a new server%s", path,
                         failed ? " (requests in flight at the snapshot failed with EIO)" : "");
        }
}

int agent_fuse_mount(int fd, const agent_request *req)
{
        const agent_path_spec *spec = &req->file;
        if (spec->reattach)
                return fuse_reattach(fd, spec);
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
        mountinfo_entry me;
        long ours = top_mount(canon, &me) < 0 ? -1 : me.id;
        /* Before INIT is answered is fine: the reply's max_readahead (1 MiB)
         * is what the kernel keeps the window within. */
        if (ours >= 0)
                agent_raise_readahead(spec->path, me.major, me.minor);
        r = agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        if (r < 0) {
                dev = safe_close(dev);
                if (ours >= 0 && top_mount_id(canon) == ours && umount2(canon, MNT_DETACH) < 0)
                        init_log("fuse_mount %s: umount: %m", spec->path);
                return r;
        }
        /* PID 1 relays it in its own loop: no process hop per request. */
        r = agent_fuse_handoff(AGENT_FUSE_ADOPT, spec->path, dev, fd);
        if (r == 0)
                return 0;
        if (r != -ECONNREFUSED && r != -ENOENT)
                init_log("fuse_mount %s: PID 1 cannot relay it (%s): relaying in a process of its own", spec->path,
                         strerror(-r));
        r = relay_with_reattach(dev, fd, spec->path);
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
