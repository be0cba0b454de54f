/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm ps ID: the guest's processes (ps run in the guest). */
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

static const cli_cmd ps_cmd = {
        .name = "ps",
        .synopsis = "[--json] ID",
        .about = "List the processes in the running VM (ps -eo pid,ppid,stat,etime,args in the\n"
                 "guest).\n",
        .json_help = "print the JSON envelope (docs/cli.md); data: {\"processes\":\n"
                     "[{pid, ppid, stat, etime, args}]}",
};

static json_t *parse_ps(const char *out)
{
        json_t *arr = json_array();
        const char *line = out;
        bool header = true;
        while (arr && line && *line) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                char buf[4096];
                snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), line);
                line = nl ? nl + 1 : NULL;
                if (header) {
                        header = false;
                        continue;
                }
                long pid, ppid;
                char stat[16], etime[32];
                int off = 0;
                if (sscanf(buf, "%ld %ld %15s %31s %n", &pid, &ppid, stat, etime, &off) < 4)
                        continue;
                json_t *p = json_pack("{s:I, s:I, s:s, s:s}", "pid", (json_int_t)pid, "ppid", (json_int_t)ppid,
                                      "stat", stat, "etime", etime);
                if (!p)
                        continue;
                json_t *args = json_string(buf + off);
                json_object_set_new(p, "args", args ? args : json_string("?"));
                json_array_append_new(arr, p);
        }
        return arr;
}

int cmd_ps(int argc, char **argv)
{
        cli_parsed a;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&ps_cmd, argc, argv, NULL, &a, &vm, &r))
                return r;
        static const char *const ps_argv[] = { "ps", "-eo", "pid,ppid,stat,etime,args", NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = ps_argv;
        o.timeout_ms = 30000;
        o.max_output_bytes = 4u * 1024 * 1024;
        smolvm_result res = { 0 };
        r = smolvm_run(vm, &o, &res);
        smolvm_free(vm);
        if (r < 0)
                return cli_fail("ps", a.json, r);
        int code = cli_status_exit_code(&res.status);
        if (code != 0) {
                cli_failf("ps", a.json, 0, "error", NULL, "ps in the guest failed (exit %d): %s", code,
                          res.stderr_data ? res.stderr_data : "");
                smolvm_result_free(&res);
                return CLI_EXIT_ERROR;
        }
        if (a.json) {
                json_t *data = json_object();
                if (data)
                        json_object_set_new(data, "processes", parse_ps(res.stdout_data));
                cli_json_ok("ps", 0, data);
        } else {
                (void)write_all(STDOUT_FILENO, res.stdout_data, res.stdout_len);
        }
        smolvm_result_free(&res);
        return 0;
}
