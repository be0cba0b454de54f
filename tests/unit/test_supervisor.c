/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-supervisor's pieces that need no VM: the VM directory it owns
 * (host/supervisor/dir.c) and the duty registry (duty.c), against a temp dir
 * and fake duties. sup_fail() (boot.c, which writes the ready line) is
 * replaced by a recorder. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "dir.h"
#include "sup.h"
#include "util.h"
#include "vmdir.h"

static char failed_msg[1024];
static char failed_hint[256];
static int n_failed;

void sup_fail(sup *s, bool with_console, const char *hint, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(failed_msg, sizeof(failed_msg), fmt, ap);
        va_end(ap);
        snprintf(failed_hint, sizeof(failed_hint), "%s", hint ? hint : "");
        if (!s->failed_why[0])
                snprintf(s->failed_why, sizeof(s->failed_why), "%.*s", (int)sizeof(s->failed_why) - 1, failed_msg);
        n_failed++;
}

static char dir[PATH_MAX];

static void make_dir(void)
{
        snprintf(dir, sizeof(dir), "/tmp/smolvm-test-sup.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        failed_msg[0] = failed_hint[0] = '\0';
        n_failed = 0;
}

static void touch(const char *name, const char *text)
{
        char p[PATH_MAX + 64];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        if (text)
                ck_assert_int_eq(write_all(fd, text, strlen(text)), 0);
        close(fd);
}

static bool exists(const char *name)
{
        char p[PATH_MAX + 64];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

static void read_file(const char *name, char *buf, size_t size)
{
        char p[PATH_MAX + 64];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, size - 1);
        ck_assert_int_ge(n, 0);
        buf[n] = '\0';
        close(fd);
}

static void pid_file(pid_t pid)
{
        char buf[32];
        snprintf(buf, sizeof(buf), "%d\n", (int)pid);
        touch(VMDIR_PID, buf);
}

/* A live process whose comm is comm (until killed). */
static pid_t live_process(const char *comm)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                (void)prctl(PR_SET_NAME, comm);
                (void)!write(p[1], "x", 1);
                for (;;)
                        pause();
        }
        close(p[1]);
        char c;
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void kill_wait(pid_t pid)
{
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

START_TEST(dir_claim)
{
        make_dir();
        sup s = { .vm_dir = dir };
        ck_assert_int_eq(sup_dir_claim(&s), 0); /* no pid file */
        ck_assert_str_eq(sup_dir_id(&s), strrchr(dir, '/') + 1);

        /* Not a directory, or missing: named, with what creates it. */
        char file[PATH_MAX + 16];
        snprintf(file, sizeof(file), "%s/f", dir);
        touch("f", NULL);
        sup sf = { .vm_dir = file };
        ck_assert_int_eq(sup_dir_claim(&sf), -1);
        ck_assert_msg(strstr(failed_msg, "not a directory") && strstr(failed_msg, file), "%s", failed_msg);
        snprintf(file, sizeof(file), "%s/none", dir);
        ck_assert_int_eq(sup_dir_claim(&sf), -1);
        ck_assert_msg(strstr(failed_msg, "No such file or directory"), "%s", failed_msg);
        ck_assert_str_eq(failed_hint, "libsmolvm creates the VM dir and its config.json first");

        /* A live supervisor on the dir: refused, naming its pid. */
        pid_t other = live_process("smolvm-supervisor");
        pid_file(other);
        n_failed = 0;
        ck_assert_int_eq(sup_dir_claim(&s), -1);
        char want[128];
        snprintf(want, sizeof(want), "is already running (supervisor pid %d)", (int)other);
        ck_assert_msg(strstr(failed_msg, want), "%s", failed_msg);
        kill_wait(other);
        /* Its pid now names nothing (a SIGKILLed supervisor's stale file). */
        ck_assert_int_eq(sup_dir_claim(&s), 0);

        /* A reused pid of something else, or our own, is no conflict. */
        pid_t stranger = live_process("not-a-sup");
        pid_file(stranger);
        ck_assert_int_eq(sup_dir_claim(&s), 0);
        kill_wait(stranger);
        pid_file(getpid());
        ck_assert_int_eq(sup_dir_claim(&s), 0);
        touch(VMDIR_PID, "garbage");
        ck_assert_int_eq(sup_dir_claim(&s), 0);
        ck_assert_int_eq(n_failed, 1);
}
END_TEST

START_TEST(dir_pid_file)
{
        make_dir();
        sup s = { .vm_dir = dir };
        char buf[64], want[32];
        ck_assert_int_eq(sup_dir_write_pid(&s), 0);
        read_file(VMDIR_PID, buf, sizeof(buf));
        snprintf(want, sizeof(want), "%d\n", (int)getpid());
        ck_assert_str_eq(buf, want);
        ck_assert(!exists(VMDIR_PID_TMP));
        /* Unwritable dir: the errno, and no temp file left. */
        sup bad = { .vm_dir = "/nonexistent/smolvm-test" };
        ck_assert_int_eq(sup_dir_write_pid(&bad), -ENOENT);
}
END_TEST

/* Every name the ephemeral teardown knows, plus the duties' (not removed here). */
static const char *const known[] = {
        VMDIR_VSOCK, VMDIR_CHAN, VMDIR_CONSOLE_LOG, VMDIR_QEMU_LOG, VMDIR_OVERLAY, VMDIR_CONFIG, VMDIR_PID,
        VMDIR_SUPERVISOR_LOG, VMDIR_QMP, VMDIR_RECORD, VMDIR_LOCK, VMDIR_BOOT, VMDIR_PAUSED, VMDIR_FAILED,
        VMDIR_ENV_APPLIED,
};

START_TEST(dir_release_ephemeral)
{
        make_dir();
        sup s = { .vm_dir = dir, .ephemeral = true };
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                touch(known[i], NULL);
        /* Only the files we know: a stranger's file keeps the dir. */
        touch("user-file", "mine");
        sup_dir_release(&s, false);
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                ck_assert_msg(!exists(known[i]), "%s left", known[i]);
        ck_assert(exists("user-file"));

        /* Without it the dir goes too. */
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                touch(known[i], NULL);
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/user-file", dir);
        ck_assert_int_eq(unlink(p), 0);
        sup_dir_release(&s, true);
        ck_assert_int_eq(access(dir, F_OK), -1);
}
END_TEST

START_TEST(dir_release_persistent)
{
        static const char *const run[] = { VMDIR_VSOCK, VMDIR_CHAN, VMDIR_QMP, VMDIR_PAUSED, VMDIR_PID };
        static const char *const kept[] = { VMDIR_CONSOLE_LOG, VMDIR_QEMU_LOG, VMDIR_SUPERVISOR_LOG, VMDIR_CONFIG,
                                            VMDIR_RECORD, VMDIR_LOCK, VMDIR_BOOT };
        char buf[600];

        /* A clean stop: the run files go, the disk, the logs and the record stay. */
        make_dir();
        sup s = { .vm_dir = dir, .created_overlay = true, .running = true };
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                if (strcmp(known[i], VMDIR_FAILED) != 0)
                        touch(known[i], NULL);
        sup_dir_release(&s, false);
        for (size_t i = 0; i < ARRAY_SIZE(run); i++)
                ck_assert_msg(!exists(run[i]), "%s left", run[i]);
        for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
                ck_assert_msg(exists(kept[i]), "%s removed", kept[i]);
        ck_assert(exists(VMDIR_OVERLAY));
        ck_assert(!exists(VMDIR_FAILED));

        /* A VM that ran and failed keeps its disk; "failed" says why. */
        snprintf(s.failed_why, sizeof(s.failed_why), "QEMU (pid 7) died unexpectedly");
        sup_dir_release(&s, true);
        ck_assert(exists(VMDIR_OVERLAY));
        read_file(VMDIR_FAILED, buf, sizeof(buf));
        ck_assert_str_eq(buf, "QEMU (pid 7) died unexpectedly");

        /* A boot that never got ready removes the overlay it created, not one it found. */
        s.running = false;
        s.created_overlay = false;
        sup_dir_release(&s, true);
        ck_assert(exists(VMDIR_OVERLAY));
        s.created_overlay = true;
        sup_dir_release(&s, true);
        ck_assert(!exists(VMDIR_OVERLAY));
}
END_TEST

START_TEST(dir_overlay)
{
        make_dir();
        sup s = { .vm_dir = dir };
        char rootfs[PATH_MAX + 16];
        snprintf(rootfs, sizeof(rootfs), "%s/rootfs.ext4", dir);
        touch("rootfs.ext4", NULL);
        ck_assert_int_eq(truncate(rootfs, 1024 * 1024), 0);
        s.cfg.rootfs = rootfs;

        /* An existing overlay is kept, and was not created by us. */
        touch(VMDIR_OVERLAY, "disk");
        ck_assert_int_eq(sup_dir_prepare_overlay(&s), 0);
        ck_assert(!s.created_overlay);
        char buf[16];
        read_file(VMDIR_OVERLAY, buf, sizeof(buf));
        ck_assert_str_eq(buf, "disk");

        /* Written by us (no qemu-img process): a missing base is named... */
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/" VMDIR_OVERLAY, dir);
        ck_assert_int_eq(unlink(p), 0);
        char gone[PATH_MAX + 16];
        snprintf(gone, sizeof(gone), "%s/gone.ext4", dir);
        s.cfg.rootfs = gone;
        ck_assert_int_eq(sup_dir_prepare_overlay(&s), -ENOENT);
        ck_assert_ptr_nonnull(strstr(failed_msg, "gone.ext4"));
        ck_assert(!s.created_overlay);
        ck_assert(!exists(VMDIR_OVERLAY));

        /* ... and a present one gives an overlay of its size. */
        s.cfg.rootfs = rootfs;
        ck_assert_int_eq(sup_dir_prepare_overlay(&s), 0);
        ck_assert(s.created_overlay);
        ck_assert(exists(VMDIR_OVERLAY));
        char cmd[2 * PATH_MAX + 128];
        snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' && qemu-img info '%s' | grep -q '^virtual size: 1 MiB'", p, p);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- the duty registry ---- */

typedef struct fake {
        char name;
        int up_after;   /* guest_up returns 1 from this call on */
        int n_up;
        int fail_step;  /* step returns -EIO */
        uint64_t deadline;
        pid_t pid;
        bool destroyed;
} fake;

static char trace[64];
static fake fakes[3];

static void note(const fake *f, char what)
{
        size_t n = strlen(trace);
        if (n + 2 < sizeof(trace)) {
                trace[n] = what;
                trace[n + 1] = f->name;
                trace[n + 2] = '\0';
        }
}

static int fake_create(sup *s, void **ret)
{
        static int next;
        fake *f = &fakes[next++];
        if (f->name == 'n')
                return 0; /* nothing to do for this VM */
        *ret = f;
        return 0;
}
static int fake_prepare(void *self, sup_vm_extra *x)
{
        fake *f = self;
        note(f, 'p');
        return sup_vm_extra_arg(x, "%c.arg=1", f->name);
}
static int fake_guest_up(void *self, uint64_t now)
{
        fake *f = self;
        note(f, 'u');
        return ++f->n_up >= f->up_after;
}
static int fake_step(void *self, uint64_t now)
{
        fake *f = self;
        note(f, 's');
        return f->fail_step ? -EIO : 0;
}
static uint64_t fake_deadline(const void *self)
{
        return ((const fake *)self)->deadline;
}
static bool fake_owns_pid(const void *self, pid_t pid)
{
        return ((const fake *)self)->pid == pid;
}
static void fake_detach(void *self)
{
        note(self, 'd');
}
static void fake_destroy(void *self)
{
        fake *f = self;
        note(f, 'x');
        f->destroyed = true;
}
static const sup_duty_ops fake_ops = {
        .name = "fake",
        .create = fake_create,
        .prepare = fake_prepare,
        .guest_up = fake_guest_up,
        .step = fake_step,
        .deadline = fake_deadline,
        .owns_pid = fake_owns_pid,
        .detach = fake_detach,
        .destroy = fake_destroy,
};
/* Only the required hooks. */
static int bare_create(sup *s, void **ret)
{
        *ret = &fakes[2];
        return 0;
}
static const sup_duty_ops bare_ops = { .name = "bare", .create = bare_create, .destroy = fake_destroy };

START_TEST(duty_registry)
{
        sup s = { .vm_dir = "/nonexistent" };
        fakes[0] = (fake){ .name = 'a', .up_after = 1, .deadline = 500, .pid = 11 };
        fakes[1] = (fake){ .name = 'n' };
        fakes[2] = (fake){ .name = 'b', .up_after = 3, .deadline = 300, .pid = 22 };
        trace[0] = '\0';

        ck_assert_int_eq(sup_duty_add(&s, &fake_ops), 0);
        ck_assert_int_eq(sup_duty_add(&s, &fake_ops), 0); /* 'n': nothing to do, not registered */
        ck_assert_uint_eq(s.n_duties, 1);
        ck_assert_int_eq(sup_duty_add(&s, &fake_ops), 0);
        ck_assert_uint_eq(s.n_duties, 2);

        /* prepare in order; kernel arguments joined by spaces. */
        sup_vm_extra x = {};
        ck_assert_int_eq(sup_duties_prepare(&s, &x), 0);
        ck_assert_str_eq(x.cmdline, "a.arg=1 b.arg=1");
        free(x.cmdline);

        /* guest_up: 0 until every duty is up; one that is up is not asked again. */
        ck_assert_int_eq(sup_duties_guest_up(&s, 0), 0);
        ck_assert_int_eq(sup_duties_guest_up(&s, 0), 0);
        ck_assert_int_eq(sup_duties_guest_up(&s, 0), 1);
        ck_assert_int_eq(fakes[0].n_up, 1);
        ck_assert_int_eq(fakes[2].n_up, 3);

        ck_assert_uint_eq(sup_duties_deadline(&s), 300);
        ck_assert(sup_duties_own_pid(&s, 11));
        ck_assert(sup_duties_own_pid(&s, 22));
        ck_assert(!sup_duties_own_pid(&s, 33));

        ck_assert_int_eq(sup_duties_step(&s, 0), 0);
        fakes[0].fail_step = 1;
        ck_assert_int_eq(sup_duties_step(&s, 0), -EIO); /* the first failure stops the walk */

        sup_duties_reap(&s, 0); /* no reap hook: nothing happens */
        sup_duties_detach(&s);
        sup_duties_destroy(&s);
        ck_assert_uint_eq(s.n_duties, 0);
        ck_assert(fakes[0].destroyed && fakes[2].destroyed);
        ck_assert_str_eq(trace, "papbuaubububsasbsadadbxaxb");

        /* A duty with only create and destroy: every walk skips the rest. */
        fakes[2] = (fake){ .name = 'c' };
        trace[0] = '\0';
        ck_assert_int_eq(sup_duty_add(&s, &bare_ops), 0);
        x = (sup_vm_extra){};
        ck_assert_int_eq(sup_duties_prepare(&s, &x), 0);
        ck_assert_ptr_null(x.cmdline);
        ck_assert_int_eq(sup_duties_guest_up(&s, 0), 1);
        ck_assert_int_eq(sup_duties_step(&s, 0), 0);
        ck_assert_uint_eq(sup_duties_deadline(&s), UINT64_MAX);
        ck_assert(!sup_duties_own_pid(&s, 22));
        sup_duties_detach(&s);
        sup_duties_destroy(&s);
        ck_assert_str_eq(trace, "xc");
}
END_TEST

START_TEST(duty_extra)
{
        sup_vm_extra x = {};
        ck_assert_int_eq(sup_vm_extra_arg(&x, "smolvm.mount=%s:%s:%s", "smolvm-fs-0", "/w", "ro"), 0);
        ck_assert_int_eq(sup_vm_extra_arg(&x, "%s", "quiet=1 x"), 0);
        ck_assert_str_eq(x.cmdline, "smolvm.mount=smolvm-fs-0:/w:ro quiet=1 x");
        free(x.cmdline);
        for (size_t i = 0; i < SUP_MAX_MOUNTS; i++)
                ck_assert_int_eq(sup_vm_extra_fs(&x, "/s", "t"), 0);
        ck_assert_int_eq(sup_vm_extra_fs(&x, "/s", "t"), -E2BIG);
        ck_assert_uint_eq(x.n_fs, SUP_MAX_MOUNTS);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("supervisor");
        TCase *tc = tcase_create("dir");
        tcase_add_test(tc, dir_claim);
        tcase_add_test(tc, dir_pid_file);
        tcase_add_test(tc, dir_release_ephemeral);
        tcase_add_test(tc, dir_release_persistent);
        tcase_add_test(tc, dir_overlay);
        suite_add_tcase(s, tc);
        tc = tcase_create("duty");
        tcase_add_test(tc, duty_registry);
        tcase_add_test(tc, duty_extra);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
