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
# bench_file_tree DIR N: N one-line files under DIR, 100 per directory
# (dNNN/fMMM.txt); DIR must exist.
bench_file_tree() {
        python3 - "$1" "$2" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(max(1, int(sys.argv[2]) // 100)):
    p = os.path.join(root, "d%03d" % d)
    os.mkdir(p)
    for f in range(100):
        with open(os.path.join(p, "f%03d.txt" % f), "w") as fh:
            fh.write("file %d/%d\n" % (d, f))
EOF
}
# bench_go_repo DIR: a real source tree as a git repository at DIR: the Go 1.19
# tree as Debian packages it (golang-1.19-src, ~11,700 files; apt-get download,
# cached in $real_home/cache/bench), committed into a fresh repository.
bench_go_repo() {
        local cache="$real_home/cache/bench"
        mkdir -p "$cache"
        if ! ls "$cache"/golang-1.19-src_*.deb >/dev/null 2>&1; then
                log "fetching golang-1.19-src (a real source tree) into $cache"
                (cd "$cache" && apt-get download golang-1.19-src >/dev/null 2>&1) ||
                        { log "apt-get download golang-1.19-src failed (no Debian mirror?)"; exit 1; }
        fi
        mkdir -p "$work/src"
        dpkg-deb -x "$(ls "$cache"/golang-1.19-src_*.deb | head -1)" "$work/src"
        mv "$work/src/usr/share/go-1.19" "$1"
        git -C "$1" init -q
        git -C "$1" add -A
        git -C "$1" -c user.name=bench -c user.email=bench@localhost commit -qm import
}
ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# bench_nic_modules VM: copy virtio_net and what it needs (failover, net_failover)
# from the cached kernel .deb into VM's /tmp (our image carries no NIC driver);
# the guest loads them with finit_module (bench/net.sh, bench/lane_spike.sh).
bench_nic_modules() {
        if [ ! -d "$work/ko" ]; then
                local deb
                deb=$(ls "$real_home"/cache/kernel/*/kernel.deb 2>/dev/null | head -1)
                [ -n "$deb" ] || { log "no cached kernel .deb under $real_home/cache/kernel (build the image first)"; exit 1; }
                mkdir -p "$work/ko"
                dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/ko" --wildcards \
                        '*/net/core/failover.ko' '*/drivers/net/net_failover.ko' '*/drivers/net/virtio_net.ko'
        fi
        local f
        for f in "$work"/ko/lib/modules/*/kernel/net/core/failover.ko "$work"/ko/lib/modules/*/kernel/drivers/net/*.ko; do
                "$smolvm" exec "$1" -- sh -c "cat >/tmp/$(basename "$f")" <"$f"
        done
}
# bench_net_server MIB: start bench/net_server.py (from $work, so bench_cleanup
# ends it) on a free port, set port, wait until it answers.
bench_net_server() {
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        cp "$here/bench/net_server.py" "$work/"
        python3 "$work/net_server.py" "$1" "$port" &
        disown
        for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null && break; sleep 0.1; done
}
