/* SPDX-License-Identifier: Apache-2.0 */
/* A spare (spare.h). The protocol (docs/internals.md, "Spares"): a claimant
 * unlinks the "spare" marker (exactly one unlink wins), writes the VM's
 * config.json and record into this dir, connects claim.sock and sends one
 * byte, 'e' (an ephemeral VM), with the write end of its ready pipe
 * (SCM_RIGHTS). A spare parks once its restored guest said HELLO (boot.c): the
 * state loaded, the guest's channel reset and its code run once under TCG, all
 * before the claim. At the claim we re-read config.json and go on as any
 * restore from there: the guest's identity (RNG seed, clock, hostname,
 * machine-id: the claimant's), the ready line; the claimant keeps the socket
 * open for the VM's life: its EOF stops the VM, as a parent's death does. */
#include "spare.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dir.h"
#include "fdpass.h"
#include "log.h"
#include "sup.h"
#include "unixsock.h"
#include "util.h"
#include "vmdir.h"

/* A claim that unlinked the marker as our idle time ran out: how long it may
 * take to connect before we exit anyway (it then starts without us). */
#define SPARE_CLAIM_GRACE_MS 10000u

static void claim_eof_cb(void *userdata, int fd, uint32_t events)
{
        sup *s = userdata;
        char b[64];
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
                return; /* nothing more is expected; ignored */
        if (!s->stop)
                sup_log("the claimant closed its claim: stopping the VM");
        (void)smolvm_evloop_del(s->loop, fd);
        s->claim_fd = safe_close(s->claim_fd);
        s->stop = true;
        s->stop_signal = SIGTERM;
}

/* What a claim may change is the VM's identity and its boot timeout: QEMU and
 * the duties run with the spare's config already. */
static bool same_vm(const sup_config *a, const sup_config *b)
{
        return a->mem_mib == b->mem_mib && a->cpus == b->cpus && !strcmp(a->kernel, b->kernel) &&
               !strcmp(a->initrd, b->initrd) && a->snapshot_dir && b->snapshot_dir &&
               !strcmp(a->snapshot_dir, b->snapshot_dir) && a->disk_layer && b->disk_layer &&
               !strcmp(a->disk_layer, b->disk_layer) && a->n_mounts == 0 && b->n_mounts == 0 &&
               a->ram_copy == b->ram_copy && a->snapshot_lane == b->snapshot_lane &&
               !a->cmdline_extra == !b->cmdline_extra &&
               (!a->cmdline_extra || !strcmp(a->cmdline_extra, b->cmdline_extra));
}

static int go(sup *s)
{
        _cleanup_free_ char *path = sup_dir_path(s, VMDIR_CONFIG);
        sup_config cfg = { 0 };
        char err[512];
        /* The guest is up already: the claimant's boot is its identity. */
        s->t_start = s->t_spawn = s->t_chan = s->t_hello = now_ms();
        sup_log("claimed: sending the guest its identity");
        int r = sup_config_load(path, &cfg, err, sizeof(err));
        if (r < 0) {
                sup_fail(s, false, NULL, "spare: %s", err);
                return r;
        }
        if (!same_vm(&s->cfg, &cfg)) {
                sup_config_done(&cfg);
                sup_fail(s, false, NULL, "spare: the claimant's " VMDIR_CONFIG " is not the spare's VM");
                return -EINVAL;
        }
        sup_config_done(&s->cfg);
        s->cfg = cfg;
        if (s->cfg.boot_timeout_ms)
                s->boot_timeout_ms = s->cfg.boot_timeout_ms;
        s->deadline_ms = s->t_start + s->boot_timeout_ms;
        /* From here an ephemeral VM like any other: the boot step sends the
         * identity and writes the ready line (boot.c). */
        s->spare_parked = false;
        s->spare_tag = NULL;
        /* The claimant may park the next spare when its VM is gone. */
        s->spare_lock_fd = safe_close(s->spare_lock_fd);
        return 0;
}

