/* SPDX-License-Identifier: Apache-2.0 */
/* `--mount HOST:GUEST[:ro|:rw]` and `--mount-transport virtiofs|vsock`, shared by
 * `smolvm run` and `smolvm create`. The library checks the paths themselves
 * (HOST exists and is a directory, GUEST is a valid absolute path). */
#pragma once

#include <stddef.h>

#include "smolvm/smolvm.h"

typedef struct cli_mounts {
        smolvm_mount items[SMOLVM_MAX_MOUNTS]; /* strings malloc'd, freed by cli_mounts_done() */
        size_t n;
        smolvm_mount_transport transport;
} cli_mounts;

/* Parse one --mount value and append it: read-only unless it ends in ":rw".
 * Prints the error. Returns 0, -EINVAL or -ENOMEM. */
int cli_mounts_add(cli_mounts *m, const char *arg);
/* Parse a --mount-transport value. Prints the error. Returns 0 or -EINVAL. */
int cli_mounts_set_transport(cli_mounts *m, const char *arg);
/* Point cfg at the parsed mounts (m must outlive cfg's use). */
void cli_mounts_apply(const cli_mounts *m, smolvm_config *cfg);
void cli_mounts_done(cli_mounts *m);
