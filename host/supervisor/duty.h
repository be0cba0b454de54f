/* SPDX-License-Identifier: Apache-2.0 */
/* Duties: where the supervisor's jobs besides running the VM plug in.
 *
 * A duty is one job the supervisor does for a VM: serving its host directory
 * mounts (mounts.c), its port forwards (port.c); an egress proxy or
 * snapshots next. Each is an object behind a table of hooks (sup_duty_ops),
 * listed once in main.c (`duties[]`) and called at fixed points of the VM's
 * life, in that order, on the supervisor's one thread. A duty never owns the
 * event loop: it adds its fds to s->loop (smolvm_evloop_add) and gets called
 * back from it; everything else happens in the hooks below. What a duty may
 * use of the supervisor is the documented part of `struct sup` (sup.h): the
 * loop, the config, the VM dir, the guest channel (s->mux, set once QEMU
 * connected), the console (sup_console_note), whether the VM is up
 * (s->running), and sup_fail().
 *
 * Hooks (any may be NULL but create and destroy):
 *   create    after config.json is loaded: allocate, start nothing. *ret = NULL
 *             when the VM needs nothing from this duty (it is then skipped).
 *   prepare   before the VMM starts: host-side set-up (sockets, back-end
 *             processes); may add devices and kernel arguments (sup_vm_extra).
 *   guest_up  once the guest agent said HELLO, each pass until it returns 1:
 *             start what needs the guest (agent streams through s->mux). The
 *             ready line is written once every duty returned 1; the boot
 *             timeout is suspended meanwhile, so the duty bounds its own wait
 *             (deadline). 0: still waiting.
 *   reap      each pass after a SIGCHLD (not every pass: a FUSE request wakes
 *             the loop several times), right after the VMM's exit was looked at: waitpid()
 *             the duty's own children (the VMM first, so that a back-end
 *             exiting because QEMU went away is seen after QEMU's exit).
 *   step      each pass, after the stop and broken-channel checks: act on what
 *             the loop and reap brought (e.g. a back-end that died).
 *   deadline  the earliest monotonic ms at which guest_up or step must run
 *             again, UINT64_MAX for none: the loop sleeps at most until then.
 *   accept    the guest opens a stream to host port local_port (guest-initiated
 *             streams: egress.c): return a connected fd the mux relays, or
 *             -ECONNREFUSED when the port is not this duty's (the next duty is
 *             asked; the guest gets RST if none takes it), or another negative errno.
 *   owns_pid  true for a child the duty reaps itself. The supervisor is a child
 *             subreaper and reaps every other descendant as a stray.
 *   detach    teardown, after the guest channel (mux) was freed (a pending
 *             connect may call back into the duty until then), before the VMM
 *             is killed: stop everything that talks to the guest.
 *   destroy   teardown, after the VMM was killed and reaped (a back-end dying
 *             first would look like a failure to it): kill and reap children,
 *             remove the duty's files from the VM dir (with --ephemeral also its
 *             logs), free. Also called when the start failed half-way.
 *
 * Failing: prepare, guest_up and step return a negative errno after sup_fail(),
 * which says why (the ready line before it was written, supervisor.log and the
 * VM's "failed" always). Before the ready line that fails the boot; after it, a
 * failing step stops the VM (exit 1). A duty that only has something to report
 * logs it (sup_log, sup_console_note) and returns 0: the VM keeps running. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "qemu.h"

typedef struct sup sup;

/* What the duties add to the VM before it starts. */
typedef struct sup_vm_extra {
        sup_vm_fs fs[SUP_MAX_MOUNTS]; /* vhost-user-fs devices (the strings stay the duty's) */
        size_t n_fs;
        char *cmdline; /* kernel arguments, space-separated, malloc'd; NULL: none */
        const char *lane_path; /* the lane's device socket (lane.c; the string stays the duty's) */
} sup_vm_extra;

/* Append one kernel argument (printf-style). Returns 0 or -ENOMEM. */
int sup_vm_extra_arg(sup_vm_extra *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Add a virtio-fs device. Returns 0 or -E2BIG. */
int sup_vm_extra_fs(sup_vm_extra *x, const char *socket_path, const char *tag);

typedef struct sup_duty_ops {
        const char *name; /* for log lines */
        int (*create)(sup *s, void **ret);
        int (*prepare)(void *self, sup_vm_extra *x);
        int (*guest_up)(void *self, uint64_t now_ms);
        void (*reap)(void *self, uint64_t now_ms);
        int (*step)(void *self, uint64_t now_ms);
        uint64_t (*deadline)(const void *self);
        int (*accept)(void *self, uint32_t local_port, uint32_t peer_port);
        bool (*owns_pid)(const void *self, pid_t pid);
        void (*detach)(void *self);
        void (*destroy)(void *self);
} sup_duty_ops;

#define SUP_MAX_DUTIES 8

/* The registry (duty.c), each call walking the duties in order. */

/* Create ops's duty for this VM and register it (unless it has nothing to do).
 * Returns 0 or a negative errno after sup_fail(). */
int sup_duty_add(sup *s, const sup_duty_ops *ops);
/* Returns 0, or the first negative errno (after that duty's sup_fail()). */
int sup_duties_prepare(sup *s, sup_vm_extra *x);
/* 1 once every duty is up, 0 while one is not yet, negative when one failed. */
int sup_duties_guest_up(sup *s, uint64_t now_ms);
void sup_duties_reap(sup *s, uint64_t now_ms);
/* 0, or negative when a duty failed (the VM stops). */
int sup_duties_step(sup *s, uint64_t now_ms);
/* The earliest of the duties' deadlines, UINT64_MAX for none. */
uint64_t sup_duties_deadline(const sup *s);
bool sup_duties_own_pid(const sup *s, pid_t pid);
/* A guest-initiated stream to local_port: the first duty that takes it. Returns
 * an fd or a negative errno (-ECONNREFUSED: nobody serves that port). */
int sup_duties_accept(sup *s, uint32_t local_port, uint32_t peer_port);
void sup_duties_detach(sup *s);
/* Destroys and unregisters every duty. */
void sup_duties_destroy(sup *s);
