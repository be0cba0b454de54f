#!/usr/bin/env bash
# Host directory mounts over FUSE over vsock (--mount-transport vsock): the
# supervisor's own file server answers the guest kernel over an agent stream,
# no virtio-fs device. Same security catalogue as t_mounts.sh (t_mounts_guest.py)
# against a read-only share, then the bytes, git, a :rw share, stop/start.
# Boots: one persistent VM (create, then start again after stop) and two `run`s.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
for tool in jq git python3 mknod; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool not installed"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (mknod of a device node in the share)"; exit 77; }

. "$here/mounts_fixture.sh"
RW="$T/rwshare"
mkdir -p "$RW"

id=$("$SMOLVM" create --name v1 --mount-transport vsock --mount "$TREE:/workspace" --mount "$RW:/rw:rw" 2>"$T/err"); rc=$?
check "create --mount-transport vsock with two mounts (rc $rc)" test "$rc" -eq 0
if [ "$rc" -ne 0 ]; then
        sed 's/^/# /' "$T/err"
        finish
        exit 1
fi
vmdir="$SMOLVM_HOME/vms/$id"
check "vm.json and config.json say vsock" sh -c "jq -e '.mount_transport == \"vsock\"' '$vmdir/vm.json' >/dev/null &&
        jq -e '.mount_transport == \"vsock\"' '$vmdir/config.json' >/dev/null"
check "no virtio-fs back-end, no fs socket" sh -c "! pgrep -f -- 'smolvm-[v]irtiofsd.*$T/' >/dev/null && [ ! -e '$vmdir/fs-0.sock' ]"
qpid=$(pgrep -f -- "qemu-system.*$vmdir" | head -1)
qargs=$(tr '\0' ' ' <"/proc/$qpid/cmdline" 2>/dev/null)
check "QEMU has no vhost-user-fs device and no memfd memory" \
        sh -c "[ -n '$qpid' ] && ! echo '$qargs' | grep -q -e vhost-user-fs -e memory-backend-memfd"
check "the supervisor logged the mounts as served over vsock" grep -q '2 mount(s) served over vsock' "$vmdir/supervisor.log"
"$SMOLVM" exec v1 -- cat /proc/mounts >"$T/mounts"
check "guest: /workspace is FUSE, read-only" grep -Eq '^smolvm /workspace fuse.smolvm ro,nosuid,nodev' "$T/mounts"
check "guest: /rw is FUSE, read-write" grep -Eq '^smolvm /rw fuse.smolvm rw,nosuid,nodev' "$T/mounts"

guest_py() { # phase -> stdout
        "$SMOLVM" exec -i v1 -- python3 - /workspace "$host_shadow" "$marker" "$secret" "$bin_sha" "$1" \
                <"$here/t_mounts_guest.py" 2>"$T/py.err"
}
report_mutations() { # label file
        local n=0 line
        while IFS= read -r line; do
                case "$line" in
                REFUSED*) ok "$1: ${line#REFUSED }"; n=$((n + 1)) ;;
                ALLOWED*) not_ok "$1: ${line#ALLOWED } was ALLOWED" ;;
                ERROR*) not_ok "$1: broken attempt: ${line#ERROR }" ;;
                esac
        done <"$2"
        check "$1: the whole catalogue ran ($n refused, DONE)" sh -c "[ $n -ge 48 ] && grep -qx DONE '$2'"
}
guest_py mutations >"$T/mut-ro.txt"
report_mutations "vsock guest-ro" "$T/mut-ro.txt"

# A compromised guest drops its own MS_RDONLY: only the host server is left.
"$SMOLVM" exec v1 -- mount -o remount,rw /workspace 2>"$T/err"; rc=$?
check "guest root remounts /workspace read-write (rc $rc)" test "$rc" -eq 0
check "... the guest now believes it is writable" sh -c "'$SMOLVM' exec v1 -- grep -q ' /workspace fuse.smolvm rw' /proc/mounts"
guest_py mutations >"$T/mut-rw.txt"
report_mutations "vsock guest-rw" "$T/mut-rw.txt"
n_erofs=$(grep -c ': EROFS ' "$T/mut-rw.txt")
check "the host server answered EROFS to $n_erofs attempts (>= 30)" test "$n_erofs" -ge 30

guest_py reads >"$T/reads.txt"
while IFS= read -r line; do
        case "$line" in
        "CHECK "*" PASS"*) l=${line#CHECK }; ok "vsock read: ${l/ PASS/ (pass)}" ;;
        "CHECK "*) not_ok "vsock read: ${line#CHECK }" ;;
        INFO*) diag "${line#INFO }" ;;
        ALLOWED* | ERROR*) not_ok "vsock read: $line" ;;
        esac
done <"$T/reads.txt"
check "reads: all checks ran (DONE)" grep -qx DONE "$T/reads.txt"
[ -s "$T/py.err" ] && sed 's/^/# guest stderr: /' "$T/py.err"

out=$("$SMOLVM" exec v1 -- sha256sum /workspace/sub/deeper/x.bin | cut -d' ' -f1)
check "256 KiB file read over vsock: sha256 matches the host's" test "$out" = "$bin_sha"
out=$("$SMOLVM" exec v1 -- git -C /workspace/gitrepo log -1 --format=%s 2>"$T/err")
check "git -C /workspace/gitrepo log -1 works ($out)" test "$out" = "headline commit for --mount"

"$SMOLVM" exec v1 -- sh -c 'echo landed > /rw/new.txt && mkdir /rw/d && ln -s /etc/passwd /rw/evil' 2>"$T/err"; rc=$?
check ":rw over vsock: guest writes (rc $rc)" test "$rc" -eq 0
check "... the write landed on the host" test "$(cat "$RW/new.txt" 2>/dev/null)" = landed
check "... the guest's symlink is a symlink on the host" test "$(readlink "$RW/evil")" = /etc/passwd

manifest "$TREE" >"$T/after.txt"
if cmp -s "$T/before.txt" "$T/after.txt"; then
        ok "host tree byte-identical: $(wc -l <"$T/before.txt") manifest lines (listing, sha256, xattrs)"
else
        not_ok "host tree byte-identical"
        diff "$T/before.txt" "$T/after.txt" | head -20 | sed 's/^/# /'
fi
manifest "$P" | grep -v '\./tree' >"$T/parent-after.txt"
check "host parent dir unchanged" cmp -s "$T/parent-before.txt" "$T/parent-after.txt"
check "host /etc/shadow unchanged" test "$(sha /etc/shadow)" = "$host_shadow"

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

# ---- a mount the guest refuses fails the boot, naming the mount ----
"$SMOLVM" run --mount-transport vsock --mount "$TREE:/proc/nope" -- true 2>"$T/err"; rc=$?
check "a guest path the agent cannot create fails the boot (rc $rc)" test "$rc" -ne 0
check "... the error names the mount and the agent's reason" \
        grep -q 'mount 0 (/proc/nope, vsock): the guest could not mount it: fuse_mount /proc/nope' "$T/err"
assert_no_leftovers "refused vsock mount"

manifest "$TREE" >"$T/final.txt"
check "host tree still byte-identical at the end" cmp -s "$T/before.txt" "$T/final.txt"
finish
