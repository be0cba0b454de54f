/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm port expose|ls|close, and --publish for run/create: host TCP ports
 * forwarded to a VM's guest ports (smolvm.h, "port forwarding"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const char port_about[] =
        "Forward host TCP ports to a VM's guest ports. The host listener lives in the\n"
        "VM's supervisor: it outlives this command and dies with the VM; forwards are\n"
        "recorded with the VM and come back, on the same host port, at every start.\n"
        "A connection reaches the guest's 127.0.0.1:GUEST_PORT (or ::1), carried over\n"
        "the VM's channel: the guest needs no network. If nothing listens there, the\n"
        "host connection is closed at once.\n";

typedef struct port_args {
        unsigned host_port;
        const char *bind;
} port_args;

static const cli_opt expose_opts[] = {
        CLI_UINT(port_args, host_port, "host-port", 0, "P", 1, 65535, 1, "host port (default: a free one)"),
        CLI_STRING(port_args, bind, "bind", 0, "ADDR", "host address to listen on (default 127.0.0.1)"),
        CLI_END,
};

static const cli_cmd expose_cmd = {
        .name = "port expose",
        .synopsis = "[--host-port P] [--bind ADDR] [--json] ID GUEST_PORT",
        .about = port_about,
        .opts = expose_opts,
        .json_help = "print the result as a JSON envelope; data: {\"guest_port\", \"host_port\", \"bind\"}",
        .footer = "Prints the host port. A taken host port is an error naming it (code port_in_use).\n",
};

static const cli_cmd ls_cmd = {
        .name = "port ls",
        .synopsis = "[--json] ID",
        .about = port_about,
        .json_help = "print the result as a JSON envelope; data: {\"ports\": [{\"guest_port\", \"host_port\",\n"
                     "\"bind\", \"active\", \"connections\"}]} (host_port 0: chosen at the next start;\n"
                     "active: listening now; connections: relayed now)",
};

static const cli_cmd close_cmd = {
        .name = "port close",
        .synopsis = "[--json] ID GUEST_PORT",
        .about = port_about,
        .json_help = "print the result as a JSON envelope; data: {\"guest_port\"}",
};

static int parse_port(const char *what, const char *s, unsigned min, uint16_t *ret)
{
        unsigned long v;
        int r = cli_parse_uint(what, s, min, 65535, &v);
        if (r == 0)
                *ret = (uint16_t)v;
        return r;
}

int cli_publish_add(const char *arg, void *field)
{
        cli_ports *ps = field;
        smolvm_port p = { 0 };
        const char *colon = strchr(arg, ':');
        if (ps->n >= SMOLVM_MAX_PORTS) {
                cli_error("too many --publish options (max %u)", SMOLVM_MAX_PORTS);
                return -EINVAL;
        }
        if (colon) {
                char host[8];
                size_t len = (size_t)(colon - arg);
                if (len == 0 || len >= sizeof(host)) {
                        cli_error("invalid value '%s' for --publish (expected [HOST_PORT:]GUEST_PORT)", arg);
                        return -EINVAL;
                }
                memcpy(host, arg, len);
                host[len] = '\0';
                if (parse_port("--publish's host port", host, 1, &p.host_port) < 0)
                        return -EINVAL;
        }
        if (parse_port("--publish's guest port", colon ? colon + 1 : arg, 1, &p.guest_port) < 0)
                return -EINVAL;
        ps->v[ps->n++] = p;
        return 0;
}

static json_t *port_json(uint16_t guest, uint16_t host, const char *bind)
{
        return json_pack("{s:i,s:i,s:s}", "guest_port", (int)guest, "host_port", (int)host, "bind", bind);
}

/* `port expose|close [OPTIONS] ID GUEST_PORT`: parse, then open the VM. Returns
 * true with *ret_vm and *ret_guest; false with the exit code in *ret_exit. */
