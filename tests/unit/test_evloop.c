/* SPDX-License-Identifier: Apache-2.0 */
/* epoll loop (common/evloop.c): dispatch and the add/mod/del-during-dispatch rules. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "check_main.h"
#include "evloop.h"
#include "util.h"

typedef struct ctx {
        smolvm_evloop *loop;
        int calls;
        uint32_t last_events;
        int fd_to_del;       /* deleted (and closed) by the callback, -1 = none */
        bool del_self;
        int pipe_to_add[2];  /* after del_self: re-add this read end */
        struct ctx *add_ctx;
} ctx;

static void cb(void *userdata, int fd, uint32_t events)
{
        ctx *c = userdata;
        c->calls++;
        c->last_events = events;
        if (c->fd_to_del >= 0) {
                ck_assert_int_eq(smolvm_evloop_del(c->loop, c->fd_to_del), 0);
                c->fd_to_del = -1;
        }
        if (c->del_self) {
                c->del_self = false;
                ck_assert_int_eq(smolvm_evloop_del(c->loop, fd), 0);
                safe_close(fd);
                if (c->add_ctx) {
                        /* pipe() returns the lowest free fd: very likely the number we
                         * just closed, which is the case the loop must get right. */
                        ck_assert_int_eq(pipe2(c->pipe_to_add, O_CLOEXEC), 0);
                        ck_assert_int_eq(smolvm_evloop_add(c->loop, c->pipe_to_add[0], EPOLLIN, cb, c->add_ctx), 0);
                }
        }
}

static ctx new_ctx(smolvm_evloop *loop)
{
        return (ctx){ .loop = loop, .fd_to_del = -1, .pipe_to_add = { -1, -1 } };
}

START_TEST(test_basic)
{
        smolvm_evloop *loop;
        ck_assert_int_eq(smolvm_evloop_new(&loop), 0);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        ctx c = new_ctx(loop);
        ck_assert_int_eq(smolvm_evloop_add(loop, p[0], EPOLLIN, cb, &c), 0);
        ck_assert_int_eq(smolvm_evloop_add(loop, p[0], EPOLLIN, cb, &c), -EEXIST);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 0);
        ck_assert_int_eq(c.calls, 0);
        ck_assert_int_eq(write(p[1], "x", 1), 1);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 1000), 1);
        ck_assert_int_eq(c.calls, 1);
        ck_assert_uint_eq(c.last_events & EPOLLIN, EPOLLIN);
        /* Level-triggered: still readable. */
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 1);
        ck_assert_int_eq(smolvm_evloop_del(loop, p[0]), 0);
        ck_assert_int_eq(smolvm_evloop_del(loop, p[0]), -ENOENT);
        ck_assert_int_eq(smolvm_evloop_mod(loop, p[0], EPOLLIN), -ENOENT);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 0);
        ck_assert_int_eq(c.calls, 2);
        safe_close(p[0]);
        safe_close(p[1]);
        smolvm_evloop_free(loop);
}
END_TEST

/* A zero mask keeps the watch but silences it, even for EPOLLHUP. */
START_TEST(test_mod_silent)
{
        smolvm_evloop *loop;
        ck_assert_int_eq(smolvm_evloop_new(&loop), 0);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        ctx c = new_ctx(loop);
        ck_assert_int_eq(smolvm_evloop_add(loop, p[0], 0, cb, &c), 0);
        safe_close(p[1]); /* read end now reports EPOLLHUP */
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 0);
        ck_assert_int_eq(smolvm_evloop_mod(loop, p[0], EPOLLIN), 0);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 1);
        ck_assert_uint_ne(c.last_events & EPOLLHUP, 0);
        ck_assert_int_eq(smolvm_evloop_mod(loop, p[0], 0), 0);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 0);
        ck_assert_int_eq(c.calls, 1);
        ck_assert_int_eq(smolvm_evloop_add(loop, p[0], EPOLLIN, cb, &c), -EEXIST);
        ck_assert_int_eq(smolvm_evloop_del(loop, p[0]), 0);
        safe_close(p[0]);
        smolvm_evloop_free(loop);
}
END_TEST

