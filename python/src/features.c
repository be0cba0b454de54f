/* SPDX-License-Identifier: Apache-2.0 */
/* The VM handle's snapshot, fork, port-forward and workspace-archive calls, and
 * the module-level snapshot removal. Each is one libsmolvm call through
 * vm_call() / call_run() (GIL released; persist and hydrate take Ctrl-C). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

/* ---- snapshots and fork ---- */

typedef struct feature_call {
        smolvm_vm *vm;
        const char *name;
        unsigned flags;
        unsigned n;
        char (*ids)[16];
        smolvm_snapshot_info snap;
        uint16_t guest_port, host_port;
        const char *bind_addr;
        smolvm_port_info *ports;
        size_t n_ports;
        bool persist;
        int fd;                   /* >= 0: the _fd variants */
        const char *host_path;
        smolvm_archive_opts ao;
        smolvm_archive_result ar;
        smolvm_snapshot_info *snaps;
        size_t n_snaps;
        bool allow;
} feature_call;

/* A snapshot as the dict smolvm.SnapshotInfo is made of. */
static PyObject *snapshot_dict(const smolvm_snapshot_info *s)
{
        return Py_BuildValue("{s:s, s:s, s:L, s:s, s:I, s:I, s:K, s:K, s:K, s:I, s:N}", "id", s->id, "name", s->name,
                             "created_unix", (long long)s->created_unix, "vm_id", s->vm_id, "vcpus", s->vcpus,
                             "mem_mib", s->mem_mib, "pause_ms", (unsigned long long)s->pause_ms, "ram_bytes",
                             (unsigned long long)s->ram_bytes, "disk_bytes", (unsigned long long)s->disk_bytes,
                             "depth", s->depth, "dir", PyUnicode_DecodeFSDefault(s->dir));
}

static int snapshot_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_snapshot_create(a->vm, a->name, a->flags, &a->snap);
}

PyObject *vm_snapshot(vm_object *self, PyObject *args)
{
        feature_call a = { 0 };
        int stop = 0;
        if (!PyArg_ParseTuple(args, "zp:snapshot", &a.name, &stop))
                return NULL;
        a.flags = stop ? SMOLVM_SNAPSHOT_STOP : 0;
        if (!(a.vm = vm_enter(self)))
                return NULL;
        call c = { .fn = snapshot_fn, .arg = &a };
        if (vm_call(self, &c) < 0)
                return NULL;
        return snapshot_dict(&a.snap);
}

static int fork_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_fork(a->vm, a->n, a->ids);
}

PyObject *vm_fork(vm_object *self, PyObject *args)
{
        feature_call a = { 0 };
        if (!PyArg_ParseTuple(args, "I:fork", &a.n))
                return NULL;
        if (a.n < 1 || a.n > SMOLVM_FORK_MAX)
                return PyErr_Format(PyExc_ValueError, "fork: n must be 1..%u, got %u", SMOLVM_FORK_MAX, a.n);
        if (!(a.ids = calloc(a.n, sizeof(*a.ids))))
                return PyErr_NoMemory();
        PyObject *res = NULL;
        if (!(a.vm = vm_enter(self)))
                goto out;
        call c = { .fn = fork_fn, .arg = &a };
        if (vm_call(self, &c) < 0)
                goto out;
        res = PyList_New((Py_ssize_t)a.n);
        for (unsigned i = 0; res && i < a.n; i++) {
                PyObject *s = PyUnicode_FromString(a.ids[i]);
                if (!s)
                        Py_CLEAR(res);
                else
                        PyList_SET_ITEM(res, (Py_ssize_t)i, s);
        }
out:
        free(a.ids);
        return res;
}

static int snapshot_rm_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_snapshot_rm(a->name);
}

PyObject *mod_snapshot_rm(PyObject *mod, PyObject *args)
{
        feature_call a = { 0 };
        if (!PyArg_ParseTuple(args, "s:snapshot_rm", &a.name))
                return NULL;
        call c = { .fn = snapshot_rm_fn, .arg = &a };
        if (call_run(&c) < 0)
                return NULL;
        if (c.rc < 0)
                return lib_err_raise(&c.err);
        Py_RETURN_NONE;
}

static int snapshot_list_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_snapshot_list(&a->snaps, &a->n_snaps);
}

PyObject *mod_snapshot_list(PyObject *mod, PyObject *unused)
{
        feature_call a = { 0 };
        call c = { .fn = snapshot_list_fn, .arg = &a };
        if (call_run(&c) < 0) {
                free(a.snaps);
                return NULL;
        }
        if (c.rc < 0)
                return lib_err_raise(&c.err);
        /* fork()'s own snapshots are the library's business: not listed. */
        PyObject *res = PyList_New(0);
        for (size_t i = 0; res && i < a.n_snaps; i++) {
                if (a.snaps[i].internal)
                        continue;
                PyObject *d = snapshot_dict(&a.snaps[i]);
                if (!d || PyList_Append(res, d) < 0)
                        Py_CLEAR(res);
                Py_XDECREF(d);
        }
        free(a.snaps);
        return res;
}

/* ---- network ---- */

static int net_change_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_net_change(a->vm, a->allow, a->name);
}

PyObject *vm_net_change(vm_object *self, PyObject *args)
{
        feature_call a = { 0 };
        int allow = 0;
        if (!PyArg_ParseTuple(args, "ps:net_change", &allow, &a.name))
                return NULL;
        a.allow = allow;
        if (!(a.vm = vm_enter(self)))
                return NULL;
        call c = { .fn = net_change_fn, .arg = &a };
        if (vm_call(self, &c) < 0)
                return NULL;
        Py_RETURN_NONE;
}

