/* SPDX-License-Identifier: Apache-2.0 */
/* A spare: a restore of the boot template run ahead and parked once its
 * guest is up, before it takes an identity, until a warm start claims it
 * (docs/internals.md, "Spares"). */
#pragma once

#include <stdint.h>

typedef struct sup sup;

/* Once the restored guest said HELLO: listen on claim.sock, then write the
 * "spare" marker (its content is tag: "KEY:SNAPSHOT-ID") that makes the spare
 * claimable. Returns 0 or a negative errno (after sup_fail). */
int sup_spare_park(sup *s, const char *tag);

/* While parked: SUP_EXIT_OK once the idle time is over (the spare exits),
 * else -1. */
int sup_spare_step(sup *s, uint64_t now);

/* While parked: when sup_spare_step() has something to do, or UINT64_MAX. */
uint64_t sup_spare_deadline(const sup *s);

/* Teardown: the claim's sockets. */
void sup_spare_free(sup *s);
