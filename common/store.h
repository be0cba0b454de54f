/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>

/* The system image store (docs/internals.md, "Paths"): images and layer caches
 * laid out as in $SMOLVM_HOME (images/, cache/; no vms/), built by root
 * (`smolvm image build --system`, scripts/setup.sh), readable by every user,
 * writable by none. $SMOLVM_SYSTEM_STORE when set and not empty (tests,
 * packagers), else the compile-time SMOLVM_SYSTEM_STORE (/var/lib/smolvm).
 * Never NULL. */
const char *smolvm_system_store(void);

/* Where an image was found: a name is looked up in the user's own store
 * ($SMOLVM_HOME/images) first, then in the system store's. */
typedef enum image_store {
        IMAGE_STORE_USER = 0,
        IMAGE_STORE_SYSTEM,
} image_store;

/* The entry called name (a valid image name: image_name_valid) in
 * home/images, else in the system store's images (skipped when it is the same
 * directory): the first that exists (stat: a dangling link counts as
 * missing). Returns 0 with *ret_path (malloc'd, home/images/NAME or
 * SYSTEM/images/NAME, not resolved) and *ret_store; -ENOENT when neither store
 * has it; -ENOMEM; or the negative errno of an entry that could not be looked
 * at (e.g. -EACCES: a system store closed to this user), with *ret_path and
 * *ret_store naming that entry all the same, for the message. */
int image_store_entry(const char *home, const char *name, char **ret_path, image_store *ret_store);
