/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm cp SRC DST: copy a file or directory between the host and a VM. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "cp_spec.h"
#include "smolvm/smolvm.h"
#include "util.h"

typedef struct cp_args {
        uint64_t max_bytes; /* 0: no --max-size */
} cp_args;

int cli_opt_max_size(const char *arg, void *field)
{
        if (cp_parse_size(arg, field) < 0) {
                cli_error("invalid --max-size '%s': give bytes > 0, or a size like 10M or 2G", arg);
                return -EINVAL;
        }
        return 0;
}

static const cli_opt cp_opts[] = {
        CLI_CALL(cp_args, max_bytes, "max-size", 0, "SIZE", cli_opt_max_size,
                 "downloads: refuse more than SIZE bytes in all (K, M, G, T\n"
                 "suffixes, powers of 1024: 10M, 2G); with ID:/path -, the tar"),
        CLI_END,
};

static const cli_cmd cp_cmd = {
        .name = "cp",
        .synopsis = "[--json] [--max-size SIZE] SRC DST\n"
                    "       smolvm cp ID:/path -    |    smolvm cp - ID:/dir",
        .about = "Copy a file or a directory (recursively) between the host and a running VM.\n"
                 "One side is ID:/path (ID = VM id or name), the other a host path.\n"
                 "  smolvm cp ./app ID:/srv/app       upload; missing guest parents are created\n"
                 "  smolvm cp ID:/var/log/x.log .     download into an existing directory\n"
                 "\n"
                 "DST names the copy. If DST ends with '/' (or, on the host, is an existing\n"
                 "directory) the copy goes inside it under SRC's name. Permission bits are kept\n"
                 "(not setuid/setgid on download); symlinks inside a tree are copied as symlinks.\n"
                 "\n"
                 "Downloads never write through a symlink. The directories above DST's last\n"
                 "component are yours and resolved as usual; DST's last component, the name\n"
                 "added inside it and the directories of a tree are the copy's and must not be\n"
                 "symlinks (such as one an earlier download copied from the guest): the copy\n"
                 "stops and names it; remove it, or give the directory it points to. A file of\n"
                 "the copy replaces a symlink at its own name.\n"
                 "A download is refused before it starts when the sizes the guest announces\n"
                 "exceed the free space of DST's file system or --max-size. Interrupted\n"
                 "(SIGINT, SIGTERM, SIGHUP), it removes its partial file and exits 128+N.\n"
                 "\n"
                 "Tar streams, as docker cp: '-' as DST writes an uncompressed tar of the guest\n"
                 "file or directory to stdout (entries named from its last component: dir/...);\n"
                 "'-' as SRC unpacks a tar read from stdin into the existing guest directory\n"
                 "(the guest's GNU tar, in place). A host file named '-' is ./-.\n"
                 "  smolvm cp ID:/var/log - | tar -tv\n"
                 "  tar -C src -cf - . | smolvm cp - ID:/srv/app\n",
        .opts = cp_opts,
        .json_help = "print the result as a JSON envelope",
};

/* Upload src to *target (the guest path of the copy, malloc'd; replaced when the
 * copy goes into an existing guest directory instead). */
static int upload(smolvm_vm *vm, const cp_spec *src, const cp_spec *dst, char **target)
{
        int r = smolvm_upload(vm, src->path, *target);
        /* `cp file ID:/existing-dir` means into it, as cp(1) does. */
        if (r == -EISDIR && !cp_ends_with_slash(dst->path)) {
                char *inner = cp_dest_path(dst->path, src->path, true);
                if (inner) {
                        free(*target);
                        *target = inner;
                        r = smolvm_upload(vm, src->path, *target);
                }
        }
        return r;
}

/* cp ID:/path - and cp - ID:/dir: the guest's tar on our stdout or stdin. */
typedef struct cp_stream_call {
        bool out;
        smolvm_archive_result res;
} cp_stream_call;

static int cp_stream_fn(smolvm_vm *vm, void *userdata, smolvm_archive_opts *o)
{
        cp_stream_call *c = userdata;
        return c->out ? smolvm_tar_from_guest(vm, STDOUT_FILENO, o, &c->res)
                      : smolvm_tar_to_guest(vm, STDIN_FILENO, o, &c->res);
}

