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
# usage: bench/workspace.sh [RUNS]   (default 5; TREE=DIR, default /usr/lib/python3.11:
#                                    ~54 MB of source and bytecode, ~1,500 entries;
#                                    LIB=0 skips the library-alone part)
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
"$smolvm" create --name bench-ws --mem 1024 >/dev/null
"$smolvm" exec bench-ws -- mkdir -p /workspace
"$smolvm" cp - bench-ws:/workspace <"$work/tree.tar"
mkdir -p "$work/out"
hf -n "host tar | zstd -1" "tar -C $tree -cf - . | zstd -q -1 > $work/host.tar.zst" \
   -n "workspace persist (level 3)" "$smolvm workspace persist bench-ws -o $work/ws.tar.zst" \
   -n "workspace persist --level 1" "$smolvm workspace persist bench-ws --level 1 -o $work/ws1.tar.zst" \
   -n "guest: tar | cat >/dev/null" "$smolvm exec bench-ws -- sh -c 'tar -C /workspace -cf - . | cat >/dev/null'" \
   -n "exec tar -cf - > host /dev/null" "$smolvm exec bench-ws -- tar -C /workspace -cf - . >/dev/null"
log "archives: host zstd -1 $(stat -c %s "$work/host.tar.zst"), persist $(stat -c %s "$work/ws.tar.zst"), persist --level 1 $(stat -c %s "$work/ws1.tar.zst")"
hf -n "host zstd -dc | tar -x" --prepare "rm -rf $work/out && mkdir $work/out" \
        "zstd -q -dc $work/host.tar.zst | tar -x -C $work/out" \
   -n "workspace hydrate" --prepare "$smolvm exec bench-ws -- rm -rf /hydrated" \
        "$smolvm workspace hydrate bench-ws $work/ws.tar.zst --path /hydrated" \
   -n "zstd -dc | exec -i tar -x" --prepare "$smolvm exec bench-ws -- sh -c 'rm -rf /plain && mkdir /plain'" \
        "zstd -q -dc $work/ws.tar.zst | $smolvm exec -i bench-ws -- tar -x -C /plain -f -"

# Peak RSS of the CLI: TREE, then TREE plus three times its size of random bytes.
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
"$smolvm" rm -f bench-ws >/dev/null
log "done; load $(cut -d' ' -f1-3 /proc/loadavg)"
