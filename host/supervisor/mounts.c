/* SPDX-License-Identifier: Apache-2.0 */
/* The mounts duty (mounts.h). */
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dir.h"
#include "fsabort.h"
#include "fsd.h"
#include "hvsock.h"
#include "log.h"
#include "sup.h"
#include "util.h"
#include "vmdir.h"
#include "vsockfs.h"

/* A virtio-fs back-end exits 0 when QEMU disconnects from it: QEMU going away
 * (reported as such once reaped), or a guest reset. Wait that long for QEMU's
 * exit before taking it for the back-end failing. */
#define FSD_CLEAN_EXIT_GRACE_MS 1000u

typedef struct sup_mounts sup_mounts;

/* One mount and the server behind it. */
typedef struct sup_mount {
        sup_mounts *all;
        size_t index;
        const sup_mount_cfg *cfg; /* in all->s->cfg */
        char *socket_path;        /* virtio-fs: DIR/fs-N.sock */
        sup_fsd *fsd;             /* virtio-fs: its back-end */
        sup_vsockfs *vfs;         /* FUSE over vsock: its server and stream */
        bool exited;              /* its server was reaped */
        uint64_t due_ms;          /* when to act on that exit */
        bool reported;            /* acted on: boot failed, or the guest told */
        sup_fsabort *fsabort;     /* fuse_abort sent for a dead back-end's mount */
} sup_mount;

struct sup_mounts {
        sup *s;
        bool vsock; /* "mount_transport": "vsock" (one transport per VM) */
        bool mounting; /* vsock: started after HELLO, not all answered yet */
        uint64_t mount_deadline_ms;
        size_t n;
        sup_mount m[SUP_MAX_MOUNTS];
};

/* ---- one mount ---- */

static char *mount_log_path(const sup_mount *m)
{
        return sup_dir_pathf(m->all->s, VMDIR_FSD_LOG_FMT, m->index);
}

/* Its server process, whichever the transport (NULL if none). */
static sup_fsd *mount_server(const sup_mount *m)
{
        if (m->all->vsock)
                return m->vfs ? sup_vsockfs_fsd(m->vfs) : NULL;
        return m->fsd;
}

/* Start its virtio-fs back-end and add its device and kernel argument
 * (smolvm.mount=TAG:PATH:MODE, docs/internals.md). Does not wait for it. */
static int mount_start_virtiofs(sup_mount *m, sup_vm_extra *x)
{
        sup *s = m->all->s;
        const sup_mount_cfg *c = m->cfg;
        _cleanup_free_ char *log_path = mount_log_path(m);
        char err[768];
        int r;

        m->socket_path = sup_dir_pathf(s, VMDIR_FS_SOCK_FMT, m->index);
        r = sup_fsd_start(s->loop, (unsigned)m->index, c, m->socket_path, log_path, &m->fsd, err, sizeof(err));
        if (r < 0) {
                sup_fail(s, false,
                         r == -ENOENT ? "install smolvm-virtiofsd in $SMOLVM_LIBEXECDIR (next to smolvm-supervisor)"
                                      : NULL,
                         "%s", err);
                return r;
        }
        r = sup_vm_extra_fs(x, m->socket_path, c->tag);
        if (r == 0)
                r = sup_vm_extra_arg(x, "smolvm.mount=%s:%s:%s", c->tag, c->guest, c->writable ? "rw" : "ro");
        if (r < 0)
                sup_fail(s, false, NULL, "mount %zu: %s", m->index, strerror(-r));
        return r;
}

static int mount_wait_virtiofs(sup_mount *m, uint64_t deadline_ms)
{
        char err[768];
        int r = sup_fsd_wait_ready(m->fsd, deadline_ms, err, sizeof(err));
        if (r < 0) {
                char hint[PATH_MAX + 64];
                snprintf(hint, sizeof(hint), "see %s/" VMDIR_FSD_LOG_FMT, m->all->s->vm_dir, m->index);
                sup_fail(m->all->s, false, hint, "%s", err);
        }
        return r;
}

/* A restore: the snapshot's saved state of mount N (docs/internals.md,
 * "Mounts across snapshots"); the guest's FUSE mount is reattached to a server
 * rebuilt from it. Returns the open file or -1 after sup_fail(). */
