#!/usr/bin/env bash
# Host directory mounts over FUSE over vsock (--mount-transport vsock): our file
# server, in the same sandboxed smolvm-virtiofsd as virtio-fs (stream mode),
# answers the guest kernel over an agent stream, no virtio-fs device. Same security catalogue as t_mounts.sh (t_mounts_guest.py)
# against a read-only share, then the bytes, git, a :rw share, stop/start.
# Boots: one persistent VM (create, then start again after stop) and two `run`s.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/mounts_fixture.sh"

id=$("$SMOLVM" create --name v1 --mount-transport vsock --mount "$TREE:/workspace" --mount "$RW:/rw:rw" 2>"$T/err"); rc=$?
check_or_bail "create --mount-transport vsock with two mounts (rc $rc)" "$rc"
vmdir="$SMOLVM_HOME/vms/$id"
check "vm.json and config.json say vsock" sh -c "jq -e '.mount_transport == \"vsock\"' '$vmdir/vm.json' >/dev/null &&
        jq -e '.mount_transport == \"vsock\"' '$vmdir/config.json' >/dev/null"
check "no virtio-fs back-end, no fs socket" sh -c "! pgrep -f -- 'smolvm-[v]irtiofsd --fd=3.*$T/' >/dev/null && [ ! -e '$vmdir/fs-0.sock' ]"
check "two sandboxed stream back-ends serve the mounts" sh -c "[ \$(pgrep -f -- 'smolvm-[v]irtiofsd --stream-fd=3.*$T/' | wc -l) -ge 2 ]"
qpid=$(pgrep -f -- "qemu-system.*$vmdir" | head -1)
qargs=$(tr '\0' ' ' <"/proc/$qpid/cmdline" 2>/dev/null)
check "QEMU has no vhost-user-fs device and no memfd memory" \
        sh -c "[ -n '$qpid' ] && ! echo '$qargs' | grep -q -e vhost-user-fs -e memory-backend-memfd"
