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

static const char env_usage_text[] =
        "Usage: smolvm env set [--json] ID K=V|K...\n"
        "       smolvm env unset [--json] ID K...\n"
        "       smolvm env ls [--json] ID\n"
        "\n"
        "Manage a VM's persistent environment, kept in the guest under /etc/profile.d:\n"
        "every later exec and login shell (bash -l, sh -l) sees it.\n"
        "A bare K takes its value from smolvm's own environment, so a secret need not\n"
        "appear on the host command line:  TOKEN=... smolvm env set ID TOKEN\n"
        "Values never appear in a guest process's command line.\n"
        "\n"
        "Options:\n"
        "  --json      print the result as a JSON envelope\n"
        "  -h, --help  show this help\n";

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

int cmd_env(int argc, char **argv)
{
        bool json = cli_wants_json(argc, argv);
        if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
                fputs(env_usage_text, argc < 2 ? stderr : stdout);
                return argc < 2 ? cli_usage_fail("env", json, "missing subcommand") : 0;
        }
        const char *sub = argv[1];
        char command[16];
        snprintf(command, sizeof(command), "env %s", sub);
        if (strcmp(sub, "set") && strcmp(sub, "unset") && strcmp(sub, "ls")) {
                cli_error("unknown env subcommand '%s' (set, unset, ls)", sub);
                return cli_usage_fail("env", json, "unknown env subcommand");
        }

        /* ID, then the entries; options anywhere before "--". */
        const char **pos = calloc((size_t)argc, sizeof(char *));
        if (!pos) {
                cli_error("out of memory");
                return CLI_EXIT_ERROR;
        }
        size_t n_pos = 0;
        bool dashdash = false;
        for (int i = 2; i < argc; i++) {
                const char *a = argv[i];
                if (!dashdash && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
                        fputs(env_usage_text, stdout);
                        free(pos);
                        return 0;
                }
                if (!dashdash && !strcmp(a, "--json"))
                        continue;
                if (!dashdash && !strcmp(a, "--")) {
                        dashdash = true;
                        continue;
                }
                if (!dashdash && a[0] == '-' && a[1]) {
                        cli_error("unknown option '%s'", a);
                        free(pos);
                        return cli_usage_fail(command, json, "unknown option");
                }
                pos[n_pos++] = a;
        }
        bool is_ls = !strcmp(sub, "ls");
        if (n_pos < 1 || (is_ls && n_pos != 1) || (!is_ls && n_pos < 2)) {
                cli_error(is_ls ? "env ls needs exactly one argument: ID" : "env %s needs ID and at least one variable",
                          sub);
                free(pos);
                return cli_usage_fail(command, json, "wrong number of arguments");
        }

        /* Bare K for set: the value comes from our environment, never from argv. */
        char **owned = calloc(n_pos, sizeof(char *));
        int r = owned ? 0 : -ENOMEM;
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
                rc = cli_usage_fail(command, json, "a bare variable name must be set in the environment");
                goto out;
        }
        if (r < 0) {
                cli_error("out of memory");
                rc = CLI_EXIT_ERROR;
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
                pos[n_pos] = NULL; /* calloc'd argc >= n_pos + 1 slots */
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
        free(pos);
        return rc;
}
