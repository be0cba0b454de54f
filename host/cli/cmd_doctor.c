/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm doctor: check the host and this user (KVM, QEMU, image, home, disk, image
 * build) and say how to fix it. */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "doctor_out.h"
#include "smolvm/smolvm.h"

static const cli_cmd doctor_cmd = {
        .name = "doctor",
        .synopsis = "[--json]",
        .about = "Check that this host, for this user, can run VMs: KVM (or why TCG is used;\n"
                 "group kvm), QEMU and its microvm machine, qemu-img, the supervisor, the default\n"
                 "image (yours, else the system store's), $SMOLVM_HOME (yours to write) and its\n"
                 "free disk, and what `smolvm image build` needs (as root debootstrap; without\n"
                 "root fakeroot, mmdebstrap, uidmap, subuid ranges). Each check passes, warns\n"
                 "or fails, with the command that fixes it.\n",
        .json_help = "print the report as a JSON envelope",
        .footer = "Exit status: 0 when no check failed, 1 otherwise, 125 if doctor itself failed.\n",
        .no_args = true,
};

int cmd_doctor(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&doctor_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        bool json = p.json;
        smolvm_doctor_report *rep = NULL;
        r = smolvm_doctor(&rep);
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
