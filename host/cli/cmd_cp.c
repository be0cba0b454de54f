/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm cp SRC DST: copy a file or directory between the host and a VM. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "cp_spec.h"
#include "smolvm/smolvm.h"

static const char cp_usage_text[] =
        "Usage: smolvm cp [--json] SRC DST\n"
        "\n"
        "Copy a file or a directory (recursively) between the host and a running VM.\n"
        "One side is ID:/path (ID = VM id or name), the other a host path.\n"
        "  smolvm cp ./app ID:/srv/app       upload; missing guest parents are created\n"
        "  smolvm cp ID:/var/log/x.log .     download into an existing directory\n"
        "\n"
        "DST names the copy. If DST ends with '/' (or, on the host, is an existing\n"
        "directory) the copy goes inside it under SRC's name. Permission bits are kept\n"
        "(not setuid/setgid on download); symlinks inside a tree are copied as symlinks\n"
        "and never followed on the host.\n"
        "\n"
        "Options:\n"
        "  --json      print the result as a JSON envelope\n"
        "  -h, --help  show this help\n";

static bool host_is_dir(const char *p)
{
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cmd_cp(int argc, char **argv)
{
        bool json = cli_wants_json(argc, argv);
        const char *pos[2] = { NULL, NULL };
        int n_pos = 0;
        bool dashdash = false;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (!dashdash) {
                        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                                fputs(cp_usage_text, stdout);
                                return 0;
                        }
                        if (!strcmp(a, "--json"))
                                continue;
                        if (!strcmp(a, "--")) {
                                dashdash = true;
                                continue;
                        }
                        if (a[0] == '-' && a[1]) {
                                cli_error("unknown option '%s'", a);
                                return cli_usage_fail("cp", json, "unknown option");
                        }
                }
                if (n_pos < 2)
                        pos[n_pos] = a;
                n_pos++;
        }
        if (n_pos != 2) {
                cli_error("cp needs exactly two arguments: SRC DST");
                fputs(cp_usage_text, stderr);
                return cli_usage_fail("cp", json, "cp needs exactly two arguments: SRC DST");
        }

        cp_spec src, dst;
        char err[256];
        if (cp_args_parse(pos[0], pos[1], &src, &dst, err, sizeof(err)) < 0) {
                cli_error("%s", err);
                return cli_usage_fail("cp", json, err);
        }
        bool upload = dst.vm[0] != '\0';
        const char *vm_name = upload ? dst.vm : src.vm;
        bool into = cp_ends_with_slash(dst.path) || (!upload && host_is_dir(dst.path));
        char *target = cp_dest_path(dst.path, src.path, into);
        if (!target) {
                cli_error("cannot copy '%s' into a directory: name the destination", src.path);
                return cli_usage_fail("cp", json, "source has no name to copy into a directory");
        }

        smolvm_vm *vm = NULL;
        int r = smolvm_open(vm_name, &vm);
        if (r == 0) {
                r = upload ? smolvm_upload(vm, src.path, target) : smolvm_download(vm, src.path, target);
                /* `cp file ID:/existing-dir` means into it, as cp(1) does. */
                if (r == -EISDIR && upload && !into) {
                        char *inner = cp_dest_path(dst.path, src.path, true);
                        if (inner) {
                                free(target);
                                target = inner;
                                r = smolvm_upload(vm, src.path, target);
                        }
                }
        }
        smolvm_free(vm);
        if (r < 0) {
                free(target);
                return cli_fail("cp", json, r);
        }
        if (json) {
                json_t *data = json_object();
                if (data) {
                        json_object_set_new(data, "vm", json_string(vm_name));
                        json_object_set_new(data, "direction", json_string(upload ? "upload" : "download"));
                        json_object_set_new(data, "source", json_string(src.path));
                        json_object_set_new(data, "destination", json_string(target));
                }
                cli_json_ok("cp", 0, data);
        }
        free(target);
        return 0;
}
