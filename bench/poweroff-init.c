/* SPDX-License-Identifier: Apache-2.0 */
/* The boot-time peer: a trivial static PID 1 that powers the VM off at once.
 * Booting the same kernel with this init measures the floor (VMM + kernel) that
 * smolvm's own boot is compared against in bench/boot.sh. */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
        reboot(RB_POWER_OFF);
        return 0;
}
