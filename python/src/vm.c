/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm._smolvm.VM: one libsmolvm handle. Every library call runs through
 * call_run() (GIL released, Ctrl-C aware). Threads: libsmolvm lets execs, file
 * and env calls run concurrently on one handle and serialises lifecycle calls on
 * the VM's lock file; only smolvm_free() must not race, so each call counts
 * itself in flight and close() leaves the free to the last one out. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

struct vm_object {
        PyObject_HEAD
        pthread_mutex_t mu;
        /* protected by mu: */
        smolvm_vm *vm;            /* NULL once released */
        unsigned busy;            /* calls in flight, exec streams included */
        bool closed;              /* close() was called; the last call out frees vm */
        /* immutable after construction: */
        char id[16];
        char name[64];
        PyObject *dir;
};

static vm_object *vm_wrap(smolvm_vm *vm)
{
        vm_object *self = PyObject_New(vm_object, &binding_vm_type);
        if (!self) {
                smolvm_free(vm);
                return NULL;
        }
        pthread_mutex_init(&self->mu, NULL);
        self->vm = vm;
        self->busy = 0;
        self->closed = false;
        snprintf(self->id, sizeof(self->id), "%s", smolvm_id(vm));
        snprintf(self->name, sizeof(self->name), "%s", smolvm_name(vm));
        self->dir = PyUnicode_DecodeFSDefault(smolvm_dir(vm));
        if (!self->dir) {
                Py_DECREF(self);
                return NULL;
        }
        return self;
}

smolvm_vm *vm_enter(vm_object *self)
{
        pthread_mutex_lock(&self->mu);
        smolvm_vm *vm = self->closed ? NULL : self->vm;
        if (vm)
                self->busy++;
        pthread_mutex_unlock(&self->mu);
        if (!vm)
                binding_error(-EBADF, "open it again with SmolVM.from_id()", "VM %s: this handle is closed",
                              self->id);
        return vm;
}

void vm_leave(vm_object *self)
{
        pthread_mutex_lock(&self->mu);
        smolvm_vm *vm = NULL;
        if (--self->busy == 0 && self->closed)
                vm = self->vm, self->vm = NULL;
        pthread_mutex_unlock(&self->mu);
        /* A persistent VM's handle holds no process: freeing it is quick. */
        smolvm_free(vm);
}

int vm_call(vm_object *self, call *c)
{
        int r = call_run(c);
        vm_leave(self);
        if (r == 0 && c->rc < 0) {
                lib_err_raise(&c->err);
                r = -1;
        }
        return r;
}

static void vm_dealloc(vm_object *self)
{
        /* Calls in flight hold a reference: nothing is busy here. */
        smolvm_free(self->vm);
        pthread_mutex_destroy(&self->mu);
        Py_XDECREF(self->dir);
        PyObject_Free(self);
}

/* ---- create, open, list ---- */

typedef struct create_call {
        smolvm_config cfg;
        const char *id_or_name;   /* open */
        smolvm_vm *vm;
        smolvm_vm_info *infos;    /* list */
        size_t n_infos;
} create_call;

static int create_fn(call *c)
{
        create_call *a = c->arg;
        return smolvm_create(&a->cfg, &a->vm);
}

static int open_fn(call *c)
{
        create_call *a = c->arg;
        return smolvm_open(a->id_or_name, &a->vm);
}

static int list_fn(call *c)
{
        create_call *a = c->arg;
        return smolvm_list(&a->infos, &a->n_infos);
}

/* Run a create/open call and wrap its handle. */
static PyObject *run_handle_call(int (*fn)(call *), create_call *a)
{
        call c = { .fn = fn, .arg = a };
        int r = call_run(&c);
        if (r < 0) {
                smolvm_free(a->vm);
                return NULL;
        }
        if (c.rc < 0)
                return lib_err_raise(&c.err);
        return (PyObject *)vm_wrap(a->vm);
}

static int mounts_parse(PyObject *seq, smolvm_mount **ret, size_t *ret_n, char ***ret_strings)
{
        *ret = NULL;
        *ret_n = 0;
        *ret_strings = NULL;
        if (seq == Py_None)
                return 0;
        PyObject *fast = PySequence_Fast(seq, "mounts must be a sequence of (host, guest, writable)");
        if (!fast)
                return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        smolvm_mount *m = calloc((size_t)n + 1, sizeof(*m));
        char **strings = calloc((size_t)n * 2 + 1, sizeof(char *));
        if (!m || !strings) {
                PyErr_NoMemory();
                goto fail;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
                const char *host, *guest;
                int writable;
                if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "ssp;mounts: (host, guest, writable)",
                                      &host, &guest, &writable))
                        goto fail;
                if (!(strings[2 * i] = strdup(host)) || !(strings[2 * i + 1] = strdup(guest))) {
                        PyErr_NoMemory();
                        goto fail;
                }
                m[i] = (smolvm_mount){ .host_path = strings[2 * i], .guest_path = strings[2 * i + 1],
                                       .writable = writable };
        }
        Py_DECREF(fast);
        *ret = m;
        *ret_n = (size_t)n;
        *ret_strings = strings;
        return 0;
