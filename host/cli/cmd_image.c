/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm image build | ls: parse flags, call the image builder, print.
 * Progress goes to stderr; the result (path or JSON) to stdout. */
#include "cli.h"
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "util.h"

static const char usage[] =
        "Usage: smolvm image build [OPTIONS]\n"
        "       smolvm image ls [--json]\n"
        "\n"
        "Build a bootable image (Debian kernel, initramfs with smolvm-init, ext4 rootfs)\n"
        "into $SMOLVM_HOME/images/<key>/; the default image is images/default.\n"
        "A rebuild with the same inputs reuses the cache and takes seconds.\n"
        "\n"
        "build options:\n"
        "  --suite S            Debian suite (default: bookworm)\n"
        "  --mirror URL         Debian mirror (default: from the host's apt sources)\n"
        "  --packages a,b       extra packages (default image has python3, git,\n"
        "                       ca-certificates, procps)\n"
        "  --no-default-packages  do not add the default packages\n"
        "  --from-rootfs PATH   use a debootstrap output dir or tarball instead of debootstrap\n"
        "  --name NAME          also name the image images/NAME (default: 'default' when\n"
        "                       all options are the defaults)\n"
        "  --init PATH          smolvm-init binary (default: $SMOLVM_LIBEXECDIR/smolvm-init)\n"
        "  --size MIB           rootfs size (default: content * 1.3 + 256 MiB)\n"
        "  --modules a,b        extra kernel modules for the initramfs\n"
        "  --json               print the result as JSON\n"
        "\n"
        "Needs root for debootstrap (not with --from-rootfs).\n";

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
        if (strstr(msg, "needs root") || r == -EPERM || r == -EACCES)
                return "run as root, or pass --from-rootfs with an existing debootstrap output";
        if (strstr(msg, "debootstrap") || strstr(msg, "apt-"))
                return "check that the Debian mirror is reachable (apt-get update), or pass --mirror URL";
        if (strstr(msg, "initramfs: kernel"))
                return "check the --modules names (modules of the Debian kernel, e.g. virtio_net)";
        if (strstr(msg, "command not found"))
                return "install the build tools: scripts/setup.sh";
        return "see: smolvm image --help";
}

static int fail(bool json, const char *msg, int r)
{
        const char *hint = hint_for(msg, r);
        if (json) /* the envelope every command prints (docs/cli.md) */
                cli_json_error("image", 1, r == -EINVAL ? "invalid_argument" : "image_error", msg, hint, NULL);
        fprintf(stderr, "smolvm: image: %s\nhint: %s\n", msg, hint);
        return 1;
}

static json_t *info_json(const smolvm_image_info *i)
{
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "key", i->key, "dir", i->dir, "vmlinuz", i->vmlinuz,
                         "initramfs", i->initramfs, "rootfs", i->rootfs, "kernel_release", i->kernel_release);
}

