#!/usr/bin/env bash
# Warm start, measured in one run: `smolvm run -- true` (restored from the
# image's boot template) against `smolvm run --cold -- true` (a boot from
# scratch), alternating, wall clock of the whole command; plus the first use,
# which builds the template (a cold boot and a snapshot) on the way.
#
# usage: bench/warm.sh [RUNS]      (a built tree in build/)
# SMOLVM_HOME (default ~/.local/state/smolvm): only its images are used (bench/lib.sh);
# SMOLVM_BIN: another CLI than the build's.
set -euo pipefail
runs=${1:-5}
. "$(dirname "$0")/lib.sh"
bench_env warm
unset SMOLVM_COLD

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
