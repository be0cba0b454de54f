/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's own log, DIR/supervisor.log, size-capped. Before the log is
 * open (or if it cannot be), lines go to stderr. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

/* Open (truncate) path as the log. Returns 0 or negative errno. */
int sup_log_open(const char *path);
void sup_log_close(void);
/* True while lines go to the log file (false: they go to stderr). */
bool sup_log_is_open(void);

/* One line, timestamped with ms since the supervisor started. */
void sup_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
