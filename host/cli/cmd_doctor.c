/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm doctor: check the host (KVM, QEMU, image, disk) and say how to fix it. */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "doctor_out.h"
#include "smolvm/smolvm.h"

static const char doctor_usage_text[] =
        "Usage: smolvm doctor [--json]\n"
        "\n"
        "Check that this host can run VMs: KVM (or why TCG is used), QEMU and its\n"
        "microvm machine, qemu-img, the supervisor, the default image, free disk in\n"
        "$SMOLVM_HOME, debootstrap. Each check passes, warns or fails, with the fix.\n"
        "\n"
        "Exit status: 0 when no check failed, 1 otherwise, 125 if doctor itself failed.\n"
        "\n"
        "Options:\n"
        "  --json      print the report as a JSON envelope\n"
        "  -h, --help  show this help\n";

int cmd_doctor(int argc, char **argv)
{
        bool json = false;
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                        fputs(doctor_usage_text, stdout);
                        return 0;
                }
                if (!strcmp(argv[i], "--json")) {
                        json = true;
                        continue;
                }
                cli_error("unexpected argument '%s'", argv[i]);
                return cli_usage_fail("doctor", cli_wants_json(argc, argv), "unexpected argument");
        }
        smolvm_doctor_report *rep = NULL;
        int r = smolvm_doctor(&rep);
        if (r < 0)
                return cli_fail("doctor", json, r);
        int rc = rep->n_fail ? 1 : 0;
        if (json) {
                json_t *data = doctor_json(rep);
                if (!rep->n_fail) {
                        cli_json_ok("doctor", rc, data);
                } else {
                        const smolvm_doctor_check *first = NULL;
                        for (size_t i = 0; i < rep->n_checks && !first; i++)
                                if (rep->checks[i].status == SMOLVM_CHECK_FAIL)
                                        first = &rep->checks[i];
                        char msg[512];
                        snprintf(msg, sizeof(msg), "%zu check(s) failed; first: %s: %s", rep->n_fail, first->name,
                                 first->message);
                        cli_json_error("doctor", rc, "host_not_ready", msg, first->fix, data);
                }
        } else {
                doctor_print(stdout, rep);
        }
        smolvm_doctor_report_free(rep);
        return rc;
}
