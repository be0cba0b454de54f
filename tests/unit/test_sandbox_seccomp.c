/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-virtiofsd's seccomp filter (fs/sandbox_seccomp.c), installed for real:
 * each case forks a child that installs it and then makes raw syscalls, so
 * neither libc nor a sanitizer's interceptors stand between the call and the
 * filter. The child reports the first failed expectation on a pipe and exits
 * 1; the escape vectors must kill it with SIGSYS. The files the children
 * touch are checked from the unfiltered parent. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "check_main.h"
#include "fdpass.h"
#include "sandbox_seccomp.h"
#include "util.h"

static char dir[64];
static int report_fd = -1; /* the child's end of the report pipe */

static void setup(void)
{
        snprintf(dir, sizeof(dir), "/tmp/test_seccomp.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        char p[128];
        snprintf(p, sizeof(p), "%s/file", dir);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "host data\n", 10), 10);
        close(fd);
}

static void teardown(void)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

/* In the filtered child: report and leave on the first failure. */
__attribute__((format(printf, 2, 3))) static void expect(bool ok, const char *fmt, ...)
{
        if (ok)
                return;
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n > 0 && write(report_fd, buf, MIN((size_t)n, sizeof(buf) - 1)) < 0) {
                /* the parent then reports a bare exit status */
        }
        _exit(1);
}

