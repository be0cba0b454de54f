/* SPDX-License-Identifier: Apache-2.0 */
/* An agent operation on the event loop (agent_client_loop.h). */
#include "agent_client_loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>

#include "agent_client_io.h"
#include "util.h"

struct smolvm_agent_loop_call {
        smolvm_evloop *loop;
        int fd;            /* the stream, -1 once closed or taken */
        int timer_fd;      /* -1 when none */
        uint32_t watching; /* epoll events the fd's watch has */
        bool ended;        /* done was called (or is being called) */
        bool freed;        /* _free() came from a callback: free when it returns */
        unsigned depth;    /* callbacks of ours running */
        smolvm_agent_client cl;
        smolvm_agent_loop_ops ops;
        void *userdata;
};

static void unwatch(smolvm_agent_loop_call *call)
{
        if (call->fd >= 0 && call->watching)
                (void)smolvm_evloop_del(call->loop, call->fd);
        call->watching = 0;
        if (call->timer_fd >= 0) {
                (void)smolvm_evloop_del(call->loop, call->timer_fd);
                call->timer_fd = safe_close(call->timer_fd);
        }
}

static void really_free(smolvm_agent_loop_call *call)
{
        unwatch(call);
        safe_close(call->fd);
        smolvm_agent_client_done(&call->cl);
        free(call);
}

void smolvm_agent_loop_call_free(smolvm_agent_loop_call *call)
{
        if (!call)
                return;
        if (call->depth > 0) {
                call->freed = true;
                return;
        }
        really_free(call);
}

int smolvm_agent_loop_call_take_fd(smolvm_agent_loop_call *call)
{
        if (call->fd < 0)
                return -1;
        if (call->watching)
                (void)smolvm_evloop_del(call->loop, call->fd);
        call->watching = 0;
        return TAKE_FD(call->fd);
}

static void end(smolvm_agent_loop_call *call, int err, const char *why)
{
        if (call->ended)
                return;
        call->ended = true;
        unwatch(call);
        call->fd = safe_close(call->fd);
        if (call->ops.done)
                call->ops.done(call->userdata, err, why);
}

/* Deliver what the client has, then watch for what it needs next. */
static void pump(smolvm_agent_loop_call *call)
{
        smolvm_agent_event ev;
        int r = 0;
        while (!call->freed && !call->ended && (r = smolvm_agent_client_next(&call->cl, &ev)) > 0) {
                if (call->ops.event)
                        call->ops.event(call->userdata, &ev);
                if (ev.kind == SMOLVM_AGENT_EV_ERROR) {
                        end(call, ev.error, ev.message);
                        return;
                }
        }
        if (call->freed || call->ended)
                return;
        if (r < 0 || smolvm_agent_client_finished(&call->cl)) {
                end(call, r < 0 ? r : 0, smolvm_agent_client_why(&call->cl));
                return;
        }
        size_t tx_len, rx_len;
        (void)smolvm_agent_client_tx_buf(&call->cl, &tx_len);
        (void)smolvm_agent_client_rx_buf(&call->cl, &rx_len);
        uint32_t want = (tx_len ? EPOLLOUT : 0) | (rx_len ? EPOLLIN : 0);
        if (call->fd >= 0 && call->watching && want != call->watching) {
                /* 0 takes the fd out of the epoll set: a hang-up then waits for
                 * the client to want something, which it always does here. */
                r = smolvm_evloop_mod(call->loop, call->fd, want);
                if (r < 0) {
                        end(call, r, "epoll_ctl on the guest agent's stream");
                        return;
                }
                call->watching = want;
        }
}

static void fd_cb(void *userdata, int fd, uint32_t events)
{
        smolvm_agent_loop_call *call = userdata;
        call->depth++;
        int r = 0;
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                r = smolvm_agent_client_write(&call->cl, fd);
        if (r == 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                r = smolvm_agent_client_read(&call->cl, fd);
        pump(call);
        if (--call->depth == 0 && call->freed)
                really_free(call);
}

static void timer_cb(void *userdata, int fd, uint32_t events)
{
        smolvm_agent_loop_call *call = userdata;
        call->depth++;
        smolvm_agent_client_fail(&call->cl, -ETIMEDOUT, "the guest agent did not answer in time");
        pump(call);
        if (--call->depth == 0 && call->freed)
                really_free(call);
}

int smolvm_agent_loop_call_send(smolvm_agent_loop_call *call, uint16_t type, const void *payload, uint32_t len)
{
        if (call->ended)
                return -EPIPE;
        int r = smolvm_agent_client_send(&call->cl, type, payload, len);
        if (r < 0 || call->depth > 0)
                return r; /* from a callback: pump() runs when it returns */
        /* From outside: arm EPOLLOUT now. done may run (and free the call) in there. */
        call->depth++;
        pump(call);
        if (--call->depth == 0 && call->freed)
                really_free(call);
        return 0;
}

int smolvm_agent_loop_call_start(smolvm_evloop *loop, int fd, smolvm_agent_reply reply, uint32_t max_answer_bytes,
                                 const char *request, size_t request_len, uint32_t timeout_ms,
                                 const smolvm_agent_loop_ops *ops, void *userdata, smolvm_agent_loop_call **ret)
{
        smolvm_agent_loop_call *call = calloc(1, sizeof(*call));
        if (!call) {
                safe_close(fd);
                return -ENOMEM;
        }
        *call = (smolvm_agent_loop_call){ .loop = loop, .fd = fd, .timer_fd = -1, .ops = *ops, .userdata = userdata };
        int r = smolvm_agent_client_init(&call->cl, reply, max_answer_bytes);
        if (r == 0)
                r = smolvm_agent_client_request(&call->cl, request, request_len);
        if (r == 0 && timeout_ms) {
                call->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
                struct itimerspec its = { .it_value = { .tv_sec = timeout_ms / 1000u,
                                                        .tv_nsec = (long)(timeout_ms % 1000u) * 1000000L } };
                if (call->timer_fd < 0 || timerfd_settime(call->timer_fd, 0, &its, NULL) < 0)
                        r = negative_errno();
                if (r == 0)
                        r = smolvm_evloop_add(loop, call->timer_fd, EPOLLIN, timer_cb, call);
                if (r < 0)
                        call->timer_fd = safe_close(call->timer_fd);
        }
        if (r == 0) {
                r = smolvm_evloop_add(loop, fd, EPOLLOUT | EPOLLIN, fd_cb, call);
                if (r == 0)
                        call->watching = EPOLLOUT | EPOLLIN;
        }
        if (r < 0) {
                really_free(call);
                return r;
        }
        *ret = call;
        return 0;
}
