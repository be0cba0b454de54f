#!/usr/bin/env bash
# Host directory sharing: our virtio-fs server (smolvm-virtiofsd) against peers we
# did not write, in the same harness and the same run:
#   ours     smolvm --mount DIR:/share (read-only, sandboxed back-end)
#   vsock    the same server over FUSE-over-vsock (--mount-transport vsock: the
#            supervisor serves it, smolvm-init relays /dev/fuse)
#   qemu     virtio-fs with SMOLVM_VIRTIOFSD=/usr/lib/qemu/virtiofsd (QEMU's C
#            virtiofsd, -o cache=auto; it has no read-only mode)
#   9p       virtio-9p: QEMU gets -fsdev local,...,readonly=on -device virtio-9p-device
#            through a SMOLVM_QEMU wrapper; the guest loads 9p modules from the
#            kernel package (not in our initramfs) and mounts trans=virtio,msize=512000
#   local    not a peer but the floor: the same workload on a copy of the tree and
#            the repository in a fifth VM's own tmpfs (stat, git and grep only: the
#            512 MiB file does not fit). What a share costs is its time
#            minus this; under TCG the guest's own CPU (stat(1) formatting, grep
#            matching) is a large part of every column.
# Workloads, each after dropping the guest's caches (the host's stay warm for all):
#   seq      dd of a 512 MiB file, 1 MiB blocks
#   rand     4000 random 4 KiB preads of that file (POSIX_FADV_RANDOM)
#   stat     find | xargs stat over a $FILES-file tree (default 20,000). QEMU's
#            virtiofsd pins each inode the guest caches with an fd and answers EMFILE
#            past its RLIMIT_NOFILE; ours evicts idle fds and re-resolves them
#   git      git status over a real repository: the Go 1.19 source tree as Debian
#            packages it (golang-1.19-src, ~11,700 files; apt-get download, cached,
#            committed into a fresh git repository on the host)
#   grep     grep -r over that repository
#   vsockb   not a peer: vsock with the supervisor and the file server
#            (smolvm-virtiofsd) of the build in $BENCH_LIBEXEC_B (a build dir),
#            the same image: an A/B of a host-side change in the same run
#   oursb    not a peer: ours (virtio-fs) with the supervisor and file server of
#            $BENCH_LIBEXEC_B: the other column of that A/B
#   ra128    not a peer: ours with the guest's readahead window put back to the
#            kernel's default 128 KiB (smolvm-init raises it to 1 MiB), to
#            measure that change in the same run
#   direct   not a peer: ours with opt-in direct I/O (SMOLVM_FS_DIRECT_IO=1: the
#            server opens every file FOPEN_DIRECT_IO, reads go straight into the
#            reader's buffer as 9p's do; no shared mmap on the 6.1 guest)
#   vsockbase  not a peer: vsock booted from the image named $BASE_IMAGE (default
#            "base": e.g. main's smolvm-init built into an image of the store and
#            linked as images/base), to measure a guest-side change in the same run
# COUNT=1: also count the FUSE requests each cell makes, per opcode (our server's
#            --op-counts, SMOLVM_FS_STATS=1: it logs its totals at every STATFS;
#            after each cell the guest runs `stat -f /share` and the difference
#            from the previous cell is printed, minus that STATFS)
# A cell whose run fails prints the error and shows "fail"; the rest goes on.
# BACKENDS="ours 9p ..." and WORKLOADS="seq ..." run a subset (ours always runs;
# the fixed table then gives way to one line per backend).
# Prints the median and the minimum of RUNS per cell and the ratios (peer time / our
# time: > 1 means ours is faster).
#
# usage: bench/fs.sh [RUNS]   (default 3; a built tree in $SMOLVM_BUILD_DIR or build/;
#                             root, for the 9p modules' extraction and mknod-free setup)
# Not part of the test suite: run by hand.
set -euo pipefail
runs=${1:-3}
files=${FILES:-20000}
. "$(dirname "$0")/lib.sh"
bench_env fs
qemu_virtiofsd=${QEMU_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

read -r -a backends <<<"${BACKENDS:-ours vsock qemu 9p}"
read -r -a workloads <<<"${WORKLOADS:-seq rand stat git grep}"
read -r -a backends <<<"ours $(printf '%s\n' "${backends[@]}" | grep -vx ours | tr '\n' ' ')"
full=false
[ "${backends[*]}" = "ours vsock qemu 9p" ] && [ "${workloads[*]}" = "seq rand stat git grep" ] && full=true
needs_repo=false
case " ${workloads[*]} " in *" stat "* | *" git "* | *" grep "*) needs_repo=true ;; esac

