/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm snapshot export | import: a snapshot as one checksummed .zst file
 * (host/lib/snapshot_archive.c). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

typedef struct xport_args {
        const char *name;
        unsigned level;
} xport_args;

static const cli_opt export_opts[] = {
        CLI_UINT(xport_args, level, "level", 0, "N", 1, 19, 1, "zstd level, 1 (fastest, the default) to 19"),
        CLI_END,
};

static const cli_opt import_opts[] = {
        CLI_STRING(xport_args, name, "name", 'n', "NAME",
                   "name the imported snapshot NAME (default: the name it had)"),
        CLI_END,
};

static const cli_cmd export_cmd = {
        .name = "snapshot export",
        .synopsis = "[--json] [--level N] NAME|ID FILE|-",
        .about = "Write a snapshot to one self-contained file: its record, device state, RAM\n"
                 "(holes stay holes), every disk layer and the key of the image it needs, as a\n"
                 "zstd stream with a checksummed header and trailer (`zstd -t FILE` accepts it).\n"
                 "`smolvm snapshot import` reads it here or on another host with the same image.\n",
        .opts = export_opts,
        .json_help = "print the result as a JSON envelope (not with FILE -); data: {\"snapshot\",\n"
                     "\"file\", \"content_bytes\", \"file_bytes\", \"duration_ms\", \"sha256\", \"io\"}",
        .footer = "FILE '-' writes to stdout. A FILE is written under a temporary name and\n"
                  "renamed when complete: a failure or Ctrl-C (SIGINT, SIGTERM, SIGHUP: exit\n"
                  "128+N) leaves no file.\n",
};

static const cli_cmd import_cmd = {
        .name = "snapshot import",
        .synopsis = "[--json] [--name NAME] FILE|-",
        .about = "Make a new snapshot (a new id) from a file `smolvm snapshot export` wrote.\n"
                 "Everything is checked before the snapshot appears: the checksum, the sizes,\n"
                 "the record, the disk chain, the name. The image it needs must be here (built\n"
                 "by the same smolvm with the same options); the error names it otherwise.\n",
        .opts = import_opts,
        .json_help = "print the result as a JSON envelope; data: {\"snapshot\": (as `snapshot info`),\n"
                     "\"file\", \"content_bytes\", \"file_bytes\", \"duration_ms\", \"sha256\", \"io\"}",
        .footer = "FILE '-' reads stdin. A damaged, truncated or foreign file, a taken name or\n"
                  "Ctrl-C (exit 128+N) leave nothing. QEMU loads the device state: import only\n"
                  "files from sources you trust like the VM itself.\n",
};

static json_t *result_json(const char *file, const smolvm_archive_result *res, json_t *snapshot)
{
        json_t *d = json_object();
        if (!d) {
                json_decref(snapshot);
                return NULL;
        }
        json_object_set_new(d, "snapshot", snapshot);
        json_object_set_new(d, "file", cli_json_str(file));
        json_object_set_new(d, "content_bytes", json_integer((json_int_t)res->tar_bytes));
        json_object_set_new(d, "file_bytes", json_integer((json_int_t)res->file_bytes));
        json_object_set_new(d, "duration_ms", json_integer((json_int_t)res->duration_ms));
        json_object_set_new(d, "sha256", res->sha256[0] ? json_string(res->sha256) : json_null());
        json_object_set_new(d, "io", json_string(res->io));
        return d;
}

typedef struct xport_call {
        const char *snapshot, *file, *name;
        smolvm_archive_result res;
        smolvm_snapshot_info info;
} xport_call;

static int export_fn(void *userdata, smolvm_archive_opts *o)
{
        xport_call *c = userdata;
        return strcmp(c->file, "-") ? smolvm_snapshot_export(c->snapshot, c->file, o, &c->res)
                                    : smolvm_snapshot_export_fd(c->snapshot, STDOUT_FILENO, o, &c->res);
}

static int import_fn(void *userdata, smolvm_archive_opts *o)
{
        xport_call *c = userdata;
        return strcmp(c->file, "-") ? smolvm_snapshot_import(c->file, c->name, o, &c->info, &c->res)
                                    : smolvm_snapshot_import_fd(STDIN_FILENO, c->name, o, &c->info, &c->res);
}

int cmd_snapshot_export(int argc, char **argv)
{
        xport_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&export_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 2)
                return cli_usage(&p, "snapshot export takes a snapshot and a file (or - for stdout)");
        xport_call c = { .snapshot = p.pos[0], .file = p.pos[1] };
        bool to_stdout = !strcmp(c.file, "-");
        if (to_stdout && p.json)
                return cli_usage(&p, "--json and FILE - would share stdout: name a file");
        if (to_stdout && isatty(STDOUT_FILENO))
                return cli_usage(&p, "refusing to write an archive to a terminal: redirect stdout, or name a file");
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.level = (int)a.level;
        r = cli_transfer(export_cmd.name, p.json, true, &o, export_fn, &c);
        if (r == 0 && p.json)
                cli_json_ok(export_cmd.name, 0, result_json(c.file, &c.res, json_string(c.snapshot)));
        return r;
}

int cmd_snapshot_import(int argc, char **argv)
{
        xport_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&import_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 1)
                return cli_usage(&p, "snapshot import takes one file (or - for stdin)");
        xport_call c = { .file = p.pos[0], .name = a.name };
        if (!strcmp(c.file, "-") && isatty(STDIN_FILENO))
                return cli_usage(&p, "stdin is a terminal: pipe the archive in, or name its file");
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        r = cli_transfer(import_cmd.name, p.json, true, &o, import_fn, &c);
        if (r == 0 && p.json)
                cli_json_ok(import_cmd.name, 0, result_json(c.file, &c.res, snapshot_info_json(&c.info)));
        else if (r == 0)
                printf("%s\n", c.info.id);
        return r;
}
