/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm snapshot create|ls|info|rm, and smolvm fork. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const char snapshot_about[] =
        "Snapshots: a VM's memory, devices and disk at one instant, in\n"
        "$SMOLVM_HOME/snapshots/<id>/. `smolvm create --from-snapshot NAME` and\n"
        "`smolvm run --from-snapshot NAME -- CMD` continue from it; `smolvm fork`\n"
        "makes running copies of a VM at once. Mounts made with --mount-transport vsock\n"
        "continue in every restored VM; VMs with virtio-fs mounts cannot be snapshotted.\n";

json_t *snapshot_info_json(const smolvm_snapshot_info *s)
{
        json_t *o = json_pack("{s:s, s:s?, s:I, s:s, s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:s}", "id", s->id,
                              "name", s->name[0] ? s->name : NULL, "created", (json_int_t)s->created_unix, "vm_id",
                              s->vm_id, "image", s->image, "vcpus", (json_int_t)s->vcpus, "mem_mib",
                              (json_int_t)s->mem_mib, "internal", s->internal, "pause_ms", (json_int_t)s->pause_ms,
                              "ram_bytes", (json_int_t)s->ram_bytes, "disk_bytes", (json_int_t)s->disk_bytes, "depth",
                              (json_int_t)s->depth, "dir", s->dir);
        return o;
}

typedef struct snap_create_args {
        const char *name;
        bool stop;
} snap_create_args;

static const cli_opt snap_create_opts[] = {
        CLI_STRING(snap_create_args, name, "name", 'n', "NAME", "a unique name for the snapshot"),
        CLI_BOOL(snap_create_args, stop, "stop", 0, "stop the VM afterwards instead of resuming it"),
        CLI_END,
};

static const cli_cmd snap_create_cmd = {
        .name = "snapshot create",
        .synopsis = "[--name NAME] [--stop] [--json] VM",
        .about = "Snapshot a running or paused VM: memory, devices and disk at one instant.\n"
                 "The VM is paused meanwhile (pause_ms), then carries on (or is stopped\n"
                 "with --stop; a paused VM stays paused). Prints the snapshot id.\n"
                 "A snapshot deeper than 16 disk layers (SMOLVM_SNAPSHOT_MAX_DEPTH) is\n"
                 "written flattened: one layer over the image (depth 1).\n",
        .opts = snap_create_opts,
        .json_help = "print the JSON envelope (docs/cli.md); data: the snapshot (as `snapshot info`)",
};

static int snap_create(int argc, char **argv)
{
        snap_create_args a = { 0 };
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int rc;
        if (!cli_open_vm_arg(&snap_create_cmd, argc, argv, &a, &p, &vm, &rc))
                return rc;
        smolvm_snapshot_info info;
        int r = smolvm_snapshot_create(vm, a.name, a.stop ? SMOLVM_SNAPSHOT_STOP : 0, &info);
        smolvm_free(vm);
        if (r < 0)
                return cli_fail("snapshot create", p.json, r);
        if (p.json)
                cli_json_ok("snapshot create", 0, snapshot_info_json(&info));
        else
                printf("%s\n", info.id);
        return 0;
}

static const cli_cmd snap_ls_cmd = {
        .name = "snapshot ls",
        .synopsis = "[--json]",
        .about = snapshot_about,
        .json_help = "print the JSON envelope; data: {\"snapshots\": [...]} (fields as `snapshot info`)",
};

static void human_bytes(uint64_t b, char *buf, size_t size)
{
        if (b >= 1024 * 1024)
                snprintf(buf, size, "%.1f MiB", (double)b / (1024.0 * 1024.0));
        else
                snprintf(buf, size, "%llu KiB", (unsigned long long)(b / 1024));
}

static int snap_ls(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&snap_ls_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos)
                return cli_usage(&p, "'smolvm snapshot ls' takes no arguments");
        smolvm_snapshot_info *v = NULL;
        size_t n = 0;
        r = smolvm_snapshot_list(&v, &n);
        if (r < 0)
                return cli_fail("snapshot ls", p.json, r);
        if (p.json) {
                json_t *arr = json_array();
                for (size_t i = 0; arr && i < n; i++)
                        json_array_append_new(arr, snapshot_info_json(&v[i]));
                cli_json_ok("snapshot ls", 0, json_pack("{s:o}", "snapshots", arr));
        } else {
                printf("%-12s  %-20s  %-12s  %-20s  %10s\n", "ID", "NAME", "VM", "CREATED", "DISK");
                for (size_t i = 0; i < n; i++) {
                        char when[32], size[32];
                        time_t t = (time_t)v[i].created_unix;
                        struct tm tm;
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
                        human_bytes(v[i].disk_bytes, size, sizeof(size));
                        printf("%-12s  %-20s  %-12s  %-20s  %10s\n", v[i].id, v[i].name[0] ? v[i].name : "-",
                               v[i].vm_id, when, size);
                }
        }
        free(v);
        return 0;
}

static const cli_cmd snap_info_cmd = {
        .name = "snapshot info",
        .synopsis = "[--json] NAME|ID",
        .about = snapshot_about,
        .json_help = "print the JSON envelope; data: {\"id\", \"name\", \"created\", \"vm_id\", \"image\", "
                     "\"vcpus\", \"mem_mib\", \"internal\", \"pause_ms\", \"ram_bytes\", \"disk_bytes\", "
                     "\"depth\", \"dir\"}",
};

