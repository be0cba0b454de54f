/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm._smolvm.Exec: a command whose output Python reads as it comes.
 *
 * smolvm_exec() is a blocking call with callbacks; an iterator needs the
 * opposite, so the call runs on a thread of its own that never takes the GIL:
 * its callbacks queue the chunks (at most QUEUE_MAX_BYTES, then they wait: the
 * guest is slowed down, the host's memory stays bounded) and the iterator takes
 * them. Closing the iterator early (break, an exception, Ctrl-C, garbage
 * collection) cancels the command through its cancel fd and joins the thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "binding.h"

#define QUEUE_MAX_BYTES ((size_t)1 << 20)

typedef struct chunk {
        struct chunk *next;
        int stream;               /* 1 stdout, 2 stderr */
        size_t len;
        char data[];
} chunk;

typedef struct exec_object {
        PyObject_HEAD
        vm_object *vm;            /* a reference, and one call in flight until joined */
        smolvm_vm *handle;
        exec_args args;
        pthread_t thread;
        bool joinable;            /* the thread runs or ended unjoined (consumer side) */
        bool error_raised;        /* the exec's error was raised once */
        bool closed;              /* close(): iteration ends, queued output dropped */
        int data_fd;              /* eventfd: a chunk or the end is queued */
        int cancel_fd;            /* eventfd: the consumer gave up */
        pthread_mutex_t mu;
        pthread_cond_t space;
        /* protected by mu: */
        chunk *head, *tail;
        size_t queued_bytes;
        bool abandoned;           /* the callbacks fail instead of waiting */
        bool done;                /* smolvm_exec() returned; rc, st, err are final */
        int rc;
        int guest_pid;
        smolvm_exec_status st;
        lib_err err;
} exec_object;

static int queue_output(exec_object *x, int stream, const void *data, size_t len)
{
        pthread_mutex_lock(&x->mu);
        while (x->queued_bytes >= QUEUE_MAX_BYTES && !x->abandoned)
                pthread_cond_wait(&x->space, &x->mu);
        if (x->abandoned) {
                pthread_mutex_unlock(&x->mu);
                return -ECANCELED;
        }
        chunk *c = malloc(sizeof(*c) + len);
        if (!c) {
                pthread_mutex_unlock(&x->mu);
                return -ENOMEM;
        }
        *c = (chunk){ .stream = stream, .len = len };
        memcpy(c->data, data, len);
        if (x->tail)
                x->tail->next = c;
        else
                x->head = c;
        x->tail = c;
        x->queued_bytes += len;
        pthread_mutex_unlock(&x->mu);
        eventfd_signal(x->data_fd);
        return 0;
}

static int on_stdout(void *ud, const void *data, size_t len)
{
        return queue_output(ud, 1, data, len);
}

static int on_stderr(void *ud, const void *data, size_t len)
{
        return queue_output(ud, 2, data, len);
}

static int on_started(void *ud, int pid)
{
        exec_object *x = ud;
        pthread_mutex_lock(&x->mu);
        x->guest_pid = pid;
        pthread_mutex_unlock(&x->mu);
        return 0;
}

static void *exec_main(void *p)
{
        exec_object *x = p;
        smolvm_exec_callbacks cbs = { .on_started = on_started, .on_stdout = on_stdout, .on_stderr = on_stderr,
                                      .userdata = x };
        smolvm_exec_status st = { 0 };
        int rc = smolvm_exec(x->handle, &x->args.opts, &cbs, &st);
        pthread_mutex_lock(&x->mu);
        if (rc < 0)
                lib_err_save(&x->err, rc);
        x->rc = rc;
        x->st = st;
        x->done = true;
        pthread_mutex_unlock(&x->mu);
        eventfd_signal(x->data_fd);
        return NULL;
}

/* Wait for the thread (the GIL released) and end the call in flight. */
static void exec_join(exec_object *x)
{
        if (!x->joinable)
                return;
        Py_BEGIN_ALLOW_THREADS
        pthread_join(x->thread, NULL);
        Py_END_ALLOW_THREADS
        x->joinable = false;
        vm_leave(x->vm);
        /* The thread is gone: its fds are not needed any more (an unclosed
         * stream object must not hold fds until it is collected). */
        close(x->data_fd);
        close(x->cancel_fd);
        x->data_fd = x->cancel_fd = -1;
}

/* Stop the command if it still runs, and end the thread. */
static void exec_abandon(exec_object *x)
{
        if (!x->joinable)
                return;
        pthread_mutex_lock(&x->mu);
        x->abandoned = true;
        bool done = x->done;
        pthread_cond_broadcast(&x->space);
        pthread_mutex_unlock(&x->mu);
        if (!done)
                eventfd_signal(x->cancel_fd);
        exec_join(x);
}

PyObject *exec_object_new(vm_object *vm, exec_args *args)
{
        exec_object *x = PyObject_New(exec_object, &binding_exec_type);
        if (!x) {
                exec_args_free(args);
                return NULL;
        }
        /* Everything dealloc looks at, before anything can fail. */
        x->vm = NULL;
        x->args = *args;
        *args = (exec_args){ 0 };
        x->joinable = x->error_raised = x->closed = false;
        x->data_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        x->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pthread_mutex_init(&x->mu, NULL);
        pthread_cond_init(&x->space, NULL);
        x->head = x->tail = NULL;
        x->queued_bytes = 0;
        x->abandoned = x->done = false;
        x->rc = x->guest_pid = 0;
        x->st = (smolvm_exec_status){ 0 };
        if (x->data_fd < 0 || x->cancel_fd < 0) {
                PyErr_SetFromErrno(PyExc_OSError);
                goto fail;
        }
        if (!(x->handle = vm_enter(vm)))
                goto fail;
        Py_INCREF(vm);
        x->vm = vm;
        x->args.opts.cancel_fd = x->cancel_fd;
        /* Signals go to the Python threads, never to this one. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int e = pthread_create(&x->thread, NULL, exec_main, x);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0) {
                vm_leave(vm);
                errno = e;
                PyErr_SetFromErrno(PyExc_OSError);
                goto fail;
        }
        x->joinable = true;
        return (PyObject *)x;
fail:
        Py_DECREF(x);
        return NULL;
}

/* Only once the thread is joined. */
static void queue_free(exec_object *x)
{
        for (chunk *c = x->head, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        x->head = x->tail = NULL;
        x->queued_bytes = 0;
}

static void exec_dealloc(exec_object *x)
{
        exec_abandon(x);
        queue_free(x);
        if (x->data_fd >= 0)
                close(x->data_fd);
        if (x->cancel_fd >= 0)
                close(x->cancel_fd);
        pthread_mutex_destroy(&x->mu);
        pthread_cond_destroy(&x->space);
        exec_args_free(&x->args);
        Py_XDECREF(x->vm);
        PyObject_Free(x);
}

static PyObject *exec_next(exec_object *x)
{
        if (x->closed)
                return NULL;
        for (;;) {
                if (x->data_fd >= 0)
                        eventfd_drain(x->data_fd);
                pthread_mutex_lock(&x->mu);
                chunk *c = x->head;
                if (c) {
                        x->head = c->next;
                        if (!x->head)
                                x->tail = NULL;
                        x->queued_bytes -= c->len;
                        pthread_cond_signal(&x->space);
                }
                bool done = x->done;
                pthread_mutex_unlock(&x->mu);
                if (c) {
                        PyObject *item = Py_BuildValue("(iy#)", c->stream, c->data, (Py_ssize_t)c->len);
                        free(c);
                        return item;
                }
                if (done) {
                        exec_join(x);
                        if (x->rc < 0 && !x->error_raised) {
                                x->error_raised = true;
                                return lib_err_raise(&x->err);
                        }
                        return NULL; /* StopIteration */
                }
                if (wait_readable(x->data_fd) < 0) {
                        /* Ctrl-C: the command is killed, the exception raised. */
                        exec_abandon(x);
                        x->closed = true;
                        queue_free(x);
                        return NULL;
                }
        }
}

static PyObject *exec_close(exec_object *x, PyObject *unused)
{
        exec_abandon(x);
        x->closed = true;
        queue_free(x);
        Py_RETURN_NONE;
}

static PyObject *exec_get_status(exec_object *x, void *unused)
{
        /* Joined: the thread wrote its last. */
        if (x->joinable || !x->done || x->rc < 0)
                Py_RETURN_NONE;
        return exec_status_tuple(&x->st);
}

static PyObject *exec_get_pid(exec_object *x, void *unused)
{
        pthread_mutex_lock(&x->mu);
        int pid = x->guest_pid;
        pthread_mutex_unlock(&x->mu);
        return PyLong_FromLong(pid);
}

static PyMethodDef exec_methods[] = {
        { "close", (PyCFunction)exec_close, METH_NOARGS, "close(): kill the command if it still runs; wait for it." },
        { NULL, NULL, 0, NULL },
};

static PyGetSetDef exec_getset[] = {
        { "status", (getter)exec_get_status, NULL,
          "(exit_code, signal, timed_out, duration_ms) once the output is exhausted, else None.", NULL },
        { "pid", (getter)exec_get_pid, NULL, "The command's pid in the guest, 0 until it started.", NULL },
        { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject binding_exec_type = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "smolvm._smolvm.Exec",
        .tp_basicsize = sizeof(exec_object),
        .tp_dealloc = (destructor)exec_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
        .tp_doc = "A running command: iterate for (stream, bytes), stream 1 stdout, 2 stderr. Private: see "
                  "smolvm.SmolVM.stream().",
        .tp_iter = PyObject_SelfIter,
        .tp_iternext = (iternextfunc)exec_next,
        .tp_methods = exec_methods,
        .tp_getset = exec_getset,
};
