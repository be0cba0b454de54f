/* SPDX-License-Identifier: Apache-2.0 */
/* Port forwards (smolvm.h, "port forwarding"; docs/internals.md, "Port
 * forwarding"). The record is DIR/ports.json, {"ports": [{"guest": 80,
 * "host": 8080, "bind": "127.0.0.1"}, ...]}, changed under DIR/ports.lock; the
 * listeners live in the supervisor, which gets "EXPOSE"/"UNEXPOSE" control
 * lines on the hybrid-vsock socket (common/hvsock_client.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvsock_client.h"
#include "smolvm_i.h"
#include "vmdir.h"

#define DEFAULT_BIND "127.0.0.1"

static bool addr_valid(const char *a)
{
        unsigned char buf[sizeof(struct in6_addr)];
        return a && strlen(a) < INET6_ADDRSTRLEN &&
               (inet_pton(AF_INET, a, buf) == 1 || inet_pton(AF_INET6, a, buf) == 1);
}

static int check_port(uint16_t guest_port, const char *bind_addr)
{
        if (guest_port == 0)
                return vm_error(SMOLVM_EINVAL, NULL, "guest port 0: a port is 1..65535");
        if (!addr_valid(bind_addr))
                return vm_error(SMOLVM_EINVAL, "give a numeric IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1",
                                "bind address '%.64s' is not a numeric IP address", bind_addr);
        return 0;
}

int vm_ports_check_config(const smolvm_config *cfg)
{
        if (cfg->n_ports > SMOLVM_MAX_PORTS)
                return vm_error(SMOLVM_EINVAL, NULL, "%zu port forwards: at most %u", cfg->n_ports, SMOLVM_MAX_PORTS);
        if (cfg->n_ports && !cfg->ports)
                return vm_error(SMOLVM_EINVAL, NULL, "n_ports is %zu but ports is NULL", cfg->n_ports);
        for (size_t i = 0; i < cfg->n_ports; i++) {
                const smolvm_port *p = &cfg->ports[i];
                int r = check_port(p->guest_port, p->bind_addr ? p->bind_addr : DEFAULT_BIND);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (cfg->ports[j].guest_port == p->guest_port)
                                return vm_error(SMOLVM_EINVAL, NULL, "guest port %u is published twice",
                                                p->guest_port);
        }
        return 0;
}

/* ---- the record ---- */

static void dir_path(const char *dir, const char *name, char *buf, size_t size)
{
        snprintf(buf, size, "%s/%s", dir, name);
}

static int ports_lock(const char *dir)
{
        char path[PATH_MAX];
        dir_path(dir, VMDIR_PORTS_LOCK, path, sizeof(path));
        return vm_lock_path(path, VM_LOCK_TIMEOUT_MS);
}

/* The "ports" array of DIR/ports.json (a new empty one if there is no file). */
static int ports_load(const char *dir, json_t **ret)
{
        char path[PATH_MAX];
        json_error_t jerr;
        dir_path(dir, VMDIR_PORTS, path, sizeof(path));
        if (access(path, F_OK) < 0 && errno == ENOENT) {
                *ret = json_array();
                return *ret ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
        }
        json_t *root = json_load_file(path, 0, &jerr);
        json_t *a = root ? json_object_get(root, "ports") : NULL;
        bool ok = json_is_array(a) && json_array_size(a) <= SMOLVM_MAX_PORTS;
        for (size_t i = 0; ok && i < json_array_size(a); i++) {
                json_t *e = json_array_get(a, i);
                json_int_t g = json_integer_value(json_object_get(e, "guest"));
                json_int_t h = json_integer_value(json_object_get(e, "host"));
                ok = json_is_integer(json_object_get(e, "host")) && g >= 1 && g <= 65535 && h >= 0 && h <= 65535 &&
                     addr_valid(json_string_value(json_object_get(e, "bind")));
        }
        if (!ok) {
                json_decref(root);
                return vm_error(SMOLVM_ECORRUPT, "remove it and expose the ports again",
                                "%s: not a valid port forward record%s%s", path, root ? "" : ": ",
                                root ? "" : jerr.text);
        }
        *ret = json_incref(a);
        json_decref(root);
        return 0;
}

static int ports_save(const char *dir, json_t *ports)
{
        char path[PATH_MAX];
        dir_path(dir, VMDIR_PORTS, path, sizeof(path));
        json_t *root = json_pack("{s:O}", "ports", ports);
        _cleanup_free_ char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        if (!text)
                return vm_error(-ENOMEM, NULL, "out of memory");
        return vm_write_file_atomic(path, text, strlen(text));
}

