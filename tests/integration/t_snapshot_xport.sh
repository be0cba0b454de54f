#!/usr/bin/env bash
# Snapshot export and import with real VMs: a snapshot exported here, imported
# into a fresh $SMOLVM_HOME (its own copy of the image at another path) and
# restored there continues (a counter process keeps its pid and counts on, a
# file written before the snapshot is there); the file is a .zst `zstd -t`
# accepts; RAM holes stay holes; damaged archives (truncated, a flipped bit,
# trailing bytes, from a file or stdin), a taken name and a missing image are
# refused with a clear error and leave nothing; --name; stdout/stdin; SIGINT
# during an import leaves nothing, a SIGKILL's staging dir is swept.
# One cold boot; the other VM is a restore.
. "$(dirname "$0")/lib.sh"

sh_in() { local vm=$1; shift; "$SMOLVM" exec "$vm" -- sh -c "$*"; }
# The snapshots dir's entries of home $1, hidden ones included, one line.
snaps_of() { ls -A "$1/snapshots" 2>/dev/null | tr '\n' ' '; }

# ---- the parent: a counter in RAM, a file on disk, a snapshot ----
"$SMOLVM" create --name par >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create the parent (rc $rc)" "$rc"
sh_in par 'echo on-disk > /root/disk.txt; sync
setsid sh -c "echo \$\$ > /dev/shm/counter.pid; i=0; while :; do i=\$((i+1)); echo \$i > /dev/shm/count; sleep 0.1; done" </dev/null >/dev/null 2>&1 &
n=0; while [ "$(cat /dev/shm/count 2>/dev/null || echo 0)" -lt 3 ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done'
counter_pid=$(sh_in par 'cat /dev/shm/counter.pid')
before=$(sh_in par 'cat /dev/shm/count')
"$SMOLVM" snapshot create --name s1 par >/dev/null 2>"$T/err"; rc=$?
check_or_bail "snapshot create (rc $rc)" "$rc"
"$SMOLVM" rm -f par >/dev/null
diag "counter pid $counter_pid at $before before the snapshot"
src_dir=$("$SMOLVM" snapshot info --json s1 | jq -r .data.dir)

# ---- export ----
"$SMOLVM" snapshot export --json s1 "$T/s1.snap" >"$T/export.json" 2>"$T/err"; rc=$?
check "snapshot export exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "export --json: content and file sizes, sha256, io" jq_true '.ok and .data.content_bytes > 0 and
        .data.file_bytes > 0 and (.data.sha256 | test("^[0-9a-f]{64}$")) and (.data.io | length) > 0' "$T/export.json"
content=$(jq .data.content_bytes "$T/export.json")
diag "content $content bytes, file $(jq .data.file_bytes "$T/export.json") bytes, $(jq .data.duration_ms "$T/export.json") ms, $(jq -r .data.io "$T/export.json")"
check "the RAM's holes are not in the archive (content $content < the 512 MiB RAM)" test "$content" -lt $((512 << 20))
check "host zstd -t accepts the file" zstd -q -t "$T/s1.snap"
check "no temporary file is left beside it" test -z "$(ls -A "$T" | grep '\.part$')"
"$SMOLVM" snapshot export s1 - >"$T/s1-stdout.snap" 2>"$T/err"; rc=$?
check "export to stdout exits 0 (rc $rc)" sh -c "[ $rc -eq 0 ] && zstd -q -t '$T/s1-stdout.snap'"

# ---- import into a fresh home whose image is a copy at another path ----
H2=$T/home2
mkdir -p "$H2/images"
key=$(basename "$(readlink -f "$SMOLVM_HOME/images/default")")
cp -al "$(readlink -f "$SMOLVM_HOME/images/default")" "$H2/images/$key"
ln -s "$key" "$H2/images/default"
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --json "$T/s1.snap" >"$T/import.json" 2>"$T/err"; rc=$?
check "import into a fresh SMOLVM_HOME exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "import --json: a new snapshot named s1, the archive's sha256" jq_true --argjson e "$(cat "$T/export.json")" '.ok and
        .data.snapshot.name == "s1" and (.data.snapshot.id | test("^[0-9a-f]{12}$")) and
        .data.sha256 == $e.data.sha256 and .data.content_bytes == $e.data.content_bytes' "$T/import.json"
dst_dir=$(jq -r .data.snapshot.dir "$T/import.json")
check "the imported disk goes over this home's copy of the image" \
        sh -c "qemu-img info --backing-chain '$dst_dir/disk.qcow2' | grep -q '^backing file: $H2/images/$key/rootfs.ext4\$'"
src_alloc=$(du -k "$src_dir/ram" | cut -f1); dst_alloc=$(du -k "$dst_dir/ram" | cut -f1)
check "the imported RAM keeps its holes ($dst_alloc KiB allocated, source $src_alloc KiB, 524288 KiB size)" \
        sh -c "[ $(stat -c %s "$dst_dir/ram") -eq $((512 << 20)) ] && [ $dst_alloc -le $((src_alloc + 1024)) ]"
check "the imported RAM and device state are byte-identical" \
        sh -c "cmp -s '$src_dir/ram' '$dst_dir/ram' && cmp -s '$src_dir/state' '$dst_dir/state'"

# ---- restore the import: the counter continues, the file is there ----
c1=$(SMOLVM_HOME=$H2 "$SMOLVM" create --from-snapshot s1 --name c1 2>"$T/err"); rc=$?
check "create --from-snapshot of the import exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
out=$(SMOLVM_HOME=$H2 "$SMOLVM" exec c1 -- sh -c "cat /root/disk.txt; kill -0 $counter_pid && echo alive")
check "restored import: the disk file, the counter pid $counter_pid alive" test "$out" = "$(printf 'on-disk\nalive')"
a=$(SMOLVM_HOME=$H2 "$SMOLVM" exec c1 -- cat /dev/shm/count); sleep 1
b=$(SMOLVM_HOME=$H2 "$SMOLVM" exec c1 -- cat /dev/shm/count)
check "the counter continues from its value (>= $before: $a then $b)" sh -c "[ $a -ge $before ] && [ $b -gt $a ]"
SMOLVM_HOME=$H2 "$SMOLVM" rm -f c1 >/dev/null

# ---- name collision, --name, stdin ----
before_ls=$(snaps_of "$H2")
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import "$T/s1.snap" >/dev/null 2>"$T/err"; rc=$?
check "a second import named s1 is refused naming it and --name (rc $rc)" \
        sh -c "[ $rc -ne 0 ] && grep -q \"named 's1' already exists\" '$T/err' && grep -q -- '--name' '$T/err'"
check "... and creates nothing" test "$(snaps_of "$H2")" = "$before_ls"
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --name s2 "$T/s1.snap" >/dev/null 2>"$T/err"; rc=$?
check "import --name s2 exits 0 (rc $rc)" sh -c "[ $rc -eq 0 ] && SMOLVM_HOME=$H2 '$SMOLVM' snapshot info s2 >/dev/null"
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --name s3 - <"$T/s1-stdout.snap" >/dev/null 2>"$T/err"; rc=$?
check "import from stdin (the stdout export) exits 0 (rc $rc)" test "$rc" -eq 0
check "snapshot ls there: s1, s2, s3" test "$(SMOLVM_HOME=$H2 "$SMOLVM" snapshot ls --json | jq -r '[.data.snapshots[].name] | sort | join(",")')" = "s1,s2,s3"

# ---- damaged archives: refused, nothing created ----
size=$(stat -c %s "$T/s1.snap")
head -c $((size / 2)) "$T/s1.snap" >"$T/trunc.snap"
cp "$T/s1.snap" "$T/flip.snap"
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x10]))
" "$T/flip.snap" $((size * 3 / 4))
{ cat "$T/s1.snap"; printf 'trailing garbage'; } >"$T/trail.snap"
before_ls=$(snaps_of "$H2")
for bad in trunc flip trail; do
        SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --name "bad-$bad" "$T/$bad.snap" >/dev/null 2>"$T/err"; rc=$?
        check "a $bad archive is refused with a clear error (rc $rc: $(head -c 160 "$T/err" | tr '\n' ' '))" \
                sh -c "[ $rc -ne 0 ] && grep -qE 'truncated|damaged' '$T/err' && grep -q 'nothing was imported' '$T/err'"
        check "... and leaves nothing" test "$(snaps_of "$H2")" = "$before_ls"
