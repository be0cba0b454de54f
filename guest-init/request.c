/* SPDX-License-Identifier: Apache-2.0 */
#include "request.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const base_env[] = {
        ("PATH=" AGENT_DEFAULT_PATH), /* one string (parenthesised: not a missing comma) */
        "HOME=/root",
        "TERM=xterm",
        "LANG=C.UTF-8",
};

const char *const *agent_base_env(size_t *ret_n)
{
        *ret_n = ARRAY_SIZE(base_env);
        return base_env;
}

void agent_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static void strv_freep(char ***v) { agent_strv_free(*v); }

/* Length of the key part of "K=V", or 0 if the entry is not of that form. */
static size_t env_key_len(const char *e)
{
        const char *eq = strchr(e, '=');
        return eq ? (size_t)(eq - e) : 0;
}

int agent_env_merge(const char *const *base, size_t n_base, const char *const *extra, size_t n_extra,
                    char ***ret, size_t *ret_n, size_t *ret_bad_index)
{
        for (size_t i = 0; i < n_extra; i++) {
                if (env_key_len(extra[i]) == 0) {
                        if (ret_bad_index)
                                *ret_bad_index = i;
                        return -EINVAL;
                }
        }

        _cleanup_(strv_freep) char **v = calloc(n_base + n_extra + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        size_t n = 0;
        /* Quadratic, but both lists are bounded (AGENT_MAX_ENV) and usually tiny. */
        for (size_t i = 0; i < n_base + n_extra; i++) {
                const char *e = i < n_base ? base[i] : extra[i - n_base];
                size_t klen = env_key_len(e);
                size_t j = 0;
                if (klen > 0) {
                        for (; j < n; j++)
                                if (env_key_len(v[j]) == klen && memcmp(v[j], e, klen) == 0)
                                        break;
                } else {
                        j = n; /* a malformed base entry is kept as is */
                }
                char *copy = strdup(e);
                if (!copy)
                        return -ENOMEM;
                if (j < n) {
                        free(v[j]);
                        v[j] = copy;
                } else {
                        v[n++] = copy;
                }
        }
        *ret = TAKE_PTR(v);
        if (ret_n)
                *ret_n = n;
        return 0;
}

/* Copy a JSON array of strings into a NULL-terminated vector of borrowed pointers. */
static int string_array(json_t *arr, const char *field, size_t max, const char ***ret, size_t *ret_n,
                        char *errbuf, size_t errbuf_len)
{
        if (!json_is_array(arr))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field '%s' must be an array of strings", field);
        size_t n = json_array_size(arr);
        if (n > max)
                return errbuf_fail(-E2BIG, errbuf, errbuf_len, "field '%s' has %zu entries (at most %zu allowed)",
                                   field, n, max);
        const char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(arr, i);
                if (!json_is_string(s)) {
                        free(v);
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field '%s[%zu]' must be a string", field, i);
                }
                v[i] = json_string_value(s);
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static int dup_strv(const char *const *src, size_t n, char ***ret)
{
        char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                v[i] = strdup(src[i]);
                if (!v[i]) {
                        agent_strv_free(v);
                        return -ENOMEM;
                }
        }
        *ret = v;
        return 0;
}

static int get_bool(json_t *root, const char *field, bool def, bool *ret, char *errbuf, size_t errbuf_len)
{
        json_t *j = json_object_get(root, field);
        if (!j || json_is_null(j)) {
                *ret = def;
                return 0;
        }
        if (!json_is_boolean(j))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field '%s' must be a boolean", field);
        *ret = json_is_true(j);
        return 0;
}

/* An optional integer field in 0..65535 (missing or null: *ret untouched). */
static int get_u16(json_t *root, const char *field, uint16_t *ret, char *errbuf, size_t errbuf_len)
{
        json_t *j = json_object_get(root, field);
        if (!j || json_is_null(j))
                return 0;
        if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > UINT16_MAX)
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field '%s' must be an integer from 0 to 65535", field);
        *ret = (uint16_t)json_integer_value(j);
        return 0;
}

