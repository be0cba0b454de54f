/* SPDX-License-Identifier: Apache-2.0 */
/* Egress by name, libsmolvm's part: the policy in the record ("net", the same
 * object the supervisor reads from DIR/net.json: {"mode": "allow"|"open",
 * "allow": [PATTERN], "deny": [PATTERN], "hosts": {NAME: IP}}), changes while
 * the VM runs (the supervisor re-reads net.json when it changes), the log's
 * path. The rules themselves are common/egress_policy.c. */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "egress_policy.h"
#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

static int bad_pattern(const char *what, const char *p)
{
        return vm_error(-EINVAL,
                        "use NAME, *.SUFFIX or an IP address, each optionally with :PORT (example.org, "
                        "*.example.org, example.org:443)",
                        "invalid %s pattern '%s'", what, p);
}

/* Patterns are names: compared in lowercase. */
static json_t *pattern_list(const char *what, const char *const *v, int *r)
{
        json_t *a = json_array();
        size_t n = 0;
        for (; a && v && v[n] && *r == 0; n++) {
                char buf[EGRESS_NAME_MAX + 16];
                if (strlen(v[n]) >= sizeof(buf)) {
                        *r = bad_pattern(what, v[n]);
                        break;
                }
                for (size_t i = 0; (buf[i] = (char)tolower((unsigned char)v[n][i])); i++)
                        ;
                if (!egress_pattern_valid(buf))
                        *r = bad_pattern(what, v[n]);
                else if (n >= EGRESS_MAX_RULES)
                        *r = vm_error(-EINVAL, NULL, "too many %s patterns (at most %u)", what, EGRESS_MAX_RULES);
                else if (json_array_append_new(a, json_string(buf)) < 0)
                        *r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        if (!a && *r == 0)
                *r = vm_error(-ENOMEM, NULL, "out of memory");
        if (*r < 0) {
                json_decref(a);
                return NULL;
        }
        return a;
}

int vm_net_from_config(const smolvm_config *cfg, vm_record *rec)
{
        const smolvm_net *n = cfg->net;
        if (!n)
                return 0;
        int r = 0;
        json_t *allow = pattern_list("--allow-host", n->allow, &r);
        json_t *deny = r == 0 ? pattern_list("--deny-host", n->deny, &r) : NULL;
        json_t *hosts = json_object();
        for (size_t i = 0; r == 0 && n->hosts && n->hosts[i]; i++) {
                const char *h = n->hosts[i], *colon = strchr(h, ':');
                char name[EGRESS_NAME_MAX + 1];
                uint8_t addr[16];
                size_t len = colon ? (size_t)(colon - h) : 0;
                if (len > 0 && len < sizeof(name))
                        for (size_t k = 0; k < len; k++)
                                name[k] = (char)tolower((unsigned char)h[k]);
                name[len < sizeof(name) ? len : 0] = '\0';
                if (!colon || len == 0 || len >= sizeof(name) || !egress_name_valid(name) ||
                    (inet_pton(AF_INET, colon + 1, addr) != 1 && inet_pton(AF_INET6, colon + 1, addr) != 1))
                        r = vm_error(-EINVAL, "use NAME:IP, e.g. --add-host db.local:10.0.0.5",
                                     "invalid --add-host '%s'", h);
                else if (i >= EGRESS_MAX_RULES)
                        r = vm_error(-EINVAL, NULL, "too many --add-host (at most %u)", EGRESS_MAX_RULES);
                else if (!hosts || json_object_set_new(hosts, name, json_string(colon + 1)) < 0)
                        r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        json_t *o = r == 0 ? json_pack("{s:s, s:o, s:o, s:o}", "mode", n->open ? "open" : "allow", "allow", allow,
                                       "deny", deny, "hosts", hosts)
                           : NULL;
        if (r < 0) {
                json_decref(allow);
                json_decref(deny);
                json_decref(hosts);
                return r;
        }
        if (!o)
                return vm_error(-ENOMEM, NULL, "out of memory");
        json_decref(rec->net);
        rec->net = o;
        return 0;
}

int vm_net_parse(json_t *root, vm_record *rec, char *why, size_t why_len)
{
        json_t *n = json_object_get(root, "net");
        if (!n || json_is_null(n))
                return 0;
        /* The supervisor checks every pattern when it loads net.json; here only
         * the shape, so that a later change can add to the lists. */
        json_t *m = json_object_get(n, "mode");
        if (!json_is_object(n) || !json_is_string(m) || !json_is_array(json_object_get(n, "allow")) ||
            !json_is_array(json_object_get(n, "deny")) || !json_is_object(json_object_get(n, "hosts"))) {
                snprintf(why, why_len, "field 'net' must be {\"mode\", \"allow\": [], \"deny\": [], \"hosts\": {}}");
                return -EINVAL;
        }
        rec->net = json_incref(n);
        return 0;
}

int vm_net_write_policy(const char *dir, const vm_record *rec)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/" VMDIR_NET_POLICY, dir);
        if (!rec->net) {
                if (unlink(path) < 0 && errno != ENOENT)
                        return vm_error(negative_errno(), NULL, "remove %s: %s", path, strerror(errno));
                return 0;
        }
        _cleanup_free_ char *s = json_dumps(rec->net, JSON_INDENT(2));
        if (!s)
                return vm_error(-ENOMEM, NULL, "out of memory");
        return vm_write_file(path, s, strlen(s), !rec->ephemeral);
}

int vm_net_inherit(smolvm_vm *vm, const json_t *net)
{
        json_t *copy = json_deep_copy(net);
        if (!copy)
                return vm_error(-ENOMEM, NULL, "out of memory");
        json_decref(vm->rec.net);
        vm->rec.net = copy;
        return vm_record_save(vm->dir, &vm->rec);
}

/* Remove from the array a every pattern for p's host (whatever its port):
 * `net allow example.org:443` undoes an earlier `net deny example.org`. */
static void list_remove(json_t *a, const char *p)
{
        for (size_t i = json_array_size(a); i-- > 0;)
                if (egress_pattern_same_host(json_string_value(json_array_get(a, i)), p))
                        json_array_remove(a, i);
}

SMOLVM_EXPORT int smolvm_net_change(smolvm_vm *vm, bool allow, const char *pattern)
{
        const char *what = allow ? "net allow" : "net deny";
        char buf[EGRESS_NAME_MAX + 16];
        if (!pattern || strlen(pattern) >= sizeof(buf))
                return bad_pattern(what, pattern ? pattern : "");
        for (size_t i = 0; (buf[i] = (char)tolower((unsigned char)pattern[i])); i++)
                ;
        if (!egress_pattern_valid(buf))
                return bad_pattern(what, pattern);

        char lock_path[4096];
        snprintf(lock_path, sizeof(lock_path), "%s/" VMDIR_LOCK, vm->dir);
        _cleanup_close_ int lock = vm_lock_path(lock_path, 10000);
        if (lock < 0)
                return lock;
        vm_record rec;
        int r = vm_record_load(vm->dir, &rec);
        if (r < 0)
                return r;
        if (!rec.net) {
                vm_record_done(&rec);
                return vm_error(-EINVAL, "create the VM with --allow-host or --net open to give it a network",
                                "VM %s has no network", vm->id);
        }
        json_t *add = json_object_get(rec.net, allow ? "allow" : "deny");
        json_t *drop = json_object_get(rec.net, allow ? "deny" : "allow");
        list_remove(drop, buf);
        for (size_t i = json_array_size(add); i-- > 0;)
                if (!strcmp(json_string_value(json_array_get(add, i)), buf))
                        json_array_remove(add, i);
        if (json_array_size(add) >= EGRESS_MAX_RULES)
                r = vm_error(-EINVAL, NULL, "too many patterns (at most %u)", EGRESS_MAX_RULES);
        else if (json_array_append_new(add, json_string(buf)) < 0)
                r = vm_error(-ENOMEM, NULL, "out of memory");
        if (r == 0)
                r = vm_record_save(vm->dir, &rec);
        if (r == 0)
                r = vm_net_write_policy(vm->dir, &rec);
        if (r == 0) {
                json_decref(vm->rec.net);
                vm->rec.net = json_incref(rec.net);
        }
        vm_record_done(&rec);
        return r;
}

SMOLVM_EXPORT char *smolvm_net_log_path(smolvm_vm *vm)
{
        char *p = NULL;
        return asprintf(&p, "%s/" VMDIR_NET_LOG, vm->dir) < 0 ? NULL : p;
}
