#!/usr/bin/env bash
# Snapshot chains stay bounded: with the depth limit at 3
# (SMOLVM_SNAPSHOT_MAX_DEPTH), a VM restored from a snapshot, restarted (a
# restored VM cannot be snapshotted before) and snapshotted again, generation
# after generation: the depth `snapshot info` reports never exceeds 3; the
# snapshot that would have been 4 deep is written flattened (one layer straight
# over the image's rootfs) and holds exactly the VM's disk; data written in every
# generation (a file per generation, one file overwritten in each) is intact in
# the last generation's VM, which runs over the flattened layer; the old chain's
# files are untouched; a full disk during the flattening leaves nothing and the
# VM carries on; the flattened snapshot exports and imports.
# One cold boot; every other boot is a restore or the restart of a restored VM.
. "$(dirname "$0")/lib.sh"

export SMOLVM_SNAPSHOT_MAX_DEPTH=3
sh_in() { local vm=$1; shift; "$SMOLVM" exec "$vm" -- sh -c "$*"; }
depth_of() { "$SMOLVM" snapshot info --json "$1" | jq -r .data.depth; }
dir_of() { "$SMOLVM" snapshot info --json "$1" | jq -r .data.dir; }
vmdir_of() { "$SMOLVM" info --json "$1" | jq -r .data.dir; }
# gen N VM: the files of generation N (a random 6 MiB file and its sum; latest = N).
gen() {
        sh_in "$2" "head -c 6291456 /dev/urandom > /root/gen$1 && sha256sum /root/gen$1 > /root/gen$1.sum &&
                echo $1 > /root/latest && sync"
}
# snap N VM: VM paused, `snapshot create --name sN VM` (it stays paused); then the
# snapshot's disk must read exactly as the VM's, whatever its depth (paused, QEMU
# has flushed its overlay and the guest cannot change it).
snap() {
        "$SMOLVM" pause "$2" >/dev/null && "$SMOLVM" snapshot create --name "s$1" "$2" >/dev/null 2>"$T/err"; rc=$?
        check_or_bail "snapshot s$1 of $2 (rc $rc)" "$rc"
        local d
        d=$(depth_of "s$1")
        depths="$depths $d"
        diag "s$1: depth $d, pause $("$SMOLVM" snapshot info --json "s$1" | jq .data.pause_ms) ms"
        check "s$1: depth $d <= 3" test "$d" -le 3
        check "s$1: its disk holds the same bytes as the VM's" \
                qemu-img compare -q -U "$(vmdir_of "$2")/overlay.qcow2" "$(dir_of "s$1")/disk.qcow2"
}
# next N: a VM restored from s(N-1), generation N written, restarted, snapshot sN.
next() {
        local n=$1 p=$(($1 - 1))
        "$SMOLVM" create --from-snapshot "s$p" --name "g$n" >/dev/null 2>"$T/err"; rc=$?
        check_or_bail "restore s$p as g$n (rc $rc)" "$rc"
        gen "$n" "g$n"
        "$SMOLVM" stop "g$n" >/dev/null 2>"$T/err" && "$SMOLVM" start "g$n" >/dev/null 2>>"$T/err"; rc=$?
        check_or_bail "g$n stopped and started (a cold boot on its layers) (rc $rc)" "$rc"
}
depths=

"$SMOLVM" create --name g0 >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create g0 (rc $rc)" "$rc"
gen 0 g0
snap 0 g0
"$SMOLVM" rm -f g0 >/dev/null
for n in 1 2; do
        next $n
        snap $n "g$n"
        "$SMOLVM" rm -f "g$n" >/dev/null
done
check "s0 s1 s2: depths 1 2 3 (a layer a generation)" test "$depths" = " 1 2 3"

# Generation 3 would be 4 layers deep: flattened.
s2_files() { (cd "$(dir_of s2)" && sha256sum disk.qcow2 layer-*.qcow2 && stat -c '%n %i %h' disk.qcow2 layer-*.qcow2); }
s2_before=$(s2_files)
next 3
# ---- disk full while flattening: nothing left, the VM carries on ----
# The flattened layer holds the 3 lower generations (> 18 MiB): it cannot fit in 16 MiB.
if snapshots_on_small_fs; then
        "$SMOLVM" snapshot create --name full g3 2>"$T/err"; rc=$?
        check "flattening on a full disk fails with ENOSPC (rc $rc)" \
                sh -c "[ $rc -ne 0 ] && grep -i 'no space left' '$T/err' | grep -q flattening"
        [ "$rc" -ne 0 ] || diag "it did not fail: $(cat "$T/err")"
        check "... leaves no snapshot and no staging dir" test -z "$(ls -A "$T/small/snapshots" | grep -v '\.lock$')"
        check "... the VM carries on" sh -c "'$SMOLVM' ls | grep -qE '^[0-9a-f]+ +g3 +running' && '$SMOLVM' exec g3 -- true"
        snapshots_back
else
        not_ok "disk full while flattening (could not mount a small tmpfs)"
fi
snap 3 g3
s3=$(dir_of s3)
check "s3 is flattened: no layer under its disk, which goes straight over the rootfs" \
        sh -c "[ -z \"\$(ls '$s3' | grep '^layer-')\" ] &&
               qemu-img info -U '$s3/disk.qcow2' | grep -q '^backing file: .*/rootfs.ext4\$'"
"$SMOLVM" rm -f g3 >/dev/null
next 4
# g4 runs over the flattened layer (restored from s3, then booted on it) and its own overlay.
out=$(sh_in g4 'cd /root && sha256sum -c gen0.sum gen1.sum gen2.sum gen3.sum gen4.sum 2>&1; cat latest' 2>&1)
check "the last generation reads every generation's file intact, latest 4" \
        test "$out" = "$(printf '/root/gen%s: OK\n' 0 1 2 3 4; echo 4)"
[ "$out" = "$(printf '/root/gen%s: OK\n' 0 1 2 3 4; echo 4)" ] || diag "$out"
snap 4 g4
"$SMOLVM" rm -f g4 >/dev/null
check "depths over 5 generations never exceed 3 ($depths)" test "$depths" = " 1 2 3 1 2"
check "the old chain (s2's disk and its 2 layers) is untouched by the flattening" test "$(s2_files)" = "$s2_before"

# ---- the flattened snapshot exports and imports ----
"$SMOLVM" snapshot export s3 "$T/s3.snap" 2>"$T/err"; rc=$?
check "export of the flattened s3 (rc $rc)" test "$rc" -eq 0
"$SMOLVM" snapshot import --name s3i "$T/s3.snap" >/dev/null 2>"$T/err"; rc=$?
check "import of it as s3i (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "s3i: depth 1, its disk the same bytes as s3's" sh -c "[ \"\$(\"$SMOLVM\" snapshot info --json s3i | jq .data.depth)\" = 1 ] &&
        qemu-img compare -q -U '$s3/disk.qcow2' \"\$(\"$SMOLVM\" snapshot info --json s3i | jq -r .data.dir)/disk.qcow2\""

assert_no_leftovers "t_snapshot_chain"
finish
