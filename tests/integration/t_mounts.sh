#!/usr/bin/env bash
# Host directory mounts over virtio-fs (issue 4), security first: a guest that is
# root (and may remount the share read-write, as a compromised guest kernel
# would) must not change a byte of a read-only share nor read anything outside
# it; a :rw share takes writes and stays confined. Every file and directory
# listing of the host tree is checksummed before and after.
# Boots: one persistent VM (create, then start again after stop) and one
# ephemeral `run` for the headline example.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/mounts_fixture.sh"

# ---- usage errors: exit 125, the path named, nothing left behind ----
"$SMOLVM" run --mount "$T/nope:/w" -- true 2>"$T/err"; rc=$?
check "--mount of a missing dir: exit 125 (got $rc)" test "$rc" -eq 125
check "... names the path" grep -q "mount source $T/nope: No such file or directory" "$T/err"
check "... with a hint" grep -q '^hint: ' "$T/err"
"$SMOLVM" create --mount "$TREE/file.txt:/w" 2>"$T/err"; rc=$?
check "--mount of a file: exit 125 (got $rc)" test "$rc" -eq 125
check "... says it is not a directory" grep -q "file.txt: Not a directory" "$T/err"
"$SMOLVM" run --mount "$TREE:workspace" -- true 2>"$T/err"; rc=$?
check "--mount with a relative guest path: exit 125 (got $rc)" test "$rc" -eq 125
"$SMOLVM" run --mount "$TREE:/a/../b" -- true 2>"$T/err"; rc=$?
check "--mount with '..' in the guest path: exit 125 (got $rc)" test "$rc" -eq 125
args=()
for i in $(seq 17); do args+=(--mount "$TREE:/w$i"); done
"$SMOLVM" run "${args[@]}" -- true 2>"$T/err"; rc=$?
check "17 mounts: exit 125 (got $rc)" test "$rc" -eq 125
assert_no_leftovers "refused --mount"

# ---- one persistent VM: a read-only and a read-write share ----
id=$(cd "$T" && "$SMOLVM" create --name m1 --mount ./parent/tree:/workspace --mount "$RW:/rw:rw" 2>"$T/err"); rc=$?
check_or_bail "create with two mounts (rc $rc)" "$rc"
vmdir="$SMOLVM_HOME/vms/$id"
check "vm.json keeps the mounts, host path resolved to its realpath" jq_true --arg t "$(realpath "$TREE")" --arg r "$RW" \
        '.mounts[0] == {"host": $t, "guest": "/workspace", "writable": false} and
         .mounts[1] == {"host": $r, "guest": "/rw", "writable": true} and .mount_transport == "virtiofs"' "$vmdir/vm.json"
check "one virtiofsd per mount, owned by the supervisor" test "$(pgrep -f -- "smolvm-virtiofsd --fd=3 --ready-fd=4 --shared-dir $T/" | wc -l)" -ge 2
# The back-end that serves a share is PID 1 of its own PID namespace (its parent
# outside only waits for it). It must run under its seccomp filter, which the
# rest of this test then exercises: every read, git, and every :rw write below.
fsd_filtered() { # label shared-dir
        local pid f="$T/fsd-status" found=""
        rm -f "$f"
        for pid in $(pgrep -f -- "smolvm-virtiofsd --fd=3 --ready-fd=4 --shared-dir $2 "); do
                awk '$1 == "NSpid:" && NF >= 3 && $NF == 1 { ns1 = 1 } END { exit !ns1 }' "/proc/$pid/status" 2>/dev/null || continue
                cat "/proc/$pid/status" >"$f" 2>/dev/null && found=$pid && break
        done
        check "$1: the serving back-end (pid ${found:-none}) has a seccomp filter (Seccomp: 2)" grep -Eq '^Seccomp:[[:space:]]+2$' "$f"
        check "$1: ... and no_new_privs (NoNewPrivs: 1)" grep -Eq '^NoNewPrivs:[[:space:]]+1$' "$f"
}
fsd_filtered "read-only share" "$(realpath "$TREE")"
fsd_filtered ":rw share" "$(realpath "$RW")"
"$SMOLVM" exec m1 -- cat /proc/mounts >"$T/mounts"
check "guest: /workspace is virtiofs, read-only" grep -Eq '^smolvm-fs-0 /workspace virtiofs ro,nosuid,nodev' "$T/mounts"
check "guest: /rw is virtiofs, read-write" grep -Eq '^smolvm-fs-1 /rw virtiofs rw,nosuid,nodev' "$T/mounts"
# Sequential reads go to the server in readahead-sized READs: the kernel's
# default window (128 KiB) made 4x more round trips than the READ size allows.
out=$("$SMOLVM" exec m1 -- sh -c 'for p in /workspace /rw; do cat /sys/class/bdi/$(mountpoint -d $p)/read_ahead_kb; done' | tr '\n' ' ')
check "guest: both shares read ahead 1 MiB, the server's READ size ($out)" test "$out" = "1024 1024 "

