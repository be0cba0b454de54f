/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm._smolvm: module init, the library's errors as Python exceptions, and
 * conversions shared by the handle (vm.c) and the command stream (exec.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

PyObject *binding_library_error;

void lib_err_save(lib_err *e, int code)
{
        const smolvm_error *le = smolvm_last_error();
        /* A code from the library always comes with its detail; a callback's own
         * code (ours) may not: say what the code means then. */
        e->code = code;
        e->from_guest = le->code == code && le->from_guest;
        snprintf(e->message, sizeof(e->message), "%s",
                 le->code == code && le->message[0] ? le->message : smolvm_strerror(code));
        snprintf(e->hint, sizeof(e->hint), "%s", le->code == code ? le->hint : "");
        snprintf(e->console, sizeof(e->console), "%s", le->code == code ? le->console_tail : "");
}

static PyObject *error_new(int code, const char *message, const char *hint, const char *console, bool from_guest)
{
        /* The library sanitises its strings, but they may still hold bytes a
         * hostile guest chose: decode leniently. */
        PyObject *args = Py_BuildValue("(iNNNO)", code, PyUnicode_DecodeUTF8(message, strlen(message), "replace"),
                                       PyUnicode_DecodeUTF8(hint, strlen(hint), "replace"),
                                       PyUnicode_DecodeUTF8(console, strlen(console), "replace"),
                                       from_guest ? Py_True : Py_False);
        if (!args)
                return NULL;
        PyErr_SetObject(binding_library_error, args);
        Py_DECREF(args);
        return NULL;
}

PyObject *lib_err_raise(const lib_err *e)
{
        return error_new(e->code, e->message, e->hint, e->console, e->from_guest);
}

PyObject *binding_error(int code, const char *hint, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return error_new(code, msg, hint ? hint : "", "", false);
}

void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int strv_from_seq(PyObject *seq, const char *what, char ***ret)
{
        *ret = NULL;
        if (seq == Py_None)
                return 0;
        PyObject *fast = PySequence_Fast(seq, what);
        if (!fast)
                return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        char **v = calloc((size_t)n + 1, sizeof(char *));
        if (!v) {
                Py_DECREF(fast);
                PyErr_NoMemory();
                return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
                Py_ssize_t len;
                const char *s = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
                if (!s) {
                        if (!PyErr_Occurred())
                                PyErr_Format(PyExc_TypeError, "%s: item %zd is not a str", what, i);
                        goto fail;
                }
                if ((size_t)len != strlen(s)) {
                        PyErr_Format(PyExc_ValueError, "%s: item %zd contains a NUL character", what, i);
                        goto fail;
                }
                if (!(v[i] = strdup(s))) {
                        PyErr_NoMemory();
                        goto fail;
                }
        }
        Py_DECREF(fast);
        *ret = v;
        return 0;
fail:
        Py_DECREF(fast);
        strv_free(v);
        return -1;
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
        return PyUnicode_FromString(smolvm_version());
}

static PyObject *mod_strerror(PyObject *m, PyObject *arg)
{
        long code = PyLong_AsLong(arg);
        if (code == -1 && PyErr_Occurred())
                return NULL;
        if (code < -4095 || code > 4095)
                return PyErr_Format(PyExc_ValueError, "not an errno-style code: %ld", code);
        return PyUnicode_FromString(smolvm_strerror((int)code));
}

static PyMethodDef module_functions[] = {
        { "version", mod_version, METH_NOARGS, "version() -> str: libsmolvm's version." },
        { "strerror", mod_strerror, METH_O, "strerror(code) -> str: what a libsmolvm error code means." },
        { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
        PyModuleDef_HEAD_INIT,
        .m_name = "smolvm._smolvm",
        .m_doc = "libsmolvm for Python. Private: use the smolvm package.",
        .m_size = -1,
        .m_methods = module_functions,
};

static int add_int(PyObject *m, const char *name, long v)
{
        return PyModule_AddIntConstant(m, name, v);
}

/* PyModule_AddObjectRef() is 3.10's; this works from 3.8 on. */
static int add_ref(PyObject *m, const char *name, PyObject *o)
{
        Py_INCREF(o);
        if (PyModule_AddObject(m, name, o) < 0) {
                Py_DECREF(o);
                return -1;
        }
        return 0;
}

/* Exported explicitly: 3.8's PyMODINIT_FUNC has no visibility attribute, and the
 * extension is built with hidden visibility. */
__attribute__((visibility("default"))) PyMODINIT_FUNC PyInit__smolvm(void)
{
        if (PyType_Ready(&binding_vm_type) < 0 || PyType_Ready(&binding_exec_type) < 0)
                return NULL;
        PyObject *m = PyModule_Create(&module_def);
        if (!m)
                return NULL;
        if (call_module_init() < 0 || PyModule_AddFunctions(m, binding_vm_functions) < 0)
                goto fail;
        binding_library_error = PyErr_NewExceptionWithDoc(
                "smolvm._smolvm.LibraryError",
                "A libsmolvm call failed: args are (code, message, hint, console_tail, from_guest), code a "
                "negative errno. smolvm.exceptions turns it into SmolVMError and its subclasses.",
                NULL, NULL);
        if (!binding_library_error || add_ref(m, "LibraryError", binding_library_error) < 0 ||
            add_ref(m, "VM", (PyObject *)&binding_vm_type) < 0 || add_ref(m, "Exec", (PyObject *)&binding_exec_type) < 0)
                goto fail;
        /* The codes the Python layer maps to exception classes (smolvm.h). */
        if (add_int(m, "ENOTFOUND", SMOLVM_ENOTFOUND) < 0 || add_int(m, "EEXIST", SMOLVM_EEXIST) < 0 ||
            add_int(m, "EINVAL", SMOLVM_EINVAL) < 0 || add_int(m, "ETIMEDOUT", SMOLVM_ETIMEDOUT) < 0 ||
            add_int(m, "ENOTRUNNING", SMOLVM_ENOTRUNNING) < 0 || add_int(m, "EPAUSED", SMOLVM_EPAUSED) < 0 ||
            add_int(m, "EALREADY", SMOLVM_EALREADY) < 0 || add_int(m, "EUNREACHABLE", SMOLVM_EUNREACHABLE) < 0 ||
            add_int(m, "EIMAGE", SMOLVM_EIMAGE) < 0 || add_int(m, "EBACKEND", SMOLVM_EBACKEND) < 0 ||
            add_int(m, "EBUSY", SMOLVM_EBUSY) < 0 || add_int(m, "ECORRUPT", SMOLVM_ECORRUPT) < 0 ||
            add_int(m, "ECANCELED", -ECANCELED) < 0 || add_int(m, "ECLOSED", -EBADF) < 0 ||
            add_int(m, "MAX_MOUNTS", SMOLVM_MAX_MOUNTS) < 0)
                goto fail;
        return m;
fail:
        Py_DECREF(m);
        return NULL;
}
