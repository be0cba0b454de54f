/* SPDX-License-Identifier: Apache-2.0 */
/* The host's one process spawner (common/spawner.c): exec errors through the
 * pipe, the fd map, nothing else inherited, process group, parent-death signal,
 * clean signal state, detaching, env, cwd. Real processes (sh, cat, sleep). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "spawner.h"
#include "util.h"

/* Read a pipe to EOF (bounded: 10 s). */
static size_t read_to_eof(int fd, char *buf, size_t size)
{
        size_t got = 0;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ck_assert_int_eq(poll(&p, 1, 10000), 1);
                ssize_t n = read(fd, buf + got, size - 1 - got);
                ck_assert_int_ge(n, 0);
                if (n == 0)
                        break;
                got += (size_t)n;
                ck_assert_uint_lt(got, size - 1);
        }
        buf[got] = '\0';
        return got;
}

static int wait_status(pid_t pid)
{
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        return st;
}

/* No child of ours is left, not even a zombie. */
static void assert_no_children(void)
{
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
}

/* Run argv with stdout captured into out; returns the wait status. */
static int run_out(smolvm_spawn_opts *o, char *out, size_t size)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        _cleanup_close_ int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        int fds[3] = { null_fd, p[1], null_fd };
        o->fds = fds;
        o->n_fds = 3;
        pid_t pid;
        ck_assert_int_eq(smolvm_spawn(o, &pid), 0);
        safe_close(p[1]);
        read_to_eof(p[0], out, size);
        safe_close(p[0]);
        return wait_status(pid);
}

START_TEST(exec_error_through_pipe)
{
        char *argv[] = { (char *)"/nonexistent/smolvm-no-such-program", NULL };
        smolvm_spawn_opts o = { .argv = argv };
        pid_t pid = -1;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -ENOENT);
        ck_assert_int_eq(pid, -1); /* untouched on failure */
        assert_no_children();      /* the failed child was reaped */

        /* Not executable: its errno, not an exit status. */
        char tmpl[] = "/tmp/smolvm-test-spawn.XXXXXX";
        int fd = mkstemp(tmpl);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fchmod(fd, 0600), 0);
        safe_close(fd);
        char *argv2[] = { tmpl, NULL };
        o.argv = argv2;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -EACCES);
        (void)unlink(tmpl);
        assert_no_children();

        /* A failed chdir is reported the same way. */
        char *argv3[] = { (char *)"/bin/true", NULL };
        o = (smolvm_spawn_opts){ .argv = argv3, .cwd = "/nonexistent/dir" };
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -ENOENT);
        assert_no_children();

        /* Detached: the error still comes back. */
        o = (smolvm_spawn_opts){ .argv = argv, .detach = true };
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -ENOENT);
        assert_no_children();
}
END_TEST

START_TEST(search_path)
{
        char out[64];
        char *argv[] = { (char *)"true", NULL };
        smolvm_spawn_opts o = { .argv = argv };
        pid_t pid;
        /* Without the PATH lookup "true" is a relative path (no such file here). */
        ck_assert_int_eq(chdir("/"), 0);
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -ENOENT);
        o.search_path = true;
        int st = run_out(&o, out, sizeof(out));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* The lookup uses the child's PATH (envp), not the caller's: the image
 * builder adds /usr/sbin:/sbin to its children's PATH for depmod and mkfs,
 * which a non-root user's own PATH often lacks. */
START_TEST(search_path_child_env)
{
        char dir[] = "/tmp/smolvm-spawn-path.XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        char prog[sizeof(dir) + 32], path_var[sizeof(dir) + 32];
        snprintf(prog, sizeof(prog), "%s/smolvm-only-here", dir);
        int fd = open(prog, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        ck_assert_int_ge(fd, 0);
        static const char script[] = "#!/bin/sh\necho found \"$0\"\n";
        ck_assert_int_eq(write(fd, script, sizeof(script) - 1), (ssize_t)(sizeof(script) - 1));
        ck_assert_int_eq(close(fd), 0);
        /* An entry that does not exist and a file that is not a directory come
         * first: the lookup goes on past them, as execvp's does. */
        snprintf(path_var, sizeof(path_var), "PATH=/nonexistent:/etc/passwd:%s", dir);

        char *argv[] = { (char *)"smolvm-only-here", NULL };
        char *envp[] = { path_var, NULL };
        smolvm_spawn_opts o = { .argv = argv, .envp = envp, .search_path = true };
        char out[256], want[sizeof(dir) + 64];
        int st = run_out(&o, out, sizeof(out));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        snprintf(want, sizeof(want), "found %s\n", prog);
        ck_assert_str_eq(out, want);

        /* The caller's PATH is not searched when envp has one. */
        char *envp_no[] = { (char *)"PATH=/nonexistent", NULL };
        char *argv_true[] = { (char *)"true", NULL };
        pid_t pid;
        o = (smolvm_spawn_opts){ .argv = argv_true, .envp = envp_no, .search_path = true };
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -ENOENT);
        /* A found file without an x bit (not even root runs one): EACCES,
         * as execvp reports it, not the ENOENT of the entries after it. */
        ck_assert_int_eq(chmod(prog, 0644), 0);
        o = (smolvm_spawn_opts){ .argv = argv, .envp = envp, .search_path = true };
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -EACCES);
        ck_assert_int_eq(unlink(prog), 0);
        ck_assert_int_eq(rmdir(dir), 0);
        assert_no_children();
}
END_TEST

