#!/usr/bin/env bash
# Persistent-sandbox figures, each against a peer in the same run:
#  - create -> first exec latency (vs `smolvm run -- true`, the ephemeral path);
#  - exec round trip through the CLI (hyperfine) vs through the library (lib_exec);
#  - upload/download of a 64 MiB file with `smolvm cp` vs `cat` through `smolvm exec`;
#  - host RSS of an idle VM (supervisor, QEMU).
# usage: bench/sdk.sh [RUNS]
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${SMOLVM_BUILD_DIR:-$here/build}
smolvm=${SMOLVM_BIN:-smolvm}
work=$(mktemp -d /tmp/smolvm-bench.XXXXXX)
real_home=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
export SMOLVM_HOME="$work/home"
mkdir -p "$SMOLVM_HOME"
ln -s "$real_home/images" "$SMOLVM_HOME/images"
id=
trap '[ -n "$id" ] && "$smolvm" rm -f "$id" >/dev/null 2>&1; pkill -f -- "$work/" 2>/dev/null; rm -rf "$work"' EXIT
ms() { date +%s%3N; }

echo "== create -> first exec vs smolvm run -- true ($runs runs each)"
for _ in $(seq "$runs"); do
        t0=$(ms); i=$("$smolvm" create); "$smolvm" exec "$i" -- true; t1=$(ms)
        "$smolvm" rm -f "$i" >/dev/null
        t2=$(ms); "$smolvm" run -- true; t3=$(ms)
        echo "create+exec_ms=$((t1 - t0)) run_ms=$((t3 - t2)) ratio=$(awk "BEGIN{printf \"%.2f\", $((t1 - t0))/$((t3 - t2))}")"
done

id=$("$smolvm" create --name bench)
echo "== exec round trip: CLI (hyperfine) vs library"
hyperfine -N --warmup 3 --runs 50 --export-json "$work/cli.json" "$smolvm exec $id -- true" >/dev/null
cli_ms=$(jq '.results[0].median * 1000' "$work/cli.json")
lib=$("$build/bench/lib_exec" "$id" 50)
lib_ms=$(jq '.lib_exec_p50_us / 1000' <<<"$lib")
echo "cli_exec_median_ms=$cli_ms lib_exec_p50_ms=$lib_ms ratio_cli_lib=$(awk "BEGIN{printf \"%.2f\", $cli_ms/$lib_ms}")"

echo "== 64 MiB upload/download: smolvm cp vs cat through exec"
head -c 64M /dev/urandom > "$work/blob"
t0=$(ms); "$smolvm" cp "$work/blob" "$id:/tmp/blob"; t1=$(ms)
"$smolvm" exec -i "$id" -- sh -c 'cat > /tmp/blob2' < "$work/blob"; t2=$(ms)
"$smolvm" cp "$id:/tmp/blob" "$work/down"; t3=$(ms)
"$smolvm" exec "$id" -- cat /tmp/blob2 > "$work/down2"; t4=$(ms)
cmp "$work/blob" "$work/down" && cmp "$work/blob" "$work/down2"
echo "upload_cp_MiBps=$(awk "BEGIN{printf \"%.1f\", 64000/$((t1 - t0))}") upload_cat_MiBps=$(awk "BEGIN{printf \"%.1f\", 64000/$((t2 - t1))}") ratio=$(awk "BEGIN{printf \"%.2f\", $((t2 - t1))/$((t1 - t0))}")"
echo "download_cp_MiBps=$(awk "BEGIN{printf \"%.1f\", 64000/$((t3 - t2))}") download_cat_MiBps=$(awk "BEGIN{printf \"%.1f\", 64000/$((t4 - t3))}") ratio=$(awk "BEGIN{printf \"%.2f\", $((t4 - t3))/$((t3 - t2))}")"

echo "== idle VM host memory (after 5 s idle)"
sleep 5
dir=$SMOLVM_HOME/vms/$id
spid=$(cat "$dir/supervisor.pid")
qpid=$(pgrep -f "qemu-system-x86_64 .*$dir/" | head -1)
echo "supervisor_rss_kib=$(awk '/VmRSS/{print $2}' /proc/$spid/status) qemu_rss_kib=$(awk '/VmRSS/{print $2}' /proc/$qpid/status)"
