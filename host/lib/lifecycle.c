/* SPDX-License-Identifier: Apache-2.0 */
/* VM lifecycle: start, stop, pause, resume, delete, status, list.
 *
 * Ephemeral VMs keep the original model: the supervisor is our child and dies
 * with us (PDEATHSIG). Persistent VMs are shared by every process: their
 * supervisor is detached, their state is derived from the VM dir (state.c), and
 * every state change holds vms/<id>/lock (flock), never held during exec. */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "agent_call_i.h"
#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

/* Files of one run of a VM: removed before a start (a SIGKILLed supervisor
 * leaves them) and after a stop. Never the disk, the record or the logs. */
static const char *const run_files[] = {
        VMDIR_PID, VMDIR_VSOCK, VMDIR_CHAN, VMDIR_QMP, VMDIR_PAUSED, VMDIR_BOOT, VMDIR_RAM,
};

static void remove_run_files(const char *dir)
{
        for (size_t i = 0; i < ARRAY_SIZE(run_files); i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof(p), "%s/%s", dir, run_files[i]);
                (void)unlink(p);
        }
}

static void dir_file(const smolvm_vm *vm, const char *name, char *buf, size_t size)
{
        snprintf(buf, size, "%s/%s", vm->dir, name);
}

/* vm_lock(): a delete may have won the race, hence the check. */
int vm_lock(smolvm_vm *vm)
{
        char path[PATH_MAX];
        dir_file(vm, VMDIR_LOCK, path, sizeof(path));
        int fd = vm_lock_path(path, VM_LOCK_TIMEOUT_MS);
        if (fd < 0)
                return fd;
        dir_file(vm, VMDIR_RECORD, path, sizeof(path));
        if (access(path, F_OK) < 0) {
                safe_close(fd);
                return vm_error(SMOLVM_ENOTFOUND, "`smolvm ls` lists the VMs", "VM %s no longer exists", vm->id);
        }
        return fd;
}

/* ---- boot.json: the ready line's numbers, for processes that did not start the VM ---- */

static void save_boot_info(smolvm_vm *vm)
{
        const smolvm_boot_info *b = &vm->boot;
        json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:I}", "boot_ms", (json_int_t)b->boot_ms,
                              "host_boot_ms", (json_int_t)b->host_boot_ms, "t_vmm_ms", (json_int_t)b->t_vmm_ms,
                              "t_kernel_ms", (json_int_t)b->t_kernel_ms, "t_init_ms", (json_int_t)b->t_init_ms,
                              "t_agent_ms", (json_int_t)b->t_agent_ms, "accel", b->accel, "accel_reason",
                              b->accel_reason, "vmm_pid", (json_int_t)vm->vmm_pid);
        if (o && (json_object_set_new(o, "start", json_string(b->start)) < 0 ||
                  json_object_set_new(o, "start_note", json_string(b->start_note)) < 0 ||
                  (vm->lane_known && json_object_set_new(o, "lane", json_boolean(vm->lane_device)) < 0))) {
                json_decref(o);
                o = NULL;
        }
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (s) {
                char path[PATH_MAX];
                dir_file(vm, VMDIR_BOOT, path, sizeof(path));
                /* Informational only: not fsynced (two fsyncs on every start's path). */
                (void)write_file_replace(path, s, strlen(s), 0600);
                free(s);
        }
}

