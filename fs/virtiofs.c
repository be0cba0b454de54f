/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user-fs device: queue processing on one worker thread. */
#include "virtiofs.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "util.h"
#include "vhost_user.h"
#include "virtqueue.h"

/* hiprio + request queues; QEMU 7.2 allows up to 1024 but more than a few gains
 * nothing with one worker. */
#define MAX_REQUEST_QUEUES 16u
#define MAX_QUEUES (1u + MAX_REQUEST_QUEUES)
/* Notify at least this often within a long batch so the guest can reap early. */
#define NOTIFY_BATCH 16u
/* How long the worker sleeps before it looks at its queues anyway: a lost kick
 * or interrupt (anyone's: guest, QEMU, us) would otherwise hang the guest's
 * file system for good, with nothing logged (a `git status` did once). */
#define WATCH_MS 1000

struct smolvm_virtiofs {
        smolvm_fs *fs;
        smolvm_vu_dev *dev;
        smolvm_virtiofs_config cfg;
        unsigned n_queues;

        /* Written on the loop thread only while the worker is stopped. */
        bool running[MAX_QUEUES];
        pthread_t worker;
        bool worker_alive;
        int stop_efd;

        /* Worker-owned while it runs. */
        bool dead[MAX_QUEUES];       /* the guest broke this ring; ignored until restarted */
        smolvm_vq_elem *elem;

        /* Relaxed atomics: read by get_stats from another thread. */
        uint64_t n_requests, n_dropped, n_notifies, n_stalled_kicks, n_stalled_calls;
        uint32_t n_broken_queues;
};

static void stat_add64(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }

/* Serve every available chain of queue q; false when the guest broke it. */
static bool process_queue(smolvm_virtiofs *vfs, unsigned q)
{
        smolvm_vq *vq = smolvm_vu_queue_vq(vfs->dev, q);
        smolvm_vq_elem *elem = vfs->elem;
        unsigned since_notify = 0;
        for (;;) {
                int r = smolvm_vq_pop(vq, elem);
                if (r < 0) {
                        /* Completed chains still get their interrupt. */
                        if (since_notify)
                                smolvm_vu_queue_notify(vfs->dev, q);
                        smolvm_vu_queue_report_error(vfs->dev, q);
                        __atomic_fetch_add(&vfs->n_broken_queues, 1, __ATOMIC_RELAXED);
                        /* Always said (once per queue: it is ignored from now on):
                         * the guest's requests on it will never be answered, and
                         * this line is all there is to tell why. */
                        fprintf(stderr, "virtiofs: queue %u broken, ignored until the guest resets it: %s\n", q,
                                vq->why);
                        return false;
                }
                if (r == 0) {
                        if (since_notify) {
                                if (smolvm_vu_queue_notify(vfs->dev, q))
                                        stat_add64(&vfs->n_notifies, 1);
                                since_notify = 0;
                        }
                        if (smolvm_vq_arm_kick(vq))
                                continue;
                        return true;
                }
                ssize_t n = smolvm_fs_handle(vfs->fs, elem->iov, (int)elem->n_rd,
                                             elem->iov + elem->n_rd, (int)elem->n_wr);
                if (n < 0) {
                        /* Malformed beyond answering: give the buffers back empty so
                         * the ring does not leak; only this guest request fails. */
                        stat_add64(&vfs->n_dropped, 1);
                        n = 0;
                }
                smolvm_vq_push(vq, elem, (uint32_t)MIN((size_t)n, (size_t)UINT32_MAX));
                stat_add64(&vfs->n_requests, 1);
                if (++since_notify >= NOTIFY_BATCH) {
                        if (smolvm_vu_queue_notify(vfs->dev, q))
                                stat_add64(&vfs->n_notifies, 1);
                        since_notify = 0;
                }
        }
}

static void drain_eventfd(int fd)
{
        uint64_t v;
        ssize_t n;
        do
                n = read(fd, &v, sizeof(v));
        while (n < 0 && errno == EINTR);
}

/* Said on the 1st, 2nd, 4th, 8th... time: a guest that keeps stalling cannot
 * flood the log, and one that stalled once is never silent. */
static bool log_this_one(uint64_t n)
{
        return (n & (n - 1)) == 0;
}

/* Every WATCH_MS, busy or not: look for stalled queues. pfd[i] polls queue
 * qidx[i]'s kick; a queue found broken is dropped from it. */
