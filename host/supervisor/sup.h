/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-supervisor: one process per VM, one thread, one event loop. Owns
 * QEMU, the sockets and the VM directory; reports readiness on --ready-fd;
 * serves hybrid vsock until the VM stops. Contract: docs/internals.md,
 * "Supervisor".
 *
 * The pieces, all sharing `struct sup`:
 *   main.c    wiring: command line, process set-up, the list of duties, the loop
 *   dir.c     the VM directory it owns: the pid file and the running-supervisor
 *             check, the overlay disk, what is left or removed at exit
 *   vm.c      bringing the VM up (loop, signals, sockets, console, QEMU) and
 *             tearing it down in a safe order; reaping strays
 *   boot.c    the boot state machine, the guest channel's events, the ready line
 *   duty.h    the seam for everything else the supervisor does for a VM;
 *             mounts.c (virtio-fs and FUSE-over-vsock mounts) is the first duty
 * and below them: qemu.c (the VMM), console.c, hvsock.c, fsd.c, vsockfs.c,
 * fsabort.c, config.c, log.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "accel.h"
#include "config.h"
#include "console.h"
#include "duty.h"
#include "evloop.h"
#include "hvsock.h"
#include "mux.h"
#include "qemu.h"

enum sup_exit_code {
        SUP_EXIT_OK = 0,
        SUP_EXIT_VM_FAILED = 1,
        SUP_EXIT_USAGE = 2,
};

struct sup {
        /* The command line (main.c). */
        const char *vm_dir;
        bool ephemeral;
        const char *spare_tag; /* --spare: start as a spare ("KEY:SNAPSHOT-ID"), spare.c */
        uint64_t spare_idle_for_ms; /* --idle-ms */
        int ready_fd; /* -1 once the ready line is written (boot.c) */

        /* config.json (vm.c), read-only afterwards. */
        sup_config cfg;
        smolvm_accel_choice accel;
        uint64_t boot_timeout_ms; /* the config's, or the accelerator's default */

        /* Created by sup_vm_start(), freed by sup_vm_teardown() (vm.c). */
        smolvm_evloop *loop;
        int sig_fd;
        int chan_listen_fd;
        sup_console *con;  /* console.log; sup_console_note() adds a line to it */
        sup_hvsock *hv;
        sup_vmm *vmm;
        smolvm_mux *mux;   /* the guest channel: NULL until QEMU connected chan.sock */
        struct sup_lane *lane; /* lane_duty.c's, when the VM has the lane's device */

        /* The duties (duty.c). */
        struct sup_duty_slot {
                const sup_duty_ops *ops;
                void *self;
                bool up; /* guest_up returned 1 */
        } duties[SUP_MAX_DUTIES];
        size_t n_duties;

        bool created_overlay; /* dir.c: this run created overlay.qcow2 */
        bool restoring;       /* dir.c: this run restores cfg.snapshot_dir (first start) */
        bool lane_device;     /* vm.c: QEMU has the lane's device (the ready line's "lane":
                               * a snapshot of this VM must restore with it) */
        /* boot.c, a restore: when to connect chan.sock (the guest said it reset
         * its channel, or the fallback), and the HELLO deadline. */
        uint64_t chan_connect_ms;
        uint64_t chan_hello_deadline_ms;
        /* boot.c, a restore: the identity handshake (wire.h IDENTITY, its ACK). */
        bool identity_sent, identity_acked, identity_done;
        uint32_t identity_status; /* the ACK's: 0 or a positive errno */
        uint64_t identity_deadline_ms;
        char identity_msg[256];   /* the ACK's text, sanitised */

        /* The boot (boot.c). */
        bool running; /* HELLO seen, every duty up, ready line written */
        bool stop;    /* termination signal received */
        int stop_signal;
        /* A SIGCHLD came (vm.c's signal handler) or a waitable child is still
         * left: the next step looks at the children. Only then: not a wait4 and
         * a waitid on every wake-up of the loop (each FUSE request's). */
        bool child_event;
        /* boot timeline, monotonic ms */
        uint64_t t_start, t_spawn, t_chan, t_hello, deadline_ms, broken_deadline_ms;
        bool hello;
        uint32_t hello_version, guest_init_start_ms, guest_ready_ms, hello_features;
        bool hello_has_times;
        bool mux_broken;
        int mux_err;
        const char *mux_why;

        /* spare.c: parked (QEMU started, its state not loaded), when the
         * idle time ends, the claim's listening socket and connection. */
        bool spare_parked, spare_claim_late, spare_failed;
        uint64_t spare_idle_ms;
        int claim_listen_fd, claim_fd;
        int spare_lock_fd; /* --lock-fd: the template's spare lock, held until the claim */

        char failed_why[512]; /* the first failure: written to DIR/failed (libsmolvm's `info`) */
};

/* Report a failure: to the ready fd if nobody got a ready line yet (with the
 * console's tail if with_console, and hint if not NULL), always to the log;
 * the first one is also what DIR/failed will say (boot.c). */
void sup_fail(sup *s, bool with_console, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
