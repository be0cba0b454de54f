#!/usr/bin/env bash
# Every user (issue 13): root builds a system image store (`image build --system`)
# that a normal user boots from at once (`run -- id -u`, create, exec, rm); the user's
# VMs live in the user's own $SMOLVM_HOME and root's are out of the user's reach; the
# shared image files are read-only to the user and to the user's QEMU; root can rebuild
# the store while the user's VM runs; doctor names what the user lacks; the user's
# setup builds nothing. When /var/lib/smolvm holds a default image (CI, after
# setup.sh), the user also boots from that one. Runs as root (useradd, runuser):
# users_lib.sh. Image builds without root: t_users_build.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/users_lib.sh"

# ---- the user runs at once from root's store, in the user's own home ----
out=$(usm run -- id -u 2>"$T/err"); rc=$?
check "user: run -- id -u prints 0 (root in the guest) from the system image (rc=$rc, out=$out)" \
        test "$rc" -eq 0 -a "$out" = 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"

uid=$(usm create 2>"$T/err"); rc=$?
check_or_bail "user: create" "$rc"
out=$(usm exec "$uid" -- cat /etc/owned 2>&1)
check "user: exec in the user's VM ($out)" test "$out" = one
check "user: the VM lives in the user's home ($UHOME/vms/$uid)" test -f "$UHOME/vms/$uid/vm.json"
check "user: the VM booted from the system store" \
        test "$(jq -r .image_dir "$UHOME/vms/$uid/vm.json")" = "$SYS/images/$key1"
check "user: vms/ is the user's, mode 700" test "$(stat -c '%U %a' "$UHOME/vms")" = "$U 700"

