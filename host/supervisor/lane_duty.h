/* SPDX-License-Identifier: Apache-2.0 */
/* The lane duty (docs/protocol.md, "The lane"): gives the VM the lane's
 * virtio-net device (QEMU listens on VMDIR_LANE), connects to it when the
 * guest asks for a lane (LANE_REQ on the channel) and switches the channel's
 * host -> guest bytes onto it (smolvm_mux_lane_start, common/lane_io.h).
 *
 * The guest is hostile: its frames on the device are read a bounded amount
 * per wake-up and anything that is not an ACK is dropped (lane_io.c); an ACK
 * that lies breaks the lane, and with it the VM (its host -> guest bytes
 * cannot go on). A VM restored from a snapshot taken without the device gets
 * none (the snapshot's device state names it or not), and its bytes stay on
 * the channel. */
#pragma once

#include <stdint.h>

#include "duty.h"

extern const sup_duty_ops sup_lane_duty;

/* The guest's LANE_REQ (boot.c's mux callback): start the lane of this epoch
 * on s->mux, or ignore it (no device, or it failed). */
void sup_lane_request(sup *s, uint64_t epoch, uint32_t window);