static int parse_exec(json_t *root, agent_request *req, char *errbuf, size_t errbuf_len)
{
        agent_exec_spec *ret = &req->exec;
        json_t *jargv = json_object_get(root, "argv");
        json_t *jshell = json_object_get(root, "shell");
        _cleanup_free_ const char **argv_borrowed = NULL;
        size_t n_argv = 0;
        const char *shell_argv[4];
        int r;

        if (jargv && jshell)
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "fields 'argv' and 'shell' are exclusive");
        if (jshell) {
                if (!json_is_string(jshell))
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'shell' must be a string");
                shell_argv[0] = "/bin/sh";
                shell_argv[1] = "-c";
                shell_argv[2] = json_string_value(jshell);
                shell_argv[3] = NULL;
                n_argv = 3;
        } else if (jargv) {
                r = string_array(jargv, "argv", AGENT_MAX_ARGV, &argv_borrowed, &n_argv, errbuf, errbuf_len);
                if (r < 0)
                        return r;
                if (n_argv == 0)
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'argv' must not be empty");
                if (argv_borrowed[0][0] == '\0')
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'argv[0]' must not be empty");
        } else {
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "missing field 'argv' (or 'shell')");
        }

        _cleanup_free_ const char **env_extra = NULL;
        size_t n_env_extra = 0;
        json_t *jenv = json_object_get(root, "env");
        if (jenv && !json_is_null(jenv)) {
                r = string_array(jenv, "env", AGENT_MAX_ENV, &env_extra, &n_env_extra, errbuf, errbuf_len);
                if (r < 0)
                        return r;
        }

        const char *cwd = AGENT_DEFAULT_CWD;
        json_t *jcwd = json_object_get(root, "cwd");
        if (jcwd && !json_is_null(jcwd)) {
                if (!json_is_string(jcwd))
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'cwd' must be a string");
                cwd = json_string_value(jcwd);
                if (cwd[0] != '/')
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'cwd' must be an absolute path");
        }

        uint64_t timeout_ms = 0;
        json_t *jt = json_object_get(root, "timeout_ms");
        if (jt && !json_is_null(jt)) {
                if (!json_is_integer(jt) || json_integer_value(jt) < 0)
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len,
                                           "field 'timeout_ms' must be a non-negative integer");
                timeout_ms = (uint64_t)json_integer_value(jt);
        }

        /* Background processes outlive their command by default, as over SSH. */
        bool want_stdin = false, keep_background = true, tty = false, detach = false;
        if ((r = get_bool(root, "stdin", false, &want_stdin, errbuf, errbuf_len)) < 0 ||
            (r = get_bool(root, "keep_background", true, &keep_background, errbuf, errbuf_len)) < 0 ||
            (r = get_bool(root, "tty", false, &tty, errbuf, errbuf_len)) < 0 ||
            (r = get_bool(root, "detach", false, &detach, errbuf, errbuf_len)) < 0)
                return r;
        uint16_t rows = 0, cols = 0;
        if ((r = get_u16(root, "rows", &rows, errbuf, errbuf_len)) < 0 ||
            (r = get_u16(root, "cols", &cols, errbuf, errbuf_len)) < 0)
                return r;
        /* A detached command has nobody to type into it or to time it. */
        if (detach && (tty || want_stdin || timeout_ms))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'detach' cannot be combined with '%s'",
                                   tty ? "tty" : want_stdin ? "stdin" : "timeout_ms");

        /* All validated; now allocate the result. */
        agent_exec_spec spec = { .timeout_ms = timeout_ms, .want_stdin = want_stdin,
                                 .keep_background = keep_background, .tty = tty, .rows = rows, .cols = cols,
                                 .detach = detach, .n_argv = n_argv };
        size_t n_base, bad = 0;
        const char *const *base = agent_base_env(&n_base);
        r = agent_env_merge(base, n_base, env_extra, n_env_extra, &spec.envp, &spec.n_envp, &bad);
        if (r == -EINVAL)
                return errbuf_fail(r, errbuf, errbuf_len, "field 'env[%zu]' must be of the form KEY=VALUE", bad);
        if (r < 0)
                return r;
        r = dup_strv(jshell ? shell_argv : argv_borrowed, n_argv, &spec.argv);
        if (r < 0)
                goto fail;
        r = dup_strv(env_extra, n_env_extra, &spec.env_extra); /* n == 0: src unused */
        if (r < 0)
                goto fail;
        spec.n_env_extra = n_env_extra;
        spec.cwd = strdup(cwd);
        if (!spec.cwd) {
                r = -ENOMEM;
                goto fail;
        }
        *ret = spec;
        return 0;
fail:
        agent_strv_free(spec.argv);
        agent_strv_free(spec.envp);
        agent_strv_free(spec.env_extra);
        return r;
}

