# Run in the guest by t_mounts.sh (as root): try every way to change a
# read-only share, and every way to read past its root, printing one line each:
#   REFUSED <name>: <errno name> <message>   the attempt failed (wanted)
#   ALLOWED <name>                           it succeeded (a test failure)
#   ERROR <name>: <exception>                the attempt itself is broken
#   CHECK <name> PASS|FAIL <detail>          a read-side property
# argv: share dir, hash of the host's /etc/shadow, the marker file name in the
# share's host parent dir, the marker's secret content, hash of sub/deeper/x.bin.
import errno
import hashlib
import mmap
import os
import resource
import stat
import subprocess
import sys

W, HOST_SHADOW_SHA, MARKER, MARKER_SECRET, BIN_SHA = sys.argv[1:6]
F = W + "/file.txt"


def ename(e):
    return errno.errorcode.get(e, str(e))


def attempt(name, fn):
    try:
        fn()
        print(f"ALLOWED {name}", flush=True)
    except OSError as e:
        print(f"REFUSED {name}: {ename(e.errno)} {e.strerror}", flush=True)
    except Exception as e:  # noqa: BLE001 - any other failure is a broken attempt
        print(f"ERROR {name}: {type(e).__name__}: {e}", flush=True)


def check(name, ok, detail=""):
    print(f"CHECK {name} {'PASS' if ok else 'FAIL'} {detail}", flush=True)


def rd(flags=0):
    return os.open(F, os.O_RDONLY | flags)


def write_fd(flags):
    fd = os.open(F, flags)
    try:
        os.write(fd, b"PWNED")
    finally:
        os.close(fd)


