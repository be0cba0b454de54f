/* SPDX-License-Identifier: Apache-2.0 */
/* The guest agent's persistent environment (guest-init/envstore.c) run on the
 * host: env_set/env_unset/env_list through the real handler, the profile.d
 * script a login shell reads, and the stored env merged into exec. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest_ops_fixture.h"
#include "request.h"

/* ---- env ---- */

static char *etc_file(const char *rel)
{
        char *s;
        ck_assert_int_ge(asprintf(&s, "%s/%s", etcdir, rel), 0);
        return s;
}

/* Run `sh -c '. file; printf %s "$key"'` and return its output. */
static char *shell_print(const char *file, const char *key)
{
        char script[512];
        snprintf(script, sizeof(script), ". '%s'; printf %%s \"$%s\"", file, key);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(p[1], 1);
                execl("/bin/sh", "sh", "-c", script, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        size_t cap = 1 << 20, len = 0;
        char *out = malloc(cap);
        ssize_t n;
        while ((n = read(p[0], out + len, cap - 1 - len)) > 0)
                len += (size_t)n;
        out[len] = 0;
        close(p[0]);
        int status;
        waitpid(pid, &status, 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return out;
}

static void clear_env_store(void)
{
        char *a = etc_file("smolvm/env.json"), *b = etc_file("profile.d/smolvm-env.sh");
        (void)unlink(a);
        (void)unlink(b);
        free(a);
        free(b);
}

START_TEST(env_set_unset_list)
{
        clear_env_store();
        reply *rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 0);
        reply_free(rp);

        const char *tricky = "it's $HOME and `id` \\ \"q\"\nline2 '' end'";
        json_t *req = json_pack("{s:s,s:{s:s,s:s,s:s}}", "op", "env_set", "vars", "FOO", "bar", "Q", tricky, "_e", "");
        char *s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        rp = run(s);
        free(s);
        ASSERT_OK(rp);
        json_t *env = json_object_get(rp->result, "env");
        ck_assert_uint_eq(json_object_size(env), 3);
        ck_assert_str_eq(jstr(env, "FOO"), "bar");
        ck_assert_str_eq(jstr(env, "Q"), tricky);
        ck_assert_str_eq(jstr(env, "_e"), "");
        reply_free(rp);

        char *store = etc_file("smolvm/env.json"), *profile = etc_file("profile.d/smolvm-env.sh");
        ck_assert_uint_eq(mode_of(store), 0600);
        ck_assert_uint_eq(mode_of(profile), 0644);
        json_t *disk = json_load_file(store, 0, NULL);
        ck_assert_ptr_nonnull(disk);
        ck_assert_str_eq(jstr(disk, "Q"), tricky);
        json_decref(disk);
        char *out = shell_print(profile, "Q");
        ck_assert_str_eq(out, tricky);
        free(out);
        out = shell_print(profile, "FOO");
        ck_assert_str_eq(out, "bar");
        free(out);
        ck_assert_int_eq(count_entries(etcdir), 2); /* smolvm, profile.d */
        char *sdir = etc_file("smolvm");
        ck_assert_int_eq(count_entries(sdir), 1); /* no temp file left */
        free(sdir);

        rp = run("{\"op\":\"env_unset\",\"keys\":[\"FOO\",\"NEVER_SET\"]}");
        ASSERT_OK(rp);
        env = json_object_get(rp->result, "env");
        ck_assert_uint_eq(json_object_size(env), 2);
        ck_assert_ptr_null(json_object_get(env, "FOO"));
        reply_free(rp);
        out = shell_print(profile, "FOO");
        ck_assert_str_eq(out, "");
        free(out);

        rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        env = json_object_get(rp->result, "env");
        ck_assert_uint_eq(json_object_size(env), 2);
        ck_assert_str_eq(jstr(env, "Q"), tricky);
        reply_free(rp);
        free(store);
        free(profile);
}
END_TEST

static reply *env_set_value(const char *key, size_t value_len, char fill)
{
        char *v = malloc(value_len + 1);
        memset(v, fill, value_len);
        v[value_len] = 0;
        json_t *req = json_pack("{s:s,s:{s:s}}", "op", "env_set", "vars", key, v);
        free(v);
        char *s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        reply *rp = run(s);
        free(s);
        return rp;
}

START_TEST(env_bad_keys_and_bounds)
{
        clear_env_store();
        ASSERT_RUN_FAILS(EINVAL, "'1BAD'", "{\"op\":\"env_set\",\"vars\":{\"GOOD\":\"1\",\"1BAD\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "'A-B'", "{\"op\":\"env_set\",\"vars\":{\"A-B\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "invalid key", "{\"op\":\"env_set\",\"vars\":{\"\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "'A=B'", "{\"op\":\"env_set\",\"vars\":{\"A=B\":\"x\"}}");
        ASSERT_RUN_FAILS(EINVAL, "'vars.A'", "{\"op\":\"env_set\",\"vars\":{\"A\":1}}");
        ASSERT_RUN_FAILS(EINVAL, "'vars'", "{\"op\":\"env_set\",\"vars\":[\"A=1\"]}");
        ASSERT_RUN_FAILS(EINVAL, "'vars'", "{\"op\":\"env_set\"}");
        ASSERT_RUN_FAILS(EINVAL, "'NOT OK'", "{\"op\":\"env_unset\",\"keys\":[\"OK\",\"NOT OK\"]}");
        ASSERT_RUN_FAILS(EINVAL, "'keys'", "{\"op\":\"env_unset\",\"keys\":\"A\"}");
        ASSERT_RUN_FAILS(EINVAL, "JSON", "{\"op\":\"env_set\",\"vars\":{\"A\":\"a\\u0000b\"}}");
        /* Nothing of the failed requests was stored. */
        reply *rp = run("{\"op\":\"env_list\"}");
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 0);
        reply_free(rp);

        /* 64 KiB per value. */
        rp = env_set_value("BIG", AGENT_ENV_MAX_VALUE + 1, 'v');
        ASSERT_ERROR(rp, E2BIG, "'BIG'");
        reply_free(rp);
        rp = env_set_value("BIG", AGENT_ENV_MAX_VALUE, 'v');
        ASSERT_OK(rp);
        reply_free(rp);

        /* About 1 MiB in all (the answer must fit one frame): 14 more such values
         * fit, the next one does not, and is not stored. */
        for (int i = 0; i < 14; i++) {
                char key[16];
                snprintf(key, sizeof(key), "V%02d", i);
                rp = env_set_value(key, AGENT_ENV_MAX_VALUE - 8, 'w');
                ASSERT_OK(rp);
                reply_free(rp);
        }
        rp = env_set_value("LAST", AGENT_ENV_MAX_VALUE, 'x');
        ASSERT_ERROR(rp, E2BIG, "env_set: ");
        ck_assert_ptr_nonnull(strstr(jstr(rp->error, "message"), "at most"));
        reply_free(rp);
        rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 15);
        ck_assert_ptr_null(json_object_get(json_object_get(rp->result, "env"), "LAST"));
        reply_free(rp);

        /* Values that grow 6x when escaped fit the store but not one frame. */
        clear_env_store();
        for (int i = 0; i < 2; i++) { /* 64 KiB of \u0001 is 384 KiB of JSON */
                char key[16];
                snprintf(key, sizeof(key), "C%d", i);
                rp = env_set_value(key, AGENT_ENV_MAX_VALUE, '\x01');
                ASSERT_OK(rp);
                reply_free(rp);
        }
        rp = env_set_value("C2", AGENT_ENV_MAX_VALUE, '\x01');
        ASSERT_ERROR(rp, E2BIG, "too large");
        reply_free(rp);
        rp = run("{\"op\":\"env_list\"}");
        ASSERT_OK(rp);
        ck_assert_uint_eq(json_object_size(json_object_get(rp->result, "env")), 2);
        reply_free(rp);
        clear_env_store();
}
END_TEST

START_TEST(env_merged_into_exec)
{
        clear_env_store();
        ASSERT_RUN_OK("{\"op\":\"env_set\",\"vars\":{\"STORED\":\"s1\",\"OVER\":\"stored\",\"HOME\":\"/home/x\"}}");
        reply *rp = run("{\"op\":\"exec\",\"shell\":\"printf '%s|%s|%s|%s' \\\"$STORED\\\" \\\"$OVER\\\" \\\"$HOME\\\" "
                 "\\\"$TERM\\\"\",\"env\":[\"OVER=req\"],\"cwd\":\"/\"}");
        ck_assert_ptr_nonnull(rp->exit);
        ck_assert_str_eq(rp->out, "s1|req|/home/x|xterm");
        reply_free(rp);

        /* A damaged store is ignored, the command still runs. */
        char *store = etc_file("smolvm/env.json");
        put_file(store, "{not json", 0600);
        free(store);
        rp = run("{\"op\":\"exec\",\"shell\":\"printf '%s' \\\"$STORED$HOME\\\"\",\"cwd\":\"/\"}");
        ck_assert_str_eq(rp->out, "/root");
        reply_free(rp);
        ASSERT_RUN_FAILS(EINVAL, "env.json", "{\"op\":\"env_list\"}");
        clear_env_store();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("guest-env");
        TCase *tc_env = tcase_create("env");
        tcase_set_timeout(tc_env, 60);
        tcase_add_test(tc_env, env_set_unset_list);
        tcase_add_test(tc_env, env_bad_keys_and_bounds);
        tcase_add_test(tc_env, env_merged_into_exec);
        suite_add_tcase(s, tc_env);
        return guest_ops_main(s);
}
