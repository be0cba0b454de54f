/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's persistent environment over the agent's env_set / env_unset / env_list
 * ops. The guest keeps it under /etc/profile.d; values travel only inside the
 * request JSON, never on a command line. */
#include <stdio.h>

#include "agent_call_i.h"
#include "smolvm_i.h"
#include "util.h"

/* Same bound as exec's env (docs/protocol.md). */
#define MAX_VARS 4096u

static bool key_valid(const char *k, size_t len)
{
        if (len == 0 || len > 255 || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
                return false;
        for (size_t i = 1; i < len; i++) {
                char c = k[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                        return false;
        }
        return true;
}

static int invalid_key(const char *what, const char *k, size_t len)
{
        return vm_error(-EINVAL, "names are letters, digits and '_', not starting with a digit",
                        "%s: invalid variable name '%.*s'", what, (int)MIN(len, (size_t)64), k);
}

SMOLVM_EXPORT int smolvm_set_env(smolvm_vm *vm, const char *const *kv)
{
        if (!kv || !kv[0])
                return vm_error(-EINVAL, NULL, "env_set: no variables given");
        json_t *vars = json_object();
        if (!vars)
                return vm_error(-ENOMEM, NULL, "out of memory");
        int r = 0;
        for (size_t i = 0; kv[i]; i++) {
                const char *eq = strchr(kv[i], '=');
                if (i >= MAX_VARS) {
                        r = vm_error(-E2BIG, NULL, "env_set: more than %u variables", MAX_VARS);
                        goto out;
                }
                if (!eq) {
                        /* Never echo the entry: it may be a secret missing its '='. */
                        r = vm_error(-EINVAL, "use NAME=VALUE", "env_set: entry %zu has no '='", i + 1);
                        goto out;
                }
                size_t klen = (size_t)(eq - kv[i]);
                if (!key_valid(kv[i], klen)) {
                        r = invalid_key("env_set", kv[i], klen);
                        goto out;
                }
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
                if (!key_valid(keys[i], strlen(keys[i]))) {
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
                if (!key_valid(key, strlen(key)) || !json_is_string(val) ||
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