def sh(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(errno.EPERM, f"{argv[0]} exit {r.returncode}: {r.stderr.strip()}")


def fallocate_rdonly():
    fd = rd()
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
    finally:
        os.close(fd)


def fallocate_rdwr():
    fd = os.open(F, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
    finally:
        os.close(fd)


def copy_range(dst_flags):
    with open("/tmp/cfr-src", "wb") as f:
        f.write(b"PWNED" * 100)
    src = os.open("/tmp/cfr-src", os.O_RDONLY)
    dst = os.open(F, dst_flags)
    try:
        n = os.copy_file_range(src, dst, 500, 0, 0)
        if n <= 0:
            raise OSError(errno.EIO, f"copy_file_range copied {n}")
    finally:
        os.close(src)
        os.close(dst)


def mmap_write(flags):
    fd = os.open(F, flags)
    try:
        m = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        m[0:5] = b"PWNED"
        m.flush()  # msync
        m.close()
    finally:
        os.close(fd)


def proc_fd_reopen(flags):
    fd = rd()
    try:
        fd2 = os.open(f"/proc/self/fd/{fd}", flags)
        os.write(fd2, b"PWNED")
        os.close(fd2)
    finally:
        os.close(fd)


def ftruncate_rdonly():
    fd = rd()
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def mkdir_dirfd():
    d = os.open(W, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir("via-dirfd", dir_fd=d)
    finally:
        os.close(d)


def rename_from_guest():
    with open("/tmp/guest-file", "w") as f:
        f.write("from the guest")
    os.rename("/tmp/guest-file", W + "/guest-file")


def create(path, flags, mode=0o644):
    os.close(os.open(path, flags, mode))


MUTATIONS = [
    ("open O_WRONLY+write", lambda: write_fd(os.O_WRONLY)),
    ("open O_RDWR+write", lambda: write_fd(os.O_RDWR)),
    ("open O_APPEND+write", lambda: write_fd(os.O_WRONLY | os.O_APPEND)),
    ("open O_WRONLY|O_TRUNC", lambda: os.close(os.open(F, os.O_WRONLY | os.O_TRUNC))),
    ("open O_RDONLY|O_TRUNC", lambda: os.close(os.open(F, os.O_RDONLY | os.O_TRUNC))),
    ("truncate to 0", lambda: os.truncate(F, 0)),
    ("truncate to 1 MiB", lambda: os.truncate(F, 1 << 20)),
    ("ftruncate on an O_RDONLY fd", ftruncate_rdonly),
    ("create", lambda: create(W + "/new.txt", os.O_CREAT | os.O_WRONLY)),
    ("create O_EXCL in a subdir", lambda: create(W + "/sub/new.txt", os.O_CREAT | os.O_EXCL | os.O_WRONLY)),
    ("create with O_RDONLY", lambda: create(W + "/new-ro.txt", os.O_CREAT | os.O_RDONLY)),
    ("mkfifo", lambda: os.mkfifo(W + "/newfifo")),
    ("mknod char device", lambda: os.mknod(W + "/newdev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))),
    ("mknod regular file", lambda: os.mknod(W + "/newreg", 0o600 | stat.S_IFREG)),
    ("mkdir", lambda: os.mkdir(W + "/newdir")),
    ("mkdirat via a dir fd", mkdir_dirfd),
    ("rmdir", lambda: os.rmdir(W + "/emptydir")),
    ("unlink file", lambda: os.unlink(F)),
    ("unlink empty file", lambda: os.unlink(W + "/empty")),
    ("unlink symlink", lambda: os.unlink(W + "/link_shadow")),
    ("unlink fifo", lambda: os.unlink(W + "/fifo")),
    ("rename within", lambda: os.rename(F, W + "/renamed.txt")),
    ("rename over another file", lambda: os.rename(F, W + "/empty")),
    ("rename a directory", lambda: os.rename(W + "/sub", W + "/sub2")),
    ("rename out of the share", lambda: os.rename(F, "/tmp/stolen.txt")),
    ("rename into the share", rename_from_guest),
    ("hard link within", lambda: os.link(F, W + "/hard.txt")),
    ("hard link out of the share", lambda: os.link(F, "/tmp/hard.txt")),
    ("symlink", lambda: os.symlink("/etc/passwd", W + "/newlink")),
    ("chmod file", lambda: os.chmod(F, 0o777)),
    ("chmod dir", lambda: os.chmod(W + "/sub", 0o777)),
    ("chown", lambda: os.chown(F, 1000, 1000)),
    ("lchown symlink", lambda: os.lchown(W + "/link_shadow", 1000, 1000)),
    ("utimes", lambda: os.utime(F, (0, 0))),
    ("utimes now", lambda: os.utime(F)),
    ("touch -d", lambda: sh(["touch", "-d", "2000-01-01", F])),
    ("setxattr user.*", lambda: os.setxattr(F, "user.evil", b"1")),
    ("setxattr trusted.*", lambda: os.setxattr(F, "trusted.evil", b"1")),
    ("removexattr", lambda: os.removexattr(F, "user.smolvm")),
    ("fallocate on an O_RDONLY fd", fallocate_rdonly),
    ("fallocate on an O_RDWR fd", fallocate_rdwr),
    ("copy_file_range into an O_RDONLY fd", lambda: copy_range(os.O_RDONLY)),
    ("copy_file_range into an O_WRONLY fd", lambda: copy_range(os.O_WRONLY)),
    ("mmap PROT_WRITE MAP_SHARED of an O_RDONLY fd + msync", lambda: mmap_write(os.O_RDONLY)),
    ("mmap PROT_WRITE MAP_SHARED of an O_RDWR fd + msync", lambda: mmap_write(os.O_RDWR)),
    ("reopen O_WRONLY via /proc/self/fd", lambda: proc_fd_reopen(os.O_WRONLY)),
    ("reopen O_RDWR|O_TRUNC via /proc/self/fd", lambda: proc_fd_reopen(os.O_RDWR | os.O_TRUNC)),
    ("open the device node O_WRONLY", lambda: os.close(os.open(W + "/devnode", os.O_WRONLY))),
]


def reads():
    with open(F, "rb") as f:
        check("read a file", f.read() == b"hello world\n")
    with open(W + "/sub/deeper/x.bin", "rb") as f:
        h = hashlib.sha256(f.read()).hexdigest()
    check("read a 256 KiB binary file (sha256)", h == BIN_SHA, h)
    check("read an empty file", open(W + "/empty", "rb").read() == b"")

    # Symlinks come back as symlinks; the guest resolves them in its own tree.
    check("symlink to /etc/shadow is returned verbatim", os.readlink(W + "/link_shadow") == "/etc/shadow")
    try:
        data = open(W + "/link_shadow", "rb").read()
        h = hashlib.sha256(data).hexdigest()
        own = hashlib.sha256(open("/etc/shadow", "rb").read()).hexdigest()
        check("reading the /etc/shadow symlink gives the guest's shadow, not the host's",
              h != HOST_SHADOW_SHA and h == own, h)
    except OSError as e:
        check("reading the /etc/shadow symlink fails in the guest", True, ename(e.errno))
    try:
        data = open(W + "/link_abs", "rb").read()
        check("absolute symlink to a host file outside the share", MARKER_SECRET.encode() not in data, "read")
    except OSError as e:
        check("absolute symlink to a host file outside the share does not resolve", e.errno == errno.ENOENT,
              ename(e.errno))

    def no_marker(name, path):
        try:
            names = os.listdir(path)
        except OSError as e:
            check(name, True, ename(e.errno))
            return
        check(name, MARKER not in names and "workspace" in names, f"{len(names)} entries")

    no_marker("symlink to ../.. shows the guest's /", W + "/link_up")
    no_marker("'..' at the share root is the guest's /", W + "/..")
    no_marker("sub/../../.. is the guest's /", W + "/sub/../../..")
    check("the marker in the host parent dir is not reachable by name", not os.path.exists(W + "/../" + MARKER))
    d = os.open(W, os.O_RDONLY | os.O_DIRECTORY)
    no_marker("/proc/self/fd/N/.. of the share root is the guest's /", f"/proc/self/fd/{d}/..")
    fd = rd()
    check("read through /proc/self/fd/N", open(f"/proc/self/fd/{fd}", "rb").read() == b"hello world\n")
    os.close(fd)
    os.close(d)

    # A FIFO is the guest's own pipe: a non-blocking open returns at once and
    # nothing the host has is ever opened (a blocking open waits for a guest writer).
    try:
        fd = os.open(W + "/fifo", os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = os.read(fd, 100)
        except BlockingIOError:
            data = b""
        os.close(fd)
        check("open the FIFO non-blocking returns at once, no data", data == b"")
    except OSError as e:
        check("open the FIFO non-blocking is refused", True, ename(e.errno))
    r = subprocess.run(["timeout", "5", "dd", "if=" + W + "/fifo", "iflag=nonblock", "count=1"],
                       capture_output=True)
    check("dd iflag=nonblock on the FIFO returns within 5 s", r.returncode != 124, f"rc {r.returncode}")
    try:
        os.close(os.open(W + "/devnode", os.O_RDONLY))
        check("open the device node is refused", False, "opened")
    except OSError as e:
        check("open the device node is refused", e.errno in (errno.EACCES, errno.EPERM, errno.ENXIO, errno.EROFS),
              ename(e.errno))


def many_opens():
    resource.setrlimit(resource.RLIMIT_NOFILE, (200000, 200000))
    fds, err, failures = [], None, 0
    for _ in range(100000):
        try:
            fds.append(os.open(F, os.O_RDONLY))
        except OSError as e:
            err = err or ename(e.errno)
            failures += 1
            if failures >= 200:  # the limit holds; no need to hammer it 100k times
                break
    print(f"INFO 100k opens: {len(fds)} succeeded, first error {err}, {failures} failures", flush=True)
    check("100k opens end in a clean error or succeed", err in (None, "EMFILE", "ENFILE", "ENOMEM", "ENOSPC"),
          str(err))
    for fd in fds:
        os.close(fd)
    check("after closing them, the share still reads", open(F, "rb").read() == b"hello world\n")


phase = sys.argv[6] if len(sys.argv) > 6 else "all"
if phase in ("all", "mutations"):
    for name, fn in MUTATIONS:
        attempt(name, fn)
if phase in ("all", "reads"):
    reads()
    many_opens()
print("DONE", flush=True)
