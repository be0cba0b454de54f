/* SPDX-License-Identifier: Apache-2.0 */
/* The VM handle's guest operations: run a command, files, environment. Each is
 * one libsmolvm call through vm_call() (vm.c has the lifecycle). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

/* ---- commands ---- */

void exec_args_free(exec_args *a)
{
        strv_free(a->argv);
        strv_free(a->env);
        free(a->cwd);
        free(a->input);
        *a = (exec_args){ 0 };
}

int exec_args_parse(PyObject *args, PyObject *kwargs, exec_args *ret)
{
        static char *kw[] = { "argv", "env", "cwd", "timeout_ms", "input", "max_output", NULL };
        PyObject *argv, *env = Py_None;
        const char *cwd = NULL;
        unsigned long timeout_ms = 0;
        Py_buffer input = { 0 };
        Py_ssize_t max_output = 0;
        *ret = (exec_args){ 0 };
        smolvm_exec_opts_init(&ret->opts);
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|Ozkz*n:exec", kw, &argv, &env, &cwd, &timeout_ms, &input,
                                         &max_output))
                return -1;
        int r = -1;
        if (timeout_ms > UINT32_MAX || max_output < 0) {
                PyErr_SetString(PyExc_ValueError, "timeout_ms or max_output out of range");
                goto out;
        }
        if (strv_from_seq(argv, "argv", &ret->argv) < 0 || strv_from_seq(env, "env", &ret->env) < 0)
                goto out;
        if (!ret->argv || !ret->argv[0]) {
                PyErr_SetString(PyExc_ValueError, "argv: no command given");
                goto out;
        }
        if (cwd && !(ret->cwd = strdup(cwd)))
                goto nomem;
        if (input.buf) {
                /* A private copy: the command may run on a helper thread. */
                if (!(ret->input = malloc(input.len ? (size_t)input.len : 1)))
                        goto nomem;
                memcpy(ret->input, input.buf, (size_t)input.len);
                ret->opts.stdin_mode = SMOLVM_STDIN_BYTES;
                ret->opts.stdin_data = ret->input;
                ret->opts.stdin_len = (size_t)input.len;
        }
        ret->opts.argv = (const char *const *)ret->argv;
        ret->opts.env = (const char *const *)ret->env;
        ret->opts.cwd = ret->cwd;
        ret->opts.timeout_ms = (uint32_t)timeout_ms;
        ret->opts.max_output_bytes = (size_t)max_output;
        r = 0;
        goto out;
nomem:
        PyErr_NoMemory();
out:
        if (input.obj)
                PyBuffer_Release(&input);
        return r;
}

PyObject *exec_status_tuple(const smolvm_exec_status *st)
{
        return Py_BuildValue("(iiOK)", st->exit_code, st->signal, st->timed_out ? Py_True : Py_False,
                             (unsigned long long)st->duration_ms);
}

typedef struct run_call {
        smolvm_vm *vm;
        exec_args args;
        smolvm_result res;
} run_call;

static int run_fn(call *c)
{
        run_call *a = c->arg;
        a->args.opts.cancel_fd = c->cancel_fd;
        return smolvm_run(a->vm, &a->args.opts, &a->res);
}

PyObject *vm_run(vm_object *self, PyObject *args, PyObject *kwargs)
{
        run_call a = { 0 };
        PyObject *ret = NULL;
        if (exec_args_parse(args, kwargs, &a.args) < 0 || !(a.vm = vm_enter(self)))
                goto out;
        call c = { .fn = run_fn, .arg = &a, .cancellable = true };
        if (vm_call(self, &c) < 0)
                goto out;
        const smolvm_exec_status *st = &a.res.status;
        ret = Py_BuildValue("(iiOKy#y#OO)", st->exit_code, st->signal, st->timed_out ? Py_True : Py_False,
                            (unsigned long long)st->duration_ms, a.res.stdout_data, (Py_ssize_t)a.res.stdout_len,
                            a.res.stderr_data, (Py_ssize_t)a.res.stderr_len,
                            a.res.stdout_truncated ? Py_True : Py_False, a.res.stderr_truncated ? Py_True : Py_False);
out:
        /* Also when Ctrl-C came as the command ended: its output is dropped. */
        smolvm_result_free(&a.res);
        exec_args_free(&a.args);
        return ret;
}

PyObject *vm_exec(vm_object *self, PyObject *args, PyObject *kwargs)
{
        exec_args a;
        if (exec_args_parse(args, kwargs, &a) < 0) {
                exec_args_free(&a);
                return NULL;
        }
        return exec_object_new(self, &a); /* takes a */
}

/* ---- files and environment ---- */

typedef enum io_op { IO_WRITE, IO_READ, IO_UPLOAD, IO_DOWNLOAD, IO_SET_ENV, IO_UNSET_ENV, IO_LIST_ENV } io_op;

typedef struct io_call {
        smolvm_vm *vm;
        io_op op;
        const char *path, *path2; /* guest and host paths, as the op says */
        const void *data;
        size_t len;               /* write: data's; read: max_bytes */
        unsigned mode;
        smolvm_download_opts dl;
        char **strv;              /* set/unset env */
        void *out;                /* read: the data */
        size_t out_len;
        char *host_out;           /* download: the copy's host path */
        char **env_out;           /* list_env */
} io_call;