# ---- the share ----
share="$work/share"
mkdir -p "$share/tree"
log "building the share in $share"
head -c $((512 * 1024 * 1024)) /dev/urandom >"$share/big"
bench_file_tree "$share/tree" "$files"
if $needs_repo; then
        bench_go_repo "$share/repo"
fi
log "share: $(du -sh "$share" | cut -f1), $(find "$share" | wc -l) entries"

# ---- 9p: modules from the image's kernel package, and a QEMU wrapper ----
# The default image's kernel (a store may cache several); 6.12 ships the modules
# xz-compressed and has no separate fscache.ko (netfs carries it).
kkey=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["kernel"]["key"])' \
        "$real_home/images/default/image.json" 2>/dev/null || true)
kdeb="$real_home/cache/kernel/$kkey/kernel.deb"
[ -n "$kkey" ] && [ -f "$kdeb" ] || kdeb=$(ls "$real_home"/cache/kernel/*/kernel.deb | head -1)
mkdir -p "$work/mods"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work/mods" --wildcards '*/fs/9p/9p.ko*' '*/net/9p/9pnet.ko*' \
        '*/net/9p/9pnet_virtio.ko*' '*/fs/netfs/netfs.ko*'
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work/mods" --wildcards '*/fs/fscache/fscache.ko*' 2>/dev/null || true
find "$work/mods" -name '*.ko.xz' -exec xz -d {} +
cat >"$work/qemu-9p" <<EOF
#!/bin/sh
exec qemu-system-x86_64 "\$@" -fsdev local,id=p9,path=$share,security_model=none,readonly=on \
        -device virtio-9p-device,fsdev=p9,mount_tag=p9
EOF
chmod +x "$work/qemu-9p"

# ---- the guest side: one script, one workload per call ----
cat >"$work/guest.sh" <<'EOF'
set -e
w=$1 dir=$2
sync
echo 3 > /proc/sys/vm/drop_caches
t0=$(date +%s%N)
case $w in
seq) dd if=$dir/big of=/dev/null bs=1M 2>/dev/null ;;
rand) python3 -c '
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
size = os.fstat(fd).st_size
r = random.Random(42)
for _ in range(4000):
    os.pread(fd, 4096, r.randrange(size // 4096) * 4096)
' "$dir/big" ;;
stat) find "$dir/tree" -type f | xargs stat >/dev/null ;;
git) git -c safe.directory='*' -C "$dir/repo" status --porcelain >/dev/null ;;
grep) grep -r smolvm_no_such_string "$dir/repo" >/dev/null || [ $? -eq 1 ] ;;
esac
t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000000 ))
EOF

load_9p() {
        local m
        for m in netfs fscache 9pnet 9pnet_virtio 9p; do
                f=$(find "$work/mods" -name "$m.ko")
                [ -n "$f" ] || [ "$m" != fscache ] || continue
                "$smolvm" cp "$f" "$1:/tmp/$m.ko" >/dev/null
                "$smolvm" exec "$1" -- python3 -c '
import ctypes, errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
if libc.syscall(313, fd, b"", 0) != 0 and ctypes.get_errno() != errno.EEXIST:
    sys.exit("finit_module %s: %s" % (sys.argv[1], os.strerror(ctypes.get_errno())))
' "/tmp/$m.ko"
        done
        "$smolvm" exec "$1" -- sh -c 'mkdir -p /share && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro p9 /share'
}

count=false
if [ "${COUNT:-0}" = 1 ]; then
        count=true
        export SMOLVM_FS_STATS=1
