#!/usr/bin/env bash
# One VM through libsmolvm: boot split, warm exec round trip p50/p99 (vs spawning
# `true` inside the guest), guest->host stream throughput (vs a pipe inside the
# guest), supervisor RSS. usage: bench/exec.sh [RUNS] [STREAM_MIB] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${SMOLVM_BUILD_DIR:-$here/build}
for _ in $(seq "${3:-3}"); do
        "$build/bench/exec_bench" "${1:-200}" "${2:-256}"
done
