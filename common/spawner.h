/* SPDX-License-Identifier: Apache-2.0 */
/* Starting a program, the one way the host side does it (the supervisor's
 * QEMU, qemu-img and file servers; libsmolvm's supervisor; doctor's probes;
 * the image builder's apt-get, debootstrap, mkfs...). Host-only common code
 * (the smolvm-host-common library).
 *
 * What every child gets: exactly the fds it is given, as 0..n_fds-1 (every
 * other fd is closed at exec, O_CLOEXEC or not: a caller's stray fd must not
 * leak into a VM's owner or a back-end); every signal at its default
 * disposition and none blocked (callers block signals for a signalfd and
 * ignore SIGPIPE; the child must not inherit that); and no handler of the
 * caller runs in it (signals are blocked across fork). An exec failure comes
 * back as a negative errno through a CLOEXEC pipe, the child reaped: "not
 * installed" is an error at the call, not a mysterious exit status later.
 *
 * What differs per caller are the options below. (The header is not called
 * spawn.h: with common/ on the include path it would hide libc's <spawn.h>.) */
#pragma once

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#define SMOLVM_SPAWN_MAX_FDS 8

typedef struct smolvm_spawn_opts {
        char *const *argv;    /* argv[0] is the program */
        char *const *envp;    /* NULL: the caller's environ */
        /* argv[0] without a '/' is looked up in the child's PATH: the PATH=
         * of envp (of the caller's environ when envp is NULL), as execvp does
         * it, but never in the caller's own PATH when envp has another. */
        bool search_path;
        const int *fds;       /* fds[i] becomes the child's fd i */
        int n_fds;            /* 0..SMOLVM_SPAWN_MAX_FDS */
        /* Its own process group (set from both sides, so kill(-pid) works as
         * soon as this returns): the caller kills whole groups, and a
         * terminal's ^C aimed at the caller does not reach it. */
        bool new_pgroup;
        /* Signal the child gets when the caller('s thread) dies, 0 for none.
         * Armed before exec; if the caller is already gone by then the child
         * exits at once. */
        int pdeathsig;
        /* Outlive the caller: double-fork, the intermediate process in a new
         * session (setsid: a closed terminal's SIGHUP does not reach the child)
         * exits at once, so the child is reparented to init (or a subreaper)
         * and is never the caller's zombie. *ret_pid is the child's pid, which
         * the caller cannot wait for. Not with pdeathsig. */
        bool detach;
        const char *cwd;             /* chdir before exec; NULL: the caller's */
        const struct rlimit *nofile; /* its RLIMIT_NOFILE; NULL: inherited (refused: it makes do) */
} smolvm_spawn_opts;

/* Start o->argv. Returns 0 with *ret_pid, or a negative errno: -EINVAL for
 * bad options, the fork/pipe failure, or why the child could not get to exec
 * (-ENOENT: no such program, -EACCES, a chdir failure, ...). Only
 * async-signal-safe calls run in the child: callable from threaded programs. */
int smolvm_spawn(const smolvm_spawn_opts *o, pid_t *ret_pid);

/* Where the tools in /sbin live (depmod, mkfs.ext4, debootstrap): a user's
 * PATH often lacks them, so the image builder appends them to its children's
 * PATH and smolvm_find_program() searches them too. */
#define SMOLVM_SBIN_PATH "/usr/local/sbin:/usr/sbin:/sbin"

/* Absolute path of the executable name, searched in the caller's PATH
 * ("/usr/bin:/bin" without one), then SMOLVM_SBIN_PATH; a name with a '/' is
 * taken as it is. malloc'd, or NULL when there is none (or on ENOMEM). For
 * checks that name a missing tool before it is needed (doctor, the image
 * builder's preflight); smolvm_spawn() does its own lookup. */
char *smolvm_find_program(const char *name);
