/* SPDX-License-Identifier: Apache-2.0 */
/* Spawning smolvm-supervisor, reading its ready line, stopping it.
 * Contract: docs/internals.md, "Supervisor". */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "smolvm_i.h"
#include "spawner.h"
#include "util.h"
#include "vmdir.h"

/* The ready line carries a console tail; anything longer is not a ready line. */
#define READY_LINE_MAX (1024u * 1024u)

/* Start smolvm-supervisor for vm with its fds: 0 /dev/null, 1 and 2
 * supervisor.log (its own diagnostics never mix with the command's output;
 * SMOLVM_DEBUG=1 shows an ephemeral VM's on our stderr instead), 3 the write
 * end of the ready pipe. Its own process group: a terminal's Ctrl-C reaches
 * only us, and we can kill everything of the supervisor at once if it lingers.
 * No PDEATHSIG from here: an ephemeral supervisor arms its own (SIGTERM, so
 * that it cleans up).
 *
 * detached (persistent VMs): the supervisor must outlive us (and our session:
 * a closed terminal's SIGHUP must not reach it), and must never become our
 * zombie, so it is a grandchild in a session of its own, reparented to init
 * (or a subreaper) at once (smolvm_spawn's detach). Its stdout/stderr always
 * go to supervisor.log: were they ours, `id=$(smolvm create)` would wait for
 * EOF forever. */
static int supervisor_path(char *path, size_t size)
{
        snprintf(path, size, "%s/smolvm-supervisor", smolvm_libexec_dir());
        if (access(path, X_OK) < 0) {
                int r = negative_errno();
                return vm_error(r, "install smolvm, or set SMOLVM_LIBEXECDIR to the directory holding "
                                   "smolvm-supervisor",
                                "cannot run %s: %s", path, strerror(-r));
        }
        return 0;
}

static int spawn_supervisor(smolvm_vm *vm, bool detached, int *ret_ready_fd, pid_t *ret_pid)
{
        char path[4096], logpath[4096];
        int k = supervisor_path(path, sizeof(path));
        if (k < 0)
                return k;

        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return vm_error(negative_errno(), NULL, "pipe: %s", strerror(errno));
        _cleanup_close_ int rfd = p[0];
        _cleanup_close_ int wfd = p[1];
        _cleanup_close_ int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        _cleanup_close_ int logfd = -1;
        const char *dbg = getenv("SMOLVM_DEBUG");
        if (detached || !(dbg && *dbg && strcmp(dbg, "0"))) {
                snprintf(logpath, sizeof(logpath), "%s/" VMDIR_SUPERVISOR_LOG, vm->dir);
                logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (logfd < 0)
                        return vm_error(negative_errno(), NULL, "open %s: %s", logpath, strerror(errno));
        }
        if (nullfd < 0)
                return vm_error(-EMFILE, NULL, "spawn smolvm-supervisor: out of file descriptors");

        char *argv[8];
        int n = 0;
        argv[n++] = path;
        argv[n++] = (char *)"--vm-dir";
        argv[n++] = vm->dir;
        if (!detached && vm->ephemeral)
                argv[n++] = (char *)"--ephemeral";
        argv[n++] = (char *)"--ready-fd";
        argv[n++] = (char *)"3";
        argv[n] = NULL;

        int fds[4] = { nullfd, logfd >= 0 ? logfd : 2, logfd >= 0 ? logfd : 2, wfd };
        smolvm_spawn_opts o = {
                .argv = argv,
                .fds = fds,
                .n_fds = 4,
                .new_pgroup = true,
                .detach = detached,
        };
        pid_t pid;
        int r = smolvm_spawn(&o, &pid);
        if (r < 0)
                return vm_error(r, NULL, "spawn %s: %s", path, strerror(-r));
        *ret_pid = pid;
        *ret_ready_fd = TAKE_FD(rfd);
        return 0;
}

int supervisor_spawn(smolvm_vm *vm, int *ret_ready_fd)
{
        return spawn_supervisor(vm, false, ret_ready_fd, &vm->supervisor_pid);
}

int supervisor_spawn_detached(smolvm_vm *vm, int *ret_ready_fd, pid_t *ret_pid)
{
        return spawn_supervisor(vm, true, ret_ready_fd, ret_pid);
}

