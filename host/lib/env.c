/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's persistent environment over the agent's env_set / env_unset / env_list
 * ops. The guest keeps it under /etc/profile.d; values travel only inside the
 * request JSON, never on a command line. */
#include <stdio.h>

#include "agent_call_i.h"
#include "agent_proto.h"
#include "smolvm_i.h"
#include "util.h"

/* Same bound as exec's env (docs/protocol.md). */
#define MAX_VARS 4096u

static int invalid_key(const char *what, const char *k, size_t len)
{
        return vm_error(-EINVAL, "names are letters, digits and '_', not starting with a digit, at most 255 bytes",
                        "%s: invalid variable name '%.*s'", what, (int)MIN(len, (size_t)64), k);
}

int vm_env_check(const char *what, const char *const *kv)
{
        size_t total = 0;
        for (size_t i = 0; kv && kv[i]; i++) {
                size_t klen = 0;
                if (i >= MAX_VARS)
                        return vm_error(-E2BIG, NULL, "%s: more than %u variables", what, MAX_VARS);
                int r = agent_env_entry_check(kv[i], &klen);
                if (r < 0 && !strchr(kv[i], '='))
                        /* Never echo the entry: it may be a secret missing its '='. */
                        return vm_error(-EINVAL, "use NAME=VALUE", "%s: entry %zu has no '='", what, i + 1);
                if (r == -EINVAL)
                        return invalid_key(what, kv[i], klen);
                size_t vlen = strlen(kv[i] + klen + 1);
                if (r == -E2BIG)
                        return vm_error(-E2BIG, "keep big data in a file (`smolvm cp`)",
                                        "%s: the value of %.*s is %zu bytes (at most %u)", what, (int)klen, kv[i],
                                        vlen, AGENT_ENV_MAX_VALUE);
                total += klen + vlen;
        }
        if (total > AGENT_ENV_MAX_TOTAL)
                return vm_error(-E2BIG, "keep big data in a file (`smolvm cp`)",
                                "%s: the variables total %zu bytes (keys + values; at most %u)", what, total,
                                AGENT_ENV_MAX_TOTAL);
        return 0;
}

SMOLVM_EXPORT int smolvm_set_env(smolvm_vm *vm, const char *const *kv)
{
        if (!kv || !kv[0])
                return vm_error(-EINVAL, NULL, "env_set: no variables given");
        json_t *vars = json_object();
        if (!vars)
                return vm_error(-ENOMEM, NULL, "out of memory");
        int r = vm_env_check("env_set", kv);
        if (r < 0)
                goto out;
        for (size_t i = 0; kv[i]; i++) {
                const char *eq = strchr(kv[i], '=');
                size_t klen = (size_t)(eq - kv[i]);
                char key[256];
                memcpy(key, kv[i], klen);
                key[klen] = '\0';
                json_t *v = json_string(eq + 1);
                if (!v) {
                        r = vm_error(-EINVAL, NULL, "env_set: value of %s is not valid UTF-8", key);
                        goto out;
                }
                json_object_set_new(vars, key, v);
        }
        json_t *req = json_object();
        if (!req) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        json_object_set_new(req, "op", json_string("env_set"));
        json_object_set(req, "vars", vars);
        json_t *res = NULL;
        r = agent_call_simple(vm, req, "env_set", &res);
        json_decref(req);
        json_decref(res);
out:
        json_decref(vars);
        return r;
}

SMOLVM_EXPORT int smolvm_unset_env(smolvm_vm *vm, const char *const *keys)
{
        if (!keys || !keys[0])
                return vm_error(-EINVAL, NULL, "env_unset: no variables given");
        json_t *arr = json_array(), *req = json_object();
        int r = 0;
        if (!arr || !req) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        for (size_t i = 0; keys[i]; i++) {
                if (i >= MAX_VARS) {
                        r = vm_error(-E2BIG, NULL, "env_unset: more than %u variables", MAX_VARS);
                        goto out;
                }
                if (!agent_env_key_valid(keys[i])) {
                        r = invalid_key("env_unset", keys[i], strlen(keys[i]));
                        goto out;
                }
                json_array_append_new(arr, json_string(keys[i]));
        }
        json_object_set_new(req, "op", json_string("env_unset"));
        json_object_set(req, "keys", arr);
        json_t *res = NULL;
        r = agent_call_simple(vm, req, "env_unset", &res);
        json_decref(res);
out:
        json_decref(arr);
        json_decref(req);
        return r;
}

SMOLVM_EXPORT void smolvm_env_free(char **kv)
{
        if (!kv)
                return;
        for (size_t i = 0; kv[i]; i++)
                free(kv[i]);
        free(kv);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

SMOLVM_EXPORT int smolvm_list_env(smolvm_vm *vm, char ***ret_kv)
{
        json_t *req = json_pack("{s:s}", "op", "env_list");
        if (!req)
                return vm_error(-ENOMEM, NULL, "out of memory");
        json_t *res = NULL;
        int r = agent_call_simple(vm, req, "env_list", &res);
        json_decref(req);
        if (r < 0)
                return r;
        json_t *env = json_object_get(res, "env");
        size_t n = json_object_size(env);
        char **kv = NULL;
        if (!json_is_object(env) || n > MAX_VARS) {
                r = vm_error(-EBADMSG, NULL, "env_list: guest agent sent an invalid RESULT");
                goto out;
        }
        kv = calloc(n + 1, sizeof(char *));
        if (!kv) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        size_t i = 0;
        const char *key;
        json_t *val;
        json_object_foreach(env, key, val) {
                /* What the guest sends ends up in a C string: no NUL may hide a suffix. */
                if (!agent_env_key_valid(key) || !json_is_string(val) ||
                    json_string_length(val) != strlen(json_string_value(val))) {
                        r = vm_error(-EBADMSG, NULL, "env_list: guest agent sent an invalid variable");
                        goto out;
                }
                if (asprintf(&kv[i], "%s=%s", key, json_string_value(val)) < 0) {
                        kv[i] = NULL;
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto out;
                }
                i++;
        }
        qsort(kv, i, sizeof(char *), cmp_str);
        *ret_kv = TAKE_PTR(kv);
out:
        smolvm_env_free(kv);
        json_decref(res);
        return r;
}
