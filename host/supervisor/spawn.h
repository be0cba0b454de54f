/* SPDX-License-Identifier: Apache-2.0 */
/* Starting the supervisor's children (QEMU, qemu-img, the file-server
 * back-ends) one way. */
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#define SUP_SPAWN_MAX_FDS 8

/* Fork and exec argv[0] (PATH lookup) with fds[0..n_fds) as its fds
 * 0..n_fds-1 (n_fds <= SUP_SPAWN_MAX_FDS; all our other fds are O_CLOEXEC), in
 * its own process group (the supervisor kills whole groups; a terminal's ^C
 * aimed at the CLI does not reach it), dying with the supervisor
 * (PR_SET_PDEATHSIG SIGKILL), with an empty signal mask and SIGPIPE at its
 * default. nofile, if not NULL, becomes its RLIMIT_NOFILE (refused: it makes
 * do). An exec failure comes back through a CLOEXEC pipe as a negative errno,
 * the child reaped: "not installed" is an error here, not a mysterious exit
 * status later. Returns 0 with *ret_pid, or a negative errno. */
int sup_spawn(char *const argv[], const int *fds, int n_fds, const struct rlimit *nofile, pid_t *ret_pid);
