/* SPDX-License-Identifier: Apache-2.0 */
/* Port forwarding (docs/internals.md, "Port forwarding"): host TCP listeners
 * whose connections are relayed to guest TCP ports through agent streams
 * (port_connect). A duty; forwards are added and removed at run time by
 * control lines on the hybrid-vsock socket ("EXPOSE", "UNEXPOSE"), which
 * libsmolvm sends after each boot and on `smolvm port expose|close`;
 * "PORTSTAT" asks how many connections a forward relays (`smolvm port ls`). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "duty.h"

/* Forwards per VM. */
#define SUP_PORT_MAX_FORWARDS 64u
/* Relayed connections at once, all forwards together; beyond it a new
 * connection is closed at once (and logged). Each holds two relay buffers
 * (2 x 64 KiB) here and a mux stream. */
#define SUP_PORT_MAX_CONNS 128u
/* How long the guest agent has to connect to the guest port and answer: a
 * refused port answers at once, but a server whose accept queue is full (python's
 * http.server has 5) makes the guest kernel retry its SYN for a while. */
#define SUP_PORT_CONNECT_TIMEOUT_MS 60000u

extern const sup_duty_ops sup_port_duty;

/* Parse a control line ('\n' included): "EXPOSE <guest> <host> <addr>\n"
 * (ports decimal, guest 1..65535, host 0..65535 with 0 for any free one, addr
 * a numeric IPv4 or IPv6 address), "UNEXPOSE <guest>\n" or "PORTSTAT <guest>\n".
 * Returns 1 for EXPOSE, 2 for UNEXPOSE, 3 for PORTSTAT (host and addr untouched
 * for both), -EINVAL otherwise.
 * addr gets at most addr_size - 1 bytes. */
int sup_port_parse_line(const char *line, size_t len, uint16_t *ret_guest, uint16_t *ret_host, char *addr,
                        size_t addr_size);
