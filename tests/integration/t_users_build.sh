#!/usr/bin/env bash
# Every user (issue 13), image builds without root: a user without subordinate ids is
# told what lacks (doctor, image build) before anything is downloaded; a user's
# --from-rootfs build (TAR, DIR) keeps the rootfs's owners through fakeroot; a module
# the system store's kernel entry lacks gives the user an entry of their own, no
# download; image ls shows both stores. Runs as root (useradd, runuser): users_lib.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/users_lib.sh"

# ---- a user without subordinate ids: doctor and the build name what lacks ----
if grep -q "^$N:" /etc/subuid 2>/dev/null; then
        n_test=$((n_test + 1))
        echo "ok $n_test # SKIP $N (not made by this test) has a range in /etc/subuid"
else
        AS=$N usm doctor --json >"$T/doc4" 2>&1
        check "user without subuid: doctor's image-build check names the range and the usermod that adds it" \
                jq_true --arg n "$N" '.data.checks[] | select(.name == "image-build") | .status == "warn" and
                        (.message | contains("/etc/subuid")) and (.fix | contains("usermod --add-subuids") and contains($n))' \
                "$T/doc4"
        AS=$N USER_SYS=$T/no-such-store usm image build >"$T/out" 2>"$T/err"; rc=$?
        check "user without subuid: image build fails before any download, naming the fix (rc=$rc): $(tail -c 300 "$T/err")" \
                sh -c "[ $rc -eq 125 ] && grep -q 'usermod --add-subuids' '$T/err' && grep -q -- '--system' '$T/err' &&
                        ! grep -q 'kernel:' '$T/err'"
fi

# ---- a non-root build from a rootfs keeps its owners ----
t0=$(date +%s)
usm image build --from-rootfs "$T/bb.tar.gz" --name mine >"$T/out" 2>"$T/err"; rc=$?
check "user: image build --from-rootfs TAR (rc=$rc, $(($(date +%s) - t0)) s)" \
        sh -c "[ $rc -eq 0 ] && grep -q '^$UHOME/images/' '$T/out'"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
out=$(usm run --image mine -- stat -c '%u:%g %a' /etc/owned /bin/busybox 2>&1 | tr '\n' ' ')
check "user's image keeps the tarball's owners and modes ($out)" test "$out" = "42:42 644 0:0 4755 "
usm image build --from-rootfs "$T/bb" --name mine-dir >"$T/out" 2>"$T/err"; rc=$?
check "user: image build --from-rootfs DIR (rc=$rc)" test "$rc" -eq 0
out=$(debugfs -R 'stat /etc/owned' "$(cat "$T/out")/rootfs.ext4" 2>/dev/null | grep -o 'User: *[0-9]* *Group: *[0-9]*' | tr -s ' ')
check "user's image from a DIR keeps its owners ($out)" test "$out" = "User: 42 Group: 42"
# A module the system store's kernel entry lacks: the user's own entry is a copy of it,
# the module unpacked from its .deb (no download), and complete (vmlinux: failed before,
# "link .../vmlinux -> ...: No such file or directory").
t0=$(date +%s)
usm image build --from-rootfs "$T/bb.tar.gz" --modules dummy --name mine-mod >"$T/out" 2>"$T/err"; rc=$?
check "user: image build --modules (a kernel entry of the user's own from the system store's; rc=$rc, $(($(date +%s) - t0)) s)" \
        sh -c "[ $rc -eq 0 ] && test -d '$UHOME/cache/kernel' && grep -q 'from $SYS' '$T/err' && ! grep -q downloading '$T/err'"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
usm image ls --json >"$T/ils" 2>&1
check "user: image ls shows the user's images and the system's, each with its store" \
        jq_true '[.data.images[] | select(.name == "mine") | .store] == ["user"] and ([.data.images[] | select(.store == "system")] | length) >= 1' \
        "$T/ils"

check "no VM of the user's left" test -z "$(ls -A "$UHOME/vms" 2>/dev/null)"
assert_no_leftovers "users-build"
finish
