/* SPDX-License-Identifier: Apache-2.0 */
/* Validation of paths a guest sends us (list_tree entries). Pure functions, unit
 * tested in tests/unit/test_guest_path.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Longest relative path accepted from the guest (bytes) and deepest nesting. */
#define GUEST_RELPATH_MAX 4095u
#define GUEST_RELPATH_MAX_DEPTH 256u

/* True when p[0..len) is a relative path that stays below the directory it is
 * resolved against: not empty, not absolute, no NUL byte, no "." / ".." / empty
 * component, components of at most 255 bytes, at most GUEST_RELPATH_MAX bytes
 * and GUEST_RELPATH_MAX_DEPTH components. Symlinks are the caller's business
 * (it must not follow any). */
bool guest_relpath_valid(const char *p, size_t len);

/* True for a symlink target we are willing to recreate verbatim (never follow):
 * not empty, no NUL byte, at most GUEST_RELPATH_MAX bytes. */
bool guest_symlink_target_valid(const char *p, size_t len);