/* In a child of the test (fds 3 and 4 may be Check's own): returns the exit
 * code, 0 when the child's fd 3 became what was our fd 4 and the other way
 * round, sources that are each other's targets. */
static int swapped_fds_child(void)
{
        int a[2], b[2];
        if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
                return 10;
        /* All four ends away from 3 and 4 first, then the write ends onto them. */
        int ends[4] = { a[0], a[1], b[0], b[1] };
        for (int i = 0; i < 4; i++)
                if (dup3(ends[i], 40 + i, O_CLOEXEC) != 40 + i)
                        return 11;
        for (int i = 0; i < 4; i++)
                safe_close(ends[i]);
        if (dup2(41, 3) != 3 || dup2(43, 4) != 4) /* a's write end at 3, b's at 4 */
                return 12;
        safe_close(41);
        safe_close(43);
        int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        int fds[5] = { null_fd, null_fd, null_fd, 4, 3 };
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo three >&3; echo four >&4", NULL };
        smolvm_spawn_opts o = { .argv = argv, .fds = fds, .n_fds = 5 };
        pid_t pid;
        if (smolvm_spawn(&o, &pid) < 0)
                return 13;
        safe_close(3);
        safe_close(4);
        char buf_a[64] = "", buf_b[64] = "";
        ssize_t na = read(40, buf_a, sizeof(buf_a) - 1), nb = read(42, buf_b, sizeof(buf_b) - 1);
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return 14;
        if (na != 5 || strcmp(buf_a, "four\n") != 0) /* our fd 3 (a) was its fd 4 */
                return 15;
        if (nb != 6 || strcmp(buf_b, "three\n") != 0)
                return 16;
        return 0;
}

START_TEST(fd_map_swapped)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(swapped_fds_child());
        int st = wait_status(pid);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

START_TEST(other_fds_closed)
{
        /* A caller's fd without O_CLOEXEC must not reach the child: the pipe's
         * write end below is held only by us, so closing it gives EOF at once
         * although the child lives on. */
        int p[2];
        ck_assert_int_eq(pipe(p), 0); /* no O_CLOEXEC on purpose */
        _cleanup_close_ int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        int fds[3] = { null_fd, null_fd, null_fd };
        char *argv[] = { (char *)"/bin/sleep", (char *)"10", NULL };
        smolvm_spawn_opts o = { .argv = argv, .fds = fds, .n_fds = 3 };
        pid_t pid;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), 0);
        safe_close(p[1]);
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        ck_assert_int_eq(poll(&pf, 1, 5000), 1);
        char c;
        ck_assert_int_eq(read(p[0], &c, 1), 0);
        ck_assert_int_eq(kill(pid, 0), 0); /* still running: the EOF was not its exit */

        /* And it has nothing but 0..2: its /proc/PID/fd lists exactly those.
         * sleep's own start-up may hold a file open for a moment (the locale
         * archive: CI once saw "0 1 2 3" under load), so look again for up to
         * 5 s; an fd we leaked would stay. */
        char path[64], out[256];
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        char *ls[] = { (char *)"/bin/ls", path, NULL };
        smolvm_spawn_opts lo = { .argv = ls };
        for (int i = 0; i < 50; i++) {
                int st = run_out(&lo, out, sizeof(out));
                ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                if (strcmp(out, "0\n1\n2\n") == 0)
                        break;
                usleep(100 * 1000);
        }
        ck_assert_str_eq(out, "0\n1\n2\n");
        kill(pid, SIGKILL);
        wait_status(pid);
        safe_close(p[0]);
}
END_TEST

START_TEST(pgroup)
{
        char *argv[] = { (char *)"/bin/sleep", (char *)"10", NULL };
        smolvm_spawn_opts o = { .argv = argv, .new_pgroup = true };
        pid_t pid;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), 0);
        ck_assert_int_eq(getpgid(pid), pid);
        /* kill(-pid) reaches it: what the supervisor does at teardown. */
        ck_assert_int_eq(kill(-pid, SIGKILL), 0);
        int st = wait_status(pid);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

        o.new_pgroup = false;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), 0);
        ck_assert_int_eq(getpgid(pid), getpgrp());
        kill(pid, SIGKILL);
        wait_status(pid);
}
END_TEST