/* ret_vmm_pid (may be NULL): QEMU's pid, 0 if not recorded. */
static bool load_boot_info(const smolvm_vm *vm, smolvm_boot_info *ret, pid_t *ret_vmm_pid)
{
        char path[PATH_MAX];
        dir_file(vm, VMDIR_BOOT, path, sizeof(path));
        json_t *o = json_load_file(path, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                return false;
        }
        smolvm_boot_info b = { 0 };
        struct {
                const char *key;
                uint64_t *v;
        } nums[] = { { "boot_ms", &b.boot_ms },     { "host_boot_ms", &b.host_boot_ms },
                     { "t_vmm_ms", &b.t_vmm_ms },   { "t_kernel_ms", &b.t_kernel_ms },
                     { "t_init_ms", &b.t_init_ms }, { "t_agent_ms", &b.t_agent_ms } };
        for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
                json_t *v = json_object_get(o, nums[i].key);
                *nums[i].v = json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
        }
        json_t *a = json_object_get(o, "accel"), *ar = json_object_get(o, "accel_reason");
        json_t *vp = json_object_get(o, "vmm_pid");
        if (ret_vmm_pid)
                *ret_vmm_pid = json_is_integer(vp) && json_integer_value(vp) > 0 &&
                                               json_integer_value(vp) <= INT32_MAX
                                       ? (pid_t)json_integer_value(vp)
                                       : 0;
        snprintf(b.accel, sizeof(b.accel), "%s", json_is_string(a) ? json_string_value(a) : "");
        snprintf(b.accel_reason, sizeof(b.accel_reason), "%s", json_is_string(ar) ? json_string_value(ar) : "");
        json_t *sk = json_object_get(o, "start"), *sn = json_object_get(o, "start_note");
        snprintf(b.start, sizeof(b.start), "%s", json_is_string(sk) ? json_string_value(sk) : "");
        snprintf(b.start_note, sizeof(b.start_note), "%s", json_is_string(sn) ? json_string_value(sn) : "");
        sanitize_text(b.start);
        sanitize_text(b.start_note);
        json_decref(o);
        *ret = b;
        return true;
}

int vm_lane_device(smolvm_vm *vm)
{
        pthread_mutex_lock(&vm->lock);
        int known = vm->have_boot_info && vm->state == VM_RUNNING && vm->lane_known ? vm->lane_device : -1;
        pthread_mutex_unlock(&vm->lock);
        if (known >= 0)
                return known;
        char path[PATH_MAX];
        dir_file(vm, VMDIR_BOOT, path, sizeof(path));
        json_t *o = json_load_file(path, 0, NULL);
        json_t *lane = json_object_get(o, "lane");
        int r = json_is_boolean(lane) ? json_is_true(lane) : -1;
        json_decref(o);
        return r;
}

/* QEMU's pid if it is still supervisor_pid's child (from the ready line), else 0. */
static pid_t vm_qemu_pid(smolvm_vm *vm, pid_t supervisor_pid)
{
        pthread_mutex_lock(&vm->lock);
        pid_t qemu = vm->state == VM_RUNNING ? vm->vmm_pid : 0;
        pthread_mutex_unlock(&vm->lock);
        smolvm_boot_info b;
        if (qemu <= 0 && !load_boot_info(vm, &b, &qemu))
                return 0;
        char st;
        pid_t ppid;
        return qemu > 0 && proc_stat(qemu, &st, &ppid) == 0 && ppid == supervisor_pid ? qemu : 0;
}

/* "start it with `smolvm start NAME`" */
static const char *hint_for(const smolvm_vm *vm, const char *verb, char *buf, size_t size)
{
        snprintf(buf, size, "%s it with `smolvm %s %s`", verb, verb, vm->rec.name ? vm->rec.name : vm->id);
        return buf;
}

/* smolvm_config.env goes into the guest's persistent environment once, at the
 * first boot, through the env op (so `smolvm env unset` can remove it later; it
 * is not re-applied on every start). The marker is written only on success. */
static int apply_create_env(smolvm_vm *vm)
{
        char marker[PATH_MAX];
        dir_file(vm, VMDIR_ENV_APPLIED, marker, sizeof(marker));
        if (!vm->rec.env || !vm->rec.env[0] || access(marker, F_OK) == 0)
                return 0;
        int r = smolvm_set_env(vm, (const char *const *)vm->rec.env);
        if (r < 0)
                return r; /* the VM runs; the next start tries again */
        return vm_write_file_atomic(marker, "", 0);
}

/* ---- start ---- */

static int stop_locked(smolvm_vm *vm, pid_t pid, bool graceful);

/* How this start went, for smolvm_boot_info: warm (from the boot template),
 * restore (from a snapshot) or cold. */
static void note_start(smolvm_vm *vm, bool restores)
{
        snprintf(vm->boot.start, sizeof(vm->boot.start), "%s",
                 !restores ? "cold" : vm->rec.from_template ? "warm" : "restore");
        snprintf(vm->boot.start_note, sizeof(vm->boot.start_note), "%s", vm->start_note);
}

/* A warm start whose restore failed: the template goes (the next warm start
 * rebuilds it) and this VM boots cold instead. Tells whether to retry. */