static int cmd_build(int argc, char **argv)
{
        enum { O_SUITE = 256, O_MIRROR, O_PACKAGES, O_NODEF, O_FROM, O_NAME, O_INIT, O_SIZE, O_MODULES, O_JSON };
        static const struct option longopts[] = {
                {"suite", required_argument, NULL, O_SUITE},
                {"mirror", required_argument, NULL, O_MIRROR},
                {"packages", required_argument, NULL, O_PACKAGES},
                {"no-default-packages", no_argument, NULL, O_NODEF},
                {"from-rootfs", required_argument, NULL, O_FROM},
                {"name", required_argument, NULL, O_NAME},
                {"init", required_argument, NULL, O_INIT},
                {"size", required_argument, NULL, O_SIZE},
                {"modules", required_argument, NULL, O_MODULES},
                {"json", no_argument, NULL, O_JSON},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        smolvm_image_build_opts o = {0};
        _cleanup_free_ char **packages = NULL, **modules = NULL;
        bool json = false;
        int c;

        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--json") == 0)
                        json = true;
        optind = 0; /* glibc: full re-initialisation, main() may have used getopt */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
                switch (c) {
                case O_SUITE: o.suite = optarg; break;
                case O_MIRROR: o.mirror = optarg; break;
                case O_PACKAGES:
                        free(packages);
                        if (!(packages = split_commas(optarg)))
                                return fail(json, "out of memory", -ENOMEM);
                        o.packages = (const char *const *)packages;
                        break;
                case O_NODEF: o.no_default_packages = 1; break;
                case O_FROM: o.from_rootfs = optarg; break;
                case O_NAME: o.name = optarg; break;
                case O_INIT: o.init_path = optarg; break;
                case O_SIZE: {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || *end || v == 0 || v > (1ull << 22))
                                return fail(json, "--size wants a size in MiB, e.g. --size 2048", -EINVAL);
                        o.rootfs_size_mib = v;
                        break;
                }
                case O_MODULES:
                        free(modules);
                        if (!(modules = split_commas(optarg)))
                                return fail(json, "out of memory", -ENOMEM);
                        o.extra_modules = (const char *const *)modules;
                        break;
                case O_JSON: json = true; break;
                case 'h': fputs(usage, stdout); return 0;
                case '?': {
                        char msg[256];
                        snprintf(msg, sizeof(msg), "build: unknown or incomplete option '%s'", argv[optind - 1]);
                        return fail(json, msg, -EINVAL);
                }
                default: return fail(json, "build: bad option", -EINVAL);
                }
        }
        if (optind < argc) {
                char msg[256];
                snprintf(msg, sizeof(msg), "build: unexpected argument '%s'", argv[optind]);
                return fail(json, msg, -EINVAL);
        }

        smolvm_image_info info = {0};
        _cleanup_free_ char *err = NULL;
        uint64_t t0 = now_ms();
        int r = smolvm_image_build(&o, progress_cb, NULL, &info, &err);
        if (r < 0)
                return fail(json, err ? err : strerror(-r), r);
        uint64_t ms = now_ms() - t0;
        if (json) {
                json_t *j = info_json(&info);
                if (j) {
                        json_object_set_new(j, "cached", json_boolean(info.cached));
                        json_object_set_new(j, "elapsed_ms", json_integer((json_int_t)ms));
                }
                cli_json_ok("image", 0, j);
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
                printf("%-16s %-16.16s %s\n", names ? names : "-", key,
                       info->kernel_release ? info->kernel_release : "?");
        return 0;
}

static int cmd_ls(int argc, char **argv)
{
        ls_state s = {0};
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--json") == 0)
                        s.json = true;
                else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        fputs(usage, stdout);
                        return 0;
                } else {
                        char msg[256];
                        snprintf(msg, sizeof(msg), "ls: unexpected argument '%s'", argv[i]);
                        return fail(s.json, msg, -EINVAL);
                }
        }
        if (s.json && !(s.arr = json_array()))
                return fail(true, "out of memory", -ENOMEM);
        if (!s.json)
                printf("%-16s %-16s %s\n", "NAME", "KEY", "KERNEL");
        int r = smolvm_image_list(NULL, ls_cb, &s);
        if (r < 0) {
                json_decref(s.arr);
                char msg[256];
                snprintf(msg, sizeof(msg), "ls: %s", strerror(-r));
                return fail(s.json, msg, r);
        }
        if (s.json)
                cli_json_ok("image", 0, json_pack("{s:o}", "images", s.arr));
        return 0;
}

int cmd_image(int argc, char **argv)
{
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
                fputs(usage, argc < 2 ? stderr : stdout);
                return argc < 2 ? 1 : 0;
        }
        if (strcmp(argv[1], "build") == 0)
                return cmd_build(argc - 1, argv + 1);
        if (strcmp(argv[1], "ls") == 0 || strcmp(argv[1], "list") == 0)
                return cmd_ls(argc - 1, argv + 1);
        char msg[256];
        snprintf(msg, sizeof(msg), "unknown subcommand '%s' (build, ls)", argv[1]);
        return fail(false, msg, -EINVAL);
}
