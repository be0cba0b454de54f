/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking libsmolvm calls that Ctrl-C can interrupt.
 *
 * Python runs signal handlers only on the main thread, between bytecodes. A
 * main thread blocked inside libsmolvm (a 60 s command, a boot under TCG) would
 * never see its KeyboardInterrupt. So from the main thread the call runs on a
 * helper thread (all signals blocked there, so SIGINT interrupts the waiter's
 * poll) and the main thread waits with the GIL released, running the handlers
 * every WAIT_TICK_MS. A handler that raises makes us write the call's cancel
 * eventfd: the library kills the command (exec, start and download take a
 * cancel fd) and returns -ECANCELED; we wait for that and raise the handler's
 * exception. Calls without a cancel fd are waited for, then the exception is
 * raised: no library call is ever abandoned half-way, so the handle and its
 * fds stay consistent.
 *
 * Neither signal.set_wakeup_fd() (one per process, asyncio's) nor a handler of
 * our own is touched. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "binding.h"

/* How often a waiting main thread runs signal handlers when no signal
 * interrupts its poll (one delivered to another thread only sets a flag). */
#define WAIT_TICK_MS 100

static unsigned long main_thread_ident;

int call_module_init(void)
{
        PyObject *threading = PyImport_ImportModule("threading");
        if (!threading)
                return -1;
        PyObject *main = PyObject_CallMethod(threading, "main_thread", NULL);
        Py_DECREF(threading);
        if (!main)
                return -1;
        PyObject *ident = PyObject_GetAttrString(main, "ident");
        Py_DECREF(main);
        if (!ident)
                return -1;
        main_thread_ident = PyLong_AsUnsignedLong(ident);
        Py_DECREF(ident);
        return PyErr_Occurred() ? -1 : 0;
}

bool in_main_thread(void)
{
        return PyThread_get_thread_ident() == main_thread_ident;
}

void eventfd_signal(int fd)
{
        uint64_t one = 1;
        /* EAGAIN only when the counter is about to overflow: it is readable then. */
        (void)!write(fd, &one, sizeof(one));
}

void eventfd_drain(int fd)
{
        uint64_t v;
        (void)!read(fd, &v, sizeof(v));
}

/* poll fd with the GIL released: > 0 readable, 0 tick passed, -1 interrupted. */
static int poll_once(int fd, int timeout_ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int k;
        Py_BEGIN_ALLOW_THREADS
        k = poll(&p, 1, timeout_ms);
        Py_END_ALLOW_THREADS
        return k;
}

int wait_readable(int fd)
{
        bool is_main = in_main_thread();
        for (;;) {
                int k = poll_once(fd, is_main ? WAIT_TICK_MS : -1);
                if (k > 0)
                        return 0;
                if (k < 0 && errno != EINTR) {
                        PyErr_SetFromErrno(PyExc_OSError);
                        return -1;
                }
                /* Elsewhere than the main thread this returns 0 and runs nothing. */
                if (PyErr_CheckSignals() < 0)
                        return -1;
        }
}

void wait_readable_uninterrupted(int fd)
{
        /* The fd is ours and valid: poll fails only with EINTR (or ENOMEM, when
         * retrying is all we can do anyway). */
        while (poll_once(fd, -1) <= 0)
                ;
}

typedef struct helper {
        call *c;
        int done_fd;
} helper;

static void *helper_main(void *p)
{
        helper *h = p;
        call *c = h->c;
        c->rc = c->fn(c);
        if (c->rc < 0)
                lib_err_save(&c->err, c->rc);
        eventfd_signal(h->done_fd);
        return NULL;
}

static int call_direct(call *c)
{
        c->cancel_fd = -1;
        Py_BEGIN_ALLOW_THREADS
        c->rc = c->fn(c);
        if (c->rc < 0)
                lib_err_save(&c->err, c->rc);
        Py_END_ALLOW_THREADS
        return 0;
}

int call_run(call *c)
{
        if (!in_main_thread())
                return call_direct(c);

        helper h = { .c = c, .done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
        c->cancel_fd = c->cancellable ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
        if (h.done_fd < 0 || (c->cancellable && c->cancel_fd < 0)) {
                PyErr_SetFromErrno(PyExc_OSError);
                goto fail;
        }
        /* The helper blocks every signal: a SIGINT then goes to a thread that
         * can take it, and interrupts our poll when that is us. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_t t;
        int e = pthread_create(&t, NULL, helper_main, &h);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0) {
                errno = e;
                PyErr_SetFromErrno(PyExc_OSError);
                goto fail;
        }
        int r = wait_readable(h.done_fd);
        if (r < 0) {
                if (c->cancel_fd >= 0)
                        eventfd_signal(c->cancel_fd);
                wait_readable_uninterrupted(h.done_fd);
        }
        pthread_join(t, NULL);
        close(h.done_fd);
        if (c->cancel_fd >= 0)
                close(c->cancel_fd);
        c->cancel_fd = -1;
        return r;
fail:
        if (h.done_fd >= 0)
                close(h.done_fd);
        if (c->cancel_fd >= 0)
                close(c->cancel_fd);
        c->cancel_fd = -1;
        return -1;
}