fail:
        Py_DECREF(fast);
        free(m);
        strv_free(strings);
        return -1;
}

static PyObject *mod_create(PyObject *mod, PyObject *args, PyObject *kwargs)
{
        static char *kw[] = { "image", "vcpus", "mem_mib", "disk_mib", "name", "env", "mounts", "from_snapshot",
                              "allow", "hosts", "cold", NULL };
        const char *image = NULL, *name = NULL, *from_snapshot = NULL;
        unsigned vcpus = 0, mem_mib = 0, disk_mib = 0;
        int cold = 0;
        PyObject *env = Py_None, *mounts = Py_None, *allow = Py_None, *hosts = Py_None;
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|zIIIzOOzOOp:create", kw, &image, &vcpus, &mem_mib,
                                         &disk_mib, &name, &env, &mounts, &from_snapshot, &allow, &hosts, &cold))
                return NULL;
        create_call a = { 0 };
        smolvm_config_init(&a.cfg);
        a.cfg.image = image;
        a.cfg.vcpus = vcpus;
        a.cfg.mem_mib = mem_mib;
        a.cfg.disk_mib = disk_mib;
        a.cfg.name = name;
        a.cfg.from_snapshot = from_snapshot;
        a.cfg.cold = cold;
        char **envv = NULL, **mount_strings = NULL, **allowv = NULL, **hostsv = NULL;
        smolvm_mount *m = NULL;
        smolvm_net net = { 0 };
        PyObject *res = NULL;
        if (strv_from_seq(env, "env", &envv) < 0 || mounts_parse(mounts, &m, &a.cfg.n_mounts, &mount_strings) < 0 ||
            strv_from_seq(allow, "allow", &allowv) < 0 || strv_from_seq(hosts, "hosts", &hostsv) < 0)
                goto out;
        a.cfg.env = (const char *const *)envv;
        a.cfg.mounts = m;
        if (allow != Py_None || hosts != Py_None) {
                /* An empty allow list is a network that reaches nothing (yet). */
                net.allow = (const char *const *)allowv;
                net.hosts = (const char *const *)hostsv;
                a.cfg.net = &net;
        }
        res = run_handle_call(create_fn, &a);
out:
        strv_free(allowv);
        strv_free(hostsv);
        strv_free(envv);
        strv_free(mount_strings);
        free(m);
        return res;
}

static PyObject *mod_open(PyObject *mod, PyObject *arg)
{
        create_call a = { .id_or_name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL };
        if (!a.id_or_name) {
                if (!PyErr_Occurred())
                        PyErr_SetString(PyExc_TypeError, "open(): the VM id or name must be a str");
                return NULL;
        }
        return run_handle_call(open_fn, &a);
}

static PyObject *info_dict(const smolvm_vm_info *i)
{
        return Py_BuildValue("{s:i, s:s, s:s, s:L, s:i, s:I, s:I, s:I, s:s, s:N, s:O}", "state", (int)i->state, "id",
                             i->id, "name", i->name, "created_unix", (long long)i->created_unix, "supervisor_pid",
                             (int)i->supervisor_pid, "vcpus", i->vcpus, "mem_mib", i->mem_mib, "disk_mib",
                             i->disk_mib, "accel", i->accel, "image",
                             PyUnicode_DecodeUTF8(i->image, strlen(i->image), "replace"), "ephemeral",
                             i->ephemeral ? Py_True : Py_False);
}

static PyObject *mod_list(PyObject *mod, PyObject *unused)
{
        create_call a = { 0 };
        call c = { .fn = list_fn, .arg = &a };
        if (call_run(&c) < 0) {
                smolvm_vm_info_free(a.infos);
                return NULL;
        }
        if (c.rc < 0)
                return lib_err_raise(&c.err);
        PyObject *list = PyList_New((Py_ssize_t)a.n_infos);
        for (size_t i = 0; list && i < a.n_infos; i++) {
                PyObject *d = info_dict(&a.infos[i]);
                if (!d) {
                        Py_CLEAR(list);
                        break;
                }
                PyList_SET_ITEM(list, (Py_ssize_t)i, d);
        }
        smolvm_vm_info_free(a.infos);
        return list;
}