/* A raw syscall that must fail with err (errno left to compare). */
#define EXPECT_ERRNO(err, call) do { errno = 0; long _r = (call); int _e = errno; \
        expect(_r == -1 && _e == (err), "%s: got %ld errno %d (%s), want %s", #call, _r, _e, strerror(_e), #err); } while (0)
#define EXPECT_RET(want, call) do { errno = 0; long _r = (long)(call); int _e = errno; \
        expect(_r == (long)(want), "%s: got %ld errno %d (%s), want %ld", #call, _r, _e, strerror(_e), (long)(want)); } while (0)
#define EXPECT_OK(call) do { errno = 0; long _r = (call); int _e = errno; \
        expect(_r >= 0, "%s: got %ld errno %d (%s), want success", #call, _r, _e, strerror(_e)); } while (0)

static const char *path(const char *name)
{
        static char p[4][128];
        static unsigned i;
        char *s = p[i++ % 4];
        snprintf(s, 128, "%s/%s", dir, name);
        return s;
}

typedef void (*child_fn)(void);

/* Forks, installs the filter in the child, runs fn there and _exits (so that
 * no atexit handler runs under the filter). Returns the wait status; on exit 1,
 * the child's message is in msg. */
static int run_filtered(bool read_only, child_fn fn, char *msg, size_t msg_len)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(p[0]);
                report_fd = p[1];
                const char *what = "?";
                int r = sandbox_seccomp_install(read_only, &what);
                expect(r == 0, "sandbox_seccomp_install: %s: %s", what, strerror(-r));
                fn();
                _exit(0);
        }
        close(p[1]);
        ssize_t n = read(p[0], msg, msg_len - 1);
        msg[n > 0 ? n : 0] = '\0';
        close(p[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

static void assert_child_ok(bool read_only, child_fn fn)
{
        char msg[256];
        int status = run_filtered(read_only, fn, msg, sizeof(msg));
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "filtered child: status 0x%x: %s", status, msg);
}

static void ro_child(void)
{
        /* Reading works. */
        char buf[32];
        long fd = syscall(SYS_openat, AT_FDCWD, path("file"), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        expect(fd >= 0, "openat O_RDONLY: %s", strerror(errno));
        struct iovec iov = { buf, sizeof(buf) };
        EXPECT_RET(10, syscall(SYS_preadv, fd, &iov, 1, 0, 0));
        struct stat st;
        EXPECT_OK(syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH));
        EXPECT_OK(syscall(SYS_faccessat2, fd, "", R_OK, AT_EMPTY_PATH | AT_EACCESS));
        /* Every way of changing the share answers EROFS from the kernel. */
        EXPECT_ERRNO(EROFS, syscall(SYS_openat, AT_FDCWD, path("file"), O_WRONLY | O_CLOEXEC));
        EXPECT_ERRNO(EROFS, syscall(SYS_openat, AT_FDCWD, path("file"), O_RDWR | O_CLOEXEC));
        EXPECT_ERRNO(EROFS, syscall(SYS_openat, AT_FDCWD, path("file"), O_RDONLY | O_TRUNC | O_CLOEXEC));
        EXPECT_ERRNO(EROFS, syscall(SYS_openat, AT_FDCWD, path("new"), O_RDONLY | O_CREAT | O_CLOEXEC, 0644));
        EXPECT_ERRNO(EROFS, syscall(SYS_openat, AT_FDCWD, dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
        EXPECT_ERRNO(EROFS, syscall(SYS_pwritev, fd, &iov, 1, 0, 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_ftruncate, fd, 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_fallocate, fd, 0, 0, 4096));
        EXPECT_ERRNO(EROFS, syscall(SYS_mkdirat, AT_FDCWD, path("d"), 0755));
        EXPECT_ERRNO(EROFS, syscall(SYS_mknodat, AT_FDCWD, path("fifo"), S_IFIFO | 0600, 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_symlinkat, "/etc/passwd", AT_FDCWD, path("sl")));
        EXPECT_ERRNO(EROFS, syscall(SYS_linkat, AT_FDCWD, path("file"), AT_FDCWD, path("hl"), 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_unlinkat, AT_FDCWD, path("file"), 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_renameat2, AT_FDCWD, path("file"), AT_FDCWD, path("moved"), 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_renameat, AT_FDCWD, path("file"), AT_FDCWD, path("moved")));
        EXPECT_ERRNO(EROFS, syscall(SYS_fchmodat, AT_FDCWD, path("file"), 0777));
        EXPECT_ERRNO(EROFS, syscall(SYS_utimensat, AT_FDCWD, path("file"), NULL, 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_fsetxattr, fd, "user.x", "1", 1, 0));
        EXPECT_ERRNO(EROFS, syscall(SYS_fremovexattr, fd, "user.x"));
        EXPECT_ERRNO(EROFS, syscall(SYS_fsync, fd));
        syscall(SYS_close, fd);
}

START_TEST(test_read_only)
{
        assert_child_ok(true, ro_child);
        /* Nothing changed on the host. */
        struct stat st;
        ck_assert_int_eq(stat(path("file"), &st), 0);
        ck_assert_int_eq(st.st_size, 10);
        ck_assert_int_eq(st.st_mode & 07777, 0644);
        const char *gone[] = { "new", "d", "fifo", "sl", "hl", "moved" };
        for (size_t i = 0; i < ARRAY_SIZE(gone); i++)
                ck_assert_msg(lstat(path(gone[i]), &st) < 0 && errno == ENOENT, "%s exists", gone[i]);
}
END_TEST

/* With --rw: the libc calls the server makes, as it makes them (the wrapper,
 * not us, picks the syscall: renameat2 without flags is renameat, faccessat is
 * faccessat2, fstat is newfstatat). */
static void rw_child(void)
{
        int dfd = openat(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        expect(dfd >= 0, "openat O_PATH: %s", strerror(errno));
        struct open_how how = { .flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, .mode = 0644,
                                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        int fd = (int)syscall(SYS_openat2, dfd, "new", &how, sizeof(how));
        expect(fd >= 0, "openat2 O_CREAT: %s", strerror(errno));
        struct iovec iov = { (void *)"written\n", 8 };
        EXPECT_RET(8, pwritev(fd, &iov, 1, 0));
        EXPECT_OK(fallocate(fd, 0, 0, 8192));
        EXPECT_OK(ftruncate(fd, 8));
        EXPECT_OK(fsync(fd));
        EXPECT_OK(fdatasync(fd));
        EXPECT_OK(fsetxattr(fd, "user.k", "v", 1, 0));
        EXPECT_OK(fremovexattr(fd, "user.k"));
        struct stat st;
        EXPECT_OK(fstat(fd, &st));
        close(fd);
        EXPECT_OK(mkdirat(dfd, "d", 0755));
        EXPECT_OK(mknodat(dfd, "fifo", S_IFIFO | 0600, 0));
        EXPECT_OK(symlinkat("target", dfd, "sl"));
        EXPECT_OK(linkat(dfd, "file", dfd, "hl", 0));
        EXPECT_OK(renameat2(dfd, "new", dfd, "tmp", RENAME_NOREPLACE));
        EXPECT_OK(renameat2(dfd, "tmp", dfd, "moved", 0));
        EXPECT_OK(fchmodat(dfd, "moved", 0600, 0));
        EXPECT_OK(utimensat(dfd, "moved", NULL, AT_SYMLINK_NOFOLLOW));
        EXPECT_OK(faccessat(dfd, "", W_OK, AT_EMPTY_PATH | AT_EACCESS));
        EXPECT_OK(unlinkat(dfd, "fifo", 0));
        close(dfd);
        /* Ownership is never changed, not even with --rw. */
        EXPECT_ERRNO(ENOSYS, syscall(SYS_fchownat, AT_FDCWD, path("moved"), 0, 0, 0));
}

START_TEST(test_read_write)
{
        assert_child_ok(false, rw_child);
        struct stat st;
        ck_assert_int_eq(stat(path("moved"), &st), 0);
        ck_assert_int_eq(st.st_size, 8);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(stat(path("d"), &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_int_eq(lstat(path("sl"), &st), 0);
        ck_assert(S_ISLNK(st.st_mode));
        ck_assert_int_eq(stat(path("file"), &st), 0);
        ck_assert_int_eq(st.st_nlink, 2);
        ck_assert(lstat(path("fifo"), &st) < 0 && errno == ENOENT);
}
END_TEST

/* Made before the filter, as smolvm-virtiofsd makes it before. */
static int listen_fd = -1;

/* What the serving process does besides file operations, through libc as the
 * server calls it: accept the front-end, vhost-user messages carrying fds,
 * mapping guest memory, eventfds, epoll and poll; then the read-side file
 * calls, re-opening an O_PATH fd through /proc/self/fd. */
static void serve_child(void)
{
        int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        expect(conn >= 0, "accept4: %s", strerror(errno));
        int fl = fcntl(conn, F_GETFL);
        expect(fl >= 0, "fcntl F_GETFL: %s", strerror(errno));
        EXPECT_RET(0, fcntl(conn, F_SETFL, fl | O_NONBLOCK));
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        expect(efd >= 0, "eventfd: %s", strerror(errno));
        int ep = epoll_create1(EPOLL_CLOEXEC);
        expect(ep >= 0, "epoll_create1: %s", strerror(errno));
        struct epoll_event ev = { .events = EPOLLIN };
        EXPECT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev));
        struct epoll_event got;
        EXPECT_RET(1, epoll_wait(ep, &got, 1, 5000));
        /* A message with a memory fd, as SET_MEM_TABLE brings (received as
         * vhost_user.c receives it). */
        char byte;
        int mfd;
        size_t n_fds = 0;
        ssize_t n = fdpass_recv(conn, &byte, 1, &mfd, 1, &n_fds, MSG_DONTWAIT);
        expect(n == 1 && n_fds == 1, "fdpass_recv: got %zd with %zu fds (%s), want 1 byte and 1 fd", n, n_fds,
               n < 0 ? strerror((int)-n) : "no error");
        struct stat st;
        EXPECT_OK(fstat(mfd, &st));
        void *mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mfd, 0);
        expect(mem != MAP_FAILED, "mmap MAP_SHARED: %s", strerror(errno));
        memcpy(mem, "guest", 5);
        EXPECT_OK(munmap(mem, (size_t)st.st_size));
        uint64_t one = 1;
        EXPECT_RET(8, write(efd, &one, sizeof(one)));
        struct pollfd pfd = { .fd = efd, .events = POLLIN };
        EXPECT_RET(1, poll(&pfd, 1, 0));
        EXPECT_RET(8, read(efd, &one, sizeof(one)));
        EXPECT_RET(2, send(conn, "ok", 2, MSG_NOSIGNAL));
        struct timespec ts;
        EXPECT_OK(clock_gettime(CLOCK_MONOTONIC, &ts));

        /* Reads, as fs_ops_read.c and fs_ops_dir.c make them. (The server
         * opens /proc/self/fd before the filter; "self" is the child here.) */
        int proc_fd_dir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
        expect(proc_fd_dir >= 0, "open /proc/self/fd: %s", strerror(errno));
        int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        expect(root >= 0, "open O_PATH: %s", strerror(errno));
        struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        int pinned = (int)syscall(SYS_openat2, root, "file", &how, sizeof(how));
        expect(pinned >= 0, "openat2: %s", strerror(errno));
        EXPECT_OK(fstatat(pinned, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
        EXPECT_OK(faccessat(pinned, "", R_OK, AT_EMPTY_PATH | AT_EACCESS));
        char name[16];
        snprintf(name, sizeof(name), "%d", pinned);
        int fd = openat(proc_fd_dir, name, O_RDONLY | O_NOCTTY | O_CLOEXEC);
        expect(fd >= 0, "re-open through /proc/self/fd: %s", strerror(errno));
        char buf[32];
        struct iovec riov = { buf, sizeof(buf) };
        EXPECT_RET(10, preadv(fd, &riov, 1, 0));
        EXPECT_RET(0, lseek(fd, 0, SEEK_DATA));
        struct statfs sfs;
        EXPECT_OK(fstatfs(fd, &sfs));
        EXPECT_OK(flistxattr(fd, NULL, 0));
        EXPECT_ERRNO(ENODATA, fgetxattr(fd, "user.none", NULL, 0));
        close(fd);
        int dfd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        expect(dfd >= 0, "openat .: %s", strerror(errno));
        char dents[4096];
        EXPECT_OK(syscall(SYS_getdents64, dfd, dents, sizeof(dents)));
        EXPECT_RET(0, lseek(dfd, 0, SEEK_SET));
        close(dfd);
        EXPECT_ERRNO(EROFS, symlinkat("file", root, "link"));
        close(pinned);
        close(root);
}

START_TEST(test_serving)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(listen_fd, 0);
        ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(listen_fd, 1), 0);
        /* The front-end: connects and sends one byte with a memfd. */
        int peer_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(peer_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        int mfd = memfd_create("guest-ram", MFD_CLOEXEC);
        ck_assert_int_ge(mfd, 0);
        ck_assert_int_eq(ftruncate(mfd, 1 << 20), 0);
        ck_assert_int_eq(fdpass_send(peer_fd, "m", 1, &mfd, 1, 0), 1);

        assert_child_ok(true, serve_child);
        char reply[2];
        ck_assert_int_eq(read(peer_fd, reply, 2), 2);
        ck_assert_int_eq(memcmp(reply, "ok", 2), 0);
        char ram[5];
        ck_assert_int_eq(pread(mfd, ram, 5, 0), 5);
        ck_assert_int_eq(memcmp(ram, "guest", 5), 0);
        close(mfd);
        close(peer_fd);
        close(listen_fd);
}
END_TEST

/* Stream mode (smolvm-virtiofsd --stream-fd, FUSE over vsock): the fuse_mount
 * request (write), waiting for the agent's answer (poll, read, clock_gettime),
 * then FUSE replies with send(MSG_NOSIGNAL), and a peer that went away is an
 * EPIPE, not a signal. */
static int stream_fd = -1;

static void stream_child(void)
{
        struct timespec ts;
        EXPECT_OK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts));
        EXPECT_RET(7, syscall(SYS_write, stream_fd, "request", 7L));
        struct pollfd pf = { .fd = stream_fd, .events = POLLIN };
        EXPECT_RET(1, syscall(SYS_poll, &pf, 1L, 10000L));
        char buf[8];
        EXPECT_RET(6, syscall(SYS_read, stream_fd, buf, 6L));
        expect(memcmp(buf, "answer", 6) == 0, "read the answer");
        EXPECT_RET(5, syscall(SYS_sendto, stream_fd, "reply", 5L, (long)MSG_NOSIGNAL, NULL, 0L));
        /* The peer shut its side: EOF on read, EPIPE on send. */
        EXPECT_RET(1, syscall(SYS_poll, &pf, 1L, 10000L));
        EXPECT_RET(0, syscall(SYS_read, stream_fd, buf, 1L));
        EXPECT_ERRNO(EPIPE, syscall(SYS_sendto, stream_fd, "x", 1L, (long)MSG_NOSIGNAL, NULL, 0L));
}

START_TEST(test_stream_serving)
{
        int sp[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        stream_fd = sp[1];
        ck_assert_int_eq(write(sp[0], "answer", 6), 6);
        /* The peer reads the request and the reply, then shuts its end: the
         * child must then see EOF and EPIPE. */
        pid_t helper = fork();
        ck_assert_int_ge(helper, 0);
        if (helper == 0) {
                char req[7], rep[5];
                if (read(sp[0], req, 7) != 7 || read(sp[0], rep, 5) != 5 || memcmp(rep, "reply", 5) != 0)
                        _exit(1);
                shutdown(sp[0], SHUT_RDWR);
                _exit(0);
        }
        close(sp[0]);
        assert_child_ok(true, stream_child);
        int status;
        ck_assert_int_eq(waitpid(helper, &status, 0), helper);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "peer: status 0x%x", status);
        close(sp[1]);
}
END_TEST

/* Off the list: ENOSYS, the process lives on. */
static void refused_child(void)
{
        EXPECT_ERRNO(ENOSYS, syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_getpid));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_kill, 1, 0));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, NULL));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_chdir, "/"));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_open, "/", O_RDONLY));
        /* A new process, or a thread in new namespaces. */
        EXPECT_ERRNO(ENOSYS, syscall(SYS_clone, (long)SIGCHLD, 0L, NULL, NULL, 0L));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_clone, (long)(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_NEWNET),
                                     0L, NULL, NULL, 0L));
        struct clone_args ca = { .flags = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD };
        EXPECT_ERRNO(ENOSYS, syscall(SYS_clone3, &ca, sizeof(ca)));
        /* No executable memory. */
        EXPECT_ERRNO(ENOSYS, (long)syscall(SYS_mmap, NULL, 4096L, (long)(PROT_READ | PROT_EXEC),
                                           (long)(MAP_PRIVATE | MAP_ANONYMOUS), -1L, 0L));
        long m = syscall(SYS_mmap, NULL, 4096L, (long)(PROT_READ | PROT_WRITE), (long)(MAP_PRIVATE | MAP_ANONYMOUS),
                         -1L, 0L);
        expect(m != -1, "mmap PROT_READ|PROT_WRITE: %s", strerror(errno));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_mprotect, m, 4096L, (long)(PROT_READ | PROT_EXEC)));
        EXPECT_OK(syscall(SYS_mprotect, m, 4096L, (long)PROT_READ));
        EXPECT_OK(syscall(SYS_munmap, m, 4096L));
        /* fcntl: only the file status flags. */
        long fl = syscall(SYS_fcntl, 0L, (long)F_GETFL);
        expect(fl >= 0, "fcntl F_GETFL: %s", strerror(errno));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_fcntl, 0L, (long)F_DUPFD, 100L));
        EXPECT_ERRNO(ENOSYS, syscall(SYS_fcntl, 0L, (long)F_SETOWN, 1L));
}

