/* SPDX-License-Identifier: Apache-2.0 */
/* The lane duty (lane_duty.h). */
#include "lane_duty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dir.h"
#include "lane_io.h"
#include "log.h"
#include "sup.h"
#include "util.h"
#include "vmdir.h"

typedef struct sup_lane {
        sup *s;
        char *path;
        int fd;                  /* connected to QEMU's -netdev stream, or -1 */
        smolvm_lane_host *host;
        uint32_t events;
        smolvm_mux *mux;         /* the channel the lane was started on */
        bool off;                /* no device for this run (lane_prepare) */
        int failed;              /* a negative errno once the lane broke */
        const char *why;
        uint64_t n_starts;
        uint64_t sent_before; /* bytes carried by earlier lanes (before a restart) */
} sup_lane;

static void lane_fail(sup_lane *l, int err, const char *why)
{
        if (l->failed)
                return;
        l->failed = err;
        l->why = why;
        sup_log("lane: %s (%s)", why, strerror(-err));
}

static void lane_close(sup_lane *l)
{
        if (l->fd < 0)
                return;
        sup_log("lane: %llu bytes carried to the guest (%llu lane starts, %llu frames from the guest dropped)",
                (unsigned long long)(l->sent_before + smolvm_lane_host_sent(l->host)), (unsigned long long)l->n_starts,
                (unsigned long long)smolvm_lane_host_dropped(l->host));
        (void)smolvm_evloop_del(l->s->loop, l->fd);
        l->fd = safe_close(l->fd);
}

/* A write failed: QEMU gone (its exit is boot.c's to report), or a real error. */
static void lane_io_error(sup_lane *l, int err)
{
        if (err == -EPIPE || err == -ECONNRESET)
                lane_close(l);
        else
                lane_fail(l, err, "writing to QEMU's lane socket failed");
}

static void lane_update_events(sup_lane *l)
{
        if (l->fd < 0 || l->failed)
                return;
        uint32_t ev = EPOLLIN | (smolvm_lane_host_blocked(l->host) ? EPOLLOUT : 0);
        if (ev == l->events)
                return;
        int r = smolvm_evloop_mod(l->s->loop, l->fd, ev);
        if (r < 0) {
                lane_fail(l, r, "cannot watch the lane socket");
                return;
        }
        l->events = ev;
}

/* smolvm_mux_lane.send: frames through lane_io, then watch EPOLLOUT while a
 * frame is half-written. */
static ssize_t lane_send(void *userdata, const struct iovec *iov, int n)
{
        sup_lane *l = userdata;
        if (l->failed)
                return l->failed;
        if (l->fd < 0)
                return -EPIPE; /* QEMU went away: so does the channel */
        ssize_t w = smolvm_lane_host_send(l->host, iov, n);
        if (w < 0 && w != -EAGAIN)
                lane_io_error(l, (int)w);
        lane_update_events(l);
        return w;
}

static void lane_io(void *userdata, int fd, uint32_t events)
{
        (void)fd;
        sup_lane *l = userdata;
        int kick = 0, r = 0;
        if (l->failed)
                return;
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                r = smolvm_lane_host_on_readable(l->host);
                if (r == -ECONNRESET) {
                        /* QEMU is going away (a poweroff, a stop): boot.c sees
                         * its exit; nothing more will go this way. */
                        lane_close(l);
                        return;
                }
                if (r < 0) {
                        lane_fail(l, r, r == -EPROTO ? "the guest acknowledged bytes it was never sent"
                                                     : "reading QEMU's lane socket failed");
                        return;
                }
                kick |= r;
        }
        if (events & EPOLLOUT) {
                r = smolvm_lane_host_on_writable(l->host);
                if (r < 0) {
                        lane_io_error(l, r);
                        return;
                }
                kick |= r;
        }
        if (kick && l->s->mux == l->mux)
                smolvm_mux_lane_kick(l->mux);
        lane_update_events(l);
}

/* A restore connected before the state loaded (qemu.c); a boot connects now
 * (the guest sends nothing on the lane before LANE_ON). */
