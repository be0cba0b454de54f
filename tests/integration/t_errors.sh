#!/usr/bin/env bash
# Each failure a user can meet gives one clear line + a hint, exit 125, and leaves
# no process and no VM directory behind.
. "$(dirname "$0")/lib.sh"

expect_error() { # NAME PATTERN  (stderr of the last run in $T/err, rc in $rc)
        local name=$1 pattern=$2
        check "$name: exit 125 (got $rc)" test "$rc" -eq 125
        check "$name: says '$pattern'" grep -Eqi -- "$pattern" "$T/err"
        check "$name: gives a hint" grep -qi '^hint:' "$T/err"
        assert_no_leftovers "$name"
        [ "$rc" -eq 125 ] || sed 's/^/# /' "$T/err"
}

# QEMU missing.
SMOLVM_QEMU=/nonexistent/qemu-system-x86_64 "$SMOLVM" run -- true >/dev/null 2>"$T/err"; rc=$?
expect_error "qemu missing" 'qemu-system-x86_64.*not found|not found.*qemu'

# Kernel panic during boot: no usable init => the kernel panics; we show its console tail.
SMOLVM_KERNEL_APPEND="rdinit=/no-such-init" "$SMOLVM" run -- true >/dev/null 2>"$T/err"; rc=$?
expect_error "kernel panic" 'kernel'
check "kernel panic: console tail shown" grep -q 'Kernel panic' "$T/err"

# An agent that never answers: the guest boots, but its agent cannot find the channel.
SMOLVM_KERNEL_APPEND="smolvm.chan=org.smolvm.nowhere" "$SMOLVM" run --boot-timeout 25 -- true >/dev/null 2>"$T/err"; rc=$?
expect_error "agent unreachable" 'agent not reachable within 25 s'
check "agent unreachable: console tail shown" grep -qi 'console' "$T/err"

# Disk full in the data dir: a 2 MiB tmpfs as $SMOLVM_HOME, filled up.
mkdir -p "$T/small"
if mount -t tmpfs -o size=2m smolvm-test "$T/small" 2>/dev/null; then
        real_images=$(readlink "$SMOLVM_HOME/images")
        mkdir -p "$T/small/home"
        ln -s "$real_images" "$T/small/home/images"
        dd if=/dev/zero of="$T/small/fill" bs=64k 2>/dev/null
        SMOLVM_HOME="$T/small/home" "$SMOLVM" run -- true >/dev/null 2>"$T/err"; rc=$?
        check "disk full: exit 125 (got $rc)" test "$rc" -eq 125
        check "disk full: says so" grep -qi 'no space left' "$T/err"
        check "disk full: gives a hint" grep -qi '^hint:' "$T/err"
        left=$(ls -A "$T/small/home/vms" 2>/dev/null || true)
        check "disk full: no VM dir left" test -z "$left"
else
        ok "disk full # SKIP cannot mount a tmpfs here (not root)"
fi

finish
