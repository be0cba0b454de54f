/* SPDX-License-Identifier: Apache-2.0 */
/* The egress duty: the host half of egress by name (docs/internals.md,
 * "Egress"; the guest half is guest-init/net_egress.c). Present when the VM
 * dir has net.json (libsmolvm writes it for --allow-host/--net open). It adds
 * smolvm.net=1 to the kernel command line, takes the streams the guest opens
 * to SMOLVM_EGRESS_PORT and, per stream, reads the first line:
 *   "resolve NAME": answers "A <synthetic address>" if the policy allows NAME
 *     on some port, else "NXDOMAIN"; nothing is resolved on the host;
 *   "connect ADDR PORT": maps a synthetic ADDR back to its name (any other
 *     ADDR stands for itself), checks the policy now (net.json is re-read when
 *     it changed), picks the address (a pin, or the host's own resolution
 *     minus loopback/private/link-local/host addresses), connects and splices
 *     with bounded buffers; a refusal closes the stream (the guest's program
 *     sees a reset).
 * Every attempt is a line of DIR/net.log. Bounds: CONN_MAX streams, CONN_BUF
 * per direction, SYNTH_MAX names, the log rotated at LOG_MAX_BYTES. */
#pragma once

#include "duty.h"

extern const sup_duty_ops sup_egress_duty;
