/* SPDX-License-Identifier: Apache-2.0 */
/* The hybrid vsock listener (Firecracker's protocol) on DIR/vsock.sock: a client
 * connects, sends "CONNECT <port>\n", gets "OK <local port>\n", and from then on
 * the socket is a byte stream to that guest port, relayed by the channel mux. */
#pragma once

#include "evloop.h"
#include "mux.h"

/* Clients that have not sent their CONNECT line yet: bounded, each with a deadline. */
#define SUP_HVSOCK_MAX_PENDING 64u
#define SUP_HVSOCK_LINE_TIMEOUT_MS 5000u
#define SUP_HVSOCK_LINE_MAX 64u

typedef struct sup_hvsock sup_hvsock;

/* Listen on path (a stale socket file there is replaced). Returns 0 or negative
 * errno (-ENAMETOOLONG if path does not fit a sockaddr_un). */
int sup_hvsock_new(smolvm_evloop *loop, const char *path, sup_hvsock **ret);
/* The mux streams go to; NULL (the default) refuses every CONNECT by closing. */
void sup_hvsock_set_mux(sup_hvsock *hv, smolvm_mux *mux);
/* Control requests (docs/internals.md, "Hybrid vsock"): a line that is not
 * "CONNECT ..." goes to each added cb in turn until one returns true, having
 * written one answer line ("OK <n>\n" or "ERR <errno>\n", '\n' included,
 * NUL-terminated) into answer; the listener sends it and closes the
 * connection. A line no cb takes is refused (closed) as malformed. The port
 * forwards' EXPOSE/UNEXPOSE (port.c) and the mounts' FSSTATE (mounts.c) use
 * it. At most SUP_HVSOCK_MAX_CONTROL callbacks (-ENOSPC past it). */
#define SUP_HVSOCK_MAX_CONTROL 4
typedef bool (*sup_hvsock_control_cb)(void *userdata, const char *line, size_t len, char *answer, size_t answer_size);
int sup_hvsock_add_control(sup_hvsock *hv, sup_hvsock_control_cb cb, void *userdata);
/* Remove the callback added with userdata (nothing if none). */
void sup_hvsock_remove_control(sup_hvsock *hv, void *userdata);
/* Closes the listener and pending clients (not the path). Accepts NULL. */
void sup_hvsock_free(sup_hvsock *hv);

/* Parse one CONNECT line (including its '\n'). Strict: "CONNECT ", 1-10 decimal
 * digits without sign or leading zero, value <= UINT32_MAX, '\n'. Returns 0 or -EINVAL. */
int sup_hvsock_parse_connect(const char *line, size_t len, uint32_t *ret_port);