fi
# count_cell BE W: the requests BE's server served since its previous count.
count_cell() {
        local dir
        "$smolvm" exec "b-$1" -- stat -f /share >/dev/null || return 0
        dir=$("$smolvm" info --json "b-$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["dir"])')
        grep -h '^smolvm-fs: requests: ' "$dir"/virtiofsd-0.log | tail -2 | python3 -c '
import sys
rows = [dict((k, int(v)) for k, v in (c.rsplit(" ", 1) for c in l.split(": ", 2)[2].strip().split(", ")))
        for l in sys.stdin]
if not rows:
    sys.exit(0)  # a build without --op-counts
now, before = rows[-1], (rows[-2] if len(rows) > 1 else {})
d = {k: now[k] - before.get(k, 0) for k in now}
d["STATFS"] -= 1
print("%s %s requests: total %d: %s" % (sys.argv[1], sys.argv[2], sum(d.values()),
      ", ".join("%s %d" % kv for kv in sorted(d.items(), key=lambda kv: -kv[1]) if kv[1])))
' "$1" "$2" >&2 || true
}

# All VMs run at once and the workloads interleave (each round runs every backend),
# so drift in the host's load (a shared machine) hits all of them alike.
declare -A times
for be in "${backends[@]}"; do
        log "booting the $be VM"
        case $be in
        ours) "$smolvm" create --name "b-$be" --mem 1024 --mount "$share:/share" >/dev/null ;;
        vsock) "$smolvm" create --name "b-$be" --mem 1024 --mount-transport vsock --mount "$share:/share" >/dev/null ;;
        qemu) SMOLVM_VIRTIOFSD="$qemu_virtiofsd" "$smolvm" create --name "b-$be" --mem 1024 --mount "$share:/share" >/dev/null ;;
        9p) SMOLVM_QEMU="$work/qemu-9p" "$smolvm" create --name "b-$be" --mem 1024 >/dev/null && load_9p "b-$be" ;;
        direct) SMOLVM_FS_DIRECT_IO=1 "$smolvm" create --name "b-$be" --mem 1024 --mount "$share:/share" >/dev/null ;;
        vsockbase) "$smolvm" create --name "b-$be" --mem 1024 --image "${BASE_IMAGE:-base}" --mount-transport vsock \
                --mount "$share:/share" >/dev/null ;;
        vsockb | oursb) lx=$work/libexec-b
                mkdir -p "$lx"
                ln -sf "${BENCH_LIBEXEC_B:?$be needs BENCH_LIBEXEC_B}/host/supervisor/smolvm-supervisor" \
                        "$BENCH_LIBEXEC_B/fs/smolvm-virtiofsd" "$SMOLVM_LIBEXECDIR/smolvm-init" "$lx/"
                xport=virtiofs
                [ "$be" = vsockb ] && xport=vsock
                SMOLVM_LIBEXECDIR=$lx "$smolvm" create --name "b-$be" --mem 1024 --mount-transport "$xport" \
                        --mount "$share:/share" >/dev/null ;;
        ra128) "$smolvm" create --name "b-$be" --mem 1024 --mount "$share:/share" >/dev/null &&
                "$smolvm" exec "b-$be" -- sh -c 'echo 128 > /sys/class/bdi/$(mountpoint -d /share)/read_ahead_kb' ;;
        esac
        "$smolvm" cp "$work/guest.sh" "b-$be:/root/bench.sh" >/dev/null
        if $count; then
                case $be in ours | vsock | vsockb | vsockbase | direct | ra128) count_cell "$be" boot ;; esac
        fi
        "$smolvm" exec "b-$be" -- sh -c 'grep " /share " /proc/mounts' >&2
        # What each back-end costs a shared read-only mmap (python's mmap.ACCESS_READ).
        "$smolvm" exec "b-$be" -- python3 -c 'import mmap, sys
f = open(sys.argv[1], "rb")
try:
    mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    print("shared mmap: works")
except OSError as e:
    print("shared mmap: %s" % e)' /share/big | sed "s/^/$be: /" >&2
