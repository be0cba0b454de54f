#!/usr/bin/env bash
# Workspace archives against the same work done host-local, in one run:
#   persist   smolvm workspace persist VM -o FILE      vs  tar -C TREE -cf - . | zstd -1 > FILE
#   hydrate   smolvm workspace hydrate VM FILE --path  vs  zstd -dc FILE | tar -x -C DIR
# and against the guest's share of that work (under TCG the guest's CPU is the
# limit): its tar alone inside the guest (tar | cat >/dev/null), its tar
# streamed to the host by a plain exec; for hydrate, zstd -dc | exec -i tar -x
# (no archive checks, no staging).
# and the archive library alone (bench/archive_bench) on the tree's tar, a host
# file, against zstd(1) on the same bytes: compress at levels 1 and 3 (zstd's
# threads as the library picks them, and none), pread/pwrite instead of
# io_uring, decompress. Times are hyperfine's mean of RUNS runs; the tables
# it prints give user and system time too (this machine is shared: wall time
# moves with the load, CPU time less). Also the peak RSS of the CLI for persist
# and hydrate of TREE and of a tree 4x its size: constant memory.
#
# Then the parts, each RUNS times round-robin (so the load's drift spreads over
# all of them), as the median wall time and the median CPU the VM's QEMU used
# (all its threads: under TCG the guest's work is QEMU's CPU, which moves with
# the load much less than wall time): the floor of an exec, the guest's tar
# alone at 10 KiB and 64 KiB records, the channel alone each way (cat of the
# tree's tar), the guest's tar -x into its disk and the sync after it, persist
# and hydrate, with BASE_BIN=path/to/another/smolvm also that build's persist
# and hydrate in the same rounds (its libsmolvm drives the same VM).
# A second VM of the same shape booted cold with SMOLVM_NO_LANE=1 (host -> guest
# bytes on the virtio-serial channel alone, as before the lane) takes the
# hydrate side's channel-bound parts in the same rounds, and hydrate in the
# hyperfine part; at the end both VMs stop and their supervisors' lane lines
# say whether the lane was on and how many bytes it carried.
#
# usage: bench/workspace.sh [RUNS]   (default 5; TREE=DIR, default /usr/lib/python3.11:
#                                    ~54 MB of source and bytecode, ~1,500 entries;
#                                    LIB=0 skips the library-alone part, HF=0 the
#                                    hyperfine part, PARTS=0 the parts, RSS=0 the
#                                    peak RSS, NOLANE=0 the VM without the lane)
# Not part of the test suite: run by hand.
set -euo pipefail
runs=${1:-5}
tree=${TREE:-/usr/lib/python3.11}
. "$(dirname "$0")/lib.sh"
bench_env workspace
bench="$build/bench/archive_bench"
hf() { hyperfine --style basic --runs "$runs" "$@"; }

tar -C "$tree" -cf "$work/tree.tar" .
log "tree $tree: $(find "$tree" | wc -l) entries, tar $(stat -c %s "$work/tree.tar") bytes; load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the library alone ----
if [ "${LIB:-1}" != 0 ]; then
hf -n "zstd -1" "zstd -q -f -1 $work/tree.tar -o $work/z.zst" \
   -n "library level 1" "$bench c $work/tree.tar $work/a.zst 1" \
   -n "library level 1, no zstd threads" "$bench c $work/tree.tar $work/a.zst 1 0" \
   -n "library level 1, pwrite" "$bench c $work/tree.tar $work/a.zst 1 -1 plain"
hf -n "zstd -3" "zstd -q -f -3 $work/tree.tar -o $work/z.zst" \
   -n "library level 3 (default)" "$bench c $work/tree.tar $work/a.zst 3" \
   -n "library level 3, no zstd threads" "$bench c $work/tree.tar $work/a.zst 3 0"
"$bench" c "$work/tree.tar" "$work/a.zst" 3
hf -n "zstd -d" "zstd -q -f -d $work/a.zst -o $work/z.tar" \
   -n "library read (checks included)" "$bench d $work/a.zst $work/z.tar" \
   -n "library read, pread" "$bench d $work/a.zst $work/z.tar plain"
log "sizes: zstd -1 $(zstd -q -c -1 "$work/tree.tar" | wc -c), zstd -3 $(zstd -q -c -3 "$work/tree.tar" | wc -c), library level 3 $(stat -c %s "$work/a.zst")"
fi