/* Detached as a persistent VM's (it outlives us), with none of our fds but
 * /dev/null and its log: nobody waits for its ready line (spare.c). */
int supervisor_spawn_spare(const char *dir, const char *tag, uint64_t idle_ms, int lock_fd)
{
        char path[4096], logpath[4096], idle[32];
        int r = supervisor_path(path, sizeof(path));
        if (r < 0)
                return r;
        snprintf(logpath, sizeof(logpath), "%s/" VMDIR_SUPERVISOR_LOG, dir);
        snprintf(idle, sizeof(idle), "%llu", (unsigned long long)idle_ms);
        _cleanup_close_ int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        _cleanup_close_ int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (nullfd < 0 || logfd < 0)
                return vm_error(negative_errno(), NULL, "open %s: %s", logpath, strerror(errno));
        char *argv[] = { path, (char *)"--vm-dir", (char *)dir, (char *)"--spare", (char *)tag,
                         (char *)"--idle-ms", idle, (char *)"--lock-fd", (char *)"3", NULL };
        int fds[4] = { nullfd, logfd, logfd, lock_fd };
        smolvm_spawn_opts o = { .argv = argv, .fds = fds, .n_fds = 4, .new_pgroup = true, .detach = true };
        pid_t pid;
        r = smolvm_spawn(&o, &pid);
        return r < 0 ? vm_error(r, NULL, "spawn %s: %s", path, strerror(-r)) : 0;
}

/* Not our child: "gone" means no live smolvm-supervisor for this dir (a zombie
 * waiting for init to reap it counts as gone). */
/* Wait until the supervisor has exited. Its pid file goes a moment before the
 * process does (teardown's last step), so with a pidfd we wait for the exit
 * itself: whoever removes the VM dir next must not race a live supervisor. */
static bool wait_gone(const char *dir, pid_t pid, int pidfd, unsigned timeout_ms)
{
        uint64_t deadline = now_ms() + timeout_ms;
        unsigned sleep_us = 2000;
        for (;;) {
                uint64_t now = now_ms();
                if (pidfd >= 0) {
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        int k = poll(&p, 1, now >= deadline ? 0 : (int)MIN(deadline - now, 1000u));
                        if (k > 0)
                                return true;
                        if (k < 0 && errno != EINTR)
                                pidfd = -1; /* back to the pid file */
                        else if (k == 0 && now >= deadline)
                                return false;
                        continue;
                }
                if (kill(pid, 0) < 0 || vm_live_supervisor(dir, NULL) != pid)
                        return true;
                if (now >= deadline)
                        return false;
                usleep(sleep_us);
                sleep_us = MIN(sleep_us * 2, 50000u);
        }
}

void supervisor_kill_detached(const char *dir, pid_t pid, unsigned grace_ms, unsigned timeout_ms)
{
        if (pid <= 0)
                return;
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        /* The pidfd is of our supervisor only if it still holds the pid file. */
        if (vm_live_supervisor(dir, NULL) != pid)
                return;
        if (wait_gone(dir, pid, pidfd, grace_ms))
                return;
        (void)kill(pid, SIGTERM);
        if (wait_gone(dir, pid, pidfd, timeout_ms))
                return;
        /* Its process group is its session (setsid); QEMU dies by PDEATHSIG. */
        (void)kill(-pid, SIGKILL);
        (void)kill(pid, SIGKILL);
        (void)wait_gone(dir, pid, pidfd, 5000);
}

/* Last line of a small file, for "why did the supervisor die". */
static void file_tail(const char *path, char *buf, size_t size, bool last_line_only)
{
        buf[0] = '\0';
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return;
        off_t end = lseek(fd, 0, SEEK_END);
        off_t start = end > (off_t)(size - 1) ? end - (off_t)(size - 1) : 0;
        ssize_t n = pread(fd, buf, size - 1, start);
        safe_close(fd);
        if (n <= 0)
                return;
        buf[n] = '\0';
        n = (ssize_t)strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        if (last_line_only) {
                char *nl = strrchr(buf, '\n');
                if (nl)
                        memmove(buf, nl + 1, strlen(nl + 1) + 1);
        }
}

