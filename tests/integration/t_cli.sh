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

finish
