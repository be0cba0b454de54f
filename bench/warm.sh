#!/usr/bin/env bash
# Warm start, measured in one run: `smolvm run -- true` (restored from the
# image's boot template) against `smolvm run --cold -- true` (a boot from
# scratch), alternating, wall clock of the whole command; plus the first use,
# which builds the template (a cold boot and a snapshot) on the way.
#
# usage: bench/warm.sh [RUNS]      (a built tree in build/)
# SMOLVM_BIN (default smolvm), SMOLVM_HOME (default ~/.local/state/smolvm: only its
# images are used; the VMs and the template live in a private home).
set -euo pipefail
runs=${1:-5}
smolvm=${SMOLVM_BIN:-smolvm}
work=$(mktemp -d /tmp/smolvm-bench-warm.XXXXXX)
trap 'pkill -9 -f -- "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
real_home=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
export SMOLVM_HOME="$work/home"
unset SMOLVM_COLD
mkdir -p "$SMOLVM_HOME"
ln -s "$real_home/images" "$SMOLVM_HOME/images"

ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

t=$(ms); "$smolvm" run --boot-timeout 300 -- true; first_ms=$(( $(ms) - t ))
cold=(); warm=()
for _ in $(seq "$runs"); do
        t=$(ms); "$smolvm" run --cold --boot-timeout 300 -- true; cold+=($(( $(ms) - t )))
        t=$(ms); "$smolvm" run --boot-timeout 300 -- true; warm+=($(( $(ms) - t )))
done
cold_med=$(printf '%s\n' "${cold[@]}" | median)
warm_med=$(printf '%s\n' "${warm[@]}" | median)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus, runs $runs"
echo "first use (builds the template): $first_ms ms"
echo "cold run --cold -- true:         ${cold[*]} ms (median $cold_med)"
echo "warm run -- true:                ${warm[*]} ms (median $warm_med)"
echo "warm vs cold:                    $(awk -v c="$cold_med" -v w="$warm_med" 'BEGIN {printf "%.1fx faster", c / w}')"
