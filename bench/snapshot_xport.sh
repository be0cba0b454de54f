#!/usr/bin/env bash
# Snapshot export and import throughput against the host's zstd on the same
# bytes, in one run: a VM with ~100 MB of mixed data in RAM (half text, half
# random) is snapshotted; then RUNS times `smolvm snapshot export` and
# `smolvm snapshot import` (into a second home) are timed, and so are
# `zstd -1 -T1` and `zstd -d` of the archive's content (the very bytes export
# compresses: `zstd -d` of the archive gives them). MB/s are of content bytes
# (the snapshot's data, holes excluded), medians of the runs.
#
# usage: bench/snapshot_xport.sh [RUNS]      (needs jq and zstd; a built tree in build/)
# SMOLVM_HOME (default ~/.local/state/smolvm): only its images are used (bench/lib.sh).
set -euo pipefail
runs=${1:-3}
. "$(dirname "$0")/lib.sh"
bench_env snapshot_xport
mkdir -p "$work/home2"
ln -s "$real_home/images" "$work/home2/images"

mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.0f", b / 1e6 / (t / 1000)}'; }

"$smolvm" create --boot-timeout 300 --name par >/dev/null
"$smolvm" exec par -- python3 -c '
import os
with open("/dev/shm/text", "w") as f:
    for i in range(1200000):
        f.write("line %d of a log the guest keeps in memory\n" % i)
with open("/dev/shm/random", "wb") as f:
    f.write(os.urandom(50 << 20))
'
"$smolvm" snapshot create --name s --stop par >/dev/null

exp=(); imp=(); zc=(); zd=()
for i in $(seq "$runs"); do
        rm -f "$work/s.snap"
        t=$(ms); "$smolvm" snapshot export --json s "$work/s.snap" >"$work/export.json"; exp+=($(( $(ms) - t )))
        t=$(ms); SMOLVM_HOME=$work/home2 "$smolvm" snapshot import --name "i$i" "$work/s.snap" >/dev/null
        imp+=($(( $(ms) - t )))
        SMOLVM_HOME=$work/home2 "$smolvm" snapshot rm "i$i" >/dev/null
done
content=$(jq .data.content_bytes "$work/export.json")
file=$(jq .data.file_bytes "$work/export.json")
zstd -q -d -c "$work/s.snap" >"$work/content"
for _ in $(seq "$runs"); do
        rm -f "$work/content.zst" "$work/content.out"
        t=$(ms); zstd -q -1 -T1 "$work/content" -o "$work/content.zst"; zc+=($(( $(ms) - t )))
        t=$(ms); zstd -q -d "$work/content.zst" -o "$work/content.out"; zd+=($(( $(ms) - t )))
done
zfile=$(stat -c %s "$work/content.zst")
e=$(printf '%s\n' "${exp[@]}" | median); m=$(printf '%s\n' "${imp[@]}" | median)
c=$(printf '%s\n' "${zc[@]}" | median); d=$(printf '%s\n' "${zd[@]}" | median)
"$smolvm" rm -f par >/dev/null

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus, runs $runs, io $(jq -r .data.io "$work/export.json")"
echo "content: $content bytes; archive $file bytes; zstd -1 $zfile bytes"
echo "snapshot export:     ${exp[*]} ms (median $e): $(mbps "$content" "$e") MB/s"
echo "zstd -1 -T1:         ${zc[*]} ms (median $c): $(mbps "$content" "$c") MB/s"
echo "snapshot import:     ${imp[*]} ms (median $m): $(mbps "$content" "$m") MB/s"
echo "zstd -d:             ${zd[*]} ms (median $d): $(mbps "$content" "$d") MB/s"
echo "export / zstd -1: $(awk -v a="$c" -v b="$e" 'BEGIN {printf "%.2fx", a / b}') the speed; import / zstd -d: $(awk -v a="$d" -v b="$m" 'BEGIN {printf "%.2fx", a / b}')"
