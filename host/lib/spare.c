/* SPDX-License-Identifier: Apache-2.0 */
/* Spares: a supervisor with the boot template restored ahead, its guest
 * parked before it takes an identity, that the next warm `run` claims instead of
 * starting one (docs/internals.md, "Spares"). A spare is a VM dir vms/<id>
 * without a record (no listing or lookup sees it) holding the "spare" marker
 * ("KEY:SNAPSHOT-ID"); its paths never change, so nothing QEMU holds goes
 * stale. The VM made from it takes its id. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fdpass.h"
#include "smolvm_i.h"
#include "unixsock.h"
#include "util.h"
#include "vmdir.h"

#define SPARE_IDLE_DEFAULT_MS 60000u
#define SPARE_IDLE_MAX_MS (24u * 3600u * 1000u)
#define SPARE_TAG_MAX 160
/* How long a claimant waits for a spare on its way (wait_pending). */
#define SPARE_WAIT_MS 5000u
/* How long a spare's dir may wait for its supervisor's pid file. */
#define SPARE_START_MS 1000u

uint64_t vm_spare_idle_ms(void)
{
        const char *e = getenv("SMOLVM_SPARE_IDLE_MS");
        if (!e || !*e)
                return SPARE_IDLE_DEFAULT_MS;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(e, &end, 10);
        /* Not a number: the default, as unset (the CLI's doc says so). */
        return *end || errno || e[0] == '-' ? SPARE_IDLE_DEFAULT_MS : MIN(v, (unsigned long long)SPARE_IDLE_MAX_MS);
}

bool vm_spare_eligible(smolvm_vm *vm)
{
        const vm_record *rec = &vm->rec;
        char p[PATH_MAX];
        /* Only what the template's QEMU and duties are started with: no mounts
         * (virtio-fs adds devices; vsock ones a duty), no network (its duty
         * and policy), no port forwards. */
        if (!vm->ephemeral || !rec->from_template || !rec->from_snapshot || rec->n_mounts || rec->net ||
            vm_spare_idle_ms() == 0 || !vm_start_restores(vm))
                return false;
        pathf(p, sizeof(p), "%s/" VMDIR_PORTS, vm->dir);
        return access(p, F_OK) < 0;
}

static void spare_tag(const smolvm_vm *vm, char *buf, size_t size)
{
        snprintf(buf, size, "%s:%s", vm->rec.from_template, vm->rec.from_snapshot);
}

/* The content of the marker name (VMDIR_SPARE, VMDIR_SPARE_PENDING) in dir,
 * or "" when there is none. */
static void read_marker(const char *dir, const char *name, char *buf, size_t size)
{
        char p[PATH_MAX];
        pathf(p, sizeof(p), "%s/%s", dir, name);
        buf[0] = '\0';
        _cleanup_close_ int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);
        buf[n > 0 ? n : 0] = '\0';
}

/* Take a spare down: only after its marker was ours to remove. */
static void spare_remove(const char *dir)
{
        pid_t pid = vm_live_supervisor(dir, NULL);
        if (pid > 0)
                supervisor_kill_detached(dir, pid, 0, SUPERVISOR_STOP_TIMEOUT_MS);
        (void)rm_rf(dir);
}