run_catalogue m1 virtiofs ""

out=$("$SMOLVM" exec m1 -- git -C /workspace/gitrepo log -1 --format=%s 2>"$T/err")
check "git -C /workspace/gitrepo log -1 works ($out)" test "$out" = "headline commit for --mount"
out=$("$SMOLVM" exec m1 -- cat /workspace/sub/inner.txt)
check "the VM and server are healthy after all that" test "$out" = inner

check_host_unchanged

# ---- a file changed on the host while the guest reads it ----
"$SMOLVM" exec m1 -- python3 -c '
import time
seen, end = None, time.time() + 120
while time.time() < end:
    try:
        v = open("/workspace/changing.txt").read()
    except OSError as e:
        v = "error %d" % e.errno
    if v != seen:
        print("SAW", v.strip(), flush=True)
        seen = v
    if v == "v2-is-longer\n":
        break
    time.sleep(0.2)
' >"$T/changing.txt" 2>&1 &
reader=$!
# Replace the file only once the guest has read the first version (a loaded
# machine may take seconds to start python in the guest).
wait_for "grep -q '^SAW' '$T/changing.txt'" 100
printf 'v2-is-longer\n' >"$TREE/changing.txt.tmp" && mv "$TREE/changing.txt.tmp" "$TREE/changing.txt"
wait "$reader"; rc=$?
check "guest reader exits 0 while the host replaces the file (rc $rc)" test "$rc" -eq 0
check "guest saw v1, then v2 (eventually consistent)" sh -c "grep -qx 'SAW v1' '$T/changing.txt' && grep -qx 'SAW v2-is-longer' '$T/changing.txt'"
sed 's/^/# /' "$T/changing.txt"
printf 'in place v3\n' >"$TREE/changing.txt"
check "an in-place host write is seen within 15 s" wait_for "'$SMOLVM' exec m1 -- cat /workspace/changing.txt | grep -qx 'in place v3'" 15

# ---- :rw: writes land on the host, confinement holds ----
ln -s /etc/passwd "$RW/hostlink"
"$SMOLVM" exec m1 -- sh -c 'echo landed > /rw/new.txt && mkdir /rw/d && echo in-d > /rw/d/f &&
        mv /rw/d/f /rw/d/g && ln -s /etc/passwd /rw/evil && echo PWNED >> /rw/evil &&
        echo PWNED >> /rw/hostlink && chmod 600 /rw/new.txt' 2>"$T/err"; rc=$?
check "guest writes to /rw (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "the write landed on the host" test "$(cat "$RW/new.txt" 2>/dev/null)" = landed
check "mkdir + rename landed" test "$(cat "$RW/d/g" 2>/dev/null)" = in-d
check "chmod landed" test "$(stat -c %a "$RW/new.txt")" = 600
check "the guest's symlink is a symlink on the host, target verbatim" test "$(readlink "$RW/evil")" = /etc/passwd
check "writing through symlinks to /etc/passwd left the host's unchanged" test "$(sha /etc/passwd)" = "$host_passwd"
out=$("$SMOLVM" exec m1 -- grep -c PWNED /etc/passwd)
check "... it went to the guest's own /etc/passwd ($out lines)" test "$out" = 2
out=$("$SMOLVM" exec m1 -- ls -a /rw/..)
check "'..' at the :rw share root is the guest's /" sh -c "echo '$out' | grep -qx workspace && ! echo '$out' | grep -q rwshare"
"$SMOLVM" exec m1 -- python3 -c 'import os; os.mknod("/rw/dev", 0o600 | 0o020000, os.makedev(1, 3))' 2>/dev/null
check "no device node appears on the host through a :rw share" sh -c "[ ! -c '$RW/dev' ]"
"$SMOLVM" exec m1 -- sh -c 'cp /bin/true /rw/suid && chmod 4755 /rw/suid' 2>/dev/null
check "no setuid file appears on the host through a :rw share" sh -c "[ -e '$RW/suid' ] && [ ! -u '$RW/suid' ]"
# Every other kind of change the server makes, each a syscall its seccomp filter
# must allow with --rw. (A refused one answers ENOSYS, which the guest kernel
# hides for some ops, e.g. fsync: what lands on the host is checked too, and
# test_sandbox_seccomp tries each syscall directly.)
xattrs=0
touch "$RW/probe" && python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.p", b"1")' "$RW/probe" 2>/dev/null && xattrs=1
rm -f "$RW/probe"
"$SMOLVM" exec m1 -- python3 -c '
import os, sys
d, xattrs = "/rw/sc", sys.argv[1] == "1"
os.mkdir(d)
with open(d + "/f", "wb") as f:
    f.write(b"0123456789")
    f.flush()
    os.fsync(f.fileno())
    os.fdatasync(f.fileno())
    os.ftruncate(f.fileno(), 4)
