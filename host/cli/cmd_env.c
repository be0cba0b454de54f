/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm env set|unset|ls: a VM's persistent environment (later execs and login
 * shells see it). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const char env_about[] =
        "Manage a VM's persistent environment, kept in the guest under /etc/profile.d:\n"
        "every later exec and login shell (bash -l, sh -l) sees it.\n"
        "A bare K takes its value from smolvm's own environment, so a secret need not\n"
        "appear on the host command line:  TOKEN=... smolvm env set ID TOKEN\n"
        "Values never appear in a guest process's command line.\n";

static const cli_cmd env_set_cmd = {
        .name = "env set",
        .synopsis = "[--json] ID K=V|K...",
        .about = env_about,
        .json_help = "print the result as a JSON envelope; data: {\"keys\": [names]}",
};

static const cli_cmd env_unset_cmd = {
        .name = "env unset",
        .synopsis = "[--json] ID K...",
        .about = env_about,
        .json_help = "print the result as a JSON envelope; data: {\"keys\": [names]}",
};

static const cli_cmd env_ls_cmd = {
        .name = "env ls",
        .synopsis = "[--json] ID",
        .about = env_about,
        .json_help = "print the result as a JSON envelope; data: {\"env\": {K: V}}",
};

/* Print a guest-supplied string; on a terminal, control characters become '?'
 * so a hostile guest cannot drive the user's terminal. */
static void print_guest_line(const char *s, bool tty)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                putchar(tty && ((*p < 0x20 && *p != '\t') || *p == 0x7f) ? '?' : *p);
        putchar('\n');
}

static int env_ls(smolvm_vm *vm, bool json)
{
        char **kv = NULL;
        int r = smolvm_list_env(vm, &kv);
        if (r < 0)
                return cli_fail("env ls", json, r);
        if (json) {
                json_t *env = json_object(), *data = json_object();
                for (size_t i = 0; env && kv[i]; i++) {
                        char *eq = strchr(kv[i], '=');
                        *eq = '\0';
                        json_object_set_new(env, kv[i], json_string(eq + 1));
                        *eq = '=';
                }
                if (data && env)
                        json_object_set_new(data, "env", env);
                else
                        json_decref(env);
                cli_json_ok("env ls", 0, data);
        } else {
                bool tty = isatty(STDOUT_FILENO);
                for (size_t i = 0; kv[i]; i++)
                        print_guest_line(kv[i], tty);
        }
        smolvm_env_free(kv);
        return 0;
}

/* set, unset, ls: ID, then the entries. */
static int env_run(const cli_cmd *cmd, int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        const char *command = cmd->name, *sub = argv[0];
        bool json = p.json;
        const char **pos = (const char **)p.pos; /* NULL-terminated */
        size_t n_pos = (size_t)p.n_pos;
        bool is_ls = !strcmp(sub, "ls");
        if (is_ls && n_pos != 1)
                return cli_usage(&p, "env ls needs exactly one argument: ID");
        if (!is_ls && n_pos < 2)
                return cli_usage(&p, "env %s needs ID and at least one variable", sub);

        /* Bare K for set: the value comes from our environment, never from argv. */
        char **owned = calloc(n_pos, sizeof(char *));
        r = owned ? 0 : -ENOMEM;
        if (r == 0 && !strcmp(sub, "set")) {
                for (size_t i = 1; i < n_pos; i++) {
                        if (strchr(pos[i], '='))
                                continue;
                        const char *v = getenv(pos[i]);
                        if (!v) {
                                cli_error("%s has no '=' and is not set in the environment", pos[i]);
                                r = -EINVAL;
                                break;
                        }
                        if (asprintf(&owned[i], "%s=%s", pos[i], v) < 0) {
                                owned[i] = NULL;
                                r = -ENOMEM;
                                break;
                        }
                        pos[i] = owned[i];
                }
        }
        int rc = 0;
        if (r == -EINVAL) {
                rc = cli_usage_fail(command, json);
                goto out;
        }
        if (r < 0) {
                rc = cli_failf(command, json, r, NULL, NULL, "out of memory");
                goto out;
        }

        smolvm_vm *vm = NULL;
        r = smolvm_open(pos[0], &vm);
        if (r < 0) {
                rc = cli_fail(command, json, r);
                goto out;
        }
        if (is_ls) {
                rc = env_ls(vm, json);
        } else {
                r = !strcmp(sub, "set") ? smolvm_set_env(vm, pos + 1) : smolvm_unset_env(vm, pos + 1);
                if (r < 0) {
                        rc = cli_fail(command, json, r);
                } else if (json) {
                        /* Names only: values may be secrets. */
                        json_t *keys = json_array(), *data = json_object();
                        for (size_t i = 1; keys && i < n_pos; i++) {
                                const char *eq = strchr(pos[i], '=');
                                size_t kl = eq ? (size_t)(eq - pos[i]) : strlen(pos[i]);
                                json_array_append_new(keys, json_stringn(pos[i], kl));
                        }
                        if (data && keys)
                                json_object_set_new(data, "keys", keys);
                        else
                                json_decref(keys);
                        cli_json_ok(command, 0, data);
                }
        }
        smolvm_free(vm);
out:
        for (size_t i = 0; owned && i < n_pos; i++)
                free(owned[i]);
        free(owned);
        return rc;
}

static int env_set(int argc, char **argv)
{
        return env_run(&env_set_cmd, argc, argv);
}

static int env_unset(int argc, char **argv)
{
        return env_run(&env_unset_cmd, argc, argv);
}

static int env_list(int argc, char **argv)
{
        return env_run(&env_ls_cmd, argc, argv);
}

static const cli_verb env_verbs[] = {
        { "set", env_set, "set variables: K=V, or a bare K with the value from smolvm's environment" },
        { "unset", env_unset, "remove variables" },
        { "ls", env_list, "list the variables" },
        { NULL, NULL, NULL },
};

static const cli_family env_family = {
        .name = "env",
        .about = env_about,
        .verbs = env_verbs,
};

int cmd_env(int argc, char **argv)
{
        return cli_run_family(&env_family, argc, argv);
}
