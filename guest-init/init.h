/* SPDX-License-Identifier: Apache-2.0 */
/* Private interfaces between the parts of smolvm-init (guest PID 1 and agent). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "evloop.h"
#include "request.h"

/* Log to stderr (the console for PID 1 and its handlers), prefixed "smolvm-init: ". */
void init_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Guest CLOCK_BOOTTIME in milliseconds (includes time before init started). */
uint64_t boottime_ms(void);

/* setup.c: everything before "the line". Never returns on failure (powers off). */
void setup_system(void);
/* Print the message and power the VM off. Only before the line, or from a handler. */
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Value of key=... on /proc/cmdline (malloc'd) or NULL. */
char *cmdline_get(const char *key);

/* channel.c: the virtio-serial channel and AF_VSOCK listener of PID 1. */
typedef struct agent_channel agent_channel;
int agent_channel_new(smolvm_evloop *loop, uint32_t init_start_ms, uint32_t ready_ms, agent_channel **ret);
/* Called from PID 1's loop between dispatch rounds: reopen a broken or not yet
 * connected channel. Returns the poll timeout (ms) the channel wants, or -1. */
int agent_channel_tick(agent_channel *ch);
/* A SIGIO arrived: the host side of the port connected or disconnected. */
void agent_channel_sigio(agent_channel *ch);

/* handler.c: serve one stream (one operation) in a child process of PID 1.
 * Runs in the forked child; returns the exit status for _exit(). */
int agent_handle_stream(int fd);
/* Fork a handler for fd. PID 1 keeps nothing of fd (the caller closes its copy).
 * Returns the child pid or negative errno. */
int agent_spawn_handler(int fd);

/* exec.c: run one exec request on a stream fd (blocking, the caller's process). */
int agent_exec(int fd, const agent_exec_spec *spec);

/* Send an ERROR frame {"errno": err (positive), "message": msg}. */
int agent_send_error(int fd, int err, const char *msg);
/* Send a frame with a JSON object payload (steals obj). */
struct json_t;
int agent_send_json(int fd, uint16_t type, struct json_t *obj);
