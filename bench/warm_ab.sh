#!/usr/bin/env bash
# Warm start, two builds interleaved in one run (A/B): each step runs A then B,
# so load from elsewhere hits both alike. Per build: a private home sharing the
# given image home's images, the template built first (not timed); then N times
# a warm `run -- true` and a warm `create` + `exec -- echo hi` (+ `rm -f`, not
# timed), then C times `run --cold -- true`. Wall clock of each command; for
# the warm run also its --json parts: boot_ms (supervisor start to agent ready)
# and duration_ms (the exec: connected to the agent -> exit status received,
# the first command of the restored guest).
#
# usage: bench/warm_ab.sh A_TREE A_IMAGE_HOME B_TREE B_IMAGE_HOME [N] [C]
#   *_TREE: a source tree built in TREE/build; *_IMAGE_HOME: a $SMOLVM_HOME
#   whose images/ hold the default image built with that tree's smolvm-init.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
declare -A tree home
tree[A]=$(cd "$1" && pwd); home[A]=$(cd "$2" && pwd); tree[B]=$(cd "$3" && pwd); home[B]=$(cd "$4" && pwd)
N=${5:-8}
C=${6:-3}
work=$(mktemp -d /tmp/smolvm-bench-warm_ab.XXXXXX)
cleanup() {
        local pids
        pids=$(pgrep -f -- "$work/" || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
        rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # ms, median
for w in A B; do
        mkdir -p "$work/$w/home" "$work/$w/libexec"
        ln -s "${home[$w]}/images" "$work/$w/home/images"
        for f in host/supervisor/smolvm-supervisor guest-init/smolvm-init fs/smolvm-virtiofsd; do
                ln -s "${tree[$w]}/build/$f" "$work/$w/libexec/"
        done
done
sv() {
        local w=$1
        shift
        SMOLVM_HOME="$work/$w/home" SMOLVM_LIBEXECDIR="$work/$w/libexec" "${tree[$w]}/build/host/smolvm" "$@"
}
unset SMOLVM_COLD
for w in A B; do sv $w run --boot-timeout 300 -- true; done
declare -A warm ce cold boot dur
for _ in $(seq "$N"); do
        for w in A B; do
                t=$(ms); sv $w run --json --boot-timeout 300 -- true >"$work/$w/run.json"; warm[$w]+="$(( $(ms) - t )) "
                boot[$w]+="$(jq .data.boot_ms "$work/$w/run.json") "
                dur[$w]+="$(jq .data.duration_ms "$work/$w/run.json") "
                t=$(ms); id=$(sv $w create --boot-timeout 300); sv $w exec "$id" -- echo hi >/dev/null
                ce[$w]+="$(( $(ms) - t )) "
                sv $w rm -f "$id" >/dev/null
        done
done
for _ in $(seq "$C"); do
        for w in A B; do
                t=$(ms); sv $w run --cold --boot-timeout 300 -- true; cold[$w]+="$(( $(ms) - t )) "
        done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus; A ${tree[A]}, B ${tree[B]}"
for w in A B; do
        echo "$w warm run -- true:         ${warm[$w]-}(median $(printf '%s\n' ${warm[$w]-} | median))"
        echo "$w   its boot_ms:             ${boot[$w]-}(median $(printf '%s\n' ${boot[$w]-} | median))"
        echo "$w   its exec duration_ms:    ${dur[$w]-}(median $(printf '%s\n' ${dur[$w]-} | median))"
        echo "$w create + exec -- echo hi: ${ce[$w]-}(median $(printf '%s\n' ${ce[$w]-} | median))"
        echo "$w run --cold -- true:       ${cold[$w]-}(median $(printf '%s\n' ${cold[$w]-} | median))"
done