static void watch_queues(smolvm_virtiofs *vfs, struct pollfd *pfd, const unsigned *qidx, unsigned n)
{
        for (unsigned i = 1; i < n; i++) {
                unsigned q = qidx[i];
                if (vfs->dead[q])
                        continue;
                smolvm_vq *vq = smolvm_vu_queue_vq(vfs->dev, q);
                unsigned stall = smolvm_vq_check_stall(vq);
                if (stall & SMOLVM_VQ_STALL_CALL) {
                        uint64_t k = __atomic_add_fetch(&vfs->n_stalled_calls, 1, __ATOMIC_RELAXED);
                        if (log_this_one(k))
                                fprintf(stderr, "virtiofs: queue %u: the guest has not reaped answers for %d ms; "
                                        "interrupting it again (lost interrupt? %" PRIu64 " so far)\n", q, WATCH_MS, k);
                        smolvm_vu_queue_call(vfs->dev, q);
                }
                if (stall & SMOLVM_VQ_STALL_KICK) {
                        uint64_t k = __atomic_add_fetch(&vfs->n_stalled_kicks, 1, __ATOMIC_RELAXED);
                        if (log_this_one(k))
                                fprintf(stderr, "virtiofs: queue %u: requests waited %d ms without a kick; serving "
                                        "them (lost kick? %" PRIu64 " so far)\n", q, WATCH_MS, k);
                        if (!process_queue(vfs, q)) {
                                vfs->dead[q] = true;
                                pfd[i].fd = -1;
                        }
                }
        }
}

static void *worker_main(void *p)
{
        smolvm_virtiofs *vfs = p;
        struct pollfd pfd[1 + MAX_QUEUES];
        unsigned qidx[1 + MAX_QUEUES];
        unsigned n = 0;

        pfd[n++] = (struct pollfd){ .fd = vfs->stop_efd, .events = POLLIN };
        for (unsigned q = 0; q < vfs->n_queues; q++) {
                if (!vfs->running[q] || vfs->dead[q])
                        continue;
                qidx[n] = q;
                pfd[n++] = (struct pollfd){ .fd = smolvm_vu_queue_kick_fd(vfs->dev, q), .events = POLLIN };
        }
        /* vhost-user: a started ring is processed without waiting for a kick. */
        for (unsigned i = 1; i < n; i++)
                if (!process_queue(vfs, qidx[i])) {
                        vfs->dead[qidx[i]] = true;
                        pfd[i].fd = -1;
                }
        /* Looked at on a clock, not only when idle: a busy queue must not hide
         * a stalled one. */
        uint64_t next_watch_ms = now_ms() + WATCH_MS;
        for (;;) {
                uint64_t now = now_ms();
                if (now >= next_watch_ms) {
                        watch_queues(vfs, pfd, qidx, n);
                        next_watch_ms = now + WATCH_MS;
                }
                int r = poll(pfd, n, (int)(next_watch_ms - now));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        /* Never silently: every guest request from now on waits forever. */
                        fprintf(stderr, "virtiofs: the queue worker stopped: poll: %s\n", strerror(errno));
                        break;
                }
                if (r == 0)
                        continue;
                if (pfd[0].revents)
                        break;
                for (unsigned i = 1; i < n; i++) {
                        if (!pfd[i].revents)
                                continue;
                        if (pfd[i].revents & (POLLERR | POLLNVAL)) {
                                /* The queue is still looked at every WATCH_MS (watch_queues). */
                                fprintf(stderr, "virtiofs: queue %u: its kick eventfd failed (revents 0x%x); "
                                        "from now on only the once-a-second look serves it\n", qidx[i],
                                        (unsigned)pfd[i].revents);
                                pfd[i].fd = -1;
                                continue;
                        }
                        drain_eventfd(pfd[i].fd);
                        if (!process_queue(vfs, qidx[i])) {
                                vfs->dead[qidx[i]] = true;
                                pfd[i].fd = -1;
                        }
                }
        }
        return NULL;
}

static void worker_stop(smolvm_virtiofs *vfs)
{
        if (!vfs->worker_alive)
                return;
        uint64_t one = 1;
        if (write(vfs->stop_efd, &one, sizeof(one)) < 0) {
                /* The counter cannot overflow with one writer; nothing to recover. */
        }
        pthread_join(vfs->worker, NULL);
        vfs->worker_alive = false;
        drain_eventfd(vfs->stop_efd);
}