static int snap_info(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&snap_info_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 1)
                return cli_usage(&p, "give one snapshot ('smolvm snapshot ls' lists them)");
        smolvm_snapshot_info s;
        r = smolvm_snapshot_info_get(p.pos[0], &s);
        if (r < 0)
                return cli_fail("snapshot info", p.json, r);
        if (p.json) {
                cli_json_ok("snapshot info", 0, snapshot_info_json(&s));
                return 0;
        }
        char ram[32], disk[32];
        human_bytes(s.ram_bytes, ram, sizeof(ram));
        human_bytes(s.disk_bytes, disk, sizeof(disk));
        printf("id:        %s\nname:      %s\nvm:        %s\nimage:     %s\nvcpus:     %u\nmemory:    %u MiB\n"
               "pause:     %llu ms\nram kept:  %s\non disk:   %s\nlayers:    %u\ndir:       %s\n",
               s.id, s.name[0] ? s.name : "-", s.vm_id, s.image, s.vcpus, s.mem_mib, (unsigned long long)s.pause_ms,
               ram, disk, s.depth, s.dir);
        return 0;
}

static const cli_cmd snap_rm_cmd = {
        .name = "snapshot rm",
        .synopsis = "[--json] NAME|ID...",
        .about = "Remove snapshots. VMs made from one keep running and keep their disks\n"
                 "(they hold hard links of its layers and map its memory); only a VM created\n"
                 "from it and never started can then no longer start.\n",
        .json_help = "print the JSON envelope; data: {\"removed\": [ids or names as given]}",
};

static int snap_rm(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&snap_rm_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos == 0)
                return cli_usage(&p, "no snapshot given ('smolvm snapshot ls' lists them)");
        json_t *removed = json_array();
        for (int i = 0; i < p.n_pos; i++) {
                r = smolvm_snapshot_rm(p.pos[i]);
                if (r < 0) {
                        json_decref(removed);
                        return cli_fail("snapshot rm", p.json, r);
                }
                if (!p.json)
                        printf("%s\n", p.pos[i]);
                json_array_append_new(removed, json_string(p.pos[i]));
        }
        if (p.json)
                cli_json_ok("snapshot rm", 0, json_pack("{s:o}", "removed", removed));
        else
                json_decref(removed);
        return 0;
}

static const cli_verb snapshot_verbs[] = {
        { "create", snap_create, "snapshot a running or paused VM" },
        { "ls", snap_ls, "list the snapshots" },
        { "info", snap_info, "show one snapshot" },
        { "rm", snap_rm, "remove snapshots" },
        { "export", cmd_snapshot_export, "write a snapshot to one file (FILE or stdout)" },
        { "import", cmd_snapshot_import, "make a snapshot from an exported file (FILE or stdin)" },
        { NULL, NULL, NULL },
};

static const cli_family snapshot_family = {
        .name = "snapshot",
        .about = snapshot_about,
        .verbs = snapshot_verbs,
};

int cmd_snapshot(int argc, char **argv)
{
        return cli_run_family(&snapshot_family, argc, argv);
}

/* ---- fork ---- */

typedef struct fork_args {
        unsigned n;
} fork_args;

static const cli_opt fork_opts[] = {
        CLI_UINT(fork_args, n, "count", 'n', "N", 1, SMOLVM_FORK_MAX, 1, "how many children (default 1)"),
        CLI_END,
};

static const cli_cmd fork_cmd = {
        .name = "fork",
        .synopsis = "[-n N] [--json] VM",
        .about = "Make N new running VMs that continue from VM's present instant: each with\n"
                 "its own copy-on-write disk and memory, a reseeded RNG, its own hostname\n"
                 "(smolvm-ID) and machine-id, the host's wall clock. VM carries on (a paused\n"
                 "VM stays paused). Prints one child id per line. The children are ordinary\n"
                 "persistent VMs (`smolvm rm -f` them).\n",
        .opts = fork_opts,
        .json_help = "print the JSON envelope; data: {\"ids\": [child ids]}",
};

int cmd_fork(int argc, char **argv)
{
        fork_args a = { .n = 1 };
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int rc;
        if (!cli_open_vm_arg(&fork_cmd, argc, argv, &a, &p, &vm, &rc))
                return rc;
        unsigned n = a.n ? a.n : 1;
        char (*ids)[16] = calloc(n, sizeof(*ids));
        int r = ids ? smolvm_fork(vm, n, ids) : -ENOMEM;
        smolvm_free(vm);
        if (r < 0) {
                free(ids);
                return cli_fail("fork", p.json, r);
        }
        if (p.json) {
                json_t *arr = json_array();
                for (unsigned i = 0; arr && i < n; i++)
                        json_array_append_new(arr, json_string(ids[i]));
                cli_json_ok("fork", 0, json_pack("{s:o}", "ids", arr));
        } else {
                for (unsigned i = 0; i < n; i++)
                        printf("%s\n", ids[i]);
        }
        free(ids);
        return 0;
}
