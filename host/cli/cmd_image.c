/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm image build | ls: parse flags, call the image builder, print.
 * Progress goes to stderr; the result (path or JSON) to stdout. */
#include "cli.h"
#include "commands.h"

#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "store.h"
#include "util.h"

static const char image_about[] =
        "Build a bootable image (Debian kernel, initramfs with smolvm-init, ext4 rootfs)\n"
        "into $SMOLVM_HOME/images/<key>/, or with --system (as root) into the system\n"
        "store every user reads (/var/lib/smolvm, $SMOLVM_SYSTEM_STORE); the default\n"
        "image is images/default. A name is looked up in your store, then the system's.\n"
        "A rebuild with the same inputs reuses the cache (the system store's too) and\n"
        "takes seconds.\n";

static void progress_cb(void *ud, const char *line)
{
        (void)ud;
        fprintf(stderr, "%s\n", line);
}

/* "a,b,,c" -> {"a","b","c",NULL}; modifies s. Returns a malloc'd array or NULL. */
static char **split_commas(char *s)
{
        size_t n = 1;
        for (char *p = s; *p; p++)
                n += *p == ',';
        char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return NULL;
        size_t i = 0;
        char *save = NULL;
        for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save))
                v[i++] = t;
        return v;
}

static const char *hint_for(const char *msg, int r)
{
        if (strstr(msg, "smolvm-init"))
                return "build guest-init (ninja -C build) and pass --init PATH or set SMOLVM_LIBEXECDIR";
        if (strstr(msg, "system store"))
                return "the system store is root's: sudo smolvm image build --system";
        if (strstr(msg, " lacks ") || strstr(msg, "fakeroot"))
                return "`smolvm doctor` names what a build without root needs (check image-build)";
        if (r == -EPERM || r == -EACCES)
                return "run as root, or pass --from-rootfs with an existing debootstrap output";
        if (strstr(msg, "debootstrap") || strstr(msg, "apt-"))
                return "check that the Debian mirror is reachable (apt-get update), or pass --mirror URL";
        if (strstr(msg, "initramfs: kernel"))
                return "check the --modules names (modules of the Debian kernel, e.g. virtio_net)";
        if (strstr(msg, "command not found"))
                return "install the build tools: scripts/setup.sh";
        return "see: smolvm image --help";
}

static int fail(const char *command, bool json, const char *msg, int r)
{
        /* A bad option value is invalid_argument; anything else the image's fault. */
        return cli_failf(command, json, r, r == -EINVAL ? NULL : "image_error", hint_for(msg, r), "%s: %s", command,
                         msg);
}

static json_t *info_json(const smolvm_image_info *i)
{
        return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s?, s:s}", "key", i->key, "dir", i->dir, "vmlinuz", i->vmlinuz,
                         "initramfs", i->initramfs, "rootfs", i->rootfs, "kernel_release", i->kernel_release,
                         "store", i->system ? "system" : "user");
}

typedef struct build_args {
        smolvm_image_build_opts o;
        bool no_default_packages, system;
        char **packages, **modules; /* malloc'd arrays into argv's strings */
} build_args;

static void build_args_done(build_args *a)
{
        free(a->packages);
        free(a->modules);
}

/* --packages a,b / --modules a,b: the last one given counts. */
static int parse_list(const char *arg, void *field)
{
        char ***list = field;
        char **v = split_commas((char *)arg); /* argv's string, ours to cut up */
        if (!v) {
                cli_error("out of memory");
                return -ENOMEM;
        }
        free(*list);
        *list = v;
        return 0;
}

static int parse_size(const char *arg, void *field)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (!*arg || *arg == '-' || errno || *end || v == 0 || v > (1ull << 22)) {
                cli_error("--size wants a size in MiB, e.g. --size 2048");
                return -EINVAL;
        }
        *(uint64_t *)field = v;
        return 0;
}

static const cli_opt build_opts[] = {
        CLI_STRING(build_args, o.suite, "suite", 0, "S", "Debian suite (default: bookworm)"),
        CLI_STRING(build_args, o.mirror, "mirror", 0, "URL", "Debian mirror (default: from the host's apt sources)"),
        CLI_CALL(build_args, packages, "packages", 0, "a,b", parse_list,
                 "extra packages (default image has python3, git,\n"
                 "ca-certificates, procps)"),
        CLI_BOOL(build_args, no_default_packages, "no-default-packages", 0, "do not add the default packages"),
        CLI_STRING(build_args, o.from_rootfs, "from-rootfs", 0, "PATH",
                   "use a debootstrap output dir or tarball instead of\ndebootstrap"),
        CLI_BOOL(build_args, system, "system", 0,
                 "build into the system store, for every user (root)"),
        CLI_STRING(build_args, o.name, "name", 0, "NAME",
                   "also name the image images/NAME (default: 'default' when\n"
                   "all options are the defaults)"),
        CLI_STRING(build_args, o.init_path, "init", 0, "PATH",
                   "smolvm-init binary (default: $SMOLVM_LIBEXECDIR/smolvm-init)"),
        CLI_CALL(build_args, o.rootfs_size_mib, "size", 0, "MIB", parse_size,
                 "rootfs size (default: content * 1.3 + 256 MiB)"),
        CLI_CALL(build_args, modules, "modules", 0, "a,b", parse_list, "extra kernel modules for the initramfs"),
        CLI_END,
};

