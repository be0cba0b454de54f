/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm workspace persist | hydrate: a guest directory to and from a .tar.zst
 * (the OpenAI Agents SDK's persist_workspace / hydrate_workspace). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "cp_spec.h"
#include "smolvm/smolvm.h"
#include "util.h"

static const char ws_about[] =
        "Save a guest directory (default " SMOLVM_WORKSPACE_DIR ", which every VM has) to a\n"
        "compressed archive, and unpack one into a VM. The guest's GNU tar makes and\n"
        "unpacks the tar (names, modes, owners, symlinks, hard links, empty directories\n"
        "kept); the host compresses it with zstd as it streams out. The file is a\n"
        ".tar.zst with a checksummed header and trailer: `tar --zstd -tf FILE` lists it.\n";

typedef struct ws_args {
        const char *path;
        const char *output;
        unsigned level;
        uint64_t max_bytes;
} ws_args;

static const cli_opt persist_opts[] = {
        CLI_STRING(ws_args, output, "output", 'o', "FILE",
                   "the archive to write (replaced if it exists); '-': stdout.\n"
                   "Written under a temporary name and renamed when complete:\n"
                   "a failure or Ctrl-C leaves no file"),
        CLI_STRING(ws_args, path, "path", 0, "DIR", "the guest directory (default " SMOLVM_WORKSPACE_DIR ")"),
        CLI_UINT(ws_args, level, "level", 0, "N", 1, 19, 1, "zstd level, 1 (fastest) to 19 (default 3)"),
        CLI_CALL(ws_args, max_bytes, "max-size", 0, "SIZE", cli_opt_max_size,
                 "stop once the archive passes SIZE bytes (K, M, G, T suffixes,\n"
                 "powers of 1024); the guest decides how much it sends"),
        CLI_END,
};

static const cli_opt hydrate_opts[] = {
        CLI_STRING(ws_args, path, "path", 0, "DIR",
                   "the guest directory, created if missing (default " SMOLVM_WORKSPACE_DIR ")"),
        CLI_END,
};

static const cli_cmd persist_cmd = {
        .name = "workspace persist",
        .synopsis = "[--json] [--path DIR] [--level N] [--max-size SIZE] -o FILE|- ID",
        .about = ws_about,
        .opts = persist_opts,
        .json_help = "print the result as a JSON envelope (not with -o -); data: {\"vm\", \"path\",\n"
                     "\"file\", \"tar_bytes\", \"file_bytes\", \"duration_ms\", \"sha256\", \"io\"}",
        .footer = "Interrupted (SIGINT, SIGTERM, SIGHUP), it removes its partial file and exits 128+N.\n",
};

static const cli_cmd hydrate_cmd = {
        .name = "workspace hydrate",
        .synopsis = "[--json] [--path DIR] ID FILE|-",
        .about = ws_about,
        .opts = hydrate_opts,
        .json_help = "print the result as a JSON envelope; data: {\"vm\", \"path\", \"file\",\n"
                     "\"tar_bytes\", \"file_bytes\", \"duration_ms\", \"verified\", \"sha256\", \"io\"}",
        .footer = "FILE '-' reads stdin. Existing entries with the archive's names are replaced,\n"
                  "others stay; DIR keeps its own mode and owner. Nothing is unpacked unless the\n"
                  "whole archive passes its checks (a damaged or truncated file, a failing tar\n"
                  "or Ctrl-C leave DIR as it was).\n"
                  "A plain .tar.zst (tar --zstd -cf) works too, checked by zstd's own checksums.\n",
};

static json_t *result_json(const char *vm, const char *dir, const char *file, const smolvm_archive_result *res,
                           bool hydrate)
{
        json_t *d = json_object();
        if (!d)
                return NULL;
        json_object_set_new(d, "vm", cli_json_str(vm));
        json_object_set_new(d, "path", cli_json_str(dir));
        json_object_set_new(d, "file", cli_json_str(file));
        json_object_set_new(d, "tar_bytes", json_integer((json_int_t)res->tar_bytes));
        json_object_set_new(d, "file_bytes", json_integer((json_int_t)res->file_bytes));
        json_object_set_new(d, "duration_ms", json_integer((json_int_t)res->duration_ms));
        if (hydrate)
                json_object_set_new(d, "verified", json_boolean(res->verified));
        json_object_set_new(d, "sha256", res->sha256[0] ? json_string(res->sha256) : json_null());
        json_object_set_new(d, "io", json_string(res->io));
        return d;
}

/* Run op with Ctrl-C, SIGTERM and SIGHUP as its cancel fd; the exit code. */
typedef int (*ws_op)(smolvm_vm *vm, const char *file, const smolvm_archive_opts *o, smolvm_archive_result *ret);

typedef struct ws_call {
        const char *file;
        ws_op op;
        smolvm_archive_result res;
} ws_call;

static int ws_fn(smolvm_vm *vm, void *userdata, smolvm_archive_opts *o)
{
        ws_call *c = userdata;
        return c->op(vm, c->file, o, &c->res);
}

static int ws_run(const cli_cmd *cmd, const cli_parsed *p, const char *vm_name, const char *file, ws_op op,
                  smolvm_archive_opts *o, bool hydrate)
{
        ws_call c = { .file = file, .op = op };
        int r = cli_transfer_vm(cmd->name, p->json, true, vm_name, o, ws_fn, &c);
        if (r != 0)
                return r;
        const char *dir = o->guest_path ? o->guest_path : SMOLVM_WORKSPACE_DIR;
        if (p->json)
                cli_json_ok(cmd->name, 0, result_json(vm_name, dir, file, &c.res, hydrate));
        return 0;
}

static int persist_op(smolvm_vm *vm, const char *file, const smolvm_archive_opts *o, smolvm_archive_result *ret)
{
        return strcmp(file, "-") ? smolvm_workspace_persist(vm, file, o, ret)
                                 : smolvm_workspace_persist_fd(vm, STDOUT_FILENO, o, ret);
}

static int hydrate_op(smolvm_vm *vm, const char *file, const smolvm_archive_opts *o, smolvm_archive_result *ret)
{
        return strcmp(file, "-") ? smolvm_workspace_hydrate(vm, file, o, ret)
                                 : smolvm_workspace_hydrate_fd(vm, STDIN_FILENO, o, ret);
}

static int cmd_persist(int argc, char **argv)
{
        ws_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&persist_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 1)
                return cli_usage(&p, "workspace persist takes one VM");
        if (!a.output)
                return cli_usage(&p, "name the archive: -o FILE, or -o - for stdout");
        bool to_stdout = !strcmp(a.output, "-");
        if (to_stdout && p.json)
                return cli_usage(&p, "--json and -o - would share stdout: write the archive with -o FILE");
        if (to_stdout && isatty(STDOUT_FILENO))
                return cli_usage(&p, "refusing to write an archive to a terminal: redirect stdout, or use -o FILE");
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.guest_path = a.path;
        o.level = (int)a.level;
        o.max_bytes = a.max_bytes;
        return ws_run(&persist_cmd, &p, p.pos[0], a.output, persist_op, &o, false);
}

static int cmd_hydrate(int argc, char **argv)
{
        ws_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&hydrate_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 2)
                return cli_usage(&p, "workspace hydrate takes a VM and an archive (FILE, or - for stdin)");
        if (!strcmp(p.pos[1], "-") && isatty(STDIN_FILENO))
                return cli_usage(&p, "stdin is a terminal: pipe the archive in, or name its file");
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.guest_path = a.path;
        return ws_run(&hydrate_cmd, &p, p.pos[0], p.pos[1], hydrate_op, &o, true);
}

static const cli_verb ws_verbs[] = {
        { "persist", cmd_persist, "write a guest directory to a .tar.zst (FILE or stdout)" },
        { "hydrate", cmd_hydrate, "unpack a .tar.zst (FILE or stdin) into a guest directory" },
        { NULL, NULL, NULL },
};

static const cli_family ws_family = {
        .name = "workspace",
        .about = ws_about,
        .verbs = ws_verbs,
};

int cmd_workspace(int argc, char **argv)
{
        return cli_run_family(&ws_family, argc, argv);
}
