/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-virtiofsd's seccomp filter. The namespaces and pivot_root limit which
 * files the back-end can reach; this limits which kernel interfaces it can
 * reach, so that a guest who turned a parser bug into code execution finds no
 * mount, no new namespace, no exec, no ptrace, no file handles and none of the
 * large kernel surfaces (bpf, keyctl, io_uring, userfaultfd, perf).
 *
 * Actions
 *  - Allowed: the lists below, some with argument checks.
 *  - Anything else fails with ENOSYS. The server never calls those; if glibc
 *    does (a newer libc trying a newer syscall first), ENOSYS is the answer its
 *    fallbacks expect. pthread_create relies on that today: glibc tries clone3,
 *    whose flags sit in memory a filter cannot read, and falls back to clone,
 *    whose flags it can. Failing one request beats killing the process: QEMU 7.2
 *    hangs every guest access to a mount whose back-end died.
 *  - The escape vectors in kill_list kill the whole process (SIGSYS; no core:
 *    RLIMIT_CORE is 0). No code path of ours reaches them, so a call means the
 *    process is already compromised: it must not get to try the next one.
 *  - Any architecture but the native one (i386 int 0x80, x32 syscall numbers)
 *    kills the process: the syscall numbers below mean nothing there.
 *
 * The allow list is what the serving process was seen doing (strace -f over
 * tests/integration/t_mounts.sh, after "READY") checked against the code paths.
 * It is installed after smolvm_fs_new() (RLIMIT_NOFILE, /proc/self/fd) and
 * before accept4() (stream mode: before the fuse_mount request), so the
 * one-shot setup that follows is listed too:
 *  - vhost-user: accept4 (the one front-end), recvmsg (messages carrying the
 *    memory-region and eventfd fds), sendto (send() of replies), fcntl
 *    F_GETFL/F_SETFL only (O_NONBLOCK on the socket and the kick fds);
 *  - stream mode (--stream-fd, FUSE over vsock): write of the fuse_mount
 *    request, poll/read of the agent's answer and of FUSE requests, sendto
 *    (send(MSG_NOSIGNAL) of replies), clock_gettime for the answer's deadline:
 *    all on the lists below already;
 *  - event loop and worker: epoll_create1/epoll_ctl/epoll_wait on the main
 *    thread, poll on the queue worker, eventfd2 (its stop fd), read/write of
 *    eventfd counters (kick, call, err) and of stderr;
 *  - memory: mmap of guest memory regions (MAP_SHARED), thread stacks and
 *    malloc arenas, munmap, mprotect (stack and arena growth), mremap (realloc
 *    of mmapped chunks), madvise (a thread frees its stack), brk. mmap and
 *    mprotect may never add PROT_EXEC: nothing of ours maps code after start-up,
 *    so injected bytes cannot be made executable that way;
 *  - threads (the queue worker, restarted on every queue start/stop): clone
 *    with CLONE_THREAD and without any CLONE_NEW* flag, set_robust_list and
 *    rseq (glibc's per-thread set-up), futex (pthread_join, mutexes),
 *    rt_sigprocmask (signals stay on the main thread), rt_sigaction (glibc
 *    installs its SIGSETXID handler at the first pthread_create), rt_sigreturn,
 *    restart_syscall, exit, exit_group;
 *  - clock_gettime: the vDSO answers it, unless the clocksource has no vDSO
 *    mode, as on some virtualised hosts;
 *  - reading the share (both modes): openat2 (every guest-named lookup, with
 *    RESOLVE_BENEATH), openat (re-opening a pinned O_PATH fd through the
 *    private /proc/self/fd, and "." of a directory), close, newfstatat (glibc's
 *    fstat and fstatat), fstatfs, getdents64, lseek (READDIR offsets, LSEEK
 *    with SEEK_DATA/HOLE), readlinkat, preadv, fgetxattr, flistxattr,
 *    faccessat2 (glibc's faccessat: ACCESS with AT_EMPTY_PATH);
 *  - changing the share, allow_rw: pwritev, ftruncate, fallocate, fsync,
 *    fdatasync, mkdirat, mknodat, symlinkat, linkat, unlinkat, renameat2 and
 *    renameat (Debian's glibc turns renameat2 without flags into renameat),
 *    fchmodat, utimensat, fsetxattr, fremovexattr. With --read-only these
 *    answer EROFS, and so does an openat asking for write access, creation or
 *    truncation: even a server bug that forgot its own EROFS check could not
 *    write. (openat2's flags are in memory the filter cannot read; the share's
 *    read-only bind mount refuses those.)
 * Not there on purpose: fchownat/fchown (the server refuses ownership changes
 * before any syscall), socket/connect/bind (nothing new to talk to), kill and
 * tgkill, prctl, setrlimit/prlimit64, chdir, and the legacy non-*at calls.
 * Adding a syscall to the server? Add it here, or the guest gets ENOSYS. */
#include "sandbox_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/mman.h>

#include "util.h"

typedef struct syscall_rule {
        const char *name;
        int nr;
} syscall_rule;

#define RULE(n) { #n, SCMP_SYS(n) }

static const syscall_rule allow_always[] = {
        /* vhost-user socket, event loop, queue worker */
        RULE(accept4), RULE(recvmsg), RULE(sendto),
        RULE(epoll_create1), RULE(epoll_ctl), RULE(epoll_wait), RULE(poll), RULE(eventfd2),
        RULE(read), RULE(write),
        /* memory (mmap, mprotect: below, without PROT_EXEC) */
        RULE(munmap), RULE(mremap), RULE(madvise), RULE(brk),
        /* threads (clone: below, threads only) */
        RULE(set_robust_list), RULE(rseq), RULE(futex),
        RULE(rt_sigprocmask), RULE(rt_sigaction), RULE(rt_sigreturn), RULE(restart_syscall),
        RULE(exit), RULE(exit_group),
        RULE(clock_gettime),
        /* reading the share (openat: below) */
        RULE(openat2), RULE(close), RULE(newfstatat), RULE(fstatfs), RULE(getdents64), RULE(lseek),
        RULE(readlinkat), RULE(preadv), RULE(fgetxattr), RULE(flistxattr), RULE(faccessat2),
};

/* The sanitizer runtimes of the ASan/UBSan CI build, not in production: ASan
 * switches signal stacks before every noreturn call and in every new thread. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifdef SANITIZER_BUILD
static const syscall_rule allow_sanitizer[] = {
        RULE(sigaltstack),
};
#endif

/* Allowed with --rw, EROFS with --read-only. */
static const syscall_rule allow_rw[] = {
        RULE(pwritev), RULE(ftruncate), RULE(fallocate), RULE(fsync), RULE(fdatasync),
        RULE(mkdirat), RULE(mknodat), RULE(symlinkat), RULE(linkat), RULE(unlinkat),
        RULE(renameat), RULE(renameat2), RULE(fchmodat), RULE(utimensat), RULE(fsetxattr), RULE(fremovexattr),
};

/* Ways out of the sandbox, or into large kernel attack surfaces. */
static const syscall_rule kill_list[] = {
        /* the mount table and the root */
        RULE(mount), RULE(umount2), RULE(pivot_root), RULE(chroot),
        RULE(fsopen), RULE(fsconfig), RULE(fsmount), RULE(fspick), RULE(move_mount), RULE(open_tree),
        RULE(mount_setattr),
        /* namespaces, other programs, other processes */
        RULE(unshare), RULE(setns), RULE(execve), RULE(execveat),
        RULE(ptrace), RULE(process_vm_readv), RULE(process_vm_writev), RULE(pidfd_getfd),
        /* file handles resolve outside any mount (the classic container escape) */
        RULE(open_by_handle_at), RULE(name_to_handle_at),
        /* kernel surfaces; io_uring would also run syscalls this filter never sees */
        RULE(bpf), RULE(keyctl), RULE(add_key), RULE(request_key), RULE(userfaultfd),
        RULE(perf_event_open), RULE(io_uring_setup), RULE(io_uring_enter), RULE(io_uring_register),
        RULE(init_module), RULE(finit_module), RULE(delete_module), RULE(kexec_load), RULE(kexec_file_load),
};

/* clone flags a thread may not carry: each makes a new namespace. */
#define CLONE_NEW_ANY ((uint64_t)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                                  CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP))
/* openat flags that write: access mode, creation, truncation (O_TMPFILE needs
 * a write access mode). */
static const int open_write_flags[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC };

static void ctx_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

static int add_list(scmp_filter_ctx ctx, uint32_t action, const syscall_rule *rules, size_t n,
                    const char **ret_what)
{
        for (size_t i = 0; i < n; i++) {
                int r = seccomp_rule_add(ctx, action, rules[i].nr, 0);
                if (r < 0) {
                        *ret_what = rules[i].name;
                        return r;
                }
        }
        return 0;
}

#define ADD(what, ...) do { int _r = seccomp_rule_add(ctx, __VA_ARGS__); \
        if (_r < 0) { *ret_what = (what); return _r; } } while (0)

int sandbox_seccomp_install(bool read_only, const char **ret_what)
{
        const char *what_unused;
        if (!ret_what)
                ret_what = &what_unused;

        _cleanup_(ctx_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
        if (!ctx) {
                *ret_what = "seccomp_init";
                return -ENOMEM;
        }
        int r;
        /* The kernel's own errno when loading fails, not libseccomp's ECANCELED. */
        if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1)) < 0 ||
            (r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
            /* Single-threaded when we are called; should that change, no thread
             * may be left unfiltered. */
            (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
                *ret_what = "seccomp_attr_set";
                return r;
        }

        r = add_list(ctx, SCMP_ACT_ALLOW, allow_always, ARRAY_SIZE(allow_always), ret_what);
        if (r < 0)
                return r;
#ifdef SANITIZER_BUILD
        r = add_list(ctx, SCMP_ACT_ALLOW, allow_sanitizer, ARRAY_SIZE(allow_sanitizer), ret_what);
        if (r < 0)
                return r;
#endif
        r = add_list(ctx, read_only ? SCMP_ACT_ERRNO(EROFS) : SCMP_ACT_ALLOW, allow_rw, ARRAY_SIZE(allow_rw),
                     ret_what);
        if (r < 0)
                return r;
        r = add_list(ctx, SCMP_ACT_KILL_PROCESS, kill_list, ARRAY_SIZE(kill_list), ret_what);
        if (r < 0)
                return r;

        ADD("mmap", SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2_32(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        ADD("mprotect", SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2_32(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        ADD("clone", SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
            SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_NEW_ANY, CLONE_THREAD));
        ADD("fcntl", SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1_32(SCMP_CMP_EQ, F_GETFL));
        ADD("fcntl", SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1_32(SCMP_CMP_EQ, F_SETFL));
        if (!read_only) {
                ADD("openat", SCMP_ACT_ALLOW, SCMP_SYS(openat), 0);
        } else {
                int w = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;
                ADD("openat", SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, SCMP_A2_32(SCMP_CMP_MASKED_EQ, (uint32_t)w, 0));
                /* Disjoint from the rule above: one flag set is enough. */
                for (size_t i = 0; i < ARRAY_SIZE(open_write_flags); i++)
                        ADD("openat", SCMP_ACT_ERRNO(EROFS), SCMP_SYS(openat), 1,
                            SCMP_A2_32(SCMP_CMP_MASKED_EQ, (uint32_t)open_write_flags[i],
                                       (uint32_t)open_write_flags[i]));
        }

        r = seccomp_load(ctx);
        if (r < 0) {
                *ret_what = "seccomp_load";
                return r;
        }
        return 0;
}