/* The "path" of the file ops: a string, absolute, bounded. Borrowed from root. */
static int get_path(json_t *root, const char **ret, char *errbuf, size_t errbuf_len)
{
        json_t *j = json_object_get(root, "path");
        if (!j || json_is_null(j))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "missing field 'path'");
        if (!json_is_string(j))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'path' must be a string");
        const char *p = json_string_value(j);
        /* jansson refuses \u0000 without JSON_ALLOW_NUL; checked again so the C
         * string is the whole path whatever the parser flags. */
        if (strlen(p) != json_string_length(j))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'path' must not contain NUL bytes");
        if (p[0] != '/')
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'path' must be an absolute path");
        if (strlen(p) > AGENT_MAX_PATH)
                return errbuf_fail(-ENAMETOOLONG, errbuf, errbuf_len, "field 'path' is longer than %u bytes",
                                   AGENT_MAX_PATH);
        *ret = p;
        return 0;
}

static int parse_path_op(json_t *root, agent_request *req, char *errbuf, size_t errbuf_len)
{
        agent_op op = req->op;
        agent_path_spec *ret = &req->file;
        const char *path = NULL;
        int r = get_path(root, &path, errbuf, errbuf_len);
        if (r < 0)
                return r;
        agent_path_spec spec = { .mode = op == AGENT_OP_MKDIR ? 0755 : 0644 };
        if (op == AGENT_OP_WRITE_FILE || op == AGENT_OP_MKDIR) {
                json_t *jm = json_object_get(root, "mode");
                if (jm && !json_is_null(jm)) {
                        if (!json_is_integer(jm) || json_integer_value(jm) < 0 || json_integer_value(jm) > 07777)
                                return errbuf_fail(-EINVAL, errbuf, errbuf_len,
                                                   "field 'mode' must be an integer from 0 to 4095 (07777)");
                        spec.mode = (uint32_t)json_integer_value(jm);
                }
                const char *field = op == AGENT_OP_MKDIR ? "parents" : "mkdirs";
                r = get_bool(root, field, false, &spec.parents, errbuf, errbuf_len);
                if (r < 0)
                        return r;
        }
        if (op == AGENT_OP_FUSE_MOUNT) {
                r = get_bool(root, "read_only", true, &spec.read_only, errbuf, errbuf_len);
                if (r == 0)
                        r = get_bool(root, "reattach", false, &spec.reattach, errbuf, errbuf_len);
                if (r < 0)
                        return r;
        }
        spec.path = strdup(path);
        if (!spec.path)
                return -ENOMEM;
        *ret = spec;
        return 0;
}

static int parse_port_connect(json_t *root, agent_request *req, char *errbuf, size_t errbuf_len)
{
        json_t *j = json_object_get(root, "port");
        if (!j || json_is_null(j))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "missing field 'port'");
        if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > 65535)
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'port' must be an integer from 1 to 65535");
        req->port = (uint16_t)json_integer_value(j);
        return 0;
}

static void env_spec_free(agent_env_spec *e)
{
        agent_strv_free(e->keys);
        agent_strv_free(e->values);
        *e = (agent_env_spec){ 0 };
}

static int parse_env_set(json_t *root, agent_request *req, char *errbuf, size_t errbuf_len)
{
        agent_env_spec *ret = &req->env;
        json_t *jv = json_object_get(root, "vars");
        if (!jv || json_is_null(jv))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "missing field 'vars'");
        if (!json_is_object(jv))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'vars' must be an object of strings");
        size_t n = json_object_size(jv);
        if (n > AGENT_MAX_ENV)
                return errbuf_fail(-E2BIG, errbuf, errbuf_len, "field 'vars' has %zu entries (at most %u allowed)", n,
                                   AGENT_MAX_ENV);
        const char *key;
        json_t *val;
        json_object_foreach(jv, key, val) {
                if (!agent_env_key_valid(key))
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len,
                                           "invalid key '%.64s' (must match [A-Za-z_][A-Za-z0-9_]*)", key);
                if (!json_is_string(val))
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'vars.%.64s' must be a string", key);
                if (json_string_length(val) > AGENT_ENV_MAX_VALUE)
                        return errbuf_fail(-E2BIG, errbuf, errbuf_len,
                                           "value of '%.64s' is %zu bytes (at most %u allowed)", key,
                                           json_string_length(val), AGENT_ENV_MAX_VALUE);
                if (strlen(json_string_value(val)) != json_string_length(val))
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len, "value of '%.64s' contains a NUL byte", key);
        }
        agent_env_spec e = { .n = n };
        e.keys = calloc(n + 1, sizeof(char *));
        e.values = calloc(n + 1, sizeof(char *));
        if (!e.keys || !e.values)
                goto oom;
        size_t i = 0;
        json_object_foreach(jv, key, val) {
                e.keys[i] = strdup(key);
                e.values[i] = strdup(json_string_value(val));
                i++;
                if (!e.keys[i - 1] || !e.values[i - 1])
                        goto oom;
        }
        *ret = e;
        return 0;
oom:
        env_spec_free(&e);
        return -ENOMEM;
}

