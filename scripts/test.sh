#!/usr/bin/env bash
# README command 2: set up (idempotent), then run every test: Check unit suites
# and integration tests that boot real microVMs. Prints a closing summary line.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash scripts/setup.sh

# Integration tests boot VMs under TCG (~5 s each) and run one at a time (2 cores).
# Unit suites once more under AddressSanitizer + UndefinedBehaviorSanitizer: the
# parsers and state machines that face the guest must be clean, not just pass.
if [ ! -f build-asan/build.ninja ]; then
        meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-asan | tail -n 3
# The libFuzzer targets (tests/fuzz/): a clang build; each target runs ~15 s from
# its committed seeds ($SMOLVM_FUZZ_SECONDS), a crash fails the suite.
if [ ! -f build-fuzz/build.ninja ]; then
        CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null
fi
ninja -C build-fuzz fuzz | tail -n 3

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 2>&1 | tee "$log"
rc_asan=${PIPESTATUS[0]}
meson test -C build-fuzz --suite fuzz --no-rebuild --print-errorlogs --num-processes 2 2>&1 | tee -a "$log"
rc_fuzz=${PIPESTATUS[0]}
meson test -C build --print-errorlogs --num-processes 2 "$@" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && rc=$rc_asan
[ "$rc" -eq 0 ] && rc=$rc_fuzz
set -e

# One closing line in the plain form CI reads: 'N passed, N failed, N skipped',
# from meson's own summary (Ok / Expected Fail count as passed; Fail, Timeout,
# Unexpected Pass as failed).
awk -F: '
  /^Ok:/ { p += $2 } /^Expected Fail:/ { p += $2 }
  /^Fail:/ { f += $2 } /^Unexpected Pass:/ { f += $2 } /^Timeout:/ { f += $2 }
  /^Skipped:/ { s += $2 }
  END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$rc"
