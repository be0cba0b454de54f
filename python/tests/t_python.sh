#!/usr/bin/env bash
# The Python package against real VMs: the unittest modules named as arguments
# (python/tests/test_*.py), under the build tree's extension (build/python), with
# a private $SMOLVM_HOME (tests/integration/lib.sh). Each test is one TAP line;
# lib.sh then checks that no VM, supervisor or QEMU of ours is left.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tests/integration/lib.sh"

: "${SMOLVM_PYTHON:?run through meson test (sets SMOLVM_PYTHON)}"
export PYTHONPATH="$SMOLVM_BUILD_DIR/python" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The examples' directory, for test_examples.
export SMOLVM_EXAMPLES_DIR="$here/../../examples"

(cd "$T" && "$SMOLVM_PYTHON" "$here/tap.py" "$@") >"$T/py.out" 2>&1
rc=$?
while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }" ;;
        "not ok - "*) not_ok "${line#not ok - }" ;;
        *) printf '# %s\n' "${line#\# }" ;;
        esac
done <"$T/py.out"
# A crash (no TAP line for the test that died) still fails.
check "python $* exited 0 (rc $rc)" test "$rc" -eq 0

assert_no_leftovers "python ${*}"
finish
