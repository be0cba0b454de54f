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

static const cli_opt setup_opts[] = {
        CLI_STRING(smolvm_image_build_opts, mirror, "mirror", 0, "URL",
                   "Debian mirror (default: from the host's apt sources)"),
        CLI_STRING(smolvm_image_build_opts, from_rootfs, "from-rootfs", 0, "PATH",
                   "a debootstrap output dir or tarball instead of debootstrap"),
        CLI_END,
};

static const cli_cmd setup_cmd = {
        .name = "setup",
        .synopsis = "[--json] [--mirror URL] [--from-rootfs PATH]",
        .about = "Get this host ready: run the doctor checks, build the default image (Debian\n"
                 "kernel, initramfs with smolvm-init, rootfs; cached: a rebuild takes seconds),\n"
                 "check again and print the next steps. Building needs root (debootstrap)\n"
                 "unless --from-rootfs is given.\n",
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

int cmd_setup(int argc, char **argv)
{
        smolvm_image_build_opts o = { 0 };
        cli_parsed p;
        int r = cli_parse(&setup_cmd, argc, argv, &o, &p);
        if (r != 0)
                return cli_parse_exit(r);
        bool json = p.json;
        FILE *out = json ? stderr : stdout;

        smolvm_doctor_report *before = NULL;
        r = smolvm_doctor(&before);
        if (r < 0)
                return cli_fail("setup", json, r);
        fprintf(out, "Checking the host:\n");
        doctor_print(out, before);
        smolvm_doctor_report_free(before);

        fprintf(out, "\nBuilding the default image:\n");
        fflush(out);
        smolvm_image_info info = { 0 };
        _cleanup_free_ char *err = NULL;
        uint64_t t0 = now_ms();
        r = smolvm_image_build(&o, progress, NULL, &info, &err);
        if (r < 0) {
                const char *msg = err ? err : strerror(-r);
                const char *fix = r == -EPERM || r == -EACCES || (err && strstr(err, "root"))
                                          ? "run `sudo smolvm setup`, or pass --from-rootfs PATH"
                                          : "check the message above; `smolvm image build --help` has the options";
                return cli_failf("setup", json, SMOLVM_EIMAGE, NULL, fix, "image build: %s", msg);
        }
        double secs = (double)(now_ms() - t0) / 1000.0;
        fprintf(out, "  %s image %.12s in %.1f s (%s)\n", info.cached ? "cached" : "built", info.key, secs, info.dir);

        smolvm_doctor_report *after = NULL;
        r = smolvm_doctor(&after);
        if (r < 0) {
                smolvm_image_info_done(&info);
                return cli_fail("setup", json, r);
        }
        int rc = after->n_fail ? 1 : 0;
        if (json) {
                json_t *data = json_object(), *img = json_pack("{s:s,s:s,s:b,s:f}", "key", info.key, "dir", info.dir,
                                                               "cached", info.cached, "elapsed_s", secs);
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
