/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of common/util.c: errbuf_fail (the message and the code, a
 * NULL or empty buffer left alone) and thread_start_detached (the function
 * runs with its argument, in a thread that is detached). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "util.h"

START_TEST(test_errbuf_fail)
{
        char err[16];
        ck_assert_int_eq(errbuf_fail(-ENOENT, err, sizeof(err), "open %s: %d", "x", 7), -ENOENT);
        ck_assert_str_eq(err, "open x: 7");
        /* Cut to the buffer, still terminated. */
        ck_assert_int_eq(errbuf_fail(-EIO, err, sizeof(err), "%s", "a message longer than sixteen"), -EIO);
        ck_assert_str_eq(err, "a message longe");
        /* No buffer, or none of it: nothing written, the code all the same. */
        ck_assert_int_eq(errbuf_fail(-EINVAL, NULL, 100, "x"), -EINVAL);
        err[0] = '#';
        ck_assert_int_eq(errbuf_fail(3, err, 0, "y"), 3);
        ck_assert_int_eq(err[0], '#');
}
END_TEST

typedef struct probe {
        int pipe_w;
        int value;
} probe;

/* Tells the test, through the pipe, whether this thread is detached. */
static void *report(void *arg)
{
        probe *p = arg;
        pthread_attr_t a;
        int state = -1;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
                (void)pthread_attr_getdetachstate(&a, &state);
                pthread_attr_destroy(&a);
        }
        int msg[2] = { p->value, state };
        (void)!write(p->pipe_w, msg, sizeof(msg));
        return NULL;
}

START_TEST(test_thread_start_detached)
{
        int fds[2];
        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        probe p = { .pipe_w = fds[1], .value = 42 };
        ck_assert_int_eq(thread_start_detached(report, &p), 0);
        int msg[2];
        ck_assert_int_eq(read(fds[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
        ck_assert_int_eq(msg[0], 42);
        ck_assert_int_eq(msg[1], PTHREAD_CREATE_DETACHED);
        safe_close(fds[0]);
        safe_close(fds[1]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("util");
        tcase_add_test(tc, test_errbuf_fail);
        tcase_add_test(tc, test_thread_start_detached);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