START_TEST(test_refused_with_enosys)
{
        assert_child_ok(false, refused_child);
}
END_TEST

static void *thread_main(void *arg)
{
        *(int *)arg = 42;
        return NULL;
}

/* The queue worker's life: pthread_create (clone3 refused, clone with
 * CLONE_THREAD allowed), join, again. */
static void threads_child(void)
{
        for (int i = 0; i < 3; i++) {
                int v = 0;
                pthread_t t;
                int r = pthread_create(&t, NULL, thread_main, &v);
                expect(r == 0, "pthread_create: %s", strerror(r));
                expect(pthread_join(t, NULL) == 0, "pthread_join");
                expect(v == 42, "the thread did not run");
        }
        /* malloc big enough for mmap, realloc'd (mremap), freed. */
        void *p = malloc(1 << 20);
        expect(p != NULL, "malloc");
        p = realloc(p, 4 << 20);
        expect(p != NULL, "realloc");
        free(p);
}

START_TEST(test_threads)
{
        assert_child_ok(true, threads_child);
}
END_TEST

/* Each escape vector, made with harmless arguments: SIGSYS kills the child
 * before the kernel looks at them. */
static int escape_index;

static void escape_child(void)
{
        static const char *const argv[] = { "/bin/true", NULL };
        switch (escape_index) {
        case 0: syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL); break;
        case 1: syscall(SYS_umount2, "/tmp", 0L); break;
        case 2: syscall(SYS_pivot_root, ".", "."); break;
        case 3: syscall(SYS_unshare, (long)CLONE_NEWUSER); break;
        case 4: syscall(SYS_setns, 0L, 0L); break;
        case 5: syscall(SYS_execve, argv[0], argv, NULL); break;
        case 6: syscall(SYS_ptrace, 0L, 0L, NULL, NULL); break;
        case 7: syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0L); break;
        case 8: syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0L); break;
        case 9: syscall(SYS_bpf, 0L, NULL, 0L); break;
        case 10: syscall(SYS_keyctl, 0L, 0L, 0L, 0L, 0L); break;
        case 11: syscall(SYS_io_uring_setup, 1L, NULL); break;
        case 12: syscall(SYS_userfaultfd, 0L); break;
        case 13: syscall(SYS_chroot, "/"); break;
        default: expect(false, "no escape vector %d", escape_index);
        }
        expect(false, "escape vector %d returned: errno %d (%s)", escape_index, errno, strerror(errno));
}
#define N_ESCAPES 14

