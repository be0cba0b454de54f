#!/usr/bin/env bash
# FUSE over vsock in a real VM, both directions, one boot:
#  (a) guest -> host: `smolvm-fs mount ID:/etc MNT --background` gives a read-only
#      view of the guest's /etc (content, listing, EROFS, umount releases it);
#  (c) host -> guest: the "fuse_mount" op with fuse-vsock-serve serving a host dir
#      (the guest mount is rw, so only the host server refuses writes; the host
#      tree must be byte-identical afterwards);
#  (b) `smolvm rm -f` under a live smolvm-fs mount: smolvm-fs exits and the mount
#      point is released within seconds, no hang.
. "$(dirname "$0")/lib.sh"
# meson's timeout sends SIGTERM: still run lib.sh's cleanup (EXIT trap).
trap 'exit 143' TERM INT

FS="$SMOLVM_BUILD_DIR/fs/smolvm-fs"
SERVE="$SMOLVM_BUILD_DIR/tests/integration/fuse-vsock-serve"
[ -x "$FS" ] && [ -x "$SERVE" ] || { echo "1..0 # SKIP smolvm-fs not built (libfuse3 missing)"; exit 0; }
{ [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; } || { echo "1..0 # SKIP needs root and /dev/fuse"; exit 0; }
"$SMOLVM" create --help >/dev/null 2>&1 || { echo "1..0 # SKIP no 'smolvm create' (persistent sandboxes)"; exit 0; }
command -v jq >/dev/null || { echo "1..0 # SKIP needs jq"; exit 0; }

# A process is gone (or a zombie nobody reaped yet: it has exited).
gone() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null); [ -z "$s" ] || [ "${s#Z}" != "$s" ]; }
# Everything about a tree that a change could touch: names, types, modes, sizes, content.
tree_sum() { (cd "$1" && find . -printf '%p %y %m %s %T@ %l\n' | sort && find . -type f -exec md5sum {} + | sort); }

id=$("$SMOLVM" create 2>"$T/err"); rc=$?
check "create exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || { sed 's/^/# /' "$T/err"; finish; exit; }
mnt="$T/mnt"
mkdir -p "$mnt"

# ---- (a) smolvm-fs mount: the guest's /etc on the host ----
"$FS" mount --json --background "$id:/etc" "$mnt" >"$T/mount.json" 2>"$T/mount.err"; rc=$?
check "smolvm-fs mount --background exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/mount.err"
check "--json envelope names the mount and the relay pid" jq_true --arg id "$id" --arg m "$mnt" \
        '.ok and .data.id == $id and .data.path == "/etc" and .data.mountpoint == $m and .data.pid > 0' "$T/mount.json"
fs_pid=$(jq -r '.data.pid' "$T/mount.json" 2>/dev/null)
check "the mount is up when the command returns" mountpoint -q "$mnt"
check "mount type fuse.smolvm, read-only, nosuid, nodev" \
        awk -v m="$mnt" '$2 == m && $3 == "fuse.smolvm" && $4 ~ /(^|,)ro(,|$)/ && $4 ~ /nosuid/ && $4 ~ /nodev/ {f=1} END {exit !f}' /proc/mounts
guest_hn=$("$SMOLVM" exec "$id" -- cat /etc/hostname)
host_hn=$(timeout 30 cat "$mnt/hostname" 2>"$T/cat.err")
check "mnt/hostname is the guest's ($host_hn)" test -n "$guest_hn" -a "$host_hn" = "$guest_hn"
touch "$mnt/smolvm-new" 2>"$T/touch.err"; rc=$?
check "touch in the mount fails with EROFS" sh -c "[ $rc -ne 0 ] && grep -q 'Read-only file system' '$T/touch.err'"
(echo x >>"$mnt/hostname") 2>"$T/append.err"; rc=$?
check "appending to a file fails with EROFS" sh -c "[ $rc -ne 0 ] && grep -q 'Read-only file system' '$T/append.err'"
check "the guest file is unchanged" test "$("$SMOLVM" exec "$id" -- cat /etc/hostname)" = "$guest_hn"
"$SMOLVM" exec "$id" -- sh -c 'ls -A /etc' >"$T/guest.ls"
timeout 30 ls -A "$mnt" >"$T/host.ls" 2>"$T/ls.err"
check "listing matches the guest's ($(wc -l <"$T/host.ls") entries)" \
        sh -c "[ -s '$T/host.ls' ] && cmp -s '$T/host.ls' '$T/guest.ls'"
check "stat of a symlink shows the link itself" test -L "$mnt/os-release"
"$FS" umount "$mnt" 2>"$T/umount.err"; rc=$?
check "smolvm-fs umount exits 0 (rc $rc)" test "$rc" -eq 0
check "umount released the mount point" sh -c "! mountpoint -q '$mnt'"
check "the relay process exits after umount" wait_for "gone $fs_pid" 10
"$FS" umount "$mnt" 2>"$T/umount2.err"; rc=$?
check "umount of what is not mounted: exit 125, clear message" \
        sh -c "[ $rc -eq 125 ] && grep -q 'not mounted' '$T/umount2.err'"
"$FS" mount "$id:/nonexistent" "$mnt" 2>"$T/enoent.err"; rc=$?
check "mount of a missing guest path: exit 125 naming it" \
        sh -c "[ $rc -eq 125 ] && grep -q '/nonexistent.*No such file' '$T/enoent.err' && ! mountpoint -q '$mnt'"