static int parse_env_unset(json_t *root, agent_request *req, char *errbuf, size_t errbuf_len)
{
        agent_env_spec *ret = &req->env;
        json_t *jk = json_object_get(root, "keys");
        if (!jk || json_is_null(jk))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "missing field 'keys'");
        _cleanup_free_ const char **keys = NULL;
        size_t n = 0;
        int r = string_array(jk, "keys", AGENT_MAX_ENV, &keys, &n, errbuf, errbuf_len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!agent_env_key_valid(keys[i]))
                        return errbuf_fail(-EINVAL, errbuf, errbuf_len,
                                           "invalid key '%.64s' (must match [A-Za-z_][A-Za-z0-9_]*)", keys[i]);
        agent_env_spec e = { .n = n };
        r = dup_strv(keys, n, &e.keys);
        if (r < 0)
                return r;
        *ret = e;
        return 0;
}

bool agent_hostname_valid(const char *name)
{
        size_t n = strlen(name);
        if (n == 0 || n > AGENT_HOSTNAME_MAX)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

/* Every op: its name on the wire and what its request carries (NULL: nothing
 * but "op"). Indexed by agent_op; the handler's table (handler.c) says how
 * each is served. */
static const struct {
        const char *name;
        int (*parse)(json_t *root, agent_request *req, char *errbuf, size_t errbuf_len);
} agent_ops[] = {
        [AGENT_OP_EXEC] = { "exec", parse_exec },
        [AGENT_OP_PING] = { "ping", NULL },
        [AGENT_OP_POWEROFF] = { "poweroff", NULL },
        [AGENT_OP_WRITE_FILE] = { "write_file", parse_path_op },
        [AGENT_OP_READ_FILE] = { "read_file", parse_path_op },
        [AGENT_OP_MKDIR] = { "mkdir", parse_path_op },
        [AGENT_OP_LIST_TREE] = { "list_tree", parse_path_op },
        [AGENT_OP_ENV_SET] = { "env_set", parse_env_set },
        [AGENT_OP_ENV_UNSET] = { "env_unset", parse_env_unset },
        [AGENT_OP_ENV_LIST] = { "env_list", NULL },
        [AGENT_OP_FUSE_MOUNT] = { "fuse_mount", parse_path_op },
        [AGENT_OP_FUSE_SERVE] = { "fuse_serve", parse_path_op },
        [AGENT_OP_FUSE_ABORT] = { "fuse_abort", parse_path_op },
        [AGENT_OP_PORT_CONNECT] = { "port_connect", parse_port_connect },
};
_Static_assert(ARRAY_SIZE(agent_ops) == AGENT_OP_COUNT, "an op without a name");

const char *agent_op_name(agent_op op)
{
        return (size_t)op < ARRAY_SIZE(agent_ops) ? agent_ops[op].name : "?";
}

int agent_request_parse(const void *json, size_t len, agent_request *ret, char *errbuf, size_t errbuf_len)
{
        json_error_t jerr;
        /* Default flags reject NUL bytes in strings, so every string is a C string. */
        json_auto_t *root = json_loadb(json, len, 0, &jerr);
        if (!root)
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "request is not valid JSON: %s (at byte %d)", jerr.text,
                                   jerr.position);
        if (!json_is_object(root))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "request must be a JSON object");
        json_t *jop = json_object_get(root, "op");
        if (!jop)
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "missing field 'op'");
        if (!json_is_string(jop))
                return errbuf_fail(-EINVAL, errbuf, errbuf_len, "field 'op' must be a string");
        const char *op = json_string_value(jop);

        agent_request req = { 0 };
        size_t i = 0;
        while (i < ARRAY_SIZE(agent_ops) && strcmp(op, agent_ops[i].name) != 0)
                i++;
        if (i == ARRAY_SIZE(agent_ops))
                /* Bounded: an op name may be up to a frame long. */
                return errbuf_fail(-EOPNOTSUPP, errbuf, errbuf_len, "unknown op '%.64s'", op);
        req.op = (agent_op)i;
        if (agent_ops[i].parse) {
                int r = agent_ops[i].parse(root, &req, errbuf, errbuf_len);
                if (r < 0)
                        return r;
        }
        *ret = req;
        return 0;
}

void agent_request_done(agent_request *r)
{
        if (!r)
                return;
        if (r->op == AGENT_OP_EXEC) {
                agent_strv_free(r->exec.argv);
                agent_strv_free(r->exec.envp);
                agent_strv_free(r->exec.env_extra);
                free(r->exec.cwd);
        }
        free(r->file.path);
        env_spec_free(&r->env);
        *r = (agent_request){ 0 };
}
