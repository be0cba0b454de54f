#!/usr/bin/env bash
# Snapshots, measured in one run: `smolvm run --from-snapshot S -- true` against a
# cold `smolvm run -- true` (ratio), `fork -n 4` against 4 cold creates in a row,
# the pause the guest sees while a snapshot is taken (its own CLOCK_MONOTONIC
# gap, and the host's pause_ms), and the snapshot's bytes on disk.
#
# usage: bench/snapshot.sh [RUNS]      (needs jq; a built tree in build/)
# SMOLVM_HOME (default ~/.local/state/smolvm): only its images are used (bench/lib.sh);
# SMOLVM_BIN: another CLI than the build's.
set -euo pipefail
runs=${1:-3}
. "$(dirname "$0")/lib.sh"
bench_env snapshot


"$smolvm" create --boot-timeout 300 --name par >/dev/null
# A guest-side clock ticking every 10 ms: the largest gap is the pause it saw.
"$smolvm" exec par -- sh -c 'cat > /root/gap.py' <<'PY'
import os, time
last = time.monotonic(); worst = 0
while True:
    time.sleep(0.01)
    now = time.monotonic(); worst = max(worst, now - last); last = now
    with open("/dev/shm/gap.tmp", "w") as f:
        f.write(str(int(worst * 1000)))
    os.replace("/dev/shm/gap.tmp", "/dev/shm/gap")
PY
"$smolvm" exec par -- sh -c 'setsid python3 /root/gap.py </dev/null >/dev/null 2>&1 &
n=0; while [ ! -e /dev/shm/gap ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done'
sleep 3
g0=$("$smolvm" exec par -- cat /dev/shm/gap)
"$smolvm" snapshot create --json --name s par >"$work/snap.json"
sleep 1
g1=$("$smolvm" exec par -- cat /dev/shm/gap)
pause=$(jq .data.pause_ms "$work/snap.json")
disk=$(jq .data.disk_bytes "$work/snap.json")
ram=$(jq .data.ram_bytes "$work/snap.json")

cold=(); warm=()
for _ in $(seq "$runs"); do
        t=$(ms); "$smolvm" run --cold --boot-timeout 300 -- true; cold+=($(( $(ms) - t )))
        t=$(ms); "$smolvm" run --from-snapshot s -- true; warm+=($(( $(ms) - t )))
done
cold_med=$(printf '%s\n' "${cold[@]}" | median)
warm_med=$(printf '%s\n' "${warm[@]}" | median)

t=$(ms); "$smolvm" fork -n 4 par >"$work/kids"; fork_ms=$(( $(ms) - t ))
"$smolvm" rm -f $(cat "$work/kids") >/dev/null
t=$(ms); for i in 1 2 3 4; do "$smolvm" create --cold --boot-timeout 300 >>"$work/cold"; done; cold4_ms=$(( $(ms) - t ))
"$smolvm" rm -f $(cat "$work/cold") par >/dev/null

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus, runs $runs"
echo "cold run -- true:             ${cold[*]} ms (median $cold_med)"
echo "run --from-snapshot -- true:  ${warm[*]} ms (median $warm_med)"
echo "ratio cold / from-snapshot:   $(awk -v a="$cold_med" -v b="$warm_med" 'BEGIN {printf "%.2f", a / b}')"
echo "fork -n 4:                    $fork_ms ms; 4 cold creates: $cold4_ms ms"
echo "snapshot pause: host $pause ms; largest guest clock gap before $g0 ms, after $g1 ms"
echo "snapshot on disk: $disk bytes (RAM data $ram bytes)"