static int claim_connect(const char *dir)
{
        struct sockaddr_un sa;
        _cleanup_close_ int dfd = -1;
        int r = unix_sockaddr_at(dir, VMDIR_CLAIM, &sa, &dfd);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* Claim the first live spare of tag in vms/: its marker unlinked (exactly one
 * claimant wins it), its claim socket connected. Dead spares (their
 * supervisor gone) are removed on the way, by whoever unlinks their marker.
 * Returns the socket with the spare's id in ret_id, or -1. */
static int scan(const char *vms, const char *tag, char ret_id[SMOLVM_ID_LEN + 1])
{
        DIR *d = opendir(vms);
        if (!d)
                return -1;
        int fd = -1;
        struct dirent *de;
        while (fd < 0 && (de = readdir(d))) {
                char dir[PATH_MAX], marker[PATH_MAX], content[SPARE_TAG_MAX + 1];
                if (!vm_id_valid(de->d_name))
                        continue;
                pathf(dir, sizeof(dir), "%s/%s", vms, de->d_name);
                read_marker(dir, VMDIR_SPARE, content, sizeof(content));
                if (!content[0])
                        continue;
                pathf(marker, sizeof(marker), "%s/" VMDIR_SPARE, dir);
                /* The supervisor writes its pid before the marker: no pid, dead. */
                if (vm_live_supervisor(dir, NULL) <= 0) {
                        if (unlink(marker) == 0)
                                (void)rm_rf(dir);
                        continue;
                }
                if (strcmp(content, tag))
                        continue; /* another template's: it idles out */
                if (unlink(marker) < 0)
                        continue; /* another claimant won this one */
                fd = claim_connect(dir);
                if (fd < 0)
                        spare_remove(dir); /* died since: ours to clean */
                else
                        memcpy(ret_id, de->d_name, SMOLVM_ID_LEN + 1);
        }
        closedir(d);
        return fd;
}

/* Spares of tag on their way (spawned, not parked: VMDIR_SPARE_PENDING, their
 * supervisor alive, or its pid file not written yet and the dir younger than
 * SPARE_START_MS: then *until is when that ends), each dir watched (inotify
 * in) for the marker's rename, the pid file, or its end. Returns how many. */
static int watch_pending(const char *vms, const char *tag, int in, uint64_t *until)
{
        DIR *d = opendir(vms);
        if (!d)
                return 0;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char dir[PATH_MAX], content[SPARE_TAG_MAX + 1];
                if (!vm_id_valid(de->d_name))
                        continue;
                pathf(dir, sizeof(dir), "%s/%s", vms, de->d_name);
                read_marker(dir, VMDIR_SPARE_PENDING, content, sizeof(content));
                if (!content[0] || strcmp(content, tag))
                        continue;
                uint64_t young = 0;
                if (vm_live_supervisor(dir, NULL) <= 0) {
                        /* Just spawned (its pid file comes in a few ms), or dead. */
                        char p[PATH_MAX];
                        struct stat st;
                        struct timespec ts;
                        pathf(p, sizeof(p), "%s/" VMDIR_SPARE_PENDING, dir);
                        if (stat(p, &st) < 0 || clock_gettime(CLOCK_REALTIME, &ts) < 0)
                                continue;
                        int64_t age_ms = ((int64_t)ts.tv_sec - st.st_mtim.tv_sec) * 1000 +
                                         (ts.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
                        if (age_ms < 0 || age_ms >= (int64_t)SPARE_START_MS)
                                continue;
                        young = SPARE_START_MS - (uint64_t)age_ms;
                }
                if (inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR) < 0)
                        continue;
                n++;
                if (young)
                        *until = MIN(*until, now_ms() + young);
        }
        closedir(d);
        return n;
}

/* No spare parked, but one on its way (the previous run's, still restoring):
 * waiting for it is faster than a restore of our own beside it, which would
 * share the CPU with it. Until SPARE_WAIT_MS, or cancel_fd. */
static int wait_pending(const char *vms, const char *tag, char ret_id[SMOLVM_ID_LEN + 1], int cancel_fd)
{
        _cleanup_close_ int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (in < 0)
                return -1;
        uint64_t deadline = now_ms() + SPARE_WAIT_MS;
        for (;;) {
                uint64_t until = deadline;
                int n = watch_pending(vms, tag, in, &until);
                /* After the watches: a spare that parked in between (its
                 * pending file gone) is seen here. */
                int fd = scan(vms, tag, ret_id);
                if (fd >= 0 || n == 0 || now_ms() >= deadline)
                        return fd;
                int r = fd_wait(in, POLLIN, MIN(until, deadline), cancel_fd);
                if (r < 0 && r != -ETIMEDOUT)
                        return -1;
                char ev[4096];
                while (read(in, ev, sizeof(ev)) > 0)
                        ;
        }
}

void vm_spare_sweep(const char *vms, const char *key)
{
        DIR *d = opendir(vms);
        if (!d)
                return;
        size_t n = strlen(key);
        struct dirent *de;
        while ((de = readdir(d))) {
                char dir[PATH_MAX], marker[PATH_MAX], content[SPARE_TAG_MAX + 1];
                if (!vm_id_valid(de->d_name))
                        continue;
                pathf(dir, sizeof(dir), "%s/%s", vms, de->d_name);
                read_marker(dir, VMDIR_SPARE, content, sizeof(content));
                pathf(marker, sizeof(marker), "%s/" VMDIR_SPARE, dir);
                /* Unlinking the marker makes it ours, as a claim would. */
                if (!strncmp(content, key, n) && content[n] == ':' && unlink(marker) == 0)
                        spare_remove(dir);
        }
        closedir(d);
}

/* Back to the VM's own dir and id (its files there are untouched). */
static void unadopt(smolvm_vm *vm, char *old_dir, const char *old_id)
{
        free(vm->dir);
        vm->dir = old_dir;
        memcpy(vm->id, old_id, SMOLVM_ID_LEN + 1);
        memcpy(vm->rec.id, old_id, SMOLVM_ID_LEN + 1);
}

/* Move the VM (made in its own dir, not started) into the claimed spare's dir
 * under the spare's id: its config and record. */
static int adopt(smolvm_vm *vm, const char *id, char **ret_old_dir, char old_id[SMOLVM_ID_LEN + 1])
{
        char *dir = NULL;
        if (asprintf(&dir, "%s/vms/%s", vm->home, id) < 0)
                return -ENOMEM;
        memcpy(old_id, vm->id, SMOLVM_ID_LEN + 1);
        char *old_dir = vm->dir;
        vm->dir = dir;
        memcpy(vm->id, id, SMOLVM_ID_LEN + 1);
        memcpy(vm->rec.id, id, SMOLVM_ID_LEN + 1);
        vm_error_saved e;
        vm_error_save(&e);
        int r = vm_write_supervisor_config(vm);
        if (r == 0)
                r = vm_record_save(vm->dir, &vm->rec);
        vm_error_restore(&e);
        if (r < 0) {
                unadopt(vm, old_dir, old_id);
                return r;
        }
        *ret_old_dir = old_dir;
        return 0;
}

