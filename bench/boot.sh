#!/usr/bin/env bash
# Cold boot: `smolvm run -- true` against its floor, measured in the same run:
# the same QEMU command line (machine, accelerator, devices, kernel, kernel
# arguments) booting a trivial static init that powers off at once.
# The boot split (VMM, kernel, init) comes from bench/exec_bench (bench/exec.sh).
#
# usage: bench/boot.sh [RUNS]      (needs hyperfine, jq, cpio; a built tree in build/)
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${SMOLVM_BUILD_DIR:-$here/build}
smolvm=${SMOLVM_BIN:-smolvm}
work=$(mktemp -d /tmp/smolvm-bench.XXXXXX)
# pkill finds nothing once the VMs are gone: '|| true', or set -e ends the trap before rm.
trap 'pkill -f -- "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
# A private state dir sharing the image cache, so the VM we inspect is ours.
real_home=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
image=$(readlink -f "$real_home/images/default")
export SMOLVM_HOME="$work/home"
mkdir -p "$SMOLVM_HOME"
ln -s "$real_home/images" "$SMOLVM_HOME/images"

# 1. The exact QEMU argv smolvm uses: read it off a live VM.
"$smolvm" run -- sleep 60 >/dev/null 2>&1 &
run_pid=$!
qpid=
for _ in $(seq 600); do
        qpid=$(pgrep -f "qemu-system-x86_64 .*$SMOLVM_HOME/" || true)
        [ -n "$qpid" ] && break
        sleep 0.1
done
[ -n "$qpid" ] || { echo "boot.sh: no QEMU seen" >&2; exit 1; }
mapfile -d '' argv < "/proc/$qpid/cmdline"
kill -INT "$run_pid"; wait "$run_pid" || true

# 2. The peer's initramfs: /init = a static program calling reboot(POWER_OFF).
mkdir -p "$work/initrd"
cp "$build/bench/poweroff-init" "$work/initrd/init"
(cd "$work/initrd" && echo init | cpio -o -H newc --quiet) > "$work/poweroff.cpio"

# 3. Same argv, but: trivial initrd; sockets owned by the supervisor become null
#    chardevs; the per-VM overlay (gone now) becomes the read-only base image;
#    no QMP socket.
peer=()
for ((i = 0; i < ${#argv[@]}; i++)); do
        a=${argv[$i]}
        case "$a" in
        -initrd) peer+=("$a" "$work/poweroff.cpio"); i=$((i + 1)) ;;
        -qmp) i=$((i + 1)) ;; # the control socket lived in the VM dir; the peer needs none
        socket,id=chan,*) peer+=("null,id=chan") ;;
        socket,id=console,*) peer+=("null,id=console") ;;
        id=root,file=*) peer+=("id=root,file=$image/rootfs.ext4,format=raw,if=none,readonly=on") ;;
        *) peer+=("$a") ;;
        esac
done
printf '%q ' "${peer[@]}" > "$work/peer.sh"

echo "== peer command: $(cat "$work/peer.sh")"
hyperfine --runs "$runs" --warmup 1 --export-json "$work/boot.json" \
        -n "smolvm run -- true" "$smolvm run -- true" \
        -n "same kernel + poweroff init" "bash $work/peer.sh"
jq -r '.results as $r | "ratio smolvm/peer (mean): \(($r[0].mean / $r[1].mean) * 100 | round / 100)   (median: \(($r[0].median / $r[1].median) * 100 | round / 100))"' "$work/boot.json"

