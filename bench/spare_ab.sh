#!/usr/bin/env bash
# Spares, measured in one run: warm `smolvm run -- true` without spares
# (SMOLVM_SPARE_IDLE_MS=0) and with them, alternating, one build, two private
# homes sharing the images (each template built first, not timed). Wall clock
# of each command, its --json boot_ms (supervisor start, or the claim, to agent
# ready), and how many of the spare runs were served by a spare.
#
# usage: bench/spare_ab.sh [RUNS]      (a built tree in build/)
# SMOLVM_HOME (default ~/.local/state/smolvm): only its images are used (bench/lib.sh).
set -euo pipefail
runs=${1:-10}
. "$(dirname "$0")/lib.sh"
bench_env spare_ab
unset SMOLVM_COLD
base_home=$SMOLVM_HOME
mkdir -p "$work/off"
ln -s "$real_home/images" "$work/off/images"
sv() { # sv off|on ARGS...
        local mode=$1
        shift
        if [ "$mode" = off ]; then
                SMOLVM_HOME="$work/off" SMOLVM_SPARE_IDLE_MS=0 "$smolvm" "$@"
        else
                SMOLVM_HOME="$base_home" SMOLVM_SPARE_IDLE_MS=600000 "$smolvm" "$@"
        fi
}
for m in off on; do sv $m run --boot-timeout 300 -- true; done
sleep 2 # the first spare parks
declare -A wall boot
used=0
for _ in $(seq "$runs"); do
        for m in off on; do
                t=$(ms); sv $m run --json --boot-timeout 300 -- true >"$work/$m.json"; wall[$m]+="$(( $(ms) - t )) "
                boot[$m]+="$(jq .data.boot_ms "$work/$m.json") "
                [ $m = on ] && jq -e '.data.start_note // "" | test("spare")' "$work/$m.json" >/dev/null && used=$((used + 1))
        done
        sleep 0.5 # as a user would between commands: the next spare parks
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus, runs $runs"
for m in off on; do
        echo "spares $m: wall ${wall[$m]}ms (median $(printf '%s\n' ${wall[$m]} | median)); boot_ms median $(printf '%s\n' ${boot[$m]} | median)"
done
echo "runs served by a spare: $used of $runs"
