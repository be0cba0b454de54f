/* SPDX-License-Identifier: Apache-2.0 */
/* The seccomp filter smolvm-virtiofsd serves under (the allow list and why it is
 * what it is: sandbox_seccomp.c). */
#pragma once

#include <stdbool.h>

/* Confine the calling process, all its threads and any it creates later, to
 * the syscalls the virtio-fs server needs while serving. Call it after the
 * sandbox and the file server are set up (nothing mounts, forks or raises
 * rlimits after this) and before the front-end is accepted. With read_only,
 * every syscall that could change the share answers EROFS in the kernel,
 * whatever the server asks for. Irreversible.
 * Returns 0, or a negative errno with *ret_what set to the step that failed
 * (a static string naming the libseccomp call or the syscall of the rule). */
int sandbox_seccomp_install(bool read_only, const char **ret_what);