static void worker_start(smolvm_virtiofs *vfs)
{
        bool any = false;
        for (unsigned q = 0; q < vfs->n_queues; q++)
                any |= vfs->running[q];
        if (!any)
                return;
        /* Signals belong to the main thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int r = pthread_create(&vfs->worker, NULL, worker_main, vfs);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                if (vfs->cfg.broken)
                        vfs->cfg.broken(vfs->cfg.userdata, -r, "cannot start the queue worker thread");
                return;
        }
        vfs->worker_alive = true;
}

static void on_queue_start(void *userdata, unsigned q)
{
        smolvm_virtiofs *vfs = userdata;
        worker_stop(vfs);
        vfs->running[q] = true;
        vfs->dead[q] = false;
        worker_start(vfs);
}

static void on_queue_stop(void *userdata, unsigned q)
{
        smolvm_virtiofs *vfs = userdata;
        worker_stop(vfs);
        vfs->running[q] = false;
        worker_start(vfs);
}

static void on_broken(void *userdata, int err, const char *why)
{
        smolvm_virtiofs *vfs = userdata;
        if (vfs->cfg.broken)
                vfs->cfg.broken(vfs->cfg.userdata, err, why);
}

static void on_trace(void *userdata, uint32_t request, uint32_t flags, uint32_t size_bytes)
{
        fprintf(stderr, "vhost-user: request %u flags 0x%x size %u\n", request, flags, size_bytes);
}

int smolvm_virtiofs_new(smolvm_evloop *loop, int sock_fd, const smolvm_virtiofs_config *cfg,
                        smolvm_virtiofs **ret)
{
        if (!loop || sock_fd < 0 || !cfg || !cfg->fs || cfg->n_request_queues > MAX_REQUEST_QUEUES || !ret)
                return -EINVAL;
        smolvm_virtiofs *vfs = calloc(1, sizeof(*vfs));
        if (!vfs)
                return -ENOMEM;
        vfs->fs = cfg->fs;
        vfs->cfg = *cfg;
        vfs->n_queues = 1u + (cfg->n_request_queues ? cfg->n_request_queues : 1u);
        vfs->elem = malloc(sizeof(*vfs->elem));
        vfs->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!vfs->elem || vfs->stop_efd < 0) {
                int r = vfs->elem ? negative_errno() : -ENOMEM;
                smolvm_virtiofs_free(vfs);
                return r;
        }
        smolvm_vu_ops ops = {
                .features = (1ull << SMOLVM_VIRTIO_F_VERSION_1) | (1ull << SMOLVM_VIRTIO_F_INDIRECT_DESC) |
                            (1ull << SMOLVM_VIRTIO_F_EVENT_IDX),
                .protocol_features = (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_MQ) |
                                     (1ull << SMOLVM_VHOST_USER_PROTOCOL_F_REPLY_ACK),
                .n_queues = (uint16_t)vfs->n_queues,
                .max_queue_size = 1024,
                .queue_start = on_queue_start,
                .queue_stop = on_queue_stop,
                .broken = on_broken,
                .trace = cfg->trace ? on_trace : NULL,
        };
        int r = smolvm_vu_dev_new(loop, sock_fd, &ops, vfs, &vfs->dev);
        if (r < 0) {
                smolvm_virtiofs_free(vfs);
                return r;
        }
        *ret = vfs;
        return 0;
}

void smolvm_virtiofs_free(smolvm_virtiofs *vfs)
{
        if (!vfs)
                return;
        /* The core calls queue_stop for every running queue: the worker is gone
         * before guest memory is unmapped. */
        smolvm_vu_dev_free(vfs->dev);
        worker_stop(vfs);
        safe_close(vfs->stop_efd);
        free(vfs->elem);
        free(vfs);
}

void smolvm_virtiofs_get_stats(const smolvm_virtiofs *vfs, smolvm_virtiofs_stats *ret)
{
        *ret = (smolvm_virtiofs_stats){
                .n_requests = __atomic_load_n(&vfs->n_requests, __ATOMIC_RELAXED),
                .n_dropped = __atomic_load_n(&vfs->n_dropped, __ATOMIC_RELAXED),
                .n_notifies = __atomic_load_n(&vfs->n_notifies, __ATOMIC_RELAXED),
                .n_stalled_kicks = __atomic_load_n(&vfs->n_stalled_kicks, __ATOMIC_RELAXED),
                .n_stalled_calls = __atomic_load_n(&vfs->n_stalled_calls, __ATOMIC_RELAXED),
                .n_broken_queues = __atomic_load_n(&vfs->n_broken_queues, __ATOMIC_RELAXED),
        };
}
