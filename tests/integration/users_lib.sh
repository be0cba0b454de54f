#!/usr/bin/env bash
# Sourced by the every-user tests (t_users.sh, t_users_build.sh; issue 13) after
# lib.sh: as root, makes the users, copies this build's binaries where they can run
# them, and builds a system store as root's `smolvm image build --system` does.
#
# The user is smolvm-test-user (U, with subordinate ids: Debian's useradd adds a range);
# smolvm-test-nosub (N) has none. Each is created if missing and removed again at the
# end (a user that was already there is kept). The users run copies of this build's
# binaries from $T (the build dir may sit under a home they cannot enter), with
# HOME=$T/uhome (or $T/nhome), a PATH without /usr/sbin, and SMOLVM_SYSTEM_STORE=$T/system
# ($SYS): a system store built here (as /var/lib/smolvm is built by scripts/setup.sh)
# from a busybox rootfs, with the kernel layer copied from the real store's cache; its
# first default is $key1.

if [ "$(id -u)" -ne 0 ]; then
        echo "1..0 # SKIP needs root (useradd, runuser)"
        exit 0
fi

U=smolvm-test-user
N=smolvm-test-nosub
made_users=()
for u in "$U" "$N"; do
        id -u "$u" >/dev/null 2>&1 && continue
        opts=()
        [ "$u" = "$N" ] && opts=(-K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0)
        useradd -m -s /bin/sh "${opts[@]}" "$u" || { echo "Bail out! useradd $u failed"; exit 1; }
        made_users+=("$u")
done
users_cleanup() {
        cleanup
        # Only the users this test made; their processes are gone (cleanup killed
        # every process whose command line names $T).
        for u in "${made_users[@]}"; do userdel -r "$u" 2>/dev/null; done
        return 0
}
trap users_cleanup EXIT

# $T is root's 0700 temp dir: let the user through to its own parts only.
chmod 0711 "$T"
UB=$T/ubin
mkdir -p "$UB/libexec"
cp -L "$SMOLVM_BUILD_DIR/host/smolvm" "$SMOLVM_BUILD_DIR/host/libsmolvm.so.0" "$UB/"
cp -L "$SMOLVM_BUILD_DIR/host/supervisor/smolvm-supervisor" "$SMOLVM_BUILD_DIR/guest-init/smolvm-init" \
        "$SMOLVM_BUILD_DIR/fs/smolvm-virtiofsd" "$UB/libexec/"
chmod -R a+rX "$UB"
UH=$T/uhome
NH=$T/nhome
mkdir -m 0700 "$UH" "$NH"
chown "$U:" "$UH"
chown "$N:" "$NH"
SYS=$T/system
UHOME=$UH/.local/state/smolvm

# as_user CMD...: CMD as the user ($AS, default U), in a clean environment.
as_user() {
        local who=${AS:-$U} home=$UH
        [ "$who" = "$N" ] && home=$NH
        runuser -u "$who" -- env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C \
                SMOLVM_LIBEXECDIR="$UB/libexec" SMOLVM_SYSTEM_STORE="${USER_SYS-$SYS}" \
                SMOLVM_SPARE_IDLE_MS="${SMOLVM_SPARE_IDLE_MS-0}" "$@"
}
# usm ARGS...: the user's smolvm.
usm() { as_user "$UB/smolvm" "$@"; }

# A small root file system: busybox, a file owned by uid/gid 42, a setuid binary.
mk_rootfs() {
        local dir=$1 tag=$2
        mkdir -p "$dir/bin" "$dir/etc" "$dir/var/lib/dpkg" "$dir/tmp" "$dir/root" "$dir/proc" "$dir/sys" "$dir/dev"
        cp /bin/busybox "$dir/bin/"
        for a in sh id echo cat stat ls true sleep touch; do ln -sf busybox "$dir/bin/$a"; done
        : >"$dir/var/lib/dpkg/status"
        echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
        echo "$tag" >"$dir/etc/owned"
        chown 42:42 "$dir/etc/owned"
        chmod 4755 "$dir/bin/busybox"
}
mk_rootfs "$T/bb" one
tar --numeric-owner -czf "$T/bb.tar.gz" -C "$T/bb" .
mk_rootfs "$T/bb2" two
tar --numeric-owner -czf "$T/bb2.tar.gz" -C "$T/bb2" .
chmod 0755 "$T/bb" "$T/bb2"
chmod 0644 "$T/bb.tar.gz" "$T/bb2.tar.gz"

# ---- root builds the system store, with a umask that would keep users out ----
mkdir -p "$SYS/cache"
if [ -d "$real_home/cache/kernel" ]; then
        cp -al "$real_home/cache/kernel" "$SYS/cache/" 2>/dev/null || cp -a "$real_home/cache/kernel" "$SYS/cache/"
fi
t0=$(date +%s)
(umask 077; SMOLVM_SYSTEM_STORE=$SYS "$SMOLVM" image build --system --from-rootfs "$T/bb.tar.gz" --name default \
        >"$T/out" 2>"$T/err")
check_or_bail "root: image build --system --from-rootfs (umask 077) builds the system store" $?
diag "system store built in $(($(date +%s) - t0)) s"
key1=$(basename "$(readlink -f "$SYS/images/default")")
check "the system default is the image just built: $(cat "$T/out")" test "$SYS/images/$key1" = "$(cat "$T/out")"
check "system store: every file and dir readable by all, none writable by others" \
        test -z "$(find "$SYS" ! -type l \( ! -perm -o+r -o -perm -o+w \) -print -quit)"