done
# FLOOR=0 skips the local VM (its copy of the trees through the share is the
# slowest part of the set-up on a loaded host); its column then shows "-".
floor=false
$needs_repo && [ "${FLOOR:-1}" != 0 ] && floor=true
if $floor; then
log "booting the local VM: the tree and the repository copied into its tmpfs (the floor)"
"$smolvm" create --name b-local --mem 1024 --mount "$share:/share" >/dev/null
"$smolvm" cp "$work/guest.sh" "b-local:/root/bench.sh" >/dev/null
"$smolvm" exec b-local -- sh -c 'mkdir -p /tmp/local && cp -a /share/tree /share/repo /tmp/local/ &&
        git -c safe.directory="*" -C /tmp/local/repo status --porcelain >/dev/null && umount /share'
fi
for w in "${workloads[@]}"; do
        for r in $(seq "$runs"); do
                for be in "${backends[@]}"; do
                        if ! t=$("$smolvm" exec "b-$be" -- sh /root/bench.sh "$w" /share 2>"$work/err") ||
                                [ -z "$t" ]; then
                                log "$be $w failed: $(head -3 "$work/err" | tr '\n' ' ')"
                                t=fail
                        fi
                        times[$be,$w]="${times[$be,$w]:-} $t"
                        if $count; then
                                case $be in ours | vsock | vsockb | vsockbase | direct | ra128) count_cell "$be" "$w" ;; esac
                        fi
                done
                t=-
                case $floor,$w in true,stat | true,git | true,grep)
                        t=$("$smolvm" exec b-local -- sh /root/bench.sh "$w" /tmp/local 2>"$work/err") ||
                                { log "local $w failed: $(head -3 "$work/err" | tr '\n' ' ')"; t=fail; } ;;
                esac
                times[local,$w]="${times[local,$w]:-} $t"
                line=
                for be in "${backends[@]}" local; do
                        line+=" $be${times[$be,$w]##* }"
                done
                log "$w round $r:$line ms"
        done
done
for be in "${backends[@]}" local; do
        "$smolvm" rm -f "b-$be" >/dev/null 2>&1 || true
done

stat_of() { # which(median|min) "t1 t2 ...": "fail" if any run failed
        local sorted
        case " $2 " in *" fail "*) echo fail; return ;; *" - "*) echo -; return ;; esac
        sorted=$(printf '%s\n' $2 | sort -n)
        if [ "$1" = min ]; then
                echo "$sorted" | head -1
        else
                echo "$sorted" | sed -n "$(((runs + 1) / 2))p"
        fi
}
ratio() {
        case "$1 $2" in
        *fail* | *-*) echo n/a ;;
        *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' ;;
        esac
}
if ! $full; then
        for which in median min; do
                echo
                echo "$which of $runs runs (ms), and peer time / ours"
                for w in "${workloads[@]}"; do
                        o=$(stat_of $which "${times[ours,$w]}")
                        line="$w: ours $o"
                        for be in "${backends[@]:1}" local; do
                                t=$(stat_of $which "${times[$be,$w]}")
                                line+=", $be $t ($(ratio "$t" "$o"))"
                        done
                        echo "$line"
                done
        done
        exit 0
fi
for which in median min; do
        printf '\n%s of %s runs (ms)\n%-6s %8s %8s %10s %8s %8s %11s %15s %8s\n' "$which" "$runs" workload ours \
                vsock virtiofsd 9p local vsock/ours virtiofsd/ours 9p/ours
        for w in "${workloads[@]}"; do
                o=$(stat_of $which "${times[ours,$w]}") v=$(stat_of $which "${times[vsock,$w]}")
                q=$(stat_of $which "${times[qemu,$w]}") n=$(stat_of $which "${times[9p,$w]}")
                l=$(stat_of $which "${times[local,$w]}")
                printf '%-6s %8s %8s %10s %8s %8s %11s %15s %8s\n' "$w" "$o" "$v" "$q" "$n" "$l" "$(ratio "$v" "$o")" \
                        "$(ratio "$q" "$o")" "$(ratio "$n" "$o")"
        done
done
echo "(ratio = peer time / our virtio-fs time: > 1, ours is faster. TCG unless KVM is usable."
echo " Share: a 512 MiB file, a $files-file tree, golang-1.19-src as a git repository.)"