static int lane_connect(sup_lane *l)
{
        sup *s = l->s;
        _cleanup_close_ int fd = sup_vmm_take_lane_fd(s->vmm);
        if (fd < 0)
                fd = sup_vmm_connect(s->vmm, l->path);
        if (fd < 0)
                return fd;
        int r = fd_set_nonblock(fd, true);
        if (r < 0)
                return r;
        /* Room for a window of frames in the kernel, not in our process. */
        int sz = 4 << 20;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        r = smolvm_lane_host_new(fd, &l->host);
        if (r < 0)
                return r;
        r = smolvm_evloop_add(s->loop, fd, EPOLLIN, lane_io, l);
        if (r < 0) {
                smolvm_lane_host_free(TAKE_PTR(l->host));
                return r;
        }
        l->events = EPOLLIN;
        l->fd = TAKE_FD(fd);
        return 0;
}

void sup_lane_request(sup *s, uint64_t epoch, uint32_t window)
{
        sup_lane *l = s->lane;
        if (!l || l->off || l->failed || !s->mux)
                return;
        if (l->fd < 0) {
                int r = lane_connect(l);
                if (r < 0) {
                        /* No lane: the channel carries everything, as without the device. */
                        lane_fail(l, r, "connecting to QEMU's lane socket failed; staying on the channel");
                        return;
                }
        }
        /* A new channel (a restore's) starts a new lane; a frame of the old one
         * still half-written goes out first and the guest drops it (old epoch). */
        l->sent_before += smolvm_lane_host_sent(l->host);
        smolvm_lane_host_start(l->host, epoch, window);
        smolvm_mux_lane lane = { .send = lane_send, .fd = -1, .userdata = l };
        int r = smolvm_mux_lane_start(s->mux, epoch, &lane);
        if (r < 0) {
                sup_log("lane: starting it on the channel: %s", strerror(-r));
                return;
        }
        l->mux = s->mux;
        l->n_starts++;
        sup_log("lane: on (epoch %016llx, window %u)", (unsigned long long)epoch, window);
}

/* ---- the duty ---- */

static int lane_create(sup *s, void **ret)
{
        sup_lane *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->s = s;
        l->fd = -1;
        l->path = sup_dir_path(s, VMDIR_LANE);
        if (!l->path) {
                free(l);
                return -ENOMEM;
        }
        s->lane = l;
        *ret = l;
        return 0;
}

static int lane_prepare(void *self, sup_vm_extra *x)
{
        sup_lane *l = self;
        sup *s = l->s;
        /* A restore has the device exactly when its snapshot had it (its
         * guest's kernel knows the devices it probed at boot, and no more:
         * the restore config says, from the snapshot record); SMOLVM_NO_LANE
         * (benchmarks, tests) leaves it out of a boot. */
        if (s->restoring ? !s->cfg.snapshot_lane : getenv("SMOLVM_NO_LANE") != NULL) {
                sup_log("lane: off (%s)", s->restoring ? "the snapshot was taken without the lane's device"
                                                       : "SMOLVM_NO_LANE is set");
                l->off = true;
                return 0;
        }
        /* QEMU listens there; one a killed run left would make it fail. */
        (void)unlink(l->path);
        x->lane_path = l->path;
        return 0;
}

/* A lane that broke after it carried bytes leaves the guest without them. */
static int lane_step(void *self, uint64_t now_ms)
{
        (void)now_ms;
        sup_lane *l = self;
        if (!l->failed || !l->mux)
                return 0;
        sup_fail(l->s, false, NULL, "the lane to the guest broke: %s (%s)", l->why, strerror(-l->failed));
        return l->failed;
}

static void lane_detach(void *self)
{
        sup_lane *l = self;
        lane_close(l);
        l->mux = NULL;
}

static void lane_destroy(void *self)
{
        sup_lane *l = self;
        if (!l)
                return;
        lane_detach(l);
        smolvm_lane_host_free(l->host);
        if (l->s->lane == l)
                l->s->lane = NULL;
        if (l->path)
                (void)unlink(l->path);
        free(l->path);
        free(l);
}

const sup_duty_ops sup_lane_duty = {
        .name = "lane",
        .create = lane_create,
        .prepare = lane_prepare,
        .step = lane_step,
        .detach = lane_detach,
        .destroy = lane_destroy,
};