static int io_fn(call *c)
{
        io_call *a = c->arg;
        switch (a->op) {
        case IO_WRITE:
                return smolvm_write_file(a->vm, a->path, a->data, a->len, a->mode);
        case IO_READ:
                return smolvm_read_file(a->vm, a->path, &a->out, &a->out_len, a->len);
        case IO_UPLOAD:
                return smolvm_upload(a->vm, a->path2, a->path);
        case IO_DOWNLOAD:
                a->dl.cancel_fd = c->cancel_fd;
                return smolvm_download_with(a->vm, a->path, a->path2, &a->dl, &a->host_out);
        case IO_SET_ENV:
                return smolvm_set_env(a->vm, (const char *const *)a->strv);
        case IO_UNSET_ENV:
                return smolvm_unset_env(a->vm, (const char *const *)a->strv);
        case IO_LIST_ENV:
                return smolvm_list_env(a->vm, &a->env_out);
        default:
                return -EINVAL;
        }
}

static void io_out_free(io_call *a)
{
        smolvm_env_free(a->env_out);
        free(a->host_out);
        free(a->out);
        a->env_out = NULL;
        a->host_out = a->out = NULL;
}

/* Run a. Returns 0 (a->out set as the op says), -1 with an exception set. */
static int io_run(vm_object *self, io_call *a)
{
        if (!(a->vm = vm_enter(self)))
                return -1;
        call c = { .fn = io_fn, .arg = a, .cancellable = a->op == IO_DOWNLOAD };
        int r = vm_call(self, &c);
        if (r < 0)
                io_out_free(a);
        return r;
}

PyObject *vm_write_file(vm_object *self, PyObject *args)
{
        io_call a = { .op = IO_WRITE };
        Py_buffer data;
        if (!PyArg_ParseTuple(args, "sy*I:write_file", &a.path, &data, &a.mode))
                return NULL;
        /* The buffer stays valid: the caller waits for the call and holds args. */
        a.data = data.buf;
        a.len = (size_t)data.len;
        int r = io_run(self, &a);
        PyBuffer_Release(&data);
        if (r < 0)
                return NULL;
        Py_RETURN_NONE;
}

PyObject *vm_read_file(vm_object *self, PyObject *args)
{
        io_call a = { .op = IO_READ };
        Py_ssize_t max_bytes = 0;
        if (!PyArg_ParseTuple(args, "sn:read_file", &a.path, &max_bytes))
                return NULL;
        if (max_bytes < 0)
                return PyErr_Format(PyExc_ValueError, "max_bytes must be >= 0");
        a.len = (size_t)max_bytes;
        if (io_run(self, &a) < 0)
                return NULL;
        PyObject *res = PyBytes_FromStringAndSize(a.out, (Py_ssize_t)a.out_len);
        io_out_free(&a);
        return res;
}

PyObject *vm_upload(vm_object *self, PyObject *args)
{
        io_call a = { .op = IO_UPLOAD };
        PyObject *host;
        if (!PyArg_ParseTuple(args, "O&s:upload", PyUnicode_FSConverter, &host, &a.path))
                return NULL;
        a.path2 = PyBytes_AS_STRING(host);
        int r = io_run(self, &a);
        Py_DECREF(host);
        if (r < 0)
                return NULL;
        Py_RETURN_NONE;
}

PyObject *vm_download(vm_object *self, PyObject *args)
{
        io_call a = { .op = IO_DOWNLOAD };
        PyObject *host;
        int dest;
        unsigned long long max_bytes;
        if (!PyArg_ParseTuple(args, "sO&iK:download", &a.path, PyUnicode_FSConverter, &host, &dest, &max_bytes))
                return NULL;
        smolvm_download_opts_init(&a.dl);
        a.dl.dest = (smolvm_download_dest)dest;
        a.dl.max_bytes = max_bytes;
        a.path2 = PyBytes_AS_STRING(host);
        int r = io_run(self, &a);
        Py_DECREF(host);
        if (r < 0)
                return NULL;
        PyObject *res = PyUnicode_DecodeFSDefault(a.host_out);
        io_out_free(&a);
        return res;
}

static PyObject *env_op(vm_object *self, io_op op, PyObject *seq)
{
        io_call a = { .op = op };
        if (strv_from_seq(seq, op == IO_SET_ENV ? "env" : "keys", &a.strv) < 0)
                return NULL;
        if (!a.strv) {
                PyErr_SetString(PyExc_TypeError, "a list of str is needed");
                return NULL;
        }
        int r = io_run(self, &a);
        strv_free(a.strv);
        if (r < 0)
                return NULL;
        Py_RETURN_NONE;
}

PyObject *vm_set_env(vm_object *self, PyObject *kv)
{
        return env_op(self, IO_SET_ENV, kv);
}

PyObject *vm_unset_env(vm_object *self, PyObject *keys)
{
        return env_op(self, IO_UNSET_ENV, keys);
}

PyObject *vm_list_env(vm_object *self, PyObject *unused)
{
        io_call a = { .op = IO_LIST_ENV };
        if (io_run(self, &a) < 0)
                return NULL;
        PyObject *list = PyList_New(0);
        for (char **p = a.env_out; list && p && *p; p++) {
                /* Values are the guest's: decode leniently. */
                PyObject *s = PyUnicode_DecodeUTF8(*p, strlen(*p), "replace");
                if (!s || PyList_Append(list, s) < 0)
                        Py_CLEAR(list);
                Py_XDECREF(s);
        }
        io_out_free(&a);
        return list;
}