static bool open_vm_port(const cli_cmd *cmd, int argc, char **argv, void *args, cli_parsed *p, smolvm_vm **ret_vm,
                         uint16_t *ret_guest, int *ret_exit)
{
        int r = cli_parse(cmd, argc, argv, args, p);
        if (r != 0) {
                *ret_exit = cli_parse_exit(r);
                return false;
        }
        if (p->n_pos != 2) {
                *ret_exit = cli_usage(p, "%s needs exactly two arguments: ID GUEST_PORT", cmd->name);
                return false;
        }
        if (parse_port("GUEST_PORT", p->pos[1], 1, ret_guest) < 0) {
                *ret_exit = cli_usage_fail(cmd->name, p->json);
                return false;
        }
        r = smolvm_open(p->pos[0], ret_vm);
        if (r < 0) {
                *ret_exit = cli_fail(cmd->name, p->json, r);
                return false;
        }
        return true;
}

static int port_expose(int argc, char **argv)
{
        port_args a = { 0 };
        cli_parsed p;
        smolvm_vm *vm = NULL;
        uint16_t guest = 0, bound = 0;
        int r;
        if (!open_vm_port(&expose_cmd, argc, argv, &a, &p, &vm, &guest, &r))
                return r;
        const char *bind = a.bind ? a.bind : "127.0.0.1";
        r = smolvm_port_expose(vm, guest, (uint16_t)a.host_port, bind, &bound);
        smolvm_free(vm);
        if (r < 0)
                return cli_fail(expose_cmd.name, p.json, r);
        if (p.json)
                cli_json_ok(expose_cmd.name, 0, port_json(guest, bound, bind));
        else
                printf("%u\n", (unsigned)bound);
        return 0;
}

static int port_ls(int argc, char **argv)
{
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int rc;
        if (!cli_open_vm_arg(&ls_cmd, argc, argv, NULL, &p, &vm, &rc))
                return rc;
        smolvm_port_info *v = NULL;
        size_t n = 0;
        int r = smolvm_port_list(vm, &v, &n);
        smolvm_free(vm);
        if (r < 0)
                return cli_fail(ls_cmd.name, p.json, r);
        if (p.json) {
                json_t *arr = json_array();
                for (size_t i = 0; arr && i < n; i++) {
                        json_t *o = port_json(v[i].guest_port, v[i].host_port, v[i].bind_addr);
                        json_object_set_new(o, "active", json_boolean(v[i].active));
                        json_object_set_new(o, "connections", json_integer(v[i].connections));
                        json_array_append_new(arr, o);
                }
                cli_json_ok(ls_cmd.name, 0, arr ? json_pack("{s:o}", "ports", arr) : NULL);
        } else {
                if (n)
                        printf("%-10s %-24s %-7s %s\n", "GUEST", "HOST", "ACTIVE", "CONNS");
                for (size_t i = 0; i < n; i++) {
                        bool v6 = strchr(v[i].bind_addr, ':') != NULL;
                        char host[16];
                        if (v[i].host_port)
                                snprintf(host, sizeof(host), "%u", (unsigned)v[i].host_port);
                        else
                                snprintf(host, sizeof(host), "(at start)");
                        char where[80];
                        snprintf(where, sizeof(where), "%s%s%s:%s", v6 ? "[" : "", v[i].bind_addr, v6 ? "]" : "",
                                 host);
                        printf("%-10u %-24s %-7s %u\n", (unsigned)v[i].guest_port, where, v[i].active ? "yes" : "no",
                               v[i].connections);
                }
        }
        free(v);
        return 0;
}

static int port_close(int argc, char **argv)
{
        cli_parsed p;
        smolvm_vm *vm = NULL;
        uint16_t guest = 0;
        int r;
        if (!open_vm_port(&close_cmd, argc, argv, NULL, &p, &vm, &guest, &r))
                return r;
        r = smolvm_port_close(vm, guest);
        smolvm_free(vm);
        if (r < 0)
                return cli_fail(close_cmd.name, p.json, r);
        if (p.json)
                cli_json_ok(close_cmd.name, 0, json_pack("{s:i}", "guest_port", (int)guest));
        return 0;
}

static const cli_verb port_verbs[] = {
        { "expose", port_expose, "forward a host port to a guest port; prints the host port" },
        { "ls", port_ls, "list the forwards" },
        { "close", port_close, "stop forwarding a guest port" },
        { NULL, NULL, NULL },
};

static const cli_family port_family = {
        .name = "port",
        .about = port_about,
        .verbs = port_verbs,
};

int cmd_port(int argc, char **argv)
{
        return cli_run_family(&port_family, argc, argv);
}