static json_t *port_entry(uint16_t guest, uint16_t host, const char *bind)
{
        return json_pack("{s:i,s:i,s:s}", "guest", (int)guest, "host", (int)host, "bind", bind);
}

static json_t *find(json_t *ports, uint16_t guest_port, size_t *ret_index)
{
        size_t i;
        json_t *e;
        json_array_foreach(ports, i, e) {
                if (json_integer_value(json_object_get(e, "guest")) == guest_port) {
                        if (ret_index)
                                *ret_index = i;
                        return e;
                }
        }
        return NULL;
}

int vm_ports_write_config(const char *dir, const smolvm_config *cfg)
{
        if (cfg->n_ports == 0)
                return 0;
        json_t *ports = json_array();
        int r = ports ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
        for (size_t i = 0; r == 0 && i < cfg->n_ports; i++) {
                const smolvm_port *p = &cfg->ports[i];
                if (json_array_append_new(ports, port_entry(p->guest_port, p->host_port,
                                                            p->bind_addr ? p->bind_addr : DEFAULT_BIND)) < 0)
                        r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        if (r == 0)
                r = ports_save(dir, ports);
        json_decref(ports);
        return r;
}

/* ---- the supervisor ---- */

static int sup_request(smolvm_vm *vm, const char *line, uint32_t *ret_n)
{
        smolvm_hvsock_conn c;
        return smolvm_hvsock_control(&c, vm->dir, line, now_ms() + CONNECT_TIMEOUT_MS, ret_n);
}

static int sup_expose(smolvm_vm *vm, uint16_t guest, uint16_t host, const char *bind, uint16_t *ret_port)
{
        char line[SMOLVM_HVSOCK_LINE_MAX + 1];
        uint32_t bound = 0;
        snprintf(line, sizeof(line), "EXPOSE %u %u %s\n", guest, host, bind);
        int r = sup_request(vm, line, &bound);
        if (r == 0 && (bound == 0 || bound > 65535))
                r = -EPROTO;
        const char *v6l = strchr(bind, ':') ? "[" : "", *v6r = strchr(bind, ':') ? "]" : "";
        switch (r) {
        case 0:
                *ret_port = (uint16_t)bound;
                return 0;
        case -EADDRINUSE:
                return vm_error(r, host ? "choose another with --host-port, or leave it out for a free one" : NULL,
                                "host port %s%s%s:%u (for guest port %u) is already in use", v6l, bind, v6r, host,
                                guest);
        case -EADDRNOTAVAIL:
                return vm_error(r, "bind to an address of this host, e.g. 127.0.0.1",
                                "bind address %s is not an address of this host", bind);
        case -EACCES:
                return vm_error(r, "ports below 1024 need privileges; choose a higher one",
                                "binding host port %s%s%s:%u: %s", v6l, bind, v6r, host, strerror(-r));
        case -EEXIST:
                return vm_error(r, "close it first with `smolvm port close`",
                                "guest port %u is already exposed on another host port", guest);
        default:
                return vm_error(r, NULL, "VM %s: exposing guest port %u on %s%s%s:%u: %s", vm->id, guest, v6l, bind,
                                v6r, host, strerror(-r));
        }
}

static bool running(smolvm_vm *vm)
{
        return vm_live_supervisor(vm->dir, NULL) > 0;
}

int vm_ports_apply(smolvm_vm *vm)
{
        _cleanup_close_ int lock = ports_lock(vm->dir);
        if (lock < 0)
                return lock;
        json_t *ports = NULL;
        int r = ports_load(vm->dir, &ports);
        if (r < 0)
                return r;
        bool changed = false;
        size_t i;
        json_t *e;
        json_array_foreach(ports, i, e) {
                uint16_t g = (uint16_t)json_integer_value(json_object_get(e, "guest"));
                uint16_t h = (uint16_t)json_integer_value(json_object_get(e, "host"));
                uint16_t bound;
                r = sup_expose(vm, g, h, json_string_value(json_object_get(e, "bind")), &bound);
                if (r < 0)
                        break;
                if (bound != h) {
                        /* A forward to "any port" keeps the one it got, so a restart
                         * brings it back where clients know it. */
                        json_object_set_new(e, "host", json_integer(bound));
                        changed = true;
                }
        }
        if (changed) {
                int k = ports_save(vm->dir, ports);
                if (r == 0)
                        r = k;
        }
        json_decref(ports);
        return r;
}

/* ---- the API ---- */

SMOLVM_EXPORT int smolvm_port_expose(smolvm_vm *vm, uint16_t guest_port, uint16_t host_port, const char *bind_addr,
                                     uint16_t *ret_host_port)
{
        const char *bind = bind_addr ? bind_addr : DEFAULT_BIND;
        int r = check_port(guest_port, bind);
        if (r < 0)
                return r;
        _cleanup_close_ int lock = ports_lock(vm->dir);
        if (lock < 0)
                return lock;
        json_t *ports = NULL;
        r = ports_load(vm->dir, &ports);
        if (r < 0)
                return r;
        json_t *old = find(ports, guest_port, NULL);
        uint16_t bound = host_port;
        bool listening = false;
        if (old) {
                r = vm_error(-EEXIST, "close it first with `smolvm port close`",
                             "guest port %u is already exposed (host port %lld on %s)", guest_port,
                             (long long)json_integer_value(json_object_get(old, "host")),
                             json_string_value(json_object_get(old, "bind")));
        } else if (json_array_size(ports) >= SMOLVM_MAX_PORTS) {
                r = vm_error(-ENOSPC, "close one first", "VM %s has %u port forwards, the most it may have", vm->id,
                             SMOLVM_MAX_PORTS);
        } else if (running(vm)) {
                r = sup_expose(vm, guest_port, host_port, bind, &bound);
                listening = r == 0;
        }
        if (r == 0 && json_array_append_new(ports, port_entry(guest_port, bound, bind)) < 0)
                r = vm_error(-ENOMEM, NULL, "out of memory");
        if (r == 0)
                r = ports_save(vm->dir, ports);
        /* A listener whose record could not be written would vanish at the next
         * start without anyone having seen it: take it down again. */
        if (r < 0 && listening) {
                char line[32];
                uint32_t n;
                snprintf(line, sizeof(line), "UNEXPOSE %u\n", guest_port);
                (void)sup_request(vm, line, &n);
        }
        json_decref(ports);
        if (r == 0 && ret_host_port)
                *ret_host_port = bound;
        return r;
}

SMOLVM_EXPORT int smolvm_port_close(smolvm_vm *vm, uint16_t guest_port)
{
        _cleanup_close_ int lock = ports_lock(vm->dir);
        if (lock < 0)
                return lock;
        json_t *ports = NULL;
        size_t idx;
        int r = ports_load(vm->dir, &ports);
        if (r < 0)
                return r;
        if (!find(ports, guest_port, &idx)) {
                json_decref(ports);
                return vm_error(SMOLVM_ENOTFOUND, "`smolvm port ls` lists the forwards",
                                "guest port %u of VM %s is not exposed", guest_port, vm->id);
        }
        if (running(vm)) {
                char line[32];
                uint32_t n;
                snprintf(line, sizeof(line), "UNEXPOSE %u\n", guest_port);
                r = sup_request(vm, line, &n);
                if (r == -ENOENT)
                        r = 0; /* recorded while it was stopped and not applied: nothing listens */
                if (r < 0)
                        r = vm_error(r, NULL, "VM %s: closing guest port %u: %s", vm->id, guest_port, strerror(-r));
        }
        if (r == 0) {
                json_array_remove(ports, idx);
                r = ports_save(vm->dir, ports);
        }
        json_decref(ports);
        return r;
}

SMOLVM_EXPORT int smolvm_port_list(smolvm_vm *vm, smolvm_port_info **ret, size_t *ret_n)
{
        json_t *ports = NULL;
        int r = ports_load(vm->dir, &ports);
        if (r < 0)
                return r;
        size_t n = json_array_size(ports), i;
        smolvm_port_info *v = n ? calloc(n, sizeof(*v)) : NULL;
        if (n && !v) {
                json_decref(ports);
                return vm_error(-ENOMEM, NULL, "out of memory");
        }
        json_t *e;
        json_array_foreach(ports, i, e) {
                v[i].guest_port = (uint16_t)json_integer_value(json_object_get(e, "guest"));
                v[i].host_port = (uint16_t)json_integer_value(json_object_get(e, "host"));
                snprintf(v[i].bind_addr, sizeof(v[i].bind_addr), "%s", json_string_value(json_object_get(e, "bind")));
        }
        json_decref(ports);
        /* Live state: a stopped VM, or a forward its supervisor does not have
         * (ERR), is not active; a supervisor that does not answer neither. */
        bool live = n && running(vm);
        for (i = 0; live && i < n; i++) {
                char line[SMOLVM_HVSOCK_LINE_MAX + 1];
                uint32_t conns = 0;
                snprintf(line, sizeof(line), "PORTSTAT %u\n", v[i].guest_port);
                if (sup_request(vm, line, &conns) == 0) {
                        v[i].active = true;
                        v[i].connections = conns;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
