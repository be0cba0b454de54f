#!/usr/bin/env bash
# The CLI surface that needs no VM: help, version, flag errors, missing image.
. "$(dirname "$0")/lib.sh"

out=$("$SMOLVM" --help 2>&1); rc=$?
check "smolvm --help exits 0" test "$rc" -eq 0
check "smolvm --help lists run" grep -q 'run' <<<"$out"
out=$("$SMOLVM" run --help 2>&1); rc=$?
check "smolvm run --help exits 0 and shows --timeout" sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q -- --timeout" _ "$out"
out=$("$SMOLVM" --version 2>&1); rc=$?
check "smolvm --version prints a version" sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -Eq '[0-9]+\.[0-9]+\.[0-9]+'" _ "$out"

err=$("$SMOLVM" run --no-such-flag -- true 2>&1 >/dev/null); rc=$?
check "unknown flag: exit 125" test "$rc" -eq 125
check "unknown flag: message names the flag" grep -q -- '--no-such-flag' <<<"$err"

err=$("$SMOLVM" frobnicate 2>&1 >/dev/null); rc=$?
check "unknown command: non-zero exit and names it" sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q frobnicate" _ "$err"

err=$("$SMOLVM" run -- 2>&1 >/dev/null); rc=$?
check "run without a command: exit 125" test "$rc" -eq 125

err=$("$SMOLVM" run --timeout abc -- true 2>&1 >/dev/null); rc=$?
check "bad --timeout value: exit 125, names the value" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q abc" _ "$err"

err=$("$SMOLVM" run --image no-such-image -- true 2>&1 >/dev/null); rc=$?
check "missing image: exit 125" test "$rc" -eq 125
check "missing image: message names it and hints at image build" sh -c "printf '%s' \"\$1\" | grep -q no-such-image && printf '%s' \"\$1\" | grep -q 'image build'" _ "$err"
assert_no_leftovers "missing image"

# ---- env keys are checked as the guest checks them, before anything is made ----
for cmd in "create --no-start --env A-B=1" "run --env A-B=1 -- true"; do
        err=$("$SMOLVM" $cmd 2>&1 >/dev/null); rc=$?
        check "$cmd: exit 125, names the key" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'A-B'\"" _ "$err"
done
err=$("$SMOLVM" exec --env 1X=1 nosuchvm -- true 2>&1 >/dev/null); rc=$?
check "exec --env 1X=1: refused before looking for the VM" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'1X'\"" _ "$err"
big=$(head -c 65537 /dev/zero | tr '\0' v)
err=$("$SMOLVM" create --no-start --env "BIG=$big" 2>&1 >/dev/null); rc=$?
check "create --env with a 64 KiB + 1 value: exit 125, names the key" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q BIG" _ "$err"
vid=$("$SMOLVM" create --no-start 2>/dev/null)
err=$("$SMOLVM" env set "$vid" A-B=1 2>&1 >/dev/null); rc=$?
check "env set A-B=1: exit 125, names the key" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'A-B'\"" _ "$err"
"$SMOLVM" rm -f "$vid" >/dev/null 2>&1
assert_no_leftovers "invalid env"

# ---- image names stay inside the image store ----
for cmd in "run --image ../../../etc -- true" "create --no-start --image ../x" "create --no-start --image .hidden"; do
        start=$(date +%s)
        err=$("$SMOLVM" $cmd 2>&1 >/dev/null); rc=$?
        took=$(( $(date +%s) - start ))
        img=$(printf '%s' "$cmd" | sed -E 's/.*--image ([^ ]+).*/\1/')
        check "$cmd: exit 125 at once (${took}s)" sh -c "[ $rc -eq 125 ] && [ $took -lt 5 ]"
        check "$cmd: names the image and the store" sh -c "printf '%s' \"\$1\" | grep -qF \"'$img'\" && printf '%s' \"\$1\" | grep -qF '$SMOLVM_HOME/images'" _ "$err"
done
err=$("$SMOLVM" create --no-start --json --image ../x 2>/dev/null); rc=$?
check "create --image ../x --json: invalid_argument" jq_true '.error.code == "invalid_argument"' <<<"$err"
assert_no_leftovers "invalid image names"

# ---- guest mount points the guest's init owns are refused at once ----
mkdir -p "$T/share"
start=$(date +%s)
err=$("$SMOLVM" run --boot-timeout 15 --mount "$T/share:/dev" -- true 2>&1 >/dev/null); rc=$?
took=$(( $(date +%s) - start ))
check "run --mount X:/dev: exit 125 within 5 s (rc $rc, ${took}s)" sh -c "[ $rc -eq 125 ] && [ $took -lt 5 ]"
check "run --mount X:/dev: names /dev" sh -c "printf '%s' \"\$1\" | grep -q \"'/dev'\"" _ "$err"
for g in /proc /sys/kernel /dev/shm /run /run/smolvm/x /tmp /etc/smolvm /etc /a/../b /a//b /a/; do
        err=$("$SMOLVM" create --no-start --mount "$T/share:$g" 2>&1 >/dev/null); rc=$?
        check "create --mount X:$g: refused, naming it" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -qF \"'$g'\"" _ "$err"
done
vid=$("$SMOLVM" create --no-start --mount "$T/share:/run/data" --mount "$T/share:/tmp/x" --mount "$T/share:/devices" 2>"$T/err"); rc=$?
check "create --mount X:/run/data, /tmp/x, /devices: accepted" test "$rc" -eq 0
[ "$rc" -eq 0 ] && "$SMOLVM" rm -f "$vid" >/dev/null 2>&1
assert_no_leftovers "reserved mount points"

finish
