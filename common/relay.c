/* SPDX-License-Identifier: Apache-2.0 */
/* Two-way bounded socket relay (relay.h). */
#include "relay.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

int smolvm_relay_init(smolvm_relay *r, int fd_a, int fd_b)
{
        *r = (smolvm_relay){ .fd = { fd_a, fd_b } };
        for (int i = 0; i < 2; i++) {
                r->dir[i].buf = malloc(SMOLVM_RELAY_BUF);
                if (!r->dir[i].buf) {
                        smolvm_relay_done(r);
                        return -ENOMEM;
                }
        }
        return 0;
}

/* One direction: src -> dst. Returns 1 when finished, 0 when waiting, < 0. */
static int dir_step(smolvm_relay_dir *d, int src, int dst)
{
        for (;;) {
                if (d->len > 0) {
                        ssize_t n = send(dst, d->buf + d->off, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                return 0;
                        if (n < 0)
                                return negative_errno();
                        d->off += (size_t)n;
                        d->len -= (size_t)n;
                        d->n_bytes += (uint64_t)n;
                        continue;
                }
                if (d->eof) {
                        if (!d->shut) {
                                /* ENOTCONN: the destination is gone already; the other
                                 * direction will say so if it matters. */
                                if (shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN)
                                        return negative_errno();
                                d->shut = true;
                        }
                        return 1;
                }
                ssize_t n = recv(src, d->buf, SMOLVM_RELAY_BUF, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        d->eof = true;
                d->off = 0;
                d->len = (size_t)n;
        }
}

int smolvm_relay_step(smolvm_relay *r)
{
        int done = 0;
        for (int i = 0; i < 2; i++) {
                int k = dir_step(&r->dir[i], r->fd[i], r->fd[1 - i]);
                if (k < 0)
                        return k;
                done += k;
        }
        return done == 2;
}

uint32_t smolvm_relay_events(const smolvm_relay *r, int i)
{
        const smolvm_relay_dir *in = &r->dir[i], *out = &r->dir[1 - i];
        uint32_t ev = 0;
        if (in->len == 0 && !in->eof)
                ev |= POLLIN;
        if (out->len > 0)
                ev |= POLLOUT;
        return ev;
}

void smolvm_relay_done(smolvm_relay *r)
{
        if (!r)
                return;
        for (int i = 0; i < 2; i++) {
                free(r->dir[i].buf);
                r->dir[i].buf = NULL;
        }
}