static int tar_stream(const cli_parsed *p, const cp_spec *src, const cp_spec *dst, uint64_t max_bytes)
{
        bool out = dst->vm[0] == '\0';
        const cp_spec *guest = out ? src : dst;
        if (out && p->json)
                return cli_usage(p, "--json and a tar on stdout would share stdout: leave out --json");
        if (out && isatty(STDOUT_FILENO))
                return cli_usage(p, "refusing to write a tar to a terminal: redirect stdout, or pipe it into tar");
        if (!out && isatty(STDIN_FILENO))
                return cli_usage(p, "stdin is a terminal: pipe a tar in (tar -cf - ... | smolvm cp - ID:/dir)");
        cp_stream_call c = { .out = out };
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.guest_path = guest->path;
        o.max_bytes = max_bytes;
        int r = cli_transfer_vm("cp", p->json, false, guest->vm, &o, cp_stream_fn, &c);
        if (r != 0)
                return r;
        if (p->json) {
                json_t *data = json_object();
                if (data) {
                        json_object_set_new(data, "vm", cli_json_str(guest->vm));
                        json_object_set_new(data, "direction", json_string("upload"));
                        json_object_set_new(data, "source", json_string("-"));
                        json_object_set_new(data, "destination", cli_json_str(guest->path));
                        json_object_set_new(data, "bytes", json_integer((json_int_t)c.res.tar_bytes));
                }
                cli_json_ok("cp", 0, data);
        }
        return 0;
}

int cmd_cp(int argc, char **argv)
{
        cp_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&cp_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 2)
                return cli_usage(&p, "cp needs exactly two arguments: SRC DST");

        cp_spec src, dst;
        char err[256];
        if (cp_args_parse(p.pos[0], p.pos[1], &src, &dst, err, sizeof(err)) < 0)
                return cli_usage(&p, "%s", err);
        if (!strcmp(src.path, "-") || !strcmp(dst.path, "-")) {
                if (a.max_bytes && !strcmp(src.path, "-"))
                        return cli_usage(&p, "--max-size limits downloads (ID:/path -> host)");
                return tar_stream(&p, &src, &dst, a.max_bytes);
        }
        bool upload_dir = dst.vm[0] != '\0';
        const char *vm_name = upload_dir ? dst.vm : src.vm;
        if (upload_dir && a.max_bytes)
                return cli_usage(&p, "--max-size limits downloads (ID:/path -> host)");
        _cleanup_free_ char *target = NULL;
        if (upload_dir && !(target = cp_dest_path(dst.path, src.path, cp_ends_with_slash(dst.path))))
                return cli_usage(&p, "cannot copy '%s' into a directory: name the destination", src.path);

        /* Downloads: Ctrl-C, SIGTERM and SIGHUP cancel through the library, which
         * removes its partial file. Uploads keep the default actions. */
        sigset_t old_mask;
        _cleanup_close_ int sfd = -1;
        if (!upload_dir) {
                sfd = cli_setup_signals(&old_mask);
                if (sfd < 0)
                        return cli_failf("cp", p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        }

        smolvm_vm *vm = NULL;
        r = smolvm_open(vm_name, &vm);
        if (r == 0 && upload_dir) {
                r = upload(vm, &src, &dst, &target);
        } else if (r == 0) {
                smolvm_download_opts o;
                smolvm_download_opts_init(&o);
                o.dest = cp_ends_with_slash(dst.path) ? SMOLVM_DOWNLOAD_INTO : SMOLVM_DOWNLOAD_AUTO;
                o.max_bytes = a.max_bytes;
                o.cancel_fd = sfd;
                r = smolvm_download_with(vm, src.path, dst.path, &o, &target);
        }
        smolvm_free(vm);
        if (r == -ECANCELED) {
                /* Interrupted by signal N: 128+N, as run and exec exit. */
                int sig = cli_pending_signal(sfd);
                return cli_fail_exit("cp", p.json, r, 128 + (sig ? sig : SIGINT));
        }
        if (r < 0)
                return cli_fail("cp", p.json, r);
        if (p.json) {
                json_t *data = json_object();
                if (data) {
                        json_object_set_new(data, "vm", json_string(vm_name));
                        json_object_set_new(data, "direction", json_string(upload_dir ? "upload" : "download"));
                        json_object_set_new(data, "source", json_string(src.path));
                        json_object_set_new(data, "destination", json_string(target));
                }
                cli_json_ok("cp", 0, data);
        }
        return 0;
}
