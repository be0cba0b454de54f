/* SPDX-License-Identifier: Apache-2.0 */
/* Printing a smolvm_doctor_report, shared by `smolvm doctor` and `smolvm setup`. */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "smolvm/smolvm.h"

/* One line per check ("pass  kvm  message" + "      fix: ..."), then a summary. */
void doctor_print(FILE *f, const smolvm_doctor_report *rep);
/* The envelope's data: {"checks": [{name, status, message, fix}], "kvm_usable",
 * "nested_pvm", "accel", "accel_reason", "qemu_version", "home",
 * "free_disk_bytes", "image_bytes", "n_warn", "n_fail"}. NULL on ENOMEM. */
json_t *doctor_json(const smolvm_doctor_report *rep);
