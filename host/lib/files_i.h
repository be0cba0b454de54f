/* SPDX-License-Identifier: Apache-2.0 */
/* What files.c (uploads, read_file, write_file) shares with download.c. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "agent_call_i.h"
#include "smolvm_i.h"

#define FILE_MODE_MASK 07777u

/* 0, or -EINVAL / -ENAMETOOLONG (recorded) when path is not an absolute guest
 * path; what names the operation. */
int check_guest_path(const char *path, const char *what);
/* {"op": op, "path": path}, or NULL (recorded) when path is not valid UTF-8. */
json_t *request_new(const char *op, const char *path);
/* o[key] as an integer in [0, max]: 0 and *ret, or -EBADMSG (not recorded). */
int uint_field(json_t *o, const char *key, uint64_t max, uint64_t *ret);

/* Open a read_file stream: on success the agent's RESULT gave size and mode and
 * the data frames follow (read them with read_body, then agent_call_close).
 * cancel_fd > 0: waits give up with -ECANCELED once it is readable. */
int read_open(smolvm_vm *vm, const char *guest_path, int cancel_fd, agent_call *c, uint64_t *ret_size,
              unsigned *ret_mode);

typedef int (*sink_fn)(void *ud, const void *data, size_t len);
/* Pass exactly size bytes of STDOUT frames to sink, then expect the stream's end:
 * -EPROTO (recorded) when the guest sends more or fewer bytes than it announced. */
int read_body(agent_call *c, const char *guest_path, uint64_t size, sink_fn sink, void *ud);
