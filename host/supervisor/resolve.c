/* SPDX-License-Identifier: Apache-2.0 */
/* Host name lookups off the event loop (resolve.h). */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static atomic_uint in_flight;

typedef struct job {
        int fd; /* the thread's end of the pair */
        char name[];
} job;

static void *lookup(void *arg)
{
        job *j = arg;
        sup_resolve_result r = { 0 };
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
        r.status = getaddrinfo(j->name, NULL, &hints, &res);
        if (r.status == 0) {
                for (struct addrinfo *a = res; a && r.n < SUP_RESOLVE_ADDRS; a = a->ai_next)
                        if (a->ai_addrlen <= sizeof(r.addrs[0]))
                                memcpy(&r.addrs[r.n++], a->ai_addr, a->ai_addrlen);
                freeaddrinfo(res);
        }
        /* One message (SEQPACKET); nobody reading (cancelled): EPIPE, ignored. */
        (void)!send(j->fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
        safe_close(j->fd);
        free(j);
        atomic_fetch_sub(&in_flight, 1);
        return NULL;
}

int sup_resolve_start(const char *name)
{
        if (atomic_fetch_add(&in_flight, 1) >= SUP_RESOLVE_MAX) {
                atomic_fetch_sub(&in_flight, 1);
                return -EAGAIN;
        }
        int r;
        size_t len = strlen(name);
        job *j = malloc(sizeof(*j) + len + 1);
        int sv[2] = { -1, -1 };
        if (!j) {
                r = -ENOMEM;
                goto fail;
        }
        memcpy(j->name, name, len + 1);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
                r = negative_errno();
                goto fail;
        }
        j->fd = sv[1];
        /* The loop's signals (signalfd) stay blocked in the lookup's thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = thread_start_detached(lookup, j);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                goto fail;
        return sv[0];
fail:
        safe_close(sv[0]);
        safe_close(sv[1]);
        free(j);
        atomic_fetch_sub(&in_flight, 1);
        return r;
}

int sup_resolve_read(int fd, sup_resolve_result *ret)
{
        ssize_t n = recv(fd, ret, sizeof(*ret), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return -EAGAIN;
        if (n != (ssize_t)sizeof(*ret) || ret->n > SUP_RESOLVE_ADDRS)
                return -EIO;
        return 0;
}

unsigned sup_resolve_in_flight(void)
{
        return atomic_load(&in_flight);
}