START_TEST(test_escape_vectors_kill)
{
        char msg[256];
        escape_index = _i;
        int status = run_filtered(false, escape_child, msg, sizeof(msg));
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                      "escape vector %d: status 0x%x (want SIGSYS): %s", _i, status, msg);
}
END_TEST

#if defined(__x86_64__)
/* i386's getpid (20) through int 0x80: the i386 ABI of an x86-64 process. */
static long int80_getpid(void)
{
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        return r;
}

static void foreign_arch_child(void)
{
        int80_getpid();
        expect(false, "the i386 syscall returned");
}

START_TEST(test_foreign_arch_kills)
{
        /* Only meaningful where the kernel runs i386 syscalls at all. */
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(int80_getpid() > 0 ? 0 : 1);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return; /* no IA32 emulation here: nothing to filter */
        char msg[256];
        status = run_filtered(false, foreign_arch_child, msg, sizeof(msg));
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status 0x%x (want SIGSYS): %s", status, msg);
}
END_TEST
#endif

int main(void)
{
        Suite *s = suite_create("sandbox_seccomp");
        TCase *tc = tcase_create("sandbox_seccomp");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_read_only);
        tcase_add_test(tc, test_read_write);
        tcase_add_test(tc, test_serving);
        tcase_add_test(tc, test_stream_serving);
        tcase_add_test(tc, test_refused_with_enosys);
        tcase_add_test(tc, test_threads);
        tcase_add_loop_test(tc, test_escape_vectors_kill, 0, N_ESCAPES);
#if defined(__x86_64__)
        tcase_add_test(tc, test_foreign_arch_kills);
#endif
        suite_add_tcase(s, tc);
        return run_suite(s);
}