# fallocate(2) itself: glibc would emulate posix_fallocate with writes.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
with open(d + "/alloc", "wb") as f:
    if libc.fallocate(f.fileno(), 1, ctypes.c_long(0), ctypes.c_long(1 << 20)) != 0:  # FALLOC_FL_KEEP_SIZE
        raise OSError(ctypes.get_errno(), "fallocate")
os.link(d + "/f", d + "/hard")
os.truncate(d + "/hard", 3)
os.utime(d + "/f", (1000000000, 1000000000))
if xattrs:
    os.setxattr(d + "/f", "user.smolvm", b"yes")
    os.setxattr(d + "/f", "user.gone", b"x")
    os.removexattr(d + "/f", "user.gone")
    assert os.listxattr(d + "/f") == ["user.smolvm"], os.listxattr(d + "/f")
os.mkfifo(d + "/fifo")
os.rename(d + "/fifo", d + "/fifo2")
os.unlink(d + "/fifo2")
os.mkdir(d + "/gone")
os.rmdir(d + "/gone")
os.statvfs(d)
fd = os.open(d + "/f", os.O_RDONLY)
assert os.lseek(fd, 0, os.SEEK_DATA) == 0
os.close(fd)
' "$xattrs" 2>"$T/err"; rc=$?
check "guest: fsync, fallocate, truncate, link, utime, xattrs, mkfifo, rename, unlink, rmdir, statfs, SEEK_DATA on /rw (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "... they landed on the host" python3 -c '
import os, sys
d = sys.argv[1]
st = os.stat(d + "/f")
assert (st.st_size, st.st_nlink, int(st.st_mtime)) == (3, 2, 1000000000), st
assert sys.argv[2] == "0" or os.getxattr(d + "/f", "user.smolvm") == b"yes"
assert os.stat(d + "/alloc").st_blocks * 512 >= 1 << 20, os.stat(d + "/alloc")
assert sorted(os.listdir(d)) == ["alloc", "f", "hard"], os.listdir(d)
' "$RW/sc" "$xattrs"
[ "$xattrs" = 1 ] || diag "no user xattrs on $T's file system: setxattr/removexattr on /rw not tried"

# ---- persistence: stop/start re-creates the mounts ----
"$SMOLVM" stop m1 >/dev/null 2>"$T/err"; rc=$?
check "stop (rc $rc)" test "$rc" -eq 0
check "stop: no virtiofsd left, sockets removed" sh -c "! pgrep -f -- 'smolvm-[v]irtiofsd.*$T/' >/dev/null && [ ! -e '$vmdir/fs-0.sock' ]"
"$SMOLVM" start m1 >/dev/null 2>"$T/err"; rc=$?
check "start again (rc $rc)" test "$rc" -eq 0
out=$("$SMOLVM" exec m1 -- cat /workspace/file.txt /rw/new.txt)
check "after start: both mounts are back" test "$out" = "$(printf 'hello world\nlanded')"
check "after start: /workspace read-only again" sh -c "'$SMOLVM' exec m1 -- grep -q ' /workspace virtiofs ro' /proc/mounts"
fsd_filtered "after start, read-only share" "$(realpath "$TREE")"

# ---- a back-end that dies is logged; the VM keeps running ----
kill -9 $(pgrep -f -- "smolvm-virtiofsd --fd=3 --ready-fd=4 --shared-dir $RW") 2>/dev/null
check "the supervisor logs the dead back-end" wait_for "grep -q 'virtio-fs server for mount 1 .* exited' '$vmdir/supervisor.log'" 10
out=$("$SMOLVM" exec m1 -- cat /workspace/file.txt)
check "the VM and the other mount keep working" test "$out" = "hello world"
"$SMOLVM" rm -f m1 >/dev/null 2>"$T/err"; rc=$?
check "rm -f (rc $rc)" test "$rc" -eq 0
assert_no_leftovers "persistent VM with mounts"

# ---- the headline: an ephemeral run ----
out=$(cd "$TREE" && "$SMOLVM" run --mount ./gitrepo:/workspace -- git -C /workspace log -1 --format=%s 2>"$T/err"); rc=$?
check "run --mount ./gitrepo:/workspace -- git -C /workspace log -1 (rc $rc): $out" \
        test "$rc" -eq 0 -a "$out" = "headline commit for --mount"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
assert_no_leftovers "run --mount"

# The host replaced changing.txt itself (a rename: the root dir's times change too).
manifest "$TREE" | grep -v -e changing.txt -e '^\. ' >"$T/final.txt"
grep -v -e changing.txt -e '^\. ' "$T/before.txt" >"$T/before-nochange.txt"
check "host tree still identical at the end (but for the host's own change)" cmp -s "$T/before-nochange.txt" "$T/final.txt"
finish
