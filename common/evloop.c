/* SPDX-License-Identifier: Apache-2.0 */
/* epoll event loop. Each watch is a heap object whose address is the epoll
 * cookie. Deleting a watch unhooks it from the fd table and epoll at once but
 * only marks the object dead: events already returned by epoll_wait for it in
 * the current batch are skipped, and the object is freed once no dispatch is
 * running (so a callback may delete any watch, even its own, or close the fd and
 * re-add a new watch on the same fd number). */
#include "evloop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "util.h"

#define EVLOOP_MAX_EVENTS 64

typedef struct watch {
        int fd;
        uint32_t events; /* as requested; 0 = not in the epoll set */
        bool dead;
        smolvm_ev_cb cb;
        void *userdata;
        struct watch *next_dead;
} watch;

struct smolvm_evloop {
        int epfd;
        watch **by_fd; /* indexed by fd */
        size_t n_by_fd;
        watch *dead;      /* deleted watches awaiting the end of the batch */
        unsigned depth;   /* nested run_once calls in progress */
};

int smolvm_evloop_new(smolvm_evloop **ret)
{
        smolvm_evloop *loop = calloc(1, sizeof(*loop));
        if (!loop)
                return -ENOMEM;
        loop->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (loop->epfd < 0) {
                int r = negative_errno();
                free(loop);
                return r;
        }
        *ret = loop;
        return 0;
}

static void free_dead(smolvm_evloop *loop)
{
        while (loop->dead) {
                watch *w = loop->dead;
                loop->dead = w->next_dead;
                free(w);
        }
}

void smolvm_evloop_free(smolvm_evloop *loop)
{
        if (!loop)
                return;
        for (size_t i = 0; i < loop->n_by_fd; i++)
                free(loop->by_fd[i]);
        free(loop->by_fd);
        free_dead(loop);
        safe_close(loop->epfd);
        free(loop);
}

static watch *lookup(const smolvm_evloop *loop, int fd)
{
        if (fd < 0 || (size_t)fd >= loop->n_by_fd)
                return NULL;
        return loop->by_fd[fd];
}

/* Move w to the epoll state matching new_events (0 = out of the epoll set, so a
 * silent watch does not even get EPOLLHUP/EPOLLERR, which epoll always reports). */
static int apply(smolvm_evloop *loop, watch *w, uint32_t new_events)
{
        struct epoll_event ev = { .events = new_events, .data.ptr = w };
        int op;

        if (w->events == 0 && new_events == 0)
                return 0;
        if (w->events == 0)
                op = EPOLL_CTL_ADD;
        else if (new_events == 0)
                op = EPOLL_CTL_DEL;
        else
                op = EPOLL_CTL_MOD;
        if (epoll_ctl(loop->epfd, op, w->fd, &ev) < 0)
                return negative_errno();
        w->events = new_events;
        return 0;
}

int smolvm_evloop_add(smolvm_evloop *loop, int fd, uint32_t events, smolvm_ev_cb cb, void *userdata)
{
        if (fd < 0 || !cb)
                return -EINVAL;
        if (lookup(loop, fd))
                return -EEXIST;
        if ((size_t)fd >= loop->n_by_fd) {
                size_t n = MAX((size_t)fd + 1, loop->n_by_fd * 2);
                n = MAX(n, (size_t)64);
                watch **nb = realloc(loop->by_fd, n * sizeof(*nb));
                if (!nb)
                        return -ENOMEM;
                for (size_t i = loop->n_by_fd; i < n; i++)
                        nb[i] = NULL;
                loop->by_fd = nb;
                loop->n_by_fd = n;
        }
        watch *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (watch){ .fd = fd, .cb = cb, .userdata = userdata };
        int r = apply(loop, w, events);
        if (r < 0) {
                free(w);
                return r;
        }
        loop->by_fd[fd] = w;
        return 0;
}

int smolvm_evloop_mod(smolvm_evloop *loop, int fd, uint32_t events)
{
        watch *w = lookup(loop, fd);
        if (!w)
                return -ENOENT;
        return apply(loop, w, events);
}

int smolvm_evloop_del(smolvm_evloop *loop, int fd)
{
        watch *w = lookup(loop, fd);
        if (!w)
                return -ENOENT;
        /* Failure here means the fd was already closed (EBADF) or is not in the
         * set: either way the kernel no longer reports it. */
        (void)apply(loop, w, 0);
        loop->by_fd[fd] = NULL;
        w->dead = true;
        if (loop->depth > 0) {
                w->next_dead = loop->dead;
                loop->dead = w;
        } else {
                free(w);
        }
        return 0;
}

int smolvm_evloop_run_once(smolvm_evloop *loop, int timeout_ms)
{
        struct epoll_event evs[EVLOOP_MAX_EVENTS];
        int n = epoll_wait(loop->epfd, evs, EVLOOP_MAX_EVENTS, timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : negative_errno();

        loop->depth++;
        int dispatched = 0;
        for (int i = 0; i < n; i++) {
                watch *w = evs[i].data.ptr;
                /* Skip watches deleted or silenced earlier in this batch, and
                 * interest dropped since epoll_wait returned. */
                if (w->dead || w->events == 0)
                        continue;
                uint32_t ev = evs[i].events & (w->events | EPOLLERR | EPOLLHUP);
                if (!ev)
                        continue;
                w->cb(w->userdata, w->fd, ev);
                dispatched++;
        }
        if (--loop->depth == 0)
                free_dead(loop);
        return dispatched;
}