check "the supervisor logged the mounts as served over vsock" grep -q '2 mount(s) served over vsock' "$vmdir/supervisor.log"
"$SMOLVM" exec v1 -- cat /proc/mounts >"$T/mounts"
check "guest: /workspace is FUSE, read-only" grep -Eq '^smolvm /workspace fuse.smolvm ro,nosuid,nodev' "$T/mounts"
check "guest: /rw is FUSE, read-write" grep -Eq '^smolvm /rw fuse.smolvm rw,nosuid,nodev' "$T/mounts"
# Sequential reads go to the server in readahead-sized READs, as on virtio-fs
# (t_mounts.sh): the kernel's default window (128 KiB) made 8x more round trips.
out=$("$SMOLVM" exec v1 -- sh -c 'for p in /workspace /rw; do cat /sys/class/bdi/$(mountpoint -d $p)/read_ahead_kb; done' | tr '\n' ' ')
check "guest: both vsock shares read ahead 1 MiB, the server's READ size ($out)" test "$out" = "1024 1024 "
# PID 1 relays /dev/fuse in its own loop: no guest process of its own per mount
# (each process hop cost a third of a request's round trip under TCG).
out=$("$SMOLVM" exec v1 -- sh -c 'for d in /proc/[0-9]*; do for f in $d/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = /dev/fuse ] && echo "${d#/proc/}"; done; done | sort -u | tr "\n" " "')
check "guest: only PID 1 holds /dev/fuse, for both mounts (holders: $out)" test "$out" = "1 "
out=$("$SMOLVM" exec v1 -- sh -c 'ls -l /proc/1/fd | grep -c /dev/fuse')
check "... PID 1 holds one /dev/fuse per mount ($out)" test "$out" = 2
# Several requests in flight from several processes on both mounts at once.
out=$("$SMOLVM" exec v1 -- sh -c 'for i in 1 2 3 4; do (sha256sum /workspace/sub/deeper/x.bin | cut -d" " -f1 >/tmp/p$i) &
        (head -c 65536 /dev/zero >/rw/par$i) & done; wait; sort -u /tmp/p1 /tmp/p2 /tmp/p3 /tmp/p4')
check "4 readers and 4 writers at once over both mounts: every read whole ($out)" test "$out" = "$bin_sha"
out=$(stat -c %s "$RW"/par1 "$RW"/par2 "$RW"/par3 "$RW"/par4 2>&1 | sort -u | tr '\n' ' ')
check "... and every write landed whole on the host ($out)" test "$out" = "65536 "
rm -f "$RW"/par[1-4]

run_catalogue v1 fuse.smolvm "vsock "

out=$("$SMOLVM" exec v1 -- sha256sum /workspace/sub/deeper/x.bin | cut -d' ' -f1)
check "256 KiB file read over vsock: sha256 matches the host's" test "$out" = "$bin_sha"
# The supervisor looks at its children after a SIGCHLD, not on every wake-up of
# its loop: each FUSE request wakes it several times, and it called wait4 and
# waitid on each (26 of each per MiB of a download through the lane).
sup=$(cat "$vmdir/supervisor.pid")
strace -f -q -c -e trace=wait4,waitid,epoll_wait -o "$T/sup.strace" -p "$sup" & tracer=$! # scripts/deps.txt
sleep 1 # attached
"$SMOLVM" exec v1 -- sh -c 'for i in 1 2 3 4 5; do echo 3 >/proc/sys/vm/drop_caches
        ls -lR /workspace >/dev/null; cat /workspace/sub/deeper/x.bin /workspace/gitrepo/README >/dev/null; done'
kill -INT "$tracer"; wait "$tracer"
calls() { awk -v c="$1" '$NF == c { n = $4 } END { print n + 0 }' "$T/sup.strace"; }
wakes=$(calls epoll_wait) waits=$(( $(calls wait4) + $(calls waitid) ))
check "supervisor: reads over the mount make no wait4/waitid ($waits in $wakes loop wake-ups)" \
        test "$wakes" -ge 20 -a "$waits" -le 2
out=$("$SMOLVM" exec v1 -- git -C /workspace/gitrepo log -1 --format=%s 2>"$T/err")
check "git -C /workspace/gitrepo log -1 works ($out)" test "$out" = "headline commit for --mount"

"$SMOLVM" exec v1 -- sh -c 'echo landed > /rw/new.txt && mkdir /rw/d && ln -s /etc/passwd /rw/evil' 2>"$T/err"; rc=$?
check ":rw over vsock: guest writes (rc $rc)" test "$rc" -eq 0
check "... the write landed on the host" test "$(cat "$RW/new.txt" 2>/dev/null)" = landed
check "... the guest's symlink is a symlink on the host" test "$(readlink "$RW/evil")" = /etc/passwd

check_host_unchanged

# ---- persistence: start brings the mounts back the same way ----
"$SMOLVM" stop v1 >/dev/null 2>"$T/err"; rc=$?
check "stop (rc $rc)" test "$rc" -eq 0
"$SMOLVM" start v1 >/dev/null 2>"$T/err"; rc=$?
check "start again (rc $rc)" test "$rc" -eq 0
out=$("$SMOLVM" exec v1 -- cat /workspace/file.txt /rw/new.txt)
check "after start: both mounts are back" test "$out" = "$(printf 'hello world\nlanded')"
check "after start: /workspace is FUSE, read-only again" \
        sh -c "'$SMOLVM' exec v1 -- grep -q '^smolvm /workspace fuse.smolvm ro' /proc/mounts"
"$SMOLVM" rm -f v1 >/dev/null 2>"$T/err"; rc=$?
check "rm -f (rc $rc)" test "$rc" -eq 0
assert_no_leftovers "persistent VM with vsock mounts"

# ---- a command run right after boot sees the mount ----
out=$(cd "$TREE" && "$SMOLVM" run --mount-transport vsock --mount ./gitrepo:/workspace -- \
        git -C /workspace log -1 --format=%s 2>"$T/err"); rc=$?
check "run --mount-transport vsock ... -- git -C /workspace log -1 (rc $rc): $out" \
        test "$rc" -eq 0 -a "$out" = "headline commit for --mount"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
assert_no_leftovers "run --mount-transport vsock"

# ---- a mount the guest refuses fails the boot, naming the mount (the host lets the path
# through: only paths the init owns, such as /proc, are refused before the boot) ----
"$SMOLVM" run --mount-transport vsock --mount "$TREE:/etc/passwd/nope" -- true 2>"$T/err"; rc=$?
check "a guest path the agent cannot create fails the boot (rc $rc)" test "$rc" -ne 0
check "... the error names the mount and the agent's reason" \
        grep -q 'mount 0 (/etc/passwd/nope, vsock): the guest could not mount it: fuse_mount /etc/passwd/nope' "$T/err"
assert_no_leftovers "refused vsock mount"

manifest "$TREE" >"$T/final.txt"
check "host tree still byte-identical at the end" cmp -s "$T/before.txt" "$T/final.txt"
finish