static const cli_cmd build_cmd = {
        .name = "image build",
        .synopsis = "[OPTIONS]",
        .about = image_about,
        .opts = build_opts,
        .json_help = "print the result as a JSON envelope; data: {key, dir, vmlinuz,\n"
                     "initramfs, rootfs, kernel_release, store, cached, elapsed_ms}",
        .footer = "Without root: --from-rootfs goes through fakeroot (owners kept); a fresh\n"
                  "Debian rootfs through mmdebstrap --mode=unshare (needs packages mmdebstrap,\n"
                  "uidmap, fakeroot and a subuid/subgid range: `smolvm doctor` names what lacks).\n"
                  "Layers the system store holds are used from there, not rebuilt.\n",
        .no_args = true,
};

static int cmd_build(int argc, char **argv)
{
        _cleanup_(build_args_done) build_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&build_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        bool json = p.json;
        smolvm_image_build_opts o = a.o;
        o.packages = (const char *const *)a.packages;
        o.extra_modules = (const char *const *)a.modules;
        o.no_default_packages = a.no_default_packages;
        o.system = a.system;

        smolvm_image_info info = {0};
        _cleanup_free_ char *err = NULL;
        uint64_t t0 = now_ms();
        r = smolvm_image_build(&o, progress_cb, NULL, &info, &err);
        if (r < 0)
                return fail("image build", json, err ? err : strerror(-r), r);
        uint64_t ms = now_ms() - t0;
        if (json) {
                json_t *j = info_json(&info);
                if (j) {
                        json_object_set_new(j, "cached", json_boolean(info.cached));
                        json_object_set_new(j, "elapsed_ms", json_integer((json_int_t)ms));
                }
                cli_json_ok("image build", 0, j);
        } else {
                fprintf(stderr, "%s image %s in %.1f s\n", info.cached ? "cached" : "built", info.key, (double)ms / 1000.0);
                printf("%s\n", info.dir);
        }
        smolvm_image_info_done(&info);
        return 0;
}

typedef struct ls_state {
        bool json;
        json_t *arr;
} ls_state;

static int ls_cb(void *ud, const char *key, const char *names, const smolvm_image_info *info)
{
        ls_state *s = ud;
        if (s->json) {
                json_t *j = info_json(info);
                if (j) {
                        json_object_set_new(j, "name", names ? json_string(names) : json_null());
                        json_array_append_new(s->arr, j);
                }
        } else
                printf("%-16s %-16.16s %-18s %s\n", names ? names : "-", key,
                       info->kernel_release ? info->kernel_release : "?", info->system ? "system" : "user");
        return 0;
}

static const cli_cmd ls_cmd = {
        .name = "image ls",
        .synopsis = "[--json]",
        .about = "List the images: name, key, kernel release, store: yours ($SMOLVM_HOME/images)\n"
                 "first, then the system store's (every user's, built by root). A name in both\n"
                 "is yours when used.\n",
        .json_help = "print the result as a JSON envelope; data: {\"images\": [{name, key,\n"
                     "dir, ..., store: \"user\"|\"system\"}], home, system_store}",
        .no_args = true,
};

static int cmd_ls(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&ls_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        ls_state s = { .json = p.json };
        if (s.json && !(s.arr = json_array()))
                return fail("image ls", true, "out of memory", -ENOMEM);
        if (!s.json)
                printf("%-16s %-16s %-18s %s\n", "NAME", "KEY", "KERNEL", "STORE");
        r = smolvm_image_list(NULL, ls_cb, &s);
        if (r < 0) {
                json_decref(s.arr);
                return fail("image ls", s.json, strerror(-r), r);
        }
        _cleanup_free_ char *home = smolvm_image_home();
        const char *sys = smolvm_system_store();
        if (s.json)
                cli_json_ok("image ls", 0,
                            json_pack("{s:o, s:s?, s:s}", "images", s.arr, "home", home, "system_store", sys));
        else
                printf("\nuser: %s/images\nsystem: %s/images\n", home ? home : "?", sys);
        return 0;
}

static const cli_verb image_verbs[] = {
        { "build", cmd_build, "build (or find in the cache) an image" },
        { "ls", cmd_ls, "list the images" },
        { "list", cmd_ls, NULL },
        { NULL, NULL, NULL },
};

static const cli_family image_family = {
        .name = "image",
        .about = image_about,
        .verbs = image_verbs,
};

int cmd_image(int argc, char **argv)
{
        return cli_run_family(&image_family, argc, argv);
}