START_TEST(pdeathsig)
{
        /* A middle process spawns `sleep` with pdeathsig SIGKILL, tells us its pid
         * and exits. We are a subreaper, so the orphan comes to us: it must have
         * been killed by SIGKILL, not have slept on. Without pdeathsig it lives. */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        for (int with = 1; with >= 0; with--) {
                int p[2];
                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                pid_t mid = fork();
                ck_assert_int_ge(mid, 0);
                if (mid == 0) {
                        char *argv[] = { (char *)"/bin/sleep", (char *)"30", NULL };
                        smolvm_spawn_opts o = { .argv = argv, .pdeathsig = with ? SIGKILL : 0 };
                        pid_t pid = 0;
                        if (smolvm_spawn(&o, &pid) < 0)
                                _exit(1);
                        (void)!write(p[1], &pid, sizeof(pid));
                        _exit(0);
                }
                safe_close(p[1]);
                pid_t pid = 0;
                ck_assert_int_eq(read(p[0], &pid, sizeof(pid)), (ssize_t)sizeof(pid));
                safe_close(p[0]);
                int st = wait_status(mid);
                ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                if (with) {
                        st = wait_status(pid); /* reparented to us: we may reap it */
                        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
                } else {
                        usleep(200 * 1000);
                        ck_assert_int_eq(waitpid(pid, &st, WNOHANG), 0); /* still sleeping */
                        kill(pid, SIGKILL);
                        wait_status(pid);
                }
        }
}
END_TEST

/* "SigBlk:\t0000000000000000" -> the hex mask. */
static unsigned long long status_mask(const char *status, const char *key)
{
        const char *p = strstr(status, key);
        ck_assert_ptr_nonnull(p);
        return strtoull(p + strlen(key), NULL, 16);
}

START_TEST(signals_clean)
{
        /* Callers block signals for a signalfd and ignore SIGPIPE; exec keeps
         * both. The child must start with neither. */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, &old), 0);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        char *argv[] = { (char *)"/bin/cat", (char *)"/proc/self/status", NULL };
        smolvm_spawn_opts o = { .argv = argv };
        char out[8192];
        int st = run_out(&o, out, sizeof(out));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ck_assert_uint_eq(status_mask(out, "SigBlk:"), 0);
        ck_assert_uint_eq(status_mask(out, "SigIgn:"), 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
}
END_TEST

START_TEST(detach)
{
        /* The child is not ours (never our zombie), in a session and process
         * group of its own, and lives on after we are gone. */
        char *argv[] = { (char *)"/bin/sleep", (char *)"30", NULL };
        smolvm_spawn_opts o = { .argv = argv, .detach = true, .new_pgroup = true };
        pid_t pid;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), 0);
        assert_no_children(); /* the intermediate was reaped, the child is not ours */
        ck_assert_int_eq(kill(pid, 0), 0);
        ck_assert_int_ne(getsid(pid), getsid(0));
        ck_assert_int_eq(getpgid(pid), pid);
        char path[64], stat[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(stat, sizeof(stat), f));
        fclose(f);
        int ppid = 0;
        ck_assert_int_eq(sscanf(strrchr(stat, ')') + 2, "%*c %d", &ppid), 1);
        ck_assert_int_ne(ppid, getpid());
        ck_assert_int_eq(kill(-pid, SIGKILL), 0); /* its own group */

        /* pdeathsig makes no sense for a detached child. */
        o.pdeathsig = SIGKILL;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -EINVAL);
}
END_TEST

START_TEST(env_cwd_nofile)
{
        char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo \"$SMOLVM_T\"; pwd; ulimit -n", NULL };
        char *envp[] = { (char *)"SMOLVM_T=set", (char *)"PATH=/usr/bin:/bin", NULL };
        struct rlimit nofile;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &nofile), 0);
        nofile.rlim_cur = 77;
        smolvm_spawn_opts o = { .argv = argv, .envp = envp, .search_path = true, .cwd = "/tmp", .nofile = &nofile };
        char out[256];
        int st = run_out(&o, out, sizeof(out));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ck_assert_str_eq(out, "set\n/tmp\n77\n");
}
END_TEST

START_TEST(bad_options)
{
        char *argv[] = { (char *)"/bin/true", NULL };
        int fds[SMOLVM_SPAWN_MAX_FDS + 1] = { 0 };
        smolvm_spawn_opts o = { .argv = argv, .fds = fds, .n_fds = SMOLVM_SPAWN_MAX_FDS + 1 };
        pid_t pid;
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -EINVAL);
        o = (smolvm_spawn_opts){ .argv = argv, .n_fds = 1 }; /* fds missing */
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -EINVAL);
        /* An fd that is not open is the child's error, reported. */
        int bad[1] = { 999 };
        o = (smolvm_spawn_opts){ .argv = argv, .fds = bad, .n_fds = 1 };
        ck_assert_int_eq(smolvm_spawn(&o, &pid), -EBADF);
        assert_no_children();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("spawn");
        TCase *tc = tcase_create("spawn");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, exec_error_through_pipe);
        tcase_add_test(tc, search_path);
        tcase_add_test(tc, search_path_child_env);
        tcase_add_test(tc, fd_map_swapped);
        tcase_add_test(tc, other_fds_closed);
        tcase_add_test(tc, pgroup);
        tcase_add_test(tc, pdeathsig);
        tcase_add_test(tc, signals_clean);
        tcase_add_test(tc, detach);
        tcase_add_test(tc, env_cwd_nofile);
        tcase_add_test(tc, bad_options);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