PyMethodDef binding_vm_functions[] = {
        { "create", (PyCFunction)(void (*)(void))mod_create, METH_VARARGS | METH_KEYWORDS,
          "create(image=None, vcpus=0, mem_mib=0, disk_mib=0, name=None, env=None, mounts=None,\n"
          "       from_snapshot=None, allow=None, hosts=None, cold=False) -> VM\n"
          "smolvm_create() of a persistent VM; mounts: [(host, guest, writable)]; allow or hosts\n"
          "(not None) give it a network (smolvm_net: allow patterns, \"NAME:IP\" pins)." },
        { "snapshot_rm", mod_snapshot_rm, METH_VARARGS, "snapshot_rm(id_or_name): smolvm_snapshot_rm()." },
        { "snapshot_list", mod_snapshot_list, METH_NOARGS,
          "snapshot_list() -> [dict]: smolvm_snapshot_list(), without fork's own." },
        { "open", mod_open, METH_O, "open(id_or_name) -> VM: smolvm_open()." },
        { "list", mod_list, METH_NOARGS, "list() -> [dict]: smolvm_list()." },
        { NULL, NULL, 0, NULL },
};

/* ---- lifecycle ---- */

enum lifecycle_op { OP_START, OP_STOP, OP_PAUSE, OP_RESUME, OP_DELETE, OP_DELETE_FORCE };

typedef struct lifecycle_call {
        smolvm_vm *vm;
        enum lifecycle_op op;
} lifecycle_call;

static int lifecycle_fn(call *c)
{
        lifecycle_call *a = c->arg;
        switch (a->op) {
        case OP_START:
                return smolvm_start_with_cancel(a->vm, c->cancel_fd);
        case OP_STOP:
                return smolvm_stop(a->vm);
        case OP_PAUSE:
                return smolvm_pause(a->vm);
        case OP_RESUME:
                return smolvm_resume(a->vm);
        case OP_DELETE:
                return smolvm_delete(a->vm, 0);
        case OP_DELETE_FORCE:
                return smolvm_delete(a->vm, SMOLVM_DELETE_FORCE);
        default:
                return -EINVAL;
        }
}

static PyObject *lifecycle(vm_object *self, enum lifecycle_op op)
{
        lifecycle_call a = { .vm = vm_enter(self), .op = op };
        if (!a.vm)
                return NULL;
        call c = { .fn = lifecycle_fn, .arg = &a, .cancellable = op == OP_START };
        if (vm_call(self, &c) < 0)
                return NULL;
        Py_RETURN_NONE;
}

static PyObject *vm_start(vm_object *self, PyObject *unused)
{
        return lifecycle(self, OP_START);
}

static PyObject *vm_stop(vm_object *self, PyObject *unused)
{
        return lifecycle(self, OP_STOP);
}

static PyObject *vm_pause(vm_object *self, PyObject *unused)
{
        return lifecycle(self, OP_PAUSE);
}

static PyObject *vm_resume(vm_object *self, PyObject *unused)
{
        return lifecycle(self, OP_RESUME);
}

static PyObject *vm_delete(vm_object *self, PyObject *args, PyObject *kwargs)
{
        static char *kw[] = { "force", NULL };
        int force = 0;
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:delete", kw, &force))
                return NULL;
        return lifecycle(self, force ? OP_DELETE_FORCE : OP_DELETE);
}

static PyObject *vm_close(vm_object *self, PyObject *unused)
{
        pthread_mutex_lock(&self->mu);
        self->closed = true;
        smolvm_vm *vm = NULL;
        if (self->busy == 0)
                vm = self->vm, self->vm = NULL;
        pthread_mutex_unlock(&self->mu);
        smolvm_free(vm);
        Py_RETURN_NONE;
}

typedef struct status_call {
        smolvm_vm *vm;
        smolvm_status_info st;
} status_call;

static int status_fn(call *c)
{
        status_call *a = c->arg;
        return smolvm_status(a->vm, &a->st);
}

static PyObject *vm_status(vm_object *self, PyObject *unused)
{
        status_call a = { .vm = vm_enter(self) };
        if (!a.vm)
                return NULL;
        call c = { .fn = status_fn, .arg = &a };
        if (vm_call(self, &c) < 0)
                return NULL;
        const smolvm_status_info *s = &a.st;
        PyObject *boot;
        if (s->have_boot)
                boot = Py_BuildValue("{s:K, s:K, s:s, s:s}", "boot_ms", (unsigned long long)s->boot.boot_ms,
                                     "host_boot_ms", (unsigned long long)s->boot.host_boot_ms, "accel",
                                     s->boot.accel, "accel_reason", s->boot.accel_reason);
        else
                boot = (Py_INCREF(Py_None), Py_None);
        PyObject *res = info_dict(&s->info);
        PyObject *more = boot ? Py_BuildValue("{s:O, s:i, s:N}", "boot", boot, "vmm_pid", (int)s->vmm_pid, "error",
                                              PyUnicode_DecodeUTF8(s->error, strlen(s->error), "replace"))
                              : NULL;
        if (!res || !more || PyDict_Update(res, more) < 0)
                Py_CLEAR(res);
        Py_XDECREF(more);
        Py_XDECREF(boot);
        return res;
}

