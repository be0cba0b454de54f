/* SPDX-License-Identifier: Apache-2.0 */
/* The guest serial console (ttyS0). The VMM writes it to one end of a socketpair
 * we hand it; we copy it to DIR/console.log (size-capped, keeping the newest
 * bytes) and keep the last few KiB in memory for error messages. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"

#define SUP_CONSOLE_TAIL_BYTES (8u * 1024u)

typedef struct sup_console sup_console;

/* Create the console capture and register it on loop. *ret_vmm_fd is the end for
 * the VMM (O_CLOEXEC; the spawner passes it on); the caller closes it once the VMM
 * runs. log_path is created/truncated. Returns 0 or negative errno. */
int sup_console_new(smolvm_evloop *loop, const char *log_path, sup_console **ret, int *ret_vmm_fd);
/* Accepts NULL. */
void sup_console_free(sup_console *con);
/* Call fn once when the guest prints needle (< 64 bytes; found across reads);
 * NULL needle ends the watch. What the guest prints is its own say: use it
 * only for what the guest may decide anyway. */
void sup_console_watch(sup_console *con, const char *needle, void (*fn)(void *userdata), void *userdata);

/* Read whatever is still buffered in the socket (call after the VMM exited, so
 * a panic message is in the tail). Never blocks. */
void sup_console_drain(sup_console *con);

/* Copy the in-memory tail into buf as printable text (CR dropped, other control
 * and non-ASCII bytes replaced by '?', starting at a line boundary when the tail
 * wrapped), NUL-terminated. Returns the length. */
size_t sup_console_tail(const sup_console *con, char *buf, size_t buf_len);

/* Append a line of the host's own to console.log and the tail, on a line of
 * its own: "[smolvm-supervisor] <text>". `smolvm logs` shows the console, so
 * what the host saw happen to the VM (a mount's server dying) appears there
 * next to what the guest printed; the guest itself never sees it. */
void sup_console_note(sup_console *con, const char *text);

/* Monotonic ms of the first console byte, 0 if none yet. */
uint64_t sup_console_first_byte_ms(const sup_console *con);
