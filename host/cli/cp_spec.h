/* SPDX-License-Identifier: Apache-2.0 */
/* `smolvm cp` arguments: "ID:/path" names a guest path, anything else a host
 * path. Pure functions, unit tested in tests/unit/test_cp_spec.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_VM_MAX 63

typedef struct cp_spec {
        char vm[CP_VM_MAX + 1]; /* "" for a host path */
        const char *path;       /* points into the argument */
} cp_spec;

/* Parse one argument. A prefix of 1..63 characters of [A-Za-z0-9_.-] followed by
 * ':' makes it a guest path, which must then be absolute (-EINVAL otherwise);
 * write a host path with a colon as "./a:b". Returns 0 or -EINVAL (message in
 * err). */
int cp_spec_parse(const char *arg, cp_spec *ret, char *err, size_t err_len);

/* Parse SRC and DST: exactly one side must be a guest path. Returns 0 or -EINVAL
 * (message in err). */
int cp_args_parse(const char *src, const char *dst, cp_spec *ret_src, cp_spec *ret_dst, char *err, size_t err_len);

/* The path the copy gets: dst itself, or dst/basename(src) when into is true
 * (dst ends with '/' or is an existing directory). malloc'd, NULL on ENOMEM or
 * when src has no usable last component ("/", "..", "."). */
char *cp_dest_path(const char *dst, const char *src, bool into);

/* True when p ends with '/'. */
bool cp_ends_with_slash(const char *p);

/* A size for --max-size: decimal bytes, or with a binary unit K, M, G or T (any
 * case, optionally followed by "iB"): "4096", "10M", "2G", "3GiB". Greater than 0.
 * Returns 0 and *ret, -EINVAL (not a size) or -ERANGE (over 2^64-1). */
int cp_parse_size(const char *s, uint64_t *ret);