done
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --name bad-stdin - <"$T/trunc.snap" >/dev/null 2>"$T/err"; rc=$?
check "a truncated archive on stdin is refused (rc $rc) and leaves nothing" \
        sh -c "[ $rc -ne 0 ] && grep -q 'truncated' '$T/err' && [ \"\$(ls -A '$H2/snapshots' | tr '\n' ' ')\" = '$before_ls' ]"
printf 'not an archive at all' >"$T/junk.snap"
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --json "$T/junk.snap" >"$T/junk.json" 2>/dev/null; rc=$?
check "a foreign file: --json error with code corrupt (rc $rc)" jq_true '(.ok | not) and .error.code == "corrupt"' "$T/junk.json"

# ---- the image is missing ----
H3=$T/home3
mkdir -p "$H3"
SMOLVM_HOME=$H3 "$SMOLVM" snapshot import "$T/s1.snap" >/dev/null 2>"$T/err"; rc=$?
check "import without the image fails naming it and how to build it (rc $rc)" \
        sh -c "[ $rc -ne 0 ] && grep -q \"image 'default' (key $key)\" '$T/err' && grep -q 'smolvm image build' '$T/err'"
check "... and leaves nothing" test -z "$(snaps_of "$H3")"

# ---- Ctrl-C and SIGKILL during an import ----
# The archive trickles in through a pipe: the import is at work in its staging
# dir when the signal comes.
mkfifo "$T/fifo"
slow_import() {
        ( head -c $((size / 3)) "$T/s1.snap"; exec sleep 60 ) >"$T/fifo" &
        fpid=$!
        SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --name "$1" - <"$T/fifo" >/dev/null 2>"$T/err.$1" &
        ipid=$!
        wait_secs "ls -A '$H2/snapshots' | grep -q '^\\.creating-'" 60
}
before_ls=$(snaps_of "$H2")
slow_import sigint; staged=$?
check "the import has its staging dir" test "$staged" -eq 0
kill -INT $ipid; wait $ipid; rc=$?
check "SIGINT: the import exits 130 (rc $rc)" test "$rc" -eq 130
check "... and leaves nothing ($(snaps_of "$H2"))" test "$(snaps_of "$H2")" = "$before_ls"
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null
slow_import sigkill
kill -9 $ipid; wait $ipid 2>/dev/null
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null
check "SIGKILL leaves its staging dir ..." sh -c "ls -A '$H2/snapshots' | grep -q '^\\.creating-'"
SMOLVM_HOME=$H2 "$SMOLVM" snapshot import --name s4 "$T/s1.snap" >/dev/null 2>"$T/err"; rc=$?
check "... which the next import sweeps (rc $rc)" \
        sh -c "[ $rc -eq 0 ] && ! ls -A '$H2/snapshots' | grep -q '^\\.'"

assert_no_leftovers "snapshot export/import"
finish