"$FS" mount nosuchvm:/etc "$mnt" 2>"$T/novm.err"; rc=$?
check "mount of an unknown sandbox: exit 125" test "$rc" -eq 125
"$FS" mount "$id" "$mnt" 2>/dev/null; rc=$?
check "mount without :/path is a usage error (125)" test "$rc" -eq 125

# ---- (c) fuse_mount: a host dir in the guest, served from the host ----
share="$T/share"
mkdir -p "$share/dir"
printf 'hello from the host\n' >"$share/hello.txt"
printf 'sub\n' >"$share/dir/sub.txt"
head -c 3000000 /dev/urandom >"$share/big.bin"
ln -s hello.txt "$share/link"
before=$(tree_sum "$share")
big_md5=$(md5sum <"$share/big.bin" | cut -d' ' -f1)
vm_dir=$("$SMOLVM" info --json "$id" | jq -r .data.dir)
"$SERVE" --guest-rw "$vm_dir" /mnt/host "$share" >"$T/serve.out" 2>"$T/serve.err" &
serve_pid=$!
if wait_for "grep -q ready '$T/serve.out'" 30; then
        ok "fuse_mount: the guest mounted the host dir"
else
        not_ok "fuse_mount: the guest mounted the host dir"
        sed 's/^/# serve: /' "$T/serve.err"
fi
out=$(timeout 60 "$SMOLVM" exec "$id" -- cat /mnt/host/hello.txt 2>&1)
check "guest reads the host file ($out)" test "$out" = "hello from the host"
out=$(timeout 60 "$SMOLVM" exec "$id" -- sh -c 'md5sum < /mnt/host/big.bin' 2>&1 | cut -d' ' -f1)
check "guest reads 3 MB byte for byte (md5)" test "$out" = "$big_md5"
out=$(timeout 60 "$SMOLVM" exec "$id" -- sh -c 'ls /mnt/host | tr "\n" " "; readlink /mnt/host/link; cat /mnt/host/dir/sub.txt' 2>&1)
check "guest lists the dir, sees the symlink, reads a subdir ($out)" \
        test "$out" = "$(printf 'big.bin dir hello.txt link hello.txt\nsub')"
for cmd in 'touch /mnt/host/new' 'echo x >> /mnt/host/hello.txt' 'rm /mnt/host/hello.txt' 'mkdir /mnt/host/d' \
        'mv /mnt/host/hello.txt /mnt/host/h2' 'chmod 777 /mnt/host/hello.txt' 'ln -s x /mnt/host/l2' \
        ': > /mnt/host/big.bin'; do
        out=$(timeout 60 "$SMOLVM" exec "$id" -- sh -c "$cmd" 2>&1); rc=$?
        # A read-only server has no OPEN (docs/internals.md, "Reads without
        # OPEN"): on this rw guest mount '>>' opens without asking and the
        # write fails (EROFS; the shell may word it its own way).
        case $cmd in *'>>'*) want='Read-only file system\|I/O error\|write error' ;; *) want='Read-only file system' ;; esac
        check "guest: '$cmd' fails with EROFS from the host server ($out)" \
                sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q \"\$2\"" _ "$out" "$want"
done
check "the host tree is unchanged (names, modes, sizes, content)" test "$(tree_sum "$share")" = "$before"
kill -TERM "$serve_pid"
wait "$serve_pid"; rc=$?
check "the host server exits 0 on SIGTERM (rc $rc)" test "$rc" -eq 0
check "once the stream ends, the guest's accesses fail with ENOTCONN (no hang, no silent fallback)" \
        wait_for "timeout 20 '$SMOLVM' exec '$id' -- cat /mnt/host/hello.txt 2>&1 | grep -q 'not connected'" 15
check "no errors from the host server" test ! -s "$T/serve.err"

# ---- foreground mount: SIGTERM unmounts and exits 0 ----
"$FS" mount "$id:/etc" "$mnt" >/dev/null 2>"$T/fg.err" &
fg_pid=$!
check "foreground mount comes up" wait_for "mountpoint -q '$mnt'" 30
check "foreground mount serves reads" test "$(timeout 30 cat "$mnt/hostname")" = "$guest_hn"
kill -TERM "$fg_pid"
wait "$fg_pid"; rc=$?
check "SIGTERM: smolvm-fs exits 0 (rc $rc)" test "$rc" -eq 0
check "SIGTERM: the mount point is released" sh -c "! mountpoint -q '$mnt'"

# ---- (b) the sandbox goes away under a live mount ----
"$FS" mount --json --background "$id:/etc" "$mnt" >"$T/mount2.json" 2>"$T/mount2.err"; rc=$?
check "mount again (rc $rc)" test "$rc" -eq 0
fs_pid=$(jq -r '.data.pid' "$T/mount2.json" 2>/dev/null)
check "the mount answers" test "$(timeout 30 cat "$mnt/hostname")" = "$guest_hn"
# A reader that keeps coming back while the VM dies must not hang.
(for _ in $(seq 200); do cat "$mnt/hostname" >/dev/null 2>&1; sleep 0.02; done) &
reader=$!
"$SMOLVM" rm -f "$id" >/dev/null 2>"$T/rm.err"; rc=$?
check "rm -f exits 0 (rc $rc)" test "$rc" -eq 0
check "smolvm-fs exits when the sandbox goes away" wait_for "gone $fs_pid" 10
check "the mount point is released within seconds" wait_for "! mountpoint -q '$mnt'" 10
check "ls of the mount point works (no hang)" timeout 5 ls "$mnt"
check "a reader of the dead mount does not hang" wait_for "gone $reader" 15
assert_no_leftovers "end"
finish
