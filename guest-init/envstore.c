/* SPDX-License-Identifier: Apache-2.0 */
/* The persistent environment: env_set / env_unset / env_list, and its merge
 * into every exec.
 *
 * /etc/smolvm/env.json is the source of truth; /etc/profile.d/smolvm-env.sh is
 * generated from it for login shells (which may reset the environment the agent
 * gives them). Both are written with temp + fsync + rename, under an flock on
 * /etc/smolvm so concurrent requests (one handler process each) do not lose
 * updates. Values are written by us directly, never passed to a command, so
 * they appear in no argv. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fileutil.h"
#include "init.h"
#include "stream.h"
#include "util.h"

const char *agent_etc_dir = "/etc";

#define STORE_DIR "smolvm"
#define STORE_FILE "env.json"
#define PROFILE_DIR "profile.d"
#define PROFILE_FILE "smolvm-env.sh"
/* env.json larger than this is not ours (JSON escaping at most 6x the limit). */
#define STORE_FILE_MAX (8u * 1024u * 1024u)

static int etc_path(char *buf, size_t len, const char *a, const char *b)
{
        int n = b ? snprintf(buf, len, "%s/%s/%s", agent_etc_dir, a, b) : snprintf(buf, len, "%s/%s", agent_etc_dir, a);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Load env.json into a new object of valid entries. A missing file is empty. */
static int store_load(json_t **ret, char *err, size_t err_len)
{
        char path[AGENT_MAX_PATH];
        int r = etc_path(path, sizeof(path), STORE_DIR, STORE_FILE);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT) {
                        *ret = json_object();
                        return *ret ? 0 : -ENOMEM;
                }
                r = negative_errno();
                return errbuf_fail(r, err, err_len, "%s: %s", path, strerror(-r));
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > STORE_FILE_MAX)
                return errbuf_fail(-EINVAL, err, err_len, "%s: not a regular file of at most %u bytes", path,
                                   STORE_FILE_MAX);
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        r = read_all(fd, buf, (size_t)st.st_size);
        if (r < 0)
                return errbuf_fail(r, err, err_len, "%s: %s", path, strerror(-r));
        json_error_t jerr;
        json_auto_t *root = json_loadb(buf, (size_t)st.st_size, 0, &jerr);
        if (!root || !json_is_object(root))
                return errbuf_fail(-EINVAL, err, err_len, "%s: not a JSON object%s%s", path, root ? "" : ": ",
                                   root ? "" : jerr.text);
        json_t *vars = json_object();
        if (!vars)
                return -ENOMEM;
        const char *key;
        json_t *val;
        /* Someone may have edited the file: keep only what we could have written. */
        json_object_foreach(root, key, val) {
                if (!agent_env_key_valid(key) || !json_is_string(val) ||
                    json_string_length(val) > AGENT_ENV_MAX_VALUE ||
                    strlen(json_string_value(val)) != json_string_length(val)) {
                        init_log("%s: ignoring entry '%.64s'", path, key);
                        continue;
                }
                json_object_set(vars, key, val);
        }
        *ret = vars;
        return 0;
}

/* The keys of vars, sorted (borrowed from vars), NULL-terminated. */
static const char **sorted_keys(json_t *vars)
{
        size_t n = json_object_size(vars), i = 0;
        const char **keys = calloc(n + 1, sizeof(char *));
        if (!keys)
                return NULL;
        const char *key;
        json_t *val;
        json_object_foreach(vars, key, val)
                keys[i++] = key;
        qsort(keys, n, sizeof(char *), qsort_strcmp);
        return keys;
}

/* Append s to a growing buffer. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
        if (*len + n + 1 > *cap) {
                size_t c = MAX(*cap * 2, *len + n + 1);
                char *nb = realloc(*buf, c);
                if (!nb)
                        return -ENOMEM;
                *buf = nb;
                *cap = c;
        }
        memcpy(*buf + *len, s, n);
        *len += n;
        (*buf)[*len] = '\0';
        return 0;
}

/* The profile.d script: one `export K='V'` per variable. Inside single quotes
 * nothing is special but the quote itself, written as '\'' (close, escaped
 * quote, reopen); newlines and $ are kept literally. */