static bool warm_failed(smolvm_vm *vm, bool restores, int r)
{
        if (!restores || !vm->rec.from_template || r == -ECANCELED)
                return false;
        vm_error_saved e;
        vm_error_save(&e);
        char why[sizeof(vm->start_note) + 64];
        snprintf(why, sizeof(why), "the restore from the boot template failed (%.160s); it was removed", e.message);
        vm_template_drop(vm);
        if (vm_template_go_cold(vm, why) < 0) {
                vm_error_restore(&e);
                return false;
        }
        return true;
}

/* A start that failed leaves nothing running and says why: with pid > 0 the VM
 * booted and a later step failed, so it is stopped again; then "failed" gets
 * the reason (state "error", `smolvm info`). Called with the VM's lock held,
 * vm->lock not; keeps the recorded error. */
static void start_failed(smolvm_vm *vm, pid_t pid)
{
        vm_error_saved e;
        vm_error_save(&e);
        if (pid > 0)
                (void)stop_locked(vm, pid, true);
        char path[PATH_MAX], line[sizeof(e.message) + 32];
        dir_file(vm, VMDIR_FAILED, path, sizeof(path));
        int n = snprintf(line, sizeof(line), "start failed: %s\n", e.message);
        (void)vm_write_file_atomic(path, line, (size_t)MIN(n, (int)sizeof(line) - 1));
        vm_error_restore(&e);
}

/* An ephemeral VM's dir goes with its supervisor: to boot it cold after a
 * failed warm start, it is made again (ports.json kept from before). */