# ---- through a VM ----
# A 2 GiB disk: the tree, its hydrated copies and the 4x tree of the RSS part.
"$smolvm" create --name bench-ws --mem 1024 --disk 2048 >/dev/null
"$smolvm" exec bench-ws -- mkdir -p /workspace
"$smolvm" cp - bench-ws:/workspace <"$work/tree.tar"
"$smolvm" exec -i bench-ws -- sh -c 'cat >/tmp/tree.tar' <"$work/tree.tar"
# Touch most of the guest's RAM once: its first touch costs the host a fault
# (and a block of the VM's RAM file) per page, which would land on whatever
# runs first.
"$smolvm" exec bench-ws -- sh -c 'head -c 250M /dev/zero >/tmp/fill && head -c 250M /dev/zero >/dev/shm/fill; rm -f /tmp/fill /dev/shm/fill'
# Cold: a warm start would restore a boot template, which keeps the lane of the
# VM it was made from whatever SMOLVM_NO_LANE says.
nl=()
if [ "${NOLANE:-1}" != 0 ]; then
        SMOLVM_COLD=1 SMOLVM_NO_LANE=1 "$smolvm" create --name bench-ws-nl --mem 1024 --disk 2048 >/dev/null
        "$smolvm" exec bench-ws-nl -- sh -c 'head -c 250M /dev/zero >/tmp/fill && head -c 250M /dev/zero >/dev/shm/fill; rm -f /tmp/fill /dev/shm/fill'
        nl=(-n "workspace hydrate, no lane" --prepare "$smolvm exec bench-ws-nl -- rm -rf /hydrated"
                "$smolvm workspace hydrate bench-ws-nl $work/ws.tar.zst --path /hydrated")
fi
mkdir -p "$work/out"
if [ "${HF:-1}" != 0 ]; then
hf -n "host tar | zstd -1" "tar -C $tree -cf - . | zstd -q -1 > $work/host.tar.zst" \
   -n "workspace persist (level 3)" "$smolvm workspace persist bench-ws -o $work/ws.tar.zst" \
   -n "workspace persist --level 1" "$smolvm workspace persist bench-ws --level 1 -o $work/ws1.tar.zst" \
   -n "guest: tar | cat >/dev/null" "$smolvm exec bench-ws -- sh -c 'tar -C /workspace -cf - . | cat >/dev/null'" \
   -n "exec tar -cf - > host /dev/null" "$smolvm exec bench-ws -- tar -C /workspace -cf - . >/dev/null"
log "archives: host zstd -1 $(stat -c %s "$work/host.tar.zst"), persist $(stat -c %s "$work/ws.tar.zst"), persist --level 1 $(stat -c %s "$work/ws1.tar.zst")"
hf -n "host zstd -dc | tar -x" --prepare "rm -rf $work/out && mkdir $work/out" \
        "zstd -q -dc $work/host.tar.zst | tar -x -C $work/out" \
   -n "workspace hydrate" --prepare "$smolvm exec bench-ws -- rm -rf /hydrated" \
        "$smolvm workspace hydrate bench-ws $work/ws.tar.zst --path /hydrated" "${nl[@]}" \
   -n "zstd -dc | exec -i tar -x" --prepare "$smolvm exec bench-ws -- sh -c 'rm -rf /plain && mkdir /plain'" \
        "zstd -q -dc $work/ws.tar.zst | $smolvm exec -i bench-ws -- tar -x -C /plain -f -"

fi

# ---- the parts, round-robin ----
# part NAME PREP CMD: PREP (untimed, may be "") then CMD, timed; sh -c strings.
if [ "${PARTS:-1}" != 0 ]; then
vmm=$("$smolvm" info --json bench-ws | jq -r .data.vmm_pid)
qcpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)
names=() preps=() cmds=() pids=()
# part NAME PREP CMD [QEMU_PID]: the QEMU whose CPU counts (default bench-ws's).
part() { names+=("$1"); preps+=("$2"); cmds+=("$3"); pids+=("${4:-$vmm}"); }
x="$smolvm exec bench-ws --"
part "exec -- true (the floor)" "" "$x true"
part "host: tar | zstd -1" "" "tar -C $tree -cf - . | zstd -q -1 > $work/host.tar.zst"
part "guest: tar -b 20 | cat (default records)" "" "$x sh -c 'tar -C /workspace -b 20 -cf - . | cat >/dev/null'"
part "guest: tar -b 128 | cat" "" "$x sh -c 'tar -C /workspace -b 128 -cf - . | cat >/dev/null'"
part "channel out: exec cat TAR (tmpfs) > host" "" "$x cat /tmp/tree.tar >/dev/null"
part "exec tar -b 20 -cf - > host" "" "$x tar -C /workspace -b 20 -cf - . >/dev/null"
part "exec tar -b 128 -cf - > host" "" "$x tar -C /workspace -b 128 -cf - . >/dev/null"
part "workspace persist" "" "$smolvm workspace persist bench-ws -o $work/p.tar.zst"
[ -n "${BASE_BIN:-}" ] && part "workspace persist (BASE_BIN)" "" "$BASE_BIN workspace persist bench-ws -o $work/pb.tar.zst"
part "host: zstd -dc | tar -x" "rm -rf $work/out && mkdir $work/out" "zstd -q -dc $work/host.tar.zst | tar -x -C $work/out"
part "channel in: exec -i cat > /dev/null" "" "$smolvm exec -i bench-ws -- cat >/dev/null <$work/tree.tar"
part "guest: tar -x TAR (tmpfs) into the disk" "$x sh -c 'rm -rf /x && mkdir /x && sync'" "$x tar -x -C /x -f /tmp/tree.tar"
part "guest: sync after that" "" "$x sync"
part "guest: cat TAR | tar -b 20 -x" "$x sh -c 'rm -rf /x && mkdir /x && sync'" "$x sh -c 'cat /tmp/tree.tar | tar -b 20 -x -C /x -f -'"
part "guest: cat TAR | tar -b 128 -x" "$x sh -c 'rm -rf /x && mkdir /x && sync'" "$x sh -c 'cat /tmp/tree.tar | tar -b 128 -x -C /x -f -'"
part "exec -i tar -b 20 -x" "$x sh -c 'rm -rf /x && mkdir /x && sync'" "$smolvm exec -i bench-ws -- tar -b 20 -x -C /x -f - <$work/tree.tar"
part "exec -i tar -b 128 -x" "$x sh -c 'rm -rf /x && mkdir /x && sync'" "$smolvm exec -i bench-ws -- tar -b 128 -x -C /x -f - <$work/tree.tar"
part "workspace hydrate" "$x sh -c 'rm -rf /x && sync'" "$smolvm workspace hydrate bench-ws $work/p.tar.zst --path /x"
[ -n "${BASE_BIN:-}" ] && part "workspace hydrate (BASE_BIN)" "$x sh -c 'rm -rf /x && sync'" "$BASE_BIN workspace hydrate bench-ws $work/p.tar.zst --path /x"
if [ "${NOLANE:-1}" != 0 ]; then
        nlpid=$("$smolvm" info --json bench-ws-nl | jq -r .data.vmm_pid)
        y="$smolvm exec bench-ws-nl --"
        part "no lane: channel in: exec -i cat > /dev/null" "" "$smolvm exec -i bench-ws-nl -- cat >/dev/null <$work/tree.tar" "$nlpid"
        part "no lane: exec -i tar -b 128 -x" "$y sh -c 'rm -rf /x && mkdir /x && sync'" "$smolvm exec -i bench-ws-nl -- tar -b 128 -x -C /x -f - <$work/tree.tar" "$nlpid"
        part "no lane: workspace hydrate" "$y sh -c 'rm -rf /x && sync'" "$smolvm workspace hydrate bench-ws-nl $work/p.tar.zst --path /x" "$nlpid"
