/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm info ID: the VM's record, state and boot times. */
#include <inttypes.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"

static const cli_cmd info_cmd = {
        .name = "info",
        .synopsis = "[--json] ID",
        .about = "Show a VM: id, name, state (with the reason when it is error), configuration,\n"
                 "directory, supervisor and QEMU pids and, while it runs, its boot times and\n"
                 "accelerator.\n",
};

int cmd_info(int argc, char **argv)
{
        cli_parsed a;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&info_cmd, argc, argv, NULL, &a, &vm, &r))
                return r;
        smolvm_status_info st;
        r = smolvm_status(vm, &st);
        if (r < 0) {
                int code = cli_fail("info", a.json, r);
                smolvm_free(vm);
                return code;
        }
        if (a.json) {
                json_t *data = cli_vm_info_json(&st.info);
                if (data) {
                        json_object_set_new(data, "dir", json_string(st.dir));
                        json_t *err = st.error[0] ? json_string(st.error) : NULL; /* NULL: not UTF-8 */
                        json_object_set_new(data, "error", err ? err : json_null());
                        json_object_set_new(data, "vmm_pid", st.vmm_pid > 0 ? json_integer(st.vmm_pid) : json_null());
                        if (st.have_boot) {
                                json_t *b = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "boot_ms",
                                                      (json_int_t)st.boot.boot_ms, "host_boot_ms",
                                                      (json_int_t)st.boot.host_boot_ms, "t_vmm_ms",
                                                      (json_int_t)st.boot.t_vmm_ms, "t_kernel_ms",
                                                      (json_int_t)st.boot.t_kernel_ms, "t_init_ms",
                                                      (json_int_t)st.boot.t_init_ms, "accel", st.boot.accel,
                                                      "accel_reason", st.boot.accel_reason);
                                if (b) {
                                        json_object_set_new(b, "start", json_string(st.boot.start));
                                        json_object_set_new(b, "start_note", st.boot.start_note[0]
                                                                                     ? json_string(st.boot.start_note)
                                                                                     : json_null());
                                }
                                json_object_set_new(data, "boot", b ? b : json_null());
                        } else {
                                json_object_set_new(data, "boot", json_null());
                        }
                }
                cli_json_ok("info", 0, data);
        } else {
                char when[64];
                time_t t = (time_t)st.info.created_unix;
                struct tm tm;
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
                printf("id:         %s\n", st.info.id);
                printf("name:       %s\n", st.info.name[0] ? st.info.name : "-");
                printf("state:      %s\n", smolvm_state_name(st.info.state));
                if (st.error[0])
                        printf("error:      %s\n", st.error);
                printf("created:    %s\n", when);
                printf("vcpus:      %u\n", st.info.vcpus);
                printf("memory:     %u MiB\n", st.info.mem_mib);
                if (st.info.disk_mib)
                        printf("disk:       %u MiB\n", st.info.disk_mib);
                else
                        printf("disk:       image size\n");
                printf("image:      %s\n", st.info.image);
                printf("accel:      %s\n", st.info.accel);
                printf("ephemeral:  %s\n", st.info.ephemeral ? "yes" : "no");
                printf("dir:        %s\n", st.dir);
                if (st.info.supervisor_pid > 0)
                        printf("supervisor: pid %d\n", (int)st.info.supervisor_pid);
                if (st.vmm_pid > 0)
                        printf("qemu:       pid %d\n", (int)st.vmm_pid);
                if (st.have_boot)
                        printf("boot:       %" PRIu64 " ms, %s (%s: %s)\n",
                               st.boot.boot_ms ? st.boot.boot_ms : st.boot.host_boot_ms,
                               st.boot.start[0] ? st.boot.start : "cold", st.boot.accel, st.boot.accel_reason);
        }
        smolvm_free(vm);
        return 0;
}