static int remake_dir(smolvm_vm *vm, const char *ports, size_t ports_len)
{
        if (mkdir(vm->dir, 0700) < 0)
                return vm_error(negative_errno(), NULL, "mkdir %s: %s", vm->dir, strerror(errno));
        if (ports) {
                char path[PATH_MAX];
                dir_file(vm, VMDIR_PORTS, path, sizeof(path));
                int r = vm_write_file_atomic(path, ports, ports_len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int start_ephemeral(smolvm_vm *vm, int cancel_fd)
{
        pthread_mutex_lock(&vm->lock);
        if (vm->state != VM_CREATED) {
                pthread_mutex_unlock(&vm->lock);
                return vm_error(SMOLVM_EALREADY, NULL, "VM %s was already started", vm->id);
        }
        uint64_t t0 = now_ms();
        int ready_fd = -1;
        int r = vm_template_precheck(vm);
        if (r < 0) {
                pthread_mutex_unlock(&vm->lock);
                return r;
        }
        bool restores = vm_start_restores(vm);
        _cleanup_free_ char *ports = NULL;
        size_t ports_len = 0;
        if (restores && vm->rec.from_template) {
                char path[PATH_MAX];
                dir_file(vm, VMDIR_PORTS, path, sizeof(path));
                json_t *o = json_load_file(path, 0, NULL);
                ports = o ? json_dumps(o, JSON_COMPACT) : NULL;
                ports_len = ports ? strlen(ports) : 0;
                json_decref(o);
        }
        /* A spare is restored already: only this VM's identity is left. */
        bool spare = restores && vm_spare_eligible(vm);
        r = spare ? vm_spare_claim(vm, cancel_fd, &ready_fd) : 0;
        if (r == 0)
                r = supervisor_spawn(vm, &ready_fd);
        else
                r = 0;
        if (r < 0) {
                vm->state = VM_DEAD;
                (void)rm_rf(vm->dir);
                pthread_mutex_unlock(&vm->lock);
                return r;
        }
        vm->state = VM_RUNNING;
        r = supervisor_wait_ready(vm, ready_fd, cancel_fd);
        safe_close(ready_fd);
        if (r < 0) {
                /* Keep the recorded error; stopping does not touch it. */
                supervisor_stop(vm);
                (void)rm_rf(vm->dir);
                vm->state = VM_DEAD;
                if (restores && vm->rec.from_template && r != -ECANCELED &&
                    remake_dir(vm, ports, ports_len) == 0 && warm_failed(vm, restores, r)) {
                        vm->state = VM_CREATED;
                        vm->supervisor_pid = 0;
                        pthread_mutex_unlock(&vm->lock);
                        return start_ephemeral(vm, cancel_fd);
                }
                pthread_mutex_unlock(&vm->lock);
                return r;
        }
        vm->boot.host_boot_ms = now_ms() - t0;
        note_start(vm, restores);
        vm->have_boot_info = true;
        /* The next warm start finds a spare parked, made once this VM is gone
         * (smolvm_destroy): its restore then competes with nothing of ours. */
        vm->spare_after = spare;
        save_boot_info(vm);
        r = vm_ports_apply(vm);
        if (r < 0) {
                /* e.g. --publish on a taken host port: the run must not go on without it. */
                supervisor_stop(vm);
                (void)rm_rf(vm->dir);
                vm->state = VM_DEAD;
        }
        pthread_mutex_unlock(&vm->lock);
        /* A clone's own RNG state, clock, hostname and machine-id came with the
         * channel handshake: the supervisor said ready only after the guest took
         * them (host/supervisor/boot.c). */
        return r;
}

SMOLVM_EXPORT int smolvm_start(smolvm_vm *vm)
{
        return smolvm_start_with_cancel(vm, vm->cancel_fd);
}

SMOLVM_EXPORT int smolvm_start_with_cancel(smolvm_vm *vm, int cancel_fd)
{
        if (vm->ephemeral)
                return start_ephemeral(vm, cancel_fd);

        _cleanup_close_ int lock = vm_lock(vm);
        if (lock < 0)
                return lock;
        pid_t pid = 0;
        smolvm_state st = vm_derive_state(vm->dir, &pid);
        if (st == SMOLVM_STATE_RUNNING || st == SMOLVM_STATE_PAUSED)
                return vm_error(SMOLVM_EALREADY, NULL, "VM %s is already running (supervisor pid %d)", vm->id,
                                (int)pid);
        /* A killed supervisor leaves its pid file and sockets: they must not block us. */
        remove_run_files(vm->dir);
        char failed[PATH_MAX];
        dir_file(vm, VMDIR_FAILED, failed, sizeof(failed));
        (void)unlink(failed);
        int r = vm_template_precheck(vm);
        if (r == 0)
                r = vm_write_supervisor_config(vm);
        if (r < 0)
                return r;

        bool restores;
again:
        pthread_mutex_lock(&vm->lock);
        uint64_t t0 = now_ms();
        int ready_fd = -1;
        restores = vm_start_restores(vm);
        r = supervisor_spawn_detached(vm, &ready_fd, &pid);
        if (r == 0) {
                r = supervisor_wait_ready(vm, ready_fd, cancel_fd);
                safe_close(ready_fd);
                if (r < 0) {
                        /* The recorded error stays; killing does not touch it. */
                        supervisor_kill_detached(vm->dir, pid, 0, SUPERVISOR_STOP_TIMEOUT_MS);
                        remove_run_files(vm->dir);
                }
        }
        if (r < 0) {
                pthread_mutex_unlock(&vm->lock);
                if (warm_failed(vm, restores, r)) {
                        remove_run_files(vm->dir);
                        goto again;
                }
                /* The VM stays (stopped, state "error") with its logs for diagnosis. */
                start_failed(vm, 0);
                return r;
        }
        vm->state = VM_RUNNING;
        vm->boot.host_boot_ms = now_ms() - t0;
        note_start(vm, restores);
        vm->have_boot_info = true;
        save_boot_info(vm);
        pthread_mutex_unlock(&vm->lock);
        r = apply_create_env(vm);
        if (r == 0) {
                r = vm_ports_apply(vm);
                if (r < 0) {
                        vm_error_saved e;
                        vm_error_save(&e);
                        (void)vm_error(e.code, e.hint[0] ? e.hint : NULL,
                                       "VM %s booted, but setting up its port forwards failed, so it was stopped "
                                       "again: %s",
                                       vm->id, e.message);
                        start_failed(vm, pid);
                }
                return r;
        }
        if (r < 0) {
                /* A start that fails must not leave the VM running: the caller
                 * (create, a script) takes the failure for "not started". */
                vm_error_saved e;
                vm_error_save(&e);
                (void)vm_error(e.code, e.hint[0] ? e.hint : NULL,
                               "VM %s booted, but setting its environment failed, so it was stopped again: %s",
                               vm->id, e.message);
                start_failed(vm, pid);
        }
        return r;
}

/* ---- stop ---- */

/* Ask the guest agent to power off: it syncs the disks, answers RESULT, and the
 * VM exits. Best effort: the caller falls back to signals. Returns 0 once the
 * agent accepted. */
static int agent_poweroff(smolvm_vm *vm)
{
        json_t *req = json_pack("{s:s}", "op", "poweroff"), *res = NULL;
        agent_call c;
        int r = req ? agent_call_open(vm, req, "poweroff", SMOLVM_AGENT_REPLY_ANSWER, &c) : -ENOMEM;
        json_decref(req);
        if (r < 0)
                return r;
        /* Its RESULT says the agent is on its way; waiting longer gains nothing. */
        c.idle_ms = 5000;
        r = agent_call_result(&c, &res);
        json_decref(res);
        agent_call_close(&c);
        return r;
}

static int stop_locked(smolvm_vm *vm, pid_t pid, bool graceful)
{
        char path[PATH_MAX];
        if (pid > 0) {
                dir_file(vm, VMDIR_PAUSED, path, sizeof(path));
                if (access(path, F_OK) == 0) {
                        /* A paused guest cannot power itself off. */
                        if (graceful && qmp_command(vm->dir, "cont") < 0)
                                graceful = false;
                        (void)unlink(path);
                }
                bool asked = graceful && agent_poweroff(vm) == 0;
                supervisor_kill_detached(vm->dir, pid, asked ? SMOLVM_STOP_TIMEOUT_MS : 0, SUPERVISOR_STOP_TIMEOUT_MS);
                if (vm_live_supervisor(vm->dir, NULL) == pid)
                        return vm_error(SMOLVM_ETIMEDOUT, "kill it by hand: kill -9 -- -PID",
                                        "VM %s: supervisor pid %d did not exit", vm->id, (int)pid);
        }
        remove_run_files(vm->dir);
        pthread_mutex_lock(&vm->lock);
        vm->state = vm->state == VM_RUNNING ? VM_DEAD : vm->state;
        vm->have_boot_info = false;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

SMOLVM_EXPORT int smolvm_stop(smolvm_vm *vm)
{
        if (vm->ephemeral && vm->supervisor_pid > 0)
                return smolvm_destroy(vm);
        _cleanup_close_ int lock = vm_lock(vm);
        if (lock < 0)
                return lock;
        pid_t pid = vm_live_supervisor(vm->dir, NULL);
        return stop_locked(vm, pid, true);
}

/* ---- pause / resume ---- */

/* Pause state lives in QEMU; the "paused" marker file mirrors it for readers
 * without the lock (status, exec), written and removed only under the lock. */
static int pause_resume(smolvm_vm *vm, bool pause)
{
        char hint[128];
        _cleanup_close_ int lock = vm_lock(vm);
        if (lock < 0)
                return lock;
        smolvm_state st = vm_derive_state(vm->dir, NULL);
        if (st != SMOLVM_STATE_RUNNING && st != SMOLVM_STATE_PAUSED)
                return vm_error(SMOLVM_ENOTRUNNING, hint_for(vm, "start", hint, sizeof(hint)),
                                "VM %s is not running (%s)", vm->id, smolvm_state_name(st));
        if (pause == (st == SMOLVM_STATE_PAUSED))
                return vm_error(SMOLVM_EALREADY, NULL, "VM %s is already %s", vm->id, pause ? "paused" : "running");
        char path[PATH_MAX];
        dir_file(vm, VMDIR_PAUSED, path, sizeof(path));
        int r;
        if (pause) {
                /* Marker first: an exec starting now fails fast instead of hanging. */
                r = vm_write_file_atomic(path, "", 0);
                if (r < 0)
                        return r;
                r = qmp_command(vm->dir, "stop");
                if (r < 0)
                        (void)unlink(path);
        } else {
                r = qmp_command(vm->dir, "cont");
                if (r == 0)
                        (void)unlink(path);
        }
        return r;
}

SMOLVM_EXPORT int smolvm_pause(smolvm_vm *vm)
{
        return pause_resume(vm, true);
}

SMOLVM_EXPORT int smolvm_resume(smolvm_vm *vm)
{
        return pause_resume(vm, false);
}

/* ---- delete ---- */

SMOLVM_EXPORT int smolvm_delete(smolvm_vm *vm, unsigned flags)
{
        if (!vm)
                return 0;
        if (vm->ephemeral && vm->supervisor_pid > 0)
                return smolvm_destroy(vm);
        _cleanup_close_ int lock = vm_lock(vm);
        if (lock < 0)
                return lock;
        pid_t pid = vm_live_supervisor(vm->dir, NULL);
        if (pid > 0 && !(flags & SMOLVM_DELETE_FORCE))
                return vm_error(SMOLVM_EBUSY, "stop it first, or use `smolvm rm -f`", "VM %s is running", vm->id);
        /* Its disk goes away: no point in a graceful poweroff. */
        int r = stop_locked(vm, pid, false);
        if (r < 0)
                return r;
        /* Renamed aside in one step, then removed: a kill at any point leaves
         * either the whole VM or a trash dir the next ls/create/rm finishes. */
        char vms[PATH_MAX];
        snprintf(vms, sizeof(vms), "%s/vms", vm->home);
        r = vm_dir_remove(vms, vm->id);
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        vm->state = VM_DEAD;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

SMOLVM_EXPORT int smolvm_delete_id(const char *id, unsigned flags)
{
        if (!id || !vm_id_valid(id))
                return vm_error(SMOLVM_EINVAL, "give the full 12-digit id (`smolvm ls` lists it)",
                                "invalid VM id '%s'", id ? id : "");
        /* A handle without a record: enough for lock, stop and removal. */
        smolvm_vm *vm = calloc(1, sizeof(*vm));
        if (!vm)
                return vm_error(-ENOMEM, NULL, "out of memory");
        pthread_mutex_init(&vm->lock, NULL);
        vm->state = VM_CREATED;
        memcpy(vm->id, id, SMOLVM_ID_LEN + 1);
        int r = smolvm_home_dir(&vm->home);
        if (r == 0 && asprintf(&vm->dir, "%s/vms/%s", vm->home, id) < 0) {
                vm->dir = NULL;
                r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        if (r == 0 && access(vm->dir, F_OK) < 0) {
                /* Maybe a removal that was killed part-way: finish it. */
                char vms[PATH_MAX];
                snprintf(vms, sizeof(vms), "%s/vms", vm->home);
                r = vm_trash_sweep(vms, id);
                if (r == 0)
                        r = vm_error(SMOLVM_ENOTFOUND, "`smolvm ls` lists the VMs", "no such VM: '%s'", id);
                vm_free_fields(vm);
                return r < 0 ? r : 0;
        }
        if (r == 0)
                r = smolvm_delete(vm, flags);
        vm_free_fields(vm);
        return r;
}

SMOLVM_EXPORT int smolvm_destroy(smolvm_vm *vm)
{
        if (!vm)
                return 0;
        if (!vm->ephemeral)
                return smolvm_delete(vm, SMOLVM_DELETE_FORCE);
        pthread_mutex_lock(&vm->lock);
        if (vm->supervisor_pid > 0) {
                supervisor_stop(vm);
        } else if (vm->state != VM_DEAD) {
                /* An ephemeral VM opened by another process: not our child. */
                pid_t pid = vm_live_supervisor(vm->dir, NULL);
                if (pid > 0)
                        supervisor_kill_detached(vm->dir, pid, 0, SUPERVISOR_STOP_TIMEOUT_MS);
        }
        vm->state = VM_DEAD;
        int r = rm_rf(vm->dir);
        bool spare = vm->spare_after;
        vm->spare_after = false;
        pthread_mutex_unlock(&vm->lock);
        if (spare)
                vm_spare_spawn(vm, vm_spare_idle_ms());
        if (r < 0)
                return vm_error(r, NULL, "remove %s: %s", vm->dir, strerror(-r));
        return 0;
}

SMOLVM_EXPORT void smolvm_free(smolvm_vm *vm)
{
        if (!vm)
                return;
        /* Only an ephemeral VM we created is ours to tear down; a persistent one
         * outlives every handle. */
        if (vm->ephemeral && (vm->supervisor_pid > 0 || vm->state == VM_CREATED))
                (void)smolvm_destroy(vm);
        vm_free_fields(vm);
}

/* ---- accessors, status, list ---- */

SMOLVM_EXPORT const char *smolvm_id(const smolvm_vm *vm)
{
        return vm->id;
}

SMOLVM_EXPORT const char *smolvm_name(const smolvm_vm *vm)
{
        return vm->rec.name ? vm->rec.name : "";
}

SMOLVM_EXPORT const char *smolvm_dir(const smolvm_vm *vm)
{
        return vm->dir;
}

SMOLVM_EXPORT int smolvm_boot_info_get(const smolvm_vm *vm, smolvm_boot_info *ret)
{
        smolvm_vm *w = (smolvm_vm *)vm;
        pthread_mutex_lock(&w->lock);
        bool have = w->have_boot_info && w->state == VM_RUNNING;
        if (have)
                *ret = w->boot;
        pthread_mutex_unlock(&w->lock);
        if (have)
                return 0;
        smolvm_state st = vm_derive_state(vm->dir, NULL);
        if ((st == SMOLVM_STATE_RUNNING || st == SMOLVM_STATE_PAUSED) && load_boot_info(vm, ret, NULL))
                return 0;
        return vm_error(SMOLVM_ENOTRUNNING, NULL, "VM %s is not running", vm->id);
}

SMOLVM_EXPORT int smolvm_status(smolvm_vm *vm, smolvm_status_info *ret)
{
        vm_record rec;
        int r = vm_record_load(vm->dir, &rec);
        if (r == SMOLVM_ENOTFOUND)
                return vm_error(r, "`smolvm ls` lists the VMs", "VM %s no longer exists", vm->id);
        if (r < 0)
                return r;
        smolvm_status_info s = { 0 };
        vm_info_from_record(&rec, &s.info);
        vm_record_done(&rec);
        s.info.state = vm_derive_state(vm->dir, &s.info.supervisor_pid);
        if (s.info.supervisor_pid > 0) {
                s.have_boot = smolvm_boot_info_get(vm, &s.boot) == 0;
                s.vmm_pid = vm_qemu_pid(vm, s.info.supervisor_pid);
        }
        if (s.info.state == SMOLVM_STATE_ERROR)
                vm_error_reason(vm->dir, s.error, sizeof(s.error));
        snprintf(s.dir, sizeof(s.dir), "%s", vm->dir);
        *ret = s;
        return 0;
}

SMOLVM_EXPORT int smolvm_list(smolvm_vm_info **ret, size_t *ret_n)
{
        _cleanup_free_ char *home = NULL;
        int r = smolvm_home_dir(&home);
        if (r < 0)
                return r;
        char vms[PATH_MAX];
        snprintf(vms, sizeof(vms), "%s/vms", home);
        /* Removals a kill interrupted are finished here; what cannot be is listed. */
        (void)vm_trash_sweep(vms, NULL);
        return vm_list_dir(vms, ret, ret_n);
}

SMOLVM_EXPORT void smolvm_vm_info_free(smolvm_vm_info *infos)
{
        free(infos);
}

int vm_check_exec_ready(smolvm_vm *vm)
{
        char path[PATH_MAX], hint[320];
        pid_t pid = vm_live_supervisor(vm->dir, NULL);
        if (pid <= 0) {
                smolvm_state st = vm_derive_state(vm->dir, NULL);
                dir_file(vm, VMDIR_RECORD, path, sizeof(path));
                if (access(path, F_OK) < 0)
                        return vm_error(SMOLVM_ENOTFOUND, "`smolvm ls` lists the VMs", "VM %s no longer exists",
                                        vm->id);
                return vm_error(SMOLVM_ENOTRUNNING, vm->ephemeral ? NULL : hint_for(vm, "start", hint, sizeof(hint)),
                                "VM %s is not running (%s)", vm->id, smolvm_state_name(st));
        }
        dir_file(vm, VMDIR_PAUSED, path, sizeof(path));
        if (access(path, F_OK) == 0)
                return vm_error(SMOLVM_EPAUSED, hint_for(vm, "resume", hint, sizeof(hint)), "VM %s is paused", vm->id);
        /* A stopped QEMU (SIGSTOP, a debugger) answers nothing: say so now rather
         * than after the connect timeout. Other hangs end there (vsock_connect). */
        pid_t qemu = vm_qemu_pid(vm, pid);
        char st;
        pid_t ppid;
        /* 'T' only: a tracing stop ('t') is strace stopping it for a moment at
         * every system call (or a debugger, whose user knows). */
        if (qemu > 0 && proc_stat(qemu, &st, &ppid) == 0 && st == 'T') {
                const char *who = vm->rec.name ? vm->rec.name : vm->id;
                if (vm->ephemeral)
                        snprintf(hint, sizeof(hint), "continue it: kill -CONT %d", (int)qemu);
                else
                        snprintf(hint, sizeof(hint), "continue it (kill -CONT %d), or restart the VM: "
                                 "`smolvm stop %s && smolvm start %s`", (int)qemu, who, who);
                return vm_error(SMOLVM_EUNREACHABLE, hint,
                                "VM %s is not responding: its QEMU (pid %d) is stopped (SIGSTOP?)", vm->id,
                                (int)qemu);
        }
        return 0;
}