fi
n=${#names[@]}
for ((r = 0; r < runs; r++)); do
        for ((i = 0; i < n; i++)); do
                [ -n "${preps[i]}" ] && sh -c "${preps[i]}"
                c0=$(qcpu "${pids[i]}") t0=$(ms)
                sh -c "${cmds[i]}"
                t1=$(ms) c1=$(qcpu "${pids[i]}")
                echo "$i $((t1 - t0)) $(((c1 - c0) * 1000 / tick))" >>"$work/parts"
        done
done
$x sh -c 'rm -rf /x'
[ "${NOLANE:-1}" != 0 ] && $y sh -c 'rm -rf /x'
log "parts: median of $runs round-robin runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-48s %9s %9s\n' part "wall ms" "QEMU ms" >&2
for ((i = 0; i < n; i++)); do
        w=$(awk -v i="$i" '$1 == i {print $2}' "$work/parts" | median)
        c=$(awk -v i="$i" '$1 == i {print $3}' "$work/parts" | median)
        printf '%-48s %9s %9s\n' "${names[i]}" "$w" "$c" >&2
done
fi

# Peak RSS of the CLI: TREE, then TREE plus three times its size of random bytes.
if [ "${RSS:-1}" != 0 ]; then
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
p1=$(rss "$smolvm" workspace persist bench-ws -o "$work/r1.tar.zst")
h1=$(rss "$smolvm" workspace hydrate bench-ws "$work/r1.tar.zst" --path /rss1)
extra=$(( $(stat -c %s "$work/tree.tar") * 3 / 1048576 ))
# Room on the guest's disk for TREE x4 and its hydrated copy: the copies so far go.
"$smolvm" exec bench-ws -- rm -rf /hydrated /plain /rss1
"$smolvm" exec bench-ws -- sh -c "head -c ${extra}M /dev/urandom > /workspace/big"
p4=$(rss "$smolvm" workspace persist bench-ws -o "$work/r4.tar.zst")
h4=$(rss "$smolvm" workspace hydrate bench-ws "$work/r4.tar.zst" --path /rss4)
log "peak RSS of smolvm (KiB): persist $p1 / $p4, hydrate $h1 / $h4 for $(stat -c %s "$work/r1.tar.zst") / $(stat -c %s "$work/r4.tar.zst") byte archives"
fi
# The lane's own account, written when its VM stops (host/supervisor/lane_duty.c).
for vm in bench-ws bench-ws-nl; do
        id=$("$smolvm" info --json "$vm" 2>/dev/null | jq -r .data.id) || continue
        "$smolvm" stop "$vm" >/dev/null
        log "$vm: $(grep -h 'lane: ' "$SMOLVM_HOME/vms/$id/supervisor.log" | sed 's/^.*lane: /lane: /' | paste -sd ';' -)"
        "$smolvm" rm -f "$vm" >/dev/null
done
log "done; load $(cut -d' ' -f1-3 /proc/loadavg)"