/* The claim's message: one byte and the ready pipe's write end. */
static void claim_msg_cb(void *userdata, int fd, uint32_t events)
{
        sup *s = userdata;
        char mode = 0;
        int ready = -1;
        size_t n_fds = 0;
        ssize_t n = fdpass_recv(fd, &mode, 1, &ready, 1, &n_fds, MSG_DONTWAIT);
        if (n == -EAGAIN)
                return;
        if (n_fds == 0)
                ready = -1;
        (void)smolvm_evloop_del(s->loop, fd);
        if (n != 1 || mode != 'e' || ready < 0) {
                sup_log("claim.sock: a malformed claim (%zd bytes, mode 0x%02x, %s fd): dropped", n,
                        (unsigned char)mode, ready < 0 ? "no" : "an");
                safe_close(ready);
                s->claim_fd = safe_close(s->claim_fd);
                /* Its sender may have unlinked the marker (a claimant that
                 * gave up): nobody else could claim this spare, so it exits. */
                s->spare_claim_late = true;
                s->spare_idle_ms = now_ms();
                return;
        }
        s->ready_fd = ready;
        (void)smolvm_evloop_del(s->loop, s->claim_listen_fd);
        s->claim_listen_fd = safe_close(s->claim_listen_fd);
        _cleanup_free_ char *sock = sup_dir_path(s, VMDIR_CLAIM);
        (void)unlink(sock);
        if (go(s) < 0 || smolvm_evloop_add(s->loop, s->claim_fd, EPOLLIN | EPOLLRDHUP, claim_eof_cb, s) < 0) {
                s->stop = true;
                s->stop_signal = SIGTERM;
                s->spare_failed = true;
        }
}

static void claim_accept_cb(void *userdata, int lfd, uint32_t events)
{
        sup *s = userdata;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return;
        /* The dir is private; a second claim (a claimant that lost its
         * marker race never connects) is refused. */
        if (s->claim_fd >= 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid() ||
            smolvm_evloop_add(s->loop, fd, EPOLLIN | EPOLLRDHUP, claim_msg_cb, s) < 0) {
                safe_close(fd);
                return;
        }
        s->claim_fd = fd;
}

int sup_spare_park(sup *s, const char *tag)
{
        _cleanup_free_ char *sock = sup_dir_path(s, VMDIR_CLAIM), *marker = sup_dir_path(s, VMDIR_SPARE),
                            *tmp = sup_dir_path(s, VMDIR_SPARE_TMP), *pending = sup_dir_path(s, VMDIR_SPARE_PENDING);
        s->claim_listen_fd = unix_listen(sock, 4, SOCK_NONBLOCK);
        int r = s->claim_listen_fd < 0 ? s->claim_listen_fd
                                       : smolvm_evloop_add(s->loop, s->claim_listen_fd, EPOLLIN, claim_accept_cb, s);
        if (r == 0) {
                _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || write_all(fd, tag, strlen(tag)) < 0 || rename(tmp, marker) < 0)
                        r = negative_errno();
        }
        if (r < 0) {
                (void)unlink(tmp);
                sup_fail(s, false, NULL, "spare: parking in %s: %s", s->vm_dir, strerror(-r));
                return r;
        }
        /* A claimant waiting for us (libsmolvm's spare.c) wakes on the rename. */
        (void)unlink(pending);
        s->spare_parked = true;
        s->spare_idle_ms = now_ms() + s->spare_idle_for_ms;
        sup_log("parked as a spare (%s) for %llu ms", tag, (unsigned long long)s->spare_idle_for_ms);
        return 0;
}

int sup_spare_step(sup *s, uint64_t now)
{
        if (!s->spare_parked || now < s->spare_idle_ms)
                return -1;
        _cleanup_free_ char *marker = sup_dir_path(s, VMDIR_SPARE);
        if (unlink(marker) == 0 || errno != ENOENT || s->spare_claim_late) {
                sup_log(s->spare_claim_late ? "spare: the claimant never came: exiting"
                                            : "spare: unclaimed for %llu ms: exiting",
                        (unsigned long long)s->spare_idle_for_ms);
                return SUP_EXIT_OK;
        }
        /* A claimant took the marker a moment ago: give it time to connect. */
        s->spare_claim_late = true;
        s->spare_idle_ms = now + SPARE_CLAIM_GRACE_MS;
        return -1;
}

uint64_t sup_spare_deadline(const sup *s)
{
        return s->spare_parked ? s->spare_idle_ms : UINT64_MAX;
}

void sup_spare_free(sup *s)
{
        s->spare_lock_fd = safe_close(s->spare_lock_fd);
        if (s->claim_listen_fd >= 0) {
                (void)smolvm_evloop_del(s->loop, s->claim_listen_fd);
                s->claim_listen_fd = safe_close(s->claim_listen_fd);
        }
        if (s->claim_fd >= 0) {
                (void)smolvm_evloop_del(s->loop, s->claim_fd);
                s->claim_fd = safe_close(s->claim_fd);
        }
}