static int open_saved_state(sup_mount *m)
{
        sup *s = m->all->s;
        _cleanup_free_ char *name = NULL, *path = NULL;
        if (asprintf(&name, SNAPDIR_FS_STATE_FMT, m->index) < 0 ||
            asprintf(&path, "%s/%s", s->cfg.snapshot_dir, name) < 0) {
                sup_fail(s, false, NULL, "out of memory");
                return -1;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                sup_fail(s, false, "take the snapshot again with this smolvm",
                         "mount %zu (%s at %s): the snapshot has no saved file server state %s: %s", m->index,
                         m->cfg->host, m->cfg->guest, path, strerror(errno));
        return fd;
}

static int mount_start_vsock(sup_mount *m)
{
        sup *s = m->all->s;
        _cleanup_free_ char *log_path = mount_log_path(m);
        _cleanup_close_ int state_fd = -1;
        char err[768];
        if (s->restoring && !s->cfg.fresh_mounts && (state_fd = open_saved_state(m)) < 0)
                return -ENOENT;
        int r = sup_vsockfs_start(s->loop, s->mux, (unsigned)m->index, m->cfg, state_fd, log_path, &m->vfs, err,
                                  sizeof(err));
        if (r < 0)
                sup_fail(s, false, NULL, "%s", err);
        return r;
}

/* "FSSTATE <mount index>\n" (docs/internals.md, "Hybrid vsock"): a snapshot
 * being taken (the VM is paused) asks for a vsock mount's server state; it is
 * written to DIR/fs-N.state and the answer is "OK <bytes>". */
static bool control_cb(void *userdata, const char *line, size_t len, char *answer, size_t answer_size)
{
        sup_mounts *all = userdata;
        char *end;
        if (strncmp(line, "FSSTATE ", 8) != 0)
                return false;
        unsigned long i = strtoul(line + 8, &end, 10);
        int r;
        if (end == line + 8 || *end != '\n' || i >= all->n || !all->m[i].vfs) {
                r = -ENOENT;
        } else {
                _cleanup_free_ char *path = sup_dir_pathf(all->s, VMDIR_FS_STATE_FMT, (size_t)i);
                char err[768];
                size_t bytes = 0;
                r = path ? sup_fsd_save_state(sup_vsockfs_fsd(all->m[i].vfs), path, &bytes, err, sizeof(err))
                         : -ENOMEM;
                if (r < 0)
                        sup_log("snapshot: %s", path ? err : "out of memory");
                else
                        snprintf(answer, answer_size, "OK %zu\n", bytes);
        }
        if (r < 0)
                snprintf(answer, answer_size, "ERR %d\n", -r);
        return true;
}

/* 1 once the guest mounted it, 0 while waiting, negative after sup_fail(). */
static int mount_vsock_state(sup_mount *m)
{
        char err[768];
        int r = sup_vsockfs_state(m->vfs, err, sizeof(err));
        if (r < 0) {
                char hint[PATH_MAX + 96];
                snprintf(hint, sizeof(hint), "see the guest console below and %s/" VMDIR_FSD_LOG_FMT,
                         m->all->s->vm_dir, m->index);
                sup_fail(m->all->s, true, hint, "%s", err);
        }
        return r;
}

static void mount_reap(sup_mount *m, uint64_t now)
{
        sup_fsd *f = mount_server(m);
        if (f && !m->exited && sup_fsd_poll(f) > 0) {
                char desc[8]; /* only the verdict is needed here */
                bool clean = sup_fsd_describe_exit(f, desc, sizeof(desc));
                m->exited = true;
                m->due_ms = now + (clean ? FSD_CLEAN_EXIT_GRACE_MS : 0);
        }
}

static void fsabort_done(void *userdata, int err, const char *msg)
{
        sup_mount *m = userdata;
        const sup_mount_cfg *c = m->cfg;
        char line[1024];

        if (err == 0)
                snprintf(line, sizeof(line),
                         "mount %zu (%s at %s): guest accesses to %s now fail with ENOTCONN (Transport endpoint "
                         "is not connected) instead of hanging: %s",
                         m->index, c->host, c->guest, c->guest, msg);
        else
                snprintf(line, sizeof(line),
                         "error: mount %zu (%s at %s): the guest could not abort the mount (%s)%s: guest accesses "
                         "to %s hang until the VM stops",
                         m->index, c->host, c->guest, msg,
                         err == -EOPNOTSUPP ? "; its smolvm-init predates fuse_abort: rebuild the image with "
                                              "`smolvm image build`"
                                            : "",
                         c->guest);
        sup_log("%s", line);
        sup_console_note(m->all->s->con, line);
}

/* Its server died. During boot the boot fails: the user asked for the mount
 * and would get a VM where it hangs. Afterwards the VM keeps running: we say
 * so (supervisor.log, and console.log, which `smolvm logs` shows) and send the
 * agent fuse_abort, which makes accesses to the mount fail: QEMU 7.2 never
 * fails the requests the guest sends to a back-end that went away, and cannot
 * be given a new one. Returns -1 after sup_fail() when the boot fails, else 0. */
static int mount_died(sup_mount *m)
{
        sup *s = m->all->s;
        const sup_mount_cfg *c = m->cfg;
        const char *id = sup_dir_id(s);
        sup_fsd *f = mount_server(m);
        char how[400], line[1536];
        int r;

        bool clean = sup_fsd_describe_exit(f, how, sizeof(how));
        if (!s->running) {
                sup_fail(s, false,
                         "the server must run as long as the VM: if something killed it (the OOM killer: see dmesg), "
                         "start the VM again",
                         "the %s for %s exited during boot (%s)", sup_fsd_what(f), sup_fsd_desc(f), how);
                return -1;
        }
        if (m->all->vsock) {
                /* No fence needed: its end of the stream closed with it, so the
                 * guest's relay saw EOF and closed /dev/fuse, aborting the FUSE
                 * connection; the mount stays, and every access to it gets
                 * ENOTCONN. A clean exit is the stream ending from the guest's
                 * side (someone unmounted it). */
                if (clean)
                        snprintf(line, sizeof(line),
                                 "%s: the guest closed its FUSE stream (it was unmounted in the guest); its "
                                 "server exited",
                                 sup_fsd_desc(f));
                else
                        snprintf(line, sizeof(line),
                                 "error: the %s for %s exited (%s); the guest's accesses to %s now fail with "
                                 "ENOTCONN (Transport endpoint is not connected). To serve %s again, restart "
                                 "the VM (smolvm stop %s; smolvm start %s; an ephemeral VM must be run again); "
                                 "the server's log: %s/" VMDIR_FSD_LOG_FMT,
                                 sup_fsd_what(f), sup_fsd_desc(f), how, c->guest, c->host, id, id, s->vm_dir,
                                 m->index);
                sup_log("%s", line);
                if (!clean)
                        sup_console_note(s->con, line);
                return 0;
        }
        snprintf(line, sizeof(line),
                 "error: the virtio-fs server for %s exited (%s); the guest is told to fail accesses to %s "
                 "(ENOTCONN) instead of hanging. To serve %s again, restart the VM (smolvm stop %s; smolvm "
                 "start %s; an ephemeral VM must be run again); the server's log: %s/" VMDIR_FSD_LOG_FMT,
                 sup_fsd_desc(f), how, c->guest, c->host, id, id, s->vm_dir, m->index);
        sup_log("%s", line);
        sup_console_note(s->con, line);
        r = sup_fsabort_start(s->loop, s->mux, c->guest, fsabort_done, m, &m->fsabort);
        if (r < 0) {
                char why[128];
                snprintf(why, sizeof(why), "cannot open a stream to the guest agent: %s", strerror(-r));
                fsabort_done(m, r, why);
        }
        return 0;
}

/* ---- the duty's hooks ---- */

static int mounts_create(sup *s, void **ret)
{
        if (s->cfg.n_mounts == 0)
                return 0; /* nothing to do: *ret stays NULL */
        sup_mounts *all = calloc(1, sizeof(*all));
        if (!all) {
                sup_fail(s, false, NULL, "out of memory");
                return -ENOMEM;
        }
        all->s = s;
        all->vsock = s->cfg.mounts_vsock;
        all->n = s->cfg.n_mounts;
        for (size_t i = 0; i < all->n; i++)
                all->m[i] = (sup_mount){ .all = all, .index = i, .cfg = &s->cfg.mounts[i] };
        *ret = all;
        return 0;
}

/* virtio-fs: every back-end started, then waited for (they set up in parallel). */
static int mounts_prepare(void *self, sup_vm_extra *x)
{
        sup_mounts *all = self;
        int r;

        if (all->vsock) /* no device, no kernel argument: served after HELLO */
                return sup_hvsock_add_control(all->s->hv, control_cb, all);
        for (size_t i = 0; i < all->n; i++)
                if ((r = mount_start_virtiofs(&all->m[i], x)) < 0)
                        return r;
        uint64_t deadline = now_ms() + SUP_FSD_READY_TIMEOUT_MS;
        for (size_t i = 0; i < all->n; i++)
                if ((r = mount_wait_virtiofs(&all->m[i], deadline)) < 0)
                        return r;
        return 0;
}

/* FUSE over vsock, between the guest's HELLO and the ready line, so that a
 * command run right after start sees the mounts: start all (the guest mounts
 * them in parallel), then wait for every answer. A mount the user asked for
 * missing fails the boot. */
static int mounts_guest_up(void *self, uint64_t now)
{
        sup_mounts *all = self;
        size_t n_ok = 0;
        int r;

        if (!all->vsock)
                return 1;
        if (!all->mounting) {
                all->mounting = true;
                all->mount_deadline_ms = now + SUP_VSOCKFS_MOUNT_TIMEOUT_MS + 1000;
                for (size_t i = 0; i < all->n; i++)
                        if ((r = mount_start_vsock(&all->m[i])) < 0)
                                return r;
        }
        for (size_t i = 0; i < all->n; i++) {
                r = mount_vsock_state(&all->m[i]);
                if (r < 0)
                        return r;
                n_ok += (size_t)r;
        }
        if (n_ok == all->n) {
                all->mounting = false;
                sup_log("%zu mount(s) served over vsock", n_ok);
                return 1;
        }
        /* The servers give up on their own at SUP_VSOCKFS_MOUNT_TIMEOUT_MS; this
         * is the backstop. */
        if (now >= all->mount_deadline_ms) {
                sup_fail(all->s, true, "see the guest console below",
                         "the guest agent did not mount the vsock mounts within %u s",
                         SUP_VSOCKFS_MOUNT_TIMEOUT_MS / 1000);
                return -ETIMEDOUT;
        }
        return 0;
}

static void mounts_reap(void *self, uint64_t now)
{
        sup_mounts *all = self;
        for (size_t i = 0; i < all->n; i++)
                mount_reap(&all->m[i], now);
}

static int mounts_step(void *self, uint64_t now)
{
        sup_mounts *all = self;
        for (size_t i = 0; i < all->n; i++) {
                sup_mount *m = &all->m[i];
                if (!m->exited || m->reported || now < m->due_ms)
                        continue;
                m->reported = true;
                if (mount_died(m) < 0)
                        return -EIO;
        }
        return 0;
}

static uint64_t mounts_deadline(const void *self)
{
        const sup_mounts *all = self;
        uint64_t until = all->mounting ? all->mount_deadline_ms : UINT64_MAX;
        for (size_t i = 0; i < all->n; i++)
                if (all->m[i].exited && !all->m[i].reported)
                        until = MIN(until, all->m[i].due_ms);
        return until;
}

static bool mounts_owns_pid(const void *self, pid_t pid)
{
        const sup_mounts *all = self;
        for (size_t i = 0; i < all->n; i++) {
                sup_fsd *f = mount_server(&all->m[i]);
                if (f && pid == sup_fsd_pid(f))
                        return true;
        }
        return false;
}

static void mounts_detach(void *self)
{
        sup_mounts *all = self;
        if (all->vsock && all->s->hv)
                sup_hvsock_remove_control(all->s->hv, all);
        for (size_t i = 0; i < all->n; i++) {
                sup_vsockfs_free(all->m[i].vfs); /* SIGKILL the server + reap: its stream ends */
                all->m[i].vfs = NULL;
                sup_fsabort_free(all->m[i].fsabort);
                all->m[i].fsabort = NULL;
        }
}

static void mounts_destroy(void *self)
{
        sup_mounts *all = self;
        mounts_detach(all); /* when the start failed half-way */
        for (size_t i = 0; i < all->n; i++) {
                sup_mount *m = &all->m[i];
                sup_fsd_free(m->fsd); /* SIGKILL the group + reap, removes fs-N.sock */
                free(m->socket_path);
                if (all->s->ephemeral) {
                        _cleanup_free_ char *p = mount_log_path(m);
                        (void)unlink(p);
                }
        }
        free(all);
}

const sup_duty_ops sup_mounts_duty = {
        .name = "mounts",
        .create = mounts_create,
        .prepare = mounts_prepare,
        .guest_up = mounts_guest_up,
        .reap = mounts_reap,
        .step = mounts_step,
        .deadline = mounts_deadline,
        .owns_pid = mounts_owns_pid,
        .detach = mounts_detach,
        .destroy = mounts_destroy,
};
