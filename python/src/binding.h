/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm._smolvm: the CPython extension over libsmolvm. Private to the smolvm
 * package (smolvm/vm.py is its only caller); the public API is the Python layer.
 *
 * Built two ways from these sources: by meson (python/meson.build, for the build
 * tree's tests) and by pip through python/build_backend/ against an installed
 * libsmolvm. So only <smolvm/smolvm.h>, libc and Python.h are included here. */
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>

#include <smolvm/smolvm.h>

/* The module's init function (module.c), exported. */
PyMODINIT_FUNC PyInit__smolvm(void);

/* ---- errors (module.c) ---- */

/* A libsmolvm failure, copied on the thread that made the call: the library's
 * detail (smolvm_last_error()) is per thread and the call may have run on a
 * helper thread (call.c). */
typedef struct lib_err {
        int code;
        bool from_guest;
        char message[1024];
        char hint[512];
        char console[4096];
} lib_err;

/* smolvm._smolvm.LibraryError(code, message, hint, console_tail, from_guest). */
extern PyObject *binding_library_error;

/* Copy smolvm_last_error() (this thread's) for a call that returned code < 0. */
void lib_err_save(lib_err *e, int code);
/* Raise LibraryError from e; returns NULL. */
PyObject *lib_err_raise(const lib_err *e);
/* Raise LibraryError for a failure of the binding itself (a closed handle),
 * worded like the library's; returns NULL. */
PyObject *binding_error(int code, const char *hint, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A NULL-terminated malloc'd copy of a sequence of str (argv, "K=V" lists);
 * NULL with an exception set (not a str, embedded NUL, no memory). None gives
 * *ret = NULL. Returns 0 or -1. Free with strv_free(). */
int strv_from_seq(PyObject *seq, const char *what, char ***ret);
void strv_free(char **v);

/* ---- blocking calls (call.c) ---- */

typedef struct call call;
struct call {
        int (*fn)(call *c);       /* the libsmolvm work; returns its result */
        void *arg;
        bool cancellable;         /* fn hands c->cancel_fd to the library */
        int cancel_fd;            /* set by call_run: an eventfd (main thread, cancellable) or -1 */
        int rc;                   /* fn's result */
        lib_err err;              /* when rc < 0 */
};

/* Run c->fn with the GIL released. From the main thread, fn runs on a helper
 * thread while this one waits and runs Python's signal handlers (every
 * WAIT_TICK_MS, or at once when a signal interrupts the wait): when one raises
 * (Ctrl-C's KeyboardInterrupt), c->cancel_fd is written so the library gives up
 * (a command is killed), fn is waited for, and the exception is returned. Other
 * threads cannot get signals in Python, so they call fn directly.
 * Returns 0 when fn ran to its end (c->rc and c->err tell how), -1 with a Python
 * exception set. */
int call_run(call *c);

/* Wait with the GIL released until fd is readable. In the main thread, signal
 * handlers run meanwhile; returns -1 with the exception set when one raises,
 * else 0. */
int wait_readable(int fd);
/* As wait_readable(), never running handlers (the wait after a cancel). */
void wait_readable_uninterrupted(int fd);
/* Wake whoever waits on an eventfd. */
void eventfd_signal(int fd);
/* Read an eventfd's counter to zero (it is non-blocking). */
void eventfd_drain(int fd);
/* True on the interpreter's main thread, the only one that runs signal handlers. */
bool in_main_thread(void);
/* Module init: remember the main thread. Returns 0 or -1 (exception set). */
int call_module_init(void);

/* ---- VM handles (vm.c, ops.c) and command streams (exec.c) ---- */

typedef struct vm_object vm_object;
extern PyTypeObject binding_vm_type;
extern PyTypeObject binding_exec_type;
extern PyMethodDef binding_vm_functions[]; /* module-level create(), open(), list() */

/* Mark one more call in flight on the handle (close() waits for them). Returns
 * the library handle, or NULL with an exception set when it is closed. */
smolvm_vm *vm_enter(vm_object *self);
void vm_leave(vm_object *self);
/* call_run(c) on the handle vm_enter() gave, then vm_leave(). Returns 0, or -1
 * with an exception set (the call was interrupted, or the library's error). */
int vm_call(vm_object *self, call *c);

/* The handle's methods on the guest (ops.c); vm.c's method table lists them. */
PyObject *vm_run(vm_object *self, PyObject *args, PyObject *kwargs);
PyObject *vm_exec(vm_object *self, PyObject *args, PyObject *kwargs);
PyObject *vm_write_file(vm_object *self, PyObject *args);
PyObject *vm_read_file(vm_object *self, PyObject *args);
PyObject *vm_upload(vm_object *self, PyObject *args);
PyObject *vm_download(vm_object *self, PyObject *args);
PyObject *vm_set_env(vm_object *self, PyObject *kv);
PyObject *vm_unset_env(vm_object *self, PyObject *keys);
PyObject *vm_list_env(vm_object *self, PyObject *unused);
/* Snapshots, fork, port forwards, workspace archives (features.c). */
PyObject *vm_snapshot(vm_object *self, PyObject *args);
PyObject *vm_fork(vm_object *self, PyObject *args);
PyObject *vm_port_expose(vm_object *self, PyObject *args);
PyObject *vm_port_close(vm_object *self, PyObject *args);
PyObject *vm_port_list(vm_object *self, PyObject *unused);
PyObject *vm_workspace(vm_object *self, PyObject *args);
PyObject *mod_snapshot_rm(PyObject *mod, PyObject *args);
PyObject *mod_snapshot_list(PyObject *mod, PyObject *unused);
PyObject *vm_net_change(vm_object *self, PyObject *args);
PyObject *vm_net_log_path(vm_object *self, PyObject *unused);

/* What smolvm_exec_opts points to, owned (the command may outlive the Python
 * objects it came from when it runs on a thread of its own). */
typedef struct exec_args {
        smolvm_exec_opts opts;
        char **argv;
        char **env;
        char *cwd;
        void *input;
} exec_args;

/* Parse (argv, env=None, cwd=None, timeout_ms=0, input=None, max_output=0).
 * Returns 0 or -1 with an exception set; free with exec_args_free() either way. */
int exec_args_parse(PyObject *args, PyObject *kwargs, exec_args *ret);
void exec_args_free(exec_args *a);
/* The exec's status as the tuple (exit_code, signal, timed_out, duration_ms). */
PyObject *exec_status_tuple(const smolvm_exec_status *st);
/* Start a command on a thread of its own, streaming its output (exec.c). */
PyObject *exec_object_new(vm_object *vm, exec_args *args);