PyObject *vm_net_log_path(vm_object *self, PyObject *unused)
{
        smolvm_vm *vm = vm_enter(self);
        if (!vm)
                return NULL;
        char *path = smolvm_net_log_path(vm);
        vm_leave(self);
        if (!path)
                return PyErr_NoMemory();
        PyObject *res = PyUnicode_DecodeFSDefault(path);
        free(path);
        return res;
}

/* ---- port forwarding ---- */

static int port_expose_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_port_expose(a->vm, a->guest_port, a->host_port, a->bind_addr, &a->host_port);
}

static int port_list_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_port_list(a->vm, &a->ports, &a->n_ports);
}

static int port_close_fn(call *c)
{
        feature_call *a = c->arg;
        return smolvm_port_close(a->vm, a->guest_port);
}

static int port_parse(unsigned v, bool zero_ok, uint16_t *ret)
{
        if (v > 65535 || (v == 0 && !zero_ok)) {
                PyErr_Format(PyExc_ValueError, "port %u is out of range (%s..65535)", v, zero_ok ? "0" : "1");
                return -1;
        }
        *ret = (uint16_t)v;
        return 0;
}

PyObject *vm_port_expose(vm_object *self, PyObject *args)
{
        feature_call a = { 0 };
        unsigned guest, host;
        if (!PyArg_ParseTuple(args, "IIz:port_expose", &guest, &host, &a.bind_addr) ||
            port_parse(guest, false, &a.guest_port) < 0 || port_parse(host, true, &a.host_port) < 0)
                return NULL;
        if (!(a.vm = vm_enter(self)))
                return NULL;
        call c = { .fn = port_expose_fn, .arg = &a };
        if (vm_call(self, &c) < 0)
                return NULL;
        return PyLong_FromUnsignedLong(a.host_port);
}

PyObject *vm_port_close(vm_object *self, PyObject *args)
{
        feature_call a = { 0 };
        unsigned guest;
        if (!PyArg_ParseTuple(args, "I:port_close", &guest) || port_parse(guest, false, &a.guest_port) < 0)
                return NULL;
        if (!(a.vm = vm_enter(self)))
                return NULL;
        call c = { .fn = port_close_fn, .arg = &a };
        if (vm_call(self, &c) < 0)
                return NULL;
        Py_RETURN_NONE;
}

PyObject *vm_port_list(vm_object *self, PyObject *unused)
{
        feature_call a = { 0 };
        if (!(a.vm = vm_enter(self)))
                return NULL;
        call c = { .fn = port_list_fn, .arg = &a };
        if (vm_call(self, &c) < 0) {
                free(a.ports);
                return NULL;
        }
        PyObject *res = PyList_New((Py_ssize_t)a.n_ports);
        for (size_t i = 0; res && i < a.n_ports; i++) {
                const smolvm_port_info *p = &a.ports[i];
                PyObject *t = Py_BuildValue("(IIsNI)", p->guest_port, p->host_port, p->bind_addr,
                                            PyBool_FromLong(p->active), p->connections);
                if (!t)
                        Py_CLEAR(res);
                else
                        PyList_SET_ITEM(res, (Py_ssize_t)i, t);
        }
        free(a.ports);
        return res;
}

/* ---- workspace archives ---- */

static int workspace_fn(call *c)
{
        feature_call *a = c->arg;
        a->ao.cancel_fd = c->cancel_fd;
        if (a->persist)
                return a->fd >= 0 ? smolvm_workspace_persist_fd(a->vm, a->fd, &a->ao, &a->ar)
                                  : smolvm_workspace_persist(a->vm, a->host_path, &a->ao, &a->ar);
        return a->fd >= 0 ? smolvm_workspace_hydrate_fd(a->vm, a->fd, &a->ao, &a->ar)
                          : smolvm_workspace_hydrate(a->vm, a->host_path, &a->ao, &a->ar);
}

/* workspace(persist, path_or_fd, guest_path, level, max_bytes) -> dict */
PyObject *vm_workspace(vm_object *self, PyObject *args)
{
        feature_call a = { .fd = -1 };
        int persist, level;
        PyObject *target, *host = NULL;
        unsigned long long max_bytes;
        smolvm_archive_opts_init(&a.ao);
        if (!PyArg_ParseTuple(args, "pOziK:workspace", &persist, &target, &a.ao.guest_path, &level, &max_bytes))
                return NULL;
        a.persist = persist;
        a.ao.level = level;
        a.ao.max_bytes = max_bytes;
        if (PyLong_Check(target)) {
                long fd = PyLong_AsLong(target);
                if (fd < 0 || fd > INT32_MAX)
                        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "bad file descriptor %ld", fd);
                a.fd = (int)fd;
        } else {
                if (!PyUnicode_FSConverter(target, &host))
                        return NULL;
                a.host_path = PyBytes_AS_STRING(host);
        }
        PyObject *res = NULL;
        if (!(a.vm = vm_enter(self)))
                goto out;
        call c = { .fn = workspace_fn, .arg = &a, .cancellable = true };
        if (vm_call(self, &c) < 0)
                goto out;
        res = Py_BuildValue("{s:K, s:K, s:K, s:O, s:s, s:s}", "tar_bytes", (unsigned long long)a.ar.tar_bytes,
                            "file_bytes", (unsigned long long)a.ar.file_bytes, "duration_ms",
                            (unsigned long long)a.ar.duration_ms, "verified", a.ar.verified ? Py_True : Py_False,
                            "sha256", a.ar.sha256, "io", a.ar.io);
out:
        Py_XDECREF(host);
        return res;
}
