/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm snapshot export | import: a snapshot as one checksummed .zst file
 * (host/lib/snapshot_archive.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

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

static int interrupted(const cli_cmd *cmd, bool json, int sfd, int r)
{
        int sig = cli_pending_signal(sfd);
        return cli_fail_exit(cmd->name, json, r, 128 + (sig ? sig : SIGINT));
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
        const char *file = p.pos[1];
        bool to_stdout = !strcmp(file, "-");
        if (to_stdout && p.json)
                return cli_usage(&p, "--json and FILE - would share stdout: name a file");
        if (to_stdout && isatty(STDOUT_FILENO))
                return cli_usage(&p, "refusing to write an archive to a terminal: redirect stdout, or name a file");
        sigset_t old;
        _cleanup_close_ int sfd = cli_setup_signals(&old);
        if (sfd < 0)
                return cli_failf(export_cmd.name, p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        cli_progress prog;
        cli_progress_init(&prog, export_cmd.name, true);
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.level = (int)a.level;
        o.cancel_fd = sfd;
        o.progress = cli_progress_cb;
        o.userdata = &prog;
        smolvm_archive_result res;
        r = to_stdout ? smolvm_snapshot_export_fd(p.pos[0], STDOUT_FILENO, &o, &res)
                      : smolvm_snapshot_export(p.pos[0], file, &o, &res);
        cli_progress_end(&prog);
        if (r == -ECANCELED)
                return interrupted(&export_cmd, p.json, sfd, r);
        if (r < 0)
                return cli_fail(export_cmd.name, p.json, r);
        if (p.json)
                cli_json_ok(export_cmd.name, 0, result_json(file, &res, json_string(p.pos[0])));
        return 0;
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
        const char *file = p.pos[0];
        bool from_stdin = !strcmp(file, "-");
        if (from_stdin && isatty(STDIN_FILENO))
                return cli_usage(&p, "stdin is a terminal: pipe the archive in, or name its file");
        sigset_t old;
        _cleanup_close_ int sfd = cli_setup_signals(&old);
        if (sfd < 0)
                return cli_failf(import_cmd.name, p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        cli_progress prog;
        cli_progress_init(&prog, import_cmd.name, true);
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.cancel_fd = sfd;
        o.progress = cli_progress_cb;
        o.userdata = &prog;
        smolvm_archive_result res;
        smolvm_snapshot_info info;
        r = from_stdin ? smolvm_snapshot_import_fd(STDIN_FILENO, a.name, &o, &info, &res)
                       : smolvm_snapshot_import(file, a.name, &o, &info, &res);
        cli_progress_end(&prog);
        if (r == -ECANCELED)
                return interrupted(&import_cmd, p.json, sfd, r);
        if (r < 0)
                return cli_fail(import_cmd.name, p.json, r);
        if (p.json)
                cli_json_ok(import_cmd.name, 0, result_json(file, &res, snapshot_info_json(&info)));
        else
                printf("%s\n", info.id);
        return 0;
}