# QEMU holds the shared base open, read-only (the overlay is the user's).
qpid=$(jq -r .vmm_pid "$UHOME/vms/$uid/boot.json" 2>/dev/null)
n_img=0 n_rw=0
if [ -n "$qpid" ] && [ -d "/proc/$qpid" ]; then
        for fd in /proc/"$qpid"/fd/*; do
                case $(readlink "$fd") in
                "$SYS"/*)
                        n_img=$((n_img + 1))
                        flags=$(awk '/^flags:/ {print $2}' "/proc/$qpid/fdinfo/${fd##*/}")
                        [ $((8#$flags & 3)) -eq 0 ] || n_rw=$((n_rw + 1))
                        ;;
                esac
        done
fi
check "user's QEMU ($qpid) opens the system image files read-only ($n_img open, $n_rw writable)" \
        test "$n_img" -gt 0 -a "$n_rw" -eq 0

# ---- the system store is not the user's to change ----
check "user cannot add to the system store" sh -c "! runuser -u $U -- touch '$SYS/images/x' 2>/dev/null"
check "user cannot write the shared rootfs" \
        sh -c "! runuser -u $U -- sh -c ': >>\"$SYS/images/$key1/rootfs.ext4\"' 2>/dev/null"
usm image build --system --from-rootfs "$T/bb.tar.gz" >/dev/null 2>"$T/err"; rc=$?
check "user: image build --system fails cleanly (rc=$rc): $(head -c 300 "$T/err")" \
        sh -c "[ $rc -eq 125 ] && grep -q '$SYS' '$T/err' && grep -qi root '$T/err'"

# ---- root's VMs are out of the user's reach ----
rid=$("$SMOLVM" create 2>"$T/err"); rc=$?
check_or_bail "root: create" "$rc"
usm ls --json >"$T/uls" 2>&1
check "user: ls lists the user's VM and not root's" \
        jq_true --arg u "$uid" --arg r "$rid" '[.data.vms[].id] | index($u) != null and index($r) == null' "$T/uls"
usm exec "$rid" -- true >/dev/null 2>"$T/err"; rc=$?
check "user: exec ROOT_VM fails with 'no such VM' (rc=$rc)" sh -c "[ $rc -eq 125 ] && grep -q 'no such VM' '$T/err'"
usm rm -f "$rid" >/dev/null 2>"$T/err"; rc=$?
check "user: rm ROOT_VM fails with 'no such VM' (rc=$rc)" sh -c "[ $rc -eq 125 ] && grep -q 'no such VM' '$T/err'"
check "user cannot read root's VM dir" sh -c "! runuser -u $U -- ls '$SMOLVM_HOME/vms/$rid' >/dev/null 2>&1"
check "user cannot connect to root's VM socket" sh -c "! runuser -u $U -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])' '$SMOLVM_HOME/vms/$rid/vsock.sock' 2>/dev/null"
out=$("$SMOLVM" exec "$rid" -- echo still 2>&1)
check "root's VM still runs ($out)" test "$out" = still
check "root: ls does not list the user's VM" sh -c "! '$SMOLVM' ls --json | jq -e --arg u '$uid' '.data.vms[] | select(.id == \$u)' >/dev/null"
"$SMOLVM" rm -f "$rid" >/dev/null 2>&1

# ---- root rebuilds the system default while the user's VM runs ----
(umask 077; SMOLVM_SYSTEM_STORE=$SYS "$SMOLVM" image build --system --from-rootfs "$T/bb2.tar.gz" --name default \
        >"$T/out" 2>"$T/err"); rc=$?
key2=$(basename "$(readlink -f "$SYS/images/default")")
check "root: rebuild moves the system default ($key1 -> $key2, rc=$rc)" test "$rc" -eq 0 -a "$key1" != "$key2"
out=$(usm exec "$uid" -- cat /etc/owned 2>&1)
check "user's running VM keeps its old image ($out)" test "$out" = one
check "the old image dir is kept" test -f "$SYS/images/$key1/rootfs.ext4"
usm image ls --json >"$T/ils" 2>&1
check "user: image ls shows the new system default with its store" \
        jq_true --arg k "$key2" --arg s "$SYS/images/$key2" \
        '[.data.images[] | select(.name == "default")] | length == 1 and .[0].key == $k and .[0].store == "system" and .[0].dir == $s' \
        "$T/ils"
usm rm -f "$uid" >/dev/null 2>"$T/err"
check "user: rm" test ! -e "$UHOME/vms/$uid"

# ---- doctor, as the user ----
usm doctor --json >"$T/doc" 2>&1; rc=$?
check "user: doctor --json passes with the system store (rc=$rc)" \
        jq_true --arg s "$SYS" '.ok and (.data.checks[] | select(.name == "image") | .status == "pass" and (.message | contains($s)))' "$T/doc"
check "user: doctor's kvm check passes or names its fix" \
        jq_true '[.data.checks[] | select(.name == "kvm")] | length == 1 and (.[0].status == "pass" or (.[0].fix | length) > 0)' "$T/doc"
check "user: doctor checks the user's home and what a non-root build needs" \
        jq_true '[.data.checks[].name] | index("home") != null and index("image-build") != null' "$T/doc"
USER_SYS=$T/no-such-store usm doctor --json >"$T/doc2" 2>&1; rc=$?
check "user: doctor names a missing system store and its fix (rc=$rc)" \
        jq_true --arg s "$T/no-such-store" \
        '(.ok | not) and (.data.checks[] | select(.name == "image") | .status == "fail" and (.message | contains($s)) and (.fix | contains("--system")))' \
        "$T/doc2"
mkdir -m 0700 "$T/private-store"
cp -a "$SYS/images" "$T/private-store/"
USER_SYS=$T/private-store usm doctor --json >"$T/doc3" 2>&1
check "user: doctor names an unreadable system store and its fix" \
        jq_true '.data.checks[] | select(.name == "image") | .status == "fail" and (.message | test("ermission")) and (.fix | test("chmod"))' \
        "$T/doc3"

# A /dev/kvm this user may not open, root:GROUP 0660 as udev makes it: a private /dev
# (and an empty /sys/module: no nested-PVM marker) in a mount namespace of this test's
# own, the host's untouched. doctor names the device's group and the usermod.
kgrp=kvm
getent group kvm >/dev/null || kgrp=disk
unshare -m --propagation private "$BASH" -c '
        mount -t tmpfs -o mode=0755 smolvm-test-dev /dev && mount -t tmpfs -o mode=0755 smolvm-test-mod /sys/module &&
        mknod -m 0666 /dev/null c 1 3 && mknod -m 0666 /dev/zero c 1 5 && mknod -m 0666 /dev/urandom c 1 9 &&
        mknod -m 0660 /dev/kvm c 10 232 && chgrp "$1" /dev/kvm && shift && exec "$@"' _ "$kgrp" \
        runuser -u "$U" -- env -i HOME="$UH" PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C \
        SMOLVM_LIBEXECDIR="$UB/libexec" SMOLVM_SYSTEM_STORE="$SYS" "$UB/smolvm" doctor --json >"$T/doc5" 2>&1
check "user who may not open /dev/kvm (root:$kgrp 0660): doctor names the group and the usermod" \
        jq_true --arg f "usermod -aG $kgrp $U" \
        '.data.checks[] | select(.name == "kvm") | .status == "warn" and (.message | test("ermission")) and (.fix | contains($f))' \
        "$T/doc5"

# ---- the user's `smolvm setup`: the system default serves, nothing is built ----
# (An own default would be looked up first and hide root's later rebuilds.)
as_user timeout 120 "$UB/smolvm" setup >"$T/setup.out" 2>&1; rc=$?
check "user: setup uses the system store's default, builds nothing (rc=$rc): $(grep -m1 -i 'default image' "$T/setup.out")" \
        sh -c "[ $rc -eq 0 ] && grep -q '$SYS/images/$key2' '$T/setup.out' && ! grep -q '\[1/4\]' '$T/setup.out' &&
                test ! -e '$UHOME/images/default'"
[ "$rc" -eq 0 ] || tail -5 "$T/setup.out" | sed 's/^/# /'

# ---- the real system store, when setup.sh has made one ----
if [ -e /var/lib/smolvm/images/default ]; then
        check "/var/lib/smolvm: nothing in it writable by others" \
                test -z "$(find /var/lib/smolvm ! -type l -perm -o+w -print -quit)"
        out=$(USER_SYS='' usm run -- id -u 2>"$T/err"); rc=$?
        check "user: run -- id -u from /var/lib/smolvm (rc=$rc, out=$out)" test "$rc" -eq 0 -a "$out" = 0
else
        n_test=$((n_test + 1))
        echo "ok $n_test # SKIP no /var/lib/smolvm/images/default (scripts/setup.sh has not run on this host)"
fi

check "no VM of the user's left" test -z "$(ls -A "$UHOME/vms" 2>/dev/null)"
assert_no_leftovers "users"
finish