static PyObject *vm_get_id(vm_object *self, void *unused)
{
        return PyUnicode_FromString(self->id);
}

static PyObject *vm_get_name(vm_object *self, void *unused)
{
        return PyUnicode_FromString(self->name);
}

static PyObject *vm_get_dir(vm_object *self, void *unused)
{
        Py_INCREF(self->dir);
        return self->dir;
}

static PyObject *vm_get_closed(vm_object *self, void *unused)
{
        pthread_mutex_lock(&self->mu);
        bool closed = self->closed;
        pthread_mutex_unlock(&self->mu);
        return PyBool_FromLong(closed);
}

static PyGetSetDef vm_getset[] = {
        { "id", (getter)vm_get_id, NULL, "The VM's 12-hex-digit id.", NULL },
        { "name", (getter)vm_get_name, NULL, "The VM's name, or \"\".", NULL },
        { "dir", (getter)vm_get_dir, NULL, "The VM's directory on the host.", NULL },
        { "closed", (getter)vm_get_closed, NULL, "close() was called.", NULL },
        { NULL, NULL, NULL, NULL, NULL },
};

#define METH(name, flags, doc) { #name, (PyCFunction)(void (*)(void))vm_##name, flags, doc }
static PyMethodDef vm_methods[] = {
        METH(start, METH_NOARGS, "start(): smolvm_start(), interruptible."),
        METH(stop, METH_NOARGS, "stop(): smolvm_stop()."),
        METH(pause, METH_NOARGS, "pause(): smolvm_pause()."),
        METH(resume, METH_NOARGS, "resume(): smolvm_resume()."),
        METH(delete, METH_VARARGS | METH_KEYWORDS, "delete(force=False): smolvm_delete()."),
        METH(close, METH_NOARGS, "close(): release the handle once no call is in flight."),
        METH(status, METH_NOARGS, "status() -> dict: smolvm_status()."),
        METH(run, METH_VARARGS | METH_KEYWORDS,
             "run(argv, env=None, cwd=None, timeout_ms=0, input=None, max_output=0)\n"
             "-> (exit_code, signal, timed_out, duration_ms, stdout, stderr, stdout_truncated, stderr_truncated)"),
        METH(exec, METH_VARARGS | METH_KEYWORDS,
             "exec(argv, env=None, cwd=None, timeout_ms=0, input=None) -> Exec: the command's output as it comes."),
        METH(write_file, METH_VARARGS, "write_file(guest_path, data, mode): smolvm_write_file()."),
        METH(read_file, METH_VARARGS, "read_file(guest_path, max_bytes) -> bytes: smolvm_read_file()."),
        METH(upload, METH_VARARGS, "upload(host_path, guest_path): smolvm_upload()."),
        METH(download, METH_VARARGS,
             "download(guest_path, host_path, dest, max_bytes) -> str: smolvm_download_with(), interruptible."),
        METH(set_env, METH_O, "set_env([\"K=V\", ...]): smolvm_set_env()."),
        METH(unset_env, METH_O, "unset_env([\"K\", ...]): smolvm_unset_env()."),
        METH(list_env, METH_NOARGS, "list_env() -> [\"K=V\", ...]: smolvm_list_env()."),
        METH(snapshot, METH_VARARGS, "snapshot(name, stop) -> dict: smolvm_snapshot_create()."),
        METH(fork, METH_VARARGS, "fork(n) -> [id, ...]: smolvm_fork()."),
        METH(port_expose, METH_VARARGS, "port_expose(guest_port, host_port, bind_addr) -> int: smolvm_port_expose()."),
        METH(port_close, METH_VARARGS, "port_close(guest_port): smolvm_port_close()."),
        METH(net_change, METH_VARARGS, "net_change(allow, pattern): smolvm_net_change()."),
        METH(net_log_path, METH_NOARGS, "net_log_path() -> str: smolvm_net_log_path()."),
        METH(port_list, METH_NOARGS, "port_list() -> [(guest_port, host_port, bind_addr)]: smolvm_port_list()."),
        METH(workspace, METH_VARARGS,
             "workspace(persist, host_path_or_fd, guest_path, level, max_bytes) -> dict:\n"
             "smolvm_workspace_persist/_hydrate(_fd)(), interruptible."),
        { NULL, NULL, 0, NULL },
};

PyTypeObject binding_vm_type = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "smolvm._smolvm.VM",
        .tp_basicsize = sizeof(vm_object),
        .tp_dealloc = (destructor)vm_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
        .tp_doc = "A libsmolvm VM handle (from create() or open()). Private: see smolvm.SmolVM.",
        .tp_methods = vm_methods,
        .tp_getset = vm_getset,
};
