/* SPDX-License-Identifier: Apache-2.0 */
/* Which accelerator a VM runs on, and why. Host-only common code (the
 * smolvm-host-common library): the supervisor decides with it, and libsmolvm's
 * `smolvm doctor` reports the same verdict, so the reason a user reads is the
 * one the supervisor acted on. */
#pragma once

#include <stddef.h>

typedef enum smolvm_accel {
        SMOLVM_ACCEL_TCG,
        SMOLVM_ACCEL_KVM,
} smolvm_accel;

typedef struct smolvm_accel_choice {
        smolvm_accel accel;
        char reason[160]; /* one line: why this accelerator (or why the request failed) */
        const char *hint; /* on failure: what the user can do; NULL otherwise */
} smolvm_accel_choice;

/* Decide the accelerator for requested ("auto", "kvm" or "tcg"; NULL = "auto").
 * Returns 0 with *ret filled, -EINVAL for an unknown request, or a negative errno
 * when "kvm" was forced but cannot work (-EOPNOTSUPP on a nested PVM host, the
 * open(/dev/kvm) error otherwise); on failure ret->reason and ret->hint explain. */
int smolvm_accel_choose(const char *requested, smolvm_accel_choice *ret);

/* "kvm" or "tcg". */
const char *smolvm_accel_name(smolvm_accel accel);