/* Two ready watches; whichever runs first deletes the other: exactly one call. */
START_TEST(test_delete_other_in_batch)
{
        smolvm_evloop *loop;
        ck_assert_int_eq(smolvm_evloop_new(&loop), 0);
        int a[2], b[2];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
        ck_assert_int_eq(pipe2(b, O_CLOEXEC | O_NONBLOCK), 0);
        ctx ca = new_ctx(loop), cbb = new_ctx(loop);
        ca.fd_to_del = b[0];
        cbb.fd_to_del = a[0];
        ck_assert_int_eq(smolvm_evloop_add(loop, a[0], EPOLLIN, cb, &ca), 0);
        ck_assert_int_eq(smolvm_evloop_add(loop, b[0], EPOLLIN, cb, &cbb), 0);
        ck_assert_int_eq(write(a[1], "x", 1), 1);
        ck_assert_int_eq(write(b[1], "x", 1), 1);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 1000), 1);
        ck_assert_int_eq(ca.calls + cbb.calls, 1);
        int survivor = ca.calls ? a[0] : b[0];
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 1);
        ck_assert_int_eq(ca.calls + cbb.calls, 2);
        ck_assert_int_eq(smolvm_evloop_del(loop, survivor), 0);
        for (int i = 0; i < 2; i++) {
                safe_close(a[i]);
                safe_close(b[i]);
        }
        smolvm_evloop_free(loop);
}
END_TEST

/* A callback deletes its own watch, closes the fd, and adds a new watch that
 * probably gets the same fd number; the new watch must not inherit events. */
START_TEST(test_delete_self_and_readd)
{
        smolvm_evloop *loop;
        ck_assert_int_eq(smolvm_evloop_new(&loop), 0);
        int a[2];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
        ctx c = new_ctx(loop), c2 = new_ctx(loop);
        c.del_self = true;
        c.add_ctx = &c2;
        ck_assert_int_eq(smolvm_evloop_add(loop, a[0], EPOLLIN, cb, &c), 0);
        ck_assert_int_eq(write(a[1], "x", 1), 1);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 1000), 1);
        ck_assert_int_eq(c.calls, 1);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 0);
        ck_assert_int_eq(c2.calls, 0);
        ck_assert_int_eq(write(c.pipe_to_add[1], "y", 1), 1);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 1000), 1);
        ck_assert_int_eq(c2.calls, 1);
        ck_assert_int_eq(c.calls, 1);
        ck_assert_int_eq(smolvm_evloop_del(loop, c.pipe_to_add[0]), 0);
        safe_close(c.pipe_to_add[0]);
        safe_close(c.pipe_to_add[1]);
        safe_close(a[1]);
        smolvm_evloop_free(loop);
}
END_TEST

static void drain_once_cb(void *userdata, int fd, uint32_t events)
{
        ctx *c = userdata;
        char ch;
        c->calls++;
        ck_assert_int_eq(read(fd, &ch, 1), 1);
        ck_assert_int_eq(smolvm_evloop_mod(c->loop, fd, 0), 0);
}

/* More ready fds than one epoll_wait batch: each is dispatched exactly once. */
START_TEST(test_many_fds)
{
        smolvm_evloop *loop;
        ck_assert_int_eq(smolvm_evloop_new(&loop), 0);
        enum { N = 150 };
        int p[N][2];
        ctx c = new_ctx(loop);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(pipe2(p[i], O_CLOEXEC | O_NONBLOCK), 0);
                ck_assert_int_eq(smolvm_evloop_add(loop, p[i][0], EPOLLIN, drain_once_cb, &c), 0);
                ck_assert_int_eq(write(p[i][1], "x", 1), 1);
        }
        int total = 0, rounds = 0;
        while (total < N && rounds++ < 10) {
                int n = smolvm_evloop_run_once(loop, 1000);
                ck_assert_int_gt(n, 0);
                total += n;
        }
        ck_assert_int_eq(total, N);
        ck_assert_int_eq(c.calls, N);
        ck_assert_int_eq(smolvm_evloop_run_once(loop, 0), 0);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(smolvm_evloop_del(loop, p[i][0]), 0);
                safe_close(p[i][0]);
                safe_close(p[i][1]);
        }
        smolvm_evloop_free(loop);
}
END_TEST

static Suite *evloop_suite(void)
{
        Suite *s = suite_create("evloop");
        TCase *tc = tcase_create("loop");
        tcase_add_test(tc, test_basic);
        tcase_add_test(tc, test_mod_silent);
        tcase_add_test(tc, test_delete_other_in_batch);
        tcase_add_test(tc, test_delete_self_and_readd);
        tcase_add_test(tc, test_many_fds);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(evloop_suite());
}
