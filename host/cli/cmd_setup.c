/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm setup: check the host, build (or find in the cache) the default image,
 * say what to do next. Progress and the report go to stderr with --json. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "doctor_out.h"
#include "image.h"
#include "smolvm/smolvm.h"
#include "util.h"

typedef struct setup_args {
        smolvm_image_build_opts o;
        bool system;
} setup_args;

static const cli_opt setup_opts[] = {
        CLI_STRING(setup_args, o.mirror, "mirror", 0, "URL",
                   "Debian mirror (default: from the host's apt sources)"),
        CLI_STRING(setup_args, o.from_rootfs, "from-rootfs", 0, "PATH",
                   "a debootstrap output dir or tarball instead of debootstrap"),
        CLI_BOOL(setup_args, system, "system", 0,
                 "build into the system store, for every user (root;\nscripts/setup.sh does)"),
        CLI_END,
};

static const cli_cmd setup_cmd = {
        .name = "setup",
        .synopsis = "[--json] [--system] [--mirror URL] [--from-rootfs PATH]",
        .about = "Get this host ready: run the doctor checks, build the default image (Debian\n"
                 "kernel, initramfs with smolvm-init, rootfs; cached: a rebuild takes seconds),\n"
                 "check again and print the next steps. The image goes into $SMOLVM_HOME, or\n"
                 "with --system into the system store every user reads. Without --system or\n"
                 "options, a user with no default image of their own whom the system store's\n"
                 "default serves builds nothing (a build of their own would shadow root's\n"
                 "later rebuilds). Without root see `smolvm image build --help`.\n",
        .opts = setup_opts,
        .json_help = "print the result as a JSON envelope",
        .footer = "Exit status: 0 when the host is ready, 1 when a check still fails, 125 when\n"
                  "the image could not be built.\n",
        .no_args = true,
};

static void progress(void *ud, const char *line)
{
        (void)ud;
        fprintf(stderr, "  %s\n", line);
}

/* The system store's default serves this caller as it is (then *ret is it):
 * no options that ask for another image, no default of the caller's own
 * (which would be looked up first), and the system store has one. */
static bool system_default_serves(const setup_args *a, smolvm_image_info *ret)
{
        if (a->system || a->o.mirror || a->o.from_rootfs || smolvm_image_resolve(NULL, "default", ret) < 0)
                return false;
        if (ret->system)
                return true;
        smolvm_image_info_done(ret);
        *ret = (smolvm_image_info){ 0 };
        return false;
}

int cmd_setup(int argc, char **argv)
{
        setup_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&setup_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        smolvm_image_build_opts o = a.o;
        o.system = a.system;
        bool json = p.json;
        FILE *out = json ? stderr : stdout;

        smolvm_doctor_report *before = NULL;
        r = smolvm_doctor(&before);
        if (r < 0)
                return cli_fail("setup", json, r);
        fprintf(out, "Checking the host:\n");
        doctor_print(out, before);
        smolvm_doctor_report_free(before);

        smolvm_image_info info = { 0 };
        double secs = 0;
        if (system_default_serves(&a, &info)) {
                info.cached = 1;
                fprintf(out, "\nThe default image: the system store's, every user's (%s)\n", info.dir);
        } else {
                fprintf(out, "\nBuilding the default image%s:\n", o.system ? " into the system store" : "");
                fflush(out);
                _cleanup_free_ char *err = NULL;
                uint64_t t0 = now_ms();
                r = smolvm_image_build(&o, progress, NULL, &info, &err);
                if (r < 0) {
                        const char *msg = err ? err : strerror(-r);
                        const char *fix = r == -EPERM || r == -EACCES || (err && strstr(err, "root"))
                                                  ? "`smolvm doctor` names what lacks; or, as root, `smolvm setup --system`"
                                                  : "check the message above; `smolvm image build --help` has the options";
                        return cli_failf("setup", json, SMOLVM_EIMAGE, NULL, fix, "image build: %s", msg);
                }
                secs = (double)(now_ms() - t0) / 1000.0;
                fprintf(out, "  %s image %.12s in %.1f s (%s)\n", info.cached ? "cached" : "built", info.key, secs,
                        info.dir);
        }

        smolvm_doctor_report *after = NULL;
        r = smolvm_doctor(&after);
        if (r < 0) {
                smolvm_image_info_done(&info);
                return cli_fail("setup", json, r);
        }
        int rc = after->n_fail ? 1 : 0;
        if (json) {
                json_t *data = json_object(),
                       *img = json_pack("{s:s,s:s,s:b,s:f,s:s}", "key", info.key, "dir", info.dir, "cached",
                                        info.cached, "elapsed_s", secs, "store", info.system ? "system" : "user");
                if (data) {
                        json_object_set_new(data, "image", img ? img : json_null());
                        json_t *d = doctor_json(after);
                        json_object_set_new(data, "doctor", d ? d : json_null());
                }
                if (rc == 0)
                        cli_json_ok("setup", rc, data);
                else
                        cli_json_error("setup", rc, "host_not_ready", "the image is built but a check still fails",
                                       "run `smolvm doctor` for the fixes", data);
        } else if (rc == 0) {
                printf("\nReady%s. Next steps:\n"
                       "  smolvm run -- uname -a                    # a throwaway VM\n"
                       "  smolvm create --name dev                  # a persistent one\n"
                       "  smolvm exec dev -- python3 -c 'print(1)'\n"
                       "  smolvm cp ./project dev:/root/project\n"
                       "  smolvm env set dev KEY=value\n",
                       after->nested_pvm || !after->kvm_usable ? " (TCG: boots take a few seconds)" : "");
        } else {
                printf("\nThe image is built, but a check still fails: see `smolvm doctor`.\n");
        }
        smolvm_doctor_report_free(after);
        smolvm_image_info_done(&info);
        return rc;
}