static int profile_render(json_t *vars, char **ret, size_t *ret_len)
{
        _cleanup_free_ const char **keys = sorted_keys(vars);
        if (!keys)
                return -ENOMEM;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        static const char head[] = "# Generated by smolvm-init from /etc/smolvm/env.json (smolvm env); do not edit.\n";
        int r = buf_add(&buf, &len, &cap, head, sizeof(head) - 1);
        for (size_t i = 0; r == 0 && keys[i]; i++) {
                const char *v = json_string_value(json_object_get(vars, keys[i]));
                r = buf_add(&buf, &len, &cap, "export ", 7);
                if (r == 0)
                        r = buf_add(&buf, &len, &cap, keys[i], strlen(keys[i]));
                if (r == 0)
                        r = buf_add(&buf, &len, &cap, "='", 2);
                for (const char *p = v; r == 0 && *p; p++)
                        r = *p == '\'' ? buf_add(&buf, &len, &cap, "'\\''", 4) : buf_add(&buf, &len, &cap, p, 1);
                if (r == 0)
                        r = buf_add(&buf, &len, &cap, "'\n", 2);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int check_bounds(json_t *vars, char *err, size_t err_len)
{
        size_t n = json_object_size(vars), total = 0;
        if (n > AGENT_MAX_ENV)
                return errbuf_fail(-E2BIG, err, err_len, "too many variables: %zu (at most %u)", n, AGENT_MAX_ENV);
        const char *key;
        json_t *val;
        json_object_foreach(vars, key, val)
                total += strlen(key) + json_string_length(val);
        if (total > AGENT_ENV_MAX_TOTAL)
                return errbuf_fail(-E2BIG, err, err_len,
                                   "the variables would total %zu bytes (keys + values; at most %u)", total,
                                   AGENT_ENV_MAX_TOTAL);
        return 0;
}

/* The RESULT payload for vars. Values full of escapes make the JSON longer
 * than the bytes stored: -E2BIG if it would not fit one frame. */
static int result_json(json_t *vars, char **ret, char *err, size_t err_len)
{
        json_t *res = json_pack("{s:b,s:O}", "ok", 1, "env", vars);
        if (!res)
                return -ENOMEM;
        char *s = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(res);
        if (!s)
                return -ENOMEM;
        size_t len = strlen(s);
        if (len > SMOLVM_FRAME_MAX_PAYLOAD) {
                free(s);
                return errbuf_fail(-E2BIG, err, err_len,
                                   "the env would be too large to send (%zu bytes of JSON; at most %u)", len,
                                   SMOLVM_FRAME_MAX_PAYLOAD);
        }
        *ret = s;
        return 0;
}

/* Apply req to the store under the lock and persist; the RESULT payload in *ret_json. */
static int store_update(const agent_request *req, char **ret_json, char *err, size_t err_len)
{
        char dir[AGENT_MAX_PATH], pdir[AGENT_MAX_PATH], store[AGENT_MAX_PATH], profile_path[AGENT_MAX_PATH];
        int r = etc_path(dir, sizeof(dir), STORE_DIR, NULL);
        if (r == 0)
                r = etc_path(pdir, sizeof(pdir), PROFILE_DIR, NULL);
        if (r == 0)
                r = etc_path(store, sizeof(store), STORE_DIR, STORE_FILE);
        if (r == 0)
                r = etc_path(profile_path, sizeof(profile_path), PROFILE_DIR, PROFILE_FILE);
        if (r < 0)
                return r;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                r = negative_errno();
                return errbuf_fail(r, err, err_len, "%s: %s", dir, strerror(-r));
        }
        _cleanup_close_ int lockfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
                r = negative_errno();
                return errbuf_fail(r, err, err_len, "lock %s: %s", dir, strerror(-r));
        }

        json_auto_t *vars = NULL;
        r = store_load(&vars, err, err_len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < req->env.n; i++) {
                if (req->op == AGENT_OP_ENV_SET)
                        r = json_object_set_new(vars, req->env.keys[i], json_string(req->env.values[i]));
                else
                        (void)json_object_del(vars, req->env.keys[i]);
                if (r < 0)
                        return -ENOMEM;
        }
        r = check_bounds(vars, err, err_len);
        if (r < 0)
                return r;
        _cleanup_free_ char *answer = NULL;
        r = result_json(vars, &answer, err, err_len);
        if (r < 0)
                return r;

        _cleanup_free_ char *json = json_dumps(vars, JSON_INDENT(2) | JSON_SORT_KEYS);
        _cleanup_free_ char *profile = NULL;
        size_t profile_len = 0;
        if (!json || profile_render(vars, &profile, &profile_len) < 0)
                return -ENOMEM;
        /* The secrets a user stores here are root's: env.json is 0600; the
         * profile script must be readable by every login shell. */
        r = write_file_atomic(store, json, strlen(json), 0600);
        if (r < 0)
                return errbuf_fail(r, err, err_len, "%s: %s", store, strerror(-r));
        if (mkdir(pdir, 0755) < 0 && errno != EEXIST)
                r = negative_errno();
        if (r == 0)
                r = write_file_atomic(profile_path, profile, profile_len, 0644);
        if (r < 0)
                return errbuf_fail(r, err, err_len, "%s: %s (" STORE_FILE " was updated)", profile_path, strerror(-r));
        *ret_json = TAKE_PTR(answer);
        return 0;
}