static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
        json_t *v = json_object_get(o, key);
        if (!v) {
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
                return -EBADMSG;
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

static int get_str(json_t *o, const char *key, char *buf, size_t size)
{
        json_t *v = json_object_get(o, key);
        buf[0] = '\0';
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return -EBADMSG;
        snprintf(buf, size, "%s", json_string_value(v));
        sanitize_text(buf);
        return 0;
}

static int parse_ready(smolvm_vm *vm, const char *line, size_t len)
{
        json_error_t jerr;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o || !json_is_object(o)) {
                json_decref(o);
                return vm_error(-EBADMSG, "this is a bug in smolvm-supervisor; SMOLVM_DEBUG=1 shows its log",
                                "invalid ready line from smolvm-supervisor");
        }
        json_t *ok = json_object_get(o, "ok");
        int r = 0;
        if (!json_is_boolean(ok)) {
                r = vm_error(-EBADMSG, NULL, "invalid ready line from smolvm-supervisor: no \"ok\"");
        } else if (!json_is_true(ok)) {
                char msg[1024], hint[512];
                if (get_str(o, "error", msg, sizeof(msg)) < 0 || !msg[0])
                        snprintf(msg, sizeof(msg), "the VM failed to boot");
                if (get_str(o, "hint", hint, sizeof(hint)) < 0)
                        hint[0] = '\0';
                json_t *ct = json_object_get(o, "console_tail");
                const char *console = json_is_string(ct) ? json_string_value(ct) : NULL;
                uint64_t e = 0;
                int code = -EIO;
                if (get_uint(o, "errno", 4095, &e) == 0 && e > 0)
                        code = -(int)e;
                else if (strstr(msg, "within") || strstr(msg, "timed out"))
                        code = -ETIMEDOUT;
                r = vm_error_console(code, hint[0] ? hint : NULL, console, "%s", msg);
        } else {
                smolvm_boot_info *b = &vm->boot;
                const uint64_t max = UINT64_C(1) << 40;
                if (get_uint(o, "boot_ms", max, &b->boot_ms) < 0 ||
                    get_uint(o, "t_vmm_ms", max, &b->t_vmm_ms) < 0 ||
                    get_uint(o, "t_kernel_ms", max, &b->t_kernel_ms) < 0 ||
                    get_uint(o, "t_init_ms", max, &b->t_init_ms) < 0 ||
                    get_uint(o, "t_agent_ms", max, &b->t_agent_ms) < 0 ||
                    get_str(o, "accel", b->accel, sizeof(b->accel)) < 0 ||
                    get_str(o, "accel_reason", b->accel_reason, sizeof(b->accel_reason)) < 0)
                        r = vm_error(-EBADMSG, NULL, "invalid ready line from smolvm-supervisor: bad field type");
                uint64_t vmm_pid = 0;
                vm->vmm_pid = get_uint(o, "vmm_pid", INT32_MAX, &vmm_pid) == 0 ? (pid_t)vmm_pid : 0;
                json_t *lane = json_object_get(o, "lane");
                vm->lane_known = json_is_boolean(lane);
                vm->lane_device = json_is_true(lane);
        }
        json_decref(o);
        return r;
}

