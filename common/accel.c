/* SPDX-License-Identifier: Apache-2.0 */
#include "accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Nested PVM (Ant Group's kvm_pvm) exposes a /dev/kvm that a stock distribution
 * kernel cannot boot on: the guest spins in the host kernel and prints nothing.
 * /proc/modules may be missing on these hosts; /sys/module/<name> is reliable
 * (it also exists for built-in modules that have parameters). */
static bool host_is_nested_pvm(void)
{
        struct stat st;
        return stat("/sys/module/kvm_pvm", &st) == 0;
}

/* Returns 0 when /dev/kvm opens read-write and speaks the stable KVM API. */
static int kvm_usable(void)
{
        _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
                return -ENOTSUP;
        return 0;
}

const char *smolvm_accel_name(smolvm_accel accel)
{
        return accel == SMOLVM_ACCEL_KVM ? "kvm" : "tcg";
}

int smolvm_accel_choose(const char *requested, smolvm_accel_choice *ret)
{
        smolvm_accel_choice c = { .accel = SMOLVM_ACCEL_TCG };
        int r;

        if (!requested)
                requested = "auto";

        if (strcmp(requested, "tcg") == 0) {
                snprintf(c.reason, sizeof(c.reason), "tcg requested in the VM config");
        } else if (strcmp(requested, "kvm") == 0) {
                if (host_is_nested_pvm()) {
                        snprintf(c.reason, sizeof(c.reason),
                                 "kvm requested, but this is a nested PVM host (kvm_pvm loaded): stock kernels hang under it");
                        c.hint = "use accel \"auto\" or \"tcg\" on this host";
                        *ret = c;
                        return -EOPNOTSUPP;
                }
                r = kvm_usable();
                if (r < 0) {
                        snprintf(c.reason, sizeof(c.reason), "kvm requested, but /dev/kvm is not usable: %s",
                                 strerror(-r));
                        c.hint = "check that /dev/kvm exists and that you may open it (group kvm), or use accel \"tcg\"";
                        *ret = c;
                        return r;
                }
                c.accel = SMOLVM_ACCEL_KVM;
                snprintf(c.reason, sizeof(c.reason), "kvm requested and /dev/kvm is usable");
        } else if (strcmp(requested, "auto") == 0) {
                if (host_is_nested_pvm()) {
                        snprintf(c.reason, sizeof(c.reason),
                                 "nested PVM host (kvm_pvm loaded): stock kernels hang under it; using TCG");
                } else if ((r = kvm_usable()) < 0) {
                        snprintf(c.reason, sizeof(c.reason), "/dev/kvm not available (%s); using TCG",
                                 strerror(-r));
                } else {
                        c.accel = SMOLVM_ACCEL_KVM;
                        snprintf(c.reason, sizeof(c.reason), "/dev/kvm is usable");
                }
        } else {
                snprintf(c.reason, sizeof(c.reason), "unknown accel \"%.40s\"", requested);
                c.hint = "accel must be \"auto\", \"kvm\" or \"tcg\"";
                *ret = c;
                return -EINVAL;
        }
        *ret = c;
        return 0;
}
