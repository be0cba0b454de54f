/* SPDX-License-Identifier: Apache-2.0 */
#include "doctor_out.h"

#include <unistd.h>

void doctor_print(FILE *f, const smolvm_doctor_report *rep)
{
        bool color = isatty(fileno(f)) && !getenv("NO_COLOR");
        for (size_t i = 0; i < rep->n_checks; i++) {
                const smolvm_doctor_check *c = &rep->checks[i];
                const char *col = c->status == SMOLVM_CHECK_PASS ? "\033[32m"
                                  : c->status == SMOLVM_CHECK_WARN ? "\033[33m"
                                                                    : "\033[31m";
                fprintf(f, "%s%-4s%s  %-12s %s\n", color ? col : "", smolvm_check_status_name(c->status),
                        color ? "\033[0m" : "", c->name, c->message);
                if (c->fix[0])
                        fprintf(f, "      %-12s fix: %s\n", "", c->fix);
        }
        fprintf(f, "\naccelerator: %s (%s)\n", rep->accel, rep->accel_reason);
        if (rep->n_fail)
                fprintf(f, "%zu check(s) failed: VMs cannot run until they are fixed.\n", rep->n_fail);
        else if (rep->n_warn)
                fprintf(f, "ready, with %zu warning(s).\n", rep->n_warn);
        else
                fprintf(f, "ready.\n");
}

json_t *doctor_json(const smolvm_doctor_report *rep)
{
        json_t *checks = json_array();
        if (!checks)
                return NULL;
        for (size_t i = 0; i < rep->n_checks; i++) {
                const smolvm_doctor_check *c = &rep->checks[i];
                json_t *o = json_pack("{s:s,s:s,s:s?,s:s?}", "name", c->name, "status",
                                      smolvm_check_status_name(c->status), "message", c->message, "fix", c->fix);
                if (!o || json_array_append_new(checks, o) < 0) {
                        json_decref(checks);
                        return NULL;
                }
        }
        const char *image_store = rep->image_bytes ? rep->image_shared ? "system" : "user" : NULL;
        return json_pack("{s:o,s:b,s:b,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:I,s:I,s:I,s:I}", "checks", checks,
                         "kvm_usable", rep->kvm_usable, "nested_pvm", rep->nested_pvm, "accel", rep->accel,
                         "accel_reason", rep->accel_reason, "qemu_version", rep->qemu_version, "home", rep->home,
                         "system_store", rep->system_store, "image_store", image_store, "free_disk_bytes",
                         (json_int_t)rep->free_disk_bytes, "image_bytes", (json_int_t)rep->image_bytes, "n_warn",
                         (json_int_t)rep->n_warn, "n_fail", (json_int_t)rep->n_fail);
}