int vm_spare_claim(smolvm_vm *vm, int cancel_fd, int *ret_ready_fd)
{
        char vms[PATH_MAX], tag[SPARE_TAG_MAX + 1], id[SMOLVM_ID_LEN + 1], dir[PATH_MAX];
        spare_tag(vm, tag, sizeof(tag));
        pathf(vms, sizeof(vms), "%s/vms", vm->home);
        int k = scan(vms, tag, id);
        _cleanup_close_ int fd = k >= 0 ? k : wait_pending(vms, tag, id, cancel_fd);
        if (fd < 0)
                return 0;
        pathf(dir, sizeof(dir), "%s/%s", vms, id);
        pid_t pid = vm_live_supervisor(dir, NULL);
        int p[2] = { -1, -1 };
        char *old_dir = NULL, old_id[SMOLVM_ID_LEN + 1];
        if (pid <= 0 || pipe2(p, O_CLOEXEC) < 0 || adopt(vm, id, &old_dir, old_id) < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                spare_remove(dir);
                return 0;
        }
        ssize_t n = fdpass_send(fd, "e", 1, &p[1], 1, 0);
        safe_close(p[1]);
        if (n != 1) {
                /* The spare died since: the VM starts as without one. */
                safe_close(p[0]);
                unadopt(vm, old_dir, old_id);
                spare_remove(dir);
                return 0;
        }
        (void)rm_rf(old_dir);
        free(old_dir);
        vm->supervisor_pid = pid;
        vm->spare_fd = TAKE_FD(fd);
        vm->spare_claimed = true;
        snprintf(vm->start_note, sizeof(vm->start_note), "from a spare (restored ahead; this run's identity)");
        *ret_ready_fd = p[0];
        return 1;
}

/* A new spare dir for tag with the template's layer and the VM's config, its
 * supervisor started, handed the spare lock (lock_fd). */
static void spawn_locked(const smolvm_vm *vm, const char *tag, uint64_t idle_ms, int lock_fd)
{
        char vms[PATH_MAX], tdir[PATH_MAX], id[SMOLVM_ID_LEN + 1], dir[PATH_MAX];
        pathf(vms, sizeof(vms), "%s/vms", vm->home);
        pathf(tdir, sizeof(tdir), "%s/templates/%s", vm->home, vm->rec.from_template);
        snap_record snap;
        if (snapshot_load_record(tdir, &snap) < 0)
                return;
        /* A template rebuilt since the VM was made: not this VM's to spare. */
        int r = strcmp(snap.id, vm->rec.from_snapshot) ? -ESTALE : random_id(id);
        if (r == 0) {
                pathf(dir, sizeof(dir), "%s/%s", vms, id);
                r = mkdir(dir, 0700) < 0 ? negative_errno() : 0;
        }
        if (r < 0) {
                snap_record_done(&snap);
                return;
        }
        _cleanup_free_ char *top = NULL;
        r = snapshot_link_layers(tdir, &snap, dir, &top);
        snap_record_done(&snap);
        if (r == 0) {
                /* For a claimant that comes before it parks (wait_pending). */
                char p[PATH_MAX];
                pathf(p, sizeof(p), "%s/" VMDIR_SPARE_PENDING, dir);
                _cleanup_close_ int pfd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                r = pfd < 0 || write_all(pfd, tag, strlen(tag)) < 0 ? negative_errno() : 0;
        }
        if (r == 0) {
                /* The spare's own config: the VM's, under the spare's id and
                 * without its machine-id (a claim writes the claimant's). */
                smolvm_vm t = *vm;
                t.dir = dir;
                memcpy(t.id, id, sizeof(t.id));
                t.rec.machine_id[0] = '\0';
                r = vm_write_supervisor_config(&t);
        }
        if (r == 0)
                r = supervisor_spawn_spare(dir, tag, idle_ms, lock_fd);
        if (r < 0)
                (void)rm_rf(dir);
}

void vm_spare_spawn(const smolvm_vm *vm, uint64_t idle_ms)
{
        char tag[SPARE_TAG_MAX + 1], lock[PATH_MAX];
        spare_tag(vm, tag, sizeof(tag));
        pathf(lock, sizeof(lock), "%s/templates/%s.spare.lock", vm->home, vm->rec.from_template);
        vm_error_saved e;
        vm_error_save(&e);
        /* At most one spare per template: its supervisor holds this lock from
         * our spawn to its claim or exit, so a busy lock means one is parked
         * (or on its way). */
        _cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) == 0)
                spawn_locked(vm, tag, idle_ms, lfd);
        vm_error_restore(&e);
}
