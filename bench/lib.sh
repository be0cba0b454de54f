#!/usr/bin/env bash
# Shared set-up of the VM benchmarks (source it): bench_env NAME sets here, build,
# smolvm ($SMOLVM_BIN, default the build's CLI) and real_home (the image store: $SMOLVM_HOME, default ~/.local/state/smolvm),
# makes a private $SMOLVM_HOME in work=/tmp/smolvm-bench-NAME.XXXXXX sharing
# real_home's images, a $SMOLVM_LIBEXECDIR of this build's binaries, and a trap
# that kills what runs from work and removes it; log() prints "NAME.sh: ...".
bench_env() {
        bench_name=$1
        here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
        build=${SMOLVM_BUILD_DIR:-$here/build}
        smolvm=${SMOLVM_BIN:-$build/host/smolvm}
        real_home=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
        work=$(mktemp -d "/tmp/smolvm-bench-$bench_name.XXXXXX")
        trap bench_cleanup EXIT
        export SMOLVM_HOME="$work/home"
        mkdir -p "$SMOLVM_HOME"
        ln -s "$real_home/images" "$SMOLVM_HOME/images"
        export SMOLVM_LIBEXECDIR="$work/libexec"
        mkdir -p "$SMOLVM_LIBEXECDIR"
        local b
        for b in host/supervisor/smolvm-supervisor guest-init/smolvm-init fs/smolvm-virtiofsd; do
                ln -s "$build/$b" "$SMOLVM_LIBEXECDIR/"
        done
}
bench_cleanup() {
        local pids
        pids=$(pgrep -f -- "$work/" || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
        rm -rf "$work"
}
log() { echo "$bench_name.sh: $*" >&2; }
ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
