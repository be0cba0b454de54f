/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm ls: every VM with its derived state. */
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const cli_cmd ls_cmd = {
        .name = "ls",
        .synopsis = "[--json]",
        .about = "List the VMs: id, name, state (created, running, paused, stopped, error),\n"
                 "size and age. The state is read from the processes themselves, so it is right\n"
                 "even after a supervisor was killed (then: error; 'smolvm start' works again).\n",
        .json_help = "print the JSON envelope (docs/cli.md); data: {\"vms\": [...]}",
        .no_args = true,
};

static void age(int64_t created, char *buf, size_t size)
{
        int64_t s = (int64_t)time(NULL) - created;
        if (s < 0)
                s = 0;
        if (s < 120)
                snprintf(buf, size, "%llds ago", (long long)s);
        else if (s < 7200)
                snprintf(buf, size, "%lldm ago", (long long)(s / 60));
        else if (s < 172800)
                snprintf(buf, size, "%lldh ago", (long long)(s / 3600));
        else
                snprintf(buf, size, "%lldd ago", (long long)(s / 86400));
}

int cmd_list(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&ls_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        bool json = p.json;
        smolvm_vm_info *v = NULL;
        size_t n = 0;
        r = smolvm_list(&v, &n);
        if (r < 0)
                return cli_fail("ls", json, r);
        if (json) {
                json_t *arr = json_array(), *data = json_object();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, cli_vm_info_json(&v[i]));
                json_object_set_new(data, "vms", arr);
                cli_json_ok("ls", 0, data);
        } else {
                printf("%-12s  %-20s  %-8s  %4s  %7s  %8s  %s\n", "ID", "NAME", "STATE", "CPUS", "MEM", "DISK",
                       "CREATED");
                for (size_t i = 0; i < n; i++) {
                        char mem[32], disk[32], when[32];
                        snprintf(mem, sizeof(mem), "%uM", v[i].mem_mib);
                        if (v[i].disk_mib)
                                snprintf(disk, sizeof(disk), "%uM", v[i].disk_mib);
                        else
                                snprintf(disk, sizeof(disk), "image");
                        age(v[i].created_unix, when, sizeof(when));
                        printf("%-12s  %-20s  %-8s  %4u  %7s  %8s  %s%s\n", v[i].id, v[i].name[0] ? v[i].name : "-",
                               smolvm_state_name(v[i].state), v[i].vcpus, mem, disk, when,
                               v[i].ephemeral ? " (ephemeral)" : "");
                }
        }
        smolvm_vm_info_free(v);
        return 0;
}