int agent_env_op(int fd, const agent_request *req)
{
        char err[AGENT_MAX_PATH + 256] = "";
        _cleanup_free_ char *answer = NULL;
        int r;
        if (req->op == AGENT_OP_ENV_LIST) {
                json_auto_t *vars = NULL;
                r = store_load(&vars, err, sizeof(err)); /* rename is atomic: no lock needed */
                if (r == 0)
                        r = result_json(vars, &answer, err, sizeof(err));
        } else {
                r = store_update(req, &answer, err, sizeof(err));
        }
        if (r < 0) {
                (void)agent_send_errorf(fd, -r, "%s: %s", agent_op_name(req->op), err[0] ? err : strerror(-r));
                return r;
        }
        return smolvm_frame_send(fd, SMOLVM_FRAME_RESULT, answer, (uint32_t)strlen(answer));
}

int agent_env_apply_stored(agent_exec_spec *spec)
{
        char err[AGENT_MAX_PATH + 256] = "";
        json_auto_t *vars = NULL;
        int r = store_load(&vars, err, sizeof(err));
        if (r < 0) {
                if (err[0])
                        init_log("stored env: %s", err);
                return r;
        }
        size_t n_stored = json_object_size(vars);
        if (n_stored == 0)
                return 0;
        _cleanup_free_ const char **keys = sorted_keys(vars);
        if (!keys)
                return -ENOMEM;
        char **stored = calloc(n_stored + 1, sizeof(char *));
        if (!stored)
                return -ENOMEM;
        for (size_t i = 0; i < n_stored; i++) {
                if (asprintf(&stored[i], "%s=%s", keys[i], json_string_value(json_object_get(vars, keys[i]))) < 0) {
                        stored[i] = NULL;
                        agent_strv_free(stored);
                        return -ENOMEM;
                }
        }
        /* base, then stored, then the request's own env: later wins. */
        size_t n_base, n_mid = 0, n_env = 0;
        const char *const *base = agent_base_env(&n_base);
        char **mid = NULL, **envp = NULL;
        r = agent_env_merge(base, n_base, (const char *const *)stored, n_stored, &mid, &n_mid, NULL);
        agent_strv_free(stored);
        if (r < 0)
                return r;
        r = agent_env_merge((const char *const *)mid, n_mid, (const char *const *)spec->env_extra, spec->n_env_extra,
                            &envp, &n_env, NULL);
        agent_strv_free(mid);
        if (r < 0)
                return r;
        agent_strv_free(spec->envp);
        spec->envp = envp;
        spec->n_envp = n_env;
        return 0;
}