int supervisor_wait_ready(smolvm_vm *vm, int ready_fd, int cancel_fd)
{
        uint64_t deadline = now_ms() + vm->boot_timeout_ms + SUPERVISOR_READY_MARGIN_MS;
        size_t cap = 4096, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return vm_error(-ENOMEM, NULL, "out of memory");
        for (;;) {
                char *nl = memchr(buf, '\n', len);
                if (nl)
                        return parse_ready(vm, buf, (size_t)(nl - buf));
                uint64_t now = now_ms();
                if (now >= deadline)
                        return vm_error(-ETIMEDOUT, "the host may be overloaded; try --accel tcg or a "
                                                    "longer boot timeout",
                                        "smolvm-supervisor did not report within %u s",
                                        (vm->boot_timeout_ms + SUPERVISOR_READY_MARGIN_MS) / 1000u);
                struct pollfd pfd[2] = { { .fd = ready_fd, .events = POLLIN },
                                         { .fd = cancel_fd > 0 ? cancel_fd : -1, .events = POLLIN } };
                int k = poll(pfd, 2, (int)MIN(deadline - now, 1000u));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return vm_error(negative_errno(), NULL, "poll: %s", strerror(errno));
                }
                if (pfd[1].revents)
                        return vm_error(-ECANCELED, NULL, "interrupted while the VM was booting");
                if (!pfd[0].revents)
                        continue;
                if (len == cap) {
                        if (cap >= READY_LINE_MAX)
                                return vm_error(-EBADMSG, NULL, "smolvm-supervisor's ready line is too long");
                        char *nb = realloc(buf, cap * 2);
                        if (!nb)
                                return vm_error(-ENOMEM, NULL, "out of memory");
                        buf = nb;
                        cap *= 2;
                }
                ssize_t n = read(ready_fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return vm_error(negative_errno(), NULL, "read from smolvm-supervisor: %s", strerror(errno));
                }
                if (n == 0) {
                        if (len > 0)
                                return parse_ready(vm, buf, len);
                        /* It died without a word: its log and the console are all we have. */
                        char logpath[4096], conpath[4096], last[512], console[4096];
                        snprintf(logpath, sizeof(logpath), "%s/" VMDIR_SUPERVISOR_LOG, vm->dir);
                        snprintf(conpath, sizeof(conpath), "%s/" VMDIR_CONSOLE_LOG, vm->dir);
                        file_tail(logpath, last, sizeof(last), true);
                        file_tail(conpath, console, sizeof(console), false);
                        sanitize_text(last);
                        return vm_error_console(-ECHILD, "SMOLVM_DEBUG=1 shows the supervisor's log", console,
                                                "smolvm-supervisor exited before the VM was ready%s%s",
                                                last[0] ? ": " : "", last);
                }
                len += (size_t)n;
        }
}

/* Poll for the child's exit without reaping it, up to timeout_ms. A pidfd
 * wakes us the moment it exits (every `smolvm run` ends here, so a sleep's
 * granularity would add to each); without one (old kernels), back off. */
static bool wait_exited(pid_t pid, unsigned timeout_ms)
{
        uint64_t deadline = now_ms() + timeout_ms;
        unsigned sleep_us = 1000;
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        for (;;) {
                uint64_t now = now_ms();
                if (pidfd < 0 || now >= deadline)
                        break;
                struct pollfd p = { .fd = pidfd, .events = POLLIN };
                int k = poll(&p, 1, (int)MIN(deadline - now, 1000u));
                if (k > 0)
                        break;
                if (k < 0 && errno != EINTR)
                        break;
        }
        for (;;) {
                siginfo_t si = { 0 };
                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
                        return errno != EINTR; /* ECHILD: gone (or auto-reaped) */
                if (si.si_pid == pid)
                        return true;
                if (now_ms() >= deadline)
                        return false;
                usleep(sleep_us);
                sleep_us = MIN(sleep_us * 2, 50000u);
        }
}

void supervisor_stop(smolvm_vm *vm)
{
        pid_t pid = vm->supervisor_pid;
        if (pid <= 0)
                return;
        if (vm->spare_claimed) {
                /* Not our child (a spare's, detached): closing the claim makes it
                 * stop; the kill is for one that does not. */
                vm->spare_fd = safe_close(vm->spare_fd);
                supervisor_kill_detached(vm->dir, pid, 0, SUPERVISOR_STOP_TIMEOUT_MS);
                vm->spare_claimed = false;
                vm->supervisor_pid = 0;
                return;
        }
        /* SIGTERM lets it kill QEMU and remove the VM dir. */
        (void)kill(pid, SIGTERM);
        if (!wait_exited(pid, SUPERVISOR_STOP_TIMEOUT_MS)) {
                (void)kill(-pid, SIGKILL);
                (void)kill(pid, SIGKILL);
                (void)wait_exited(pid, SUPERVISOR_STOP_TIMEOUT_MS);
        }
        /* While it is an unreaped zombie its pid (and so its process group id) cannot
         * be reused: kill whatever it left in its group before reaping. */
        (void)kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        vm->supervisor_pid = 0;
}
