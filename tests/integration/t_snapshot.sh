#!/usr/bin/env bash
# Snapshots, restore and fork with real VMs: continuity (a background counter
# keeps its pid and goes on counting, /dev/shm and the disk intact), fork
# independence (disk, /dev/shm, urandom, hostname, machine-id, clock), snapshot
# ls/info/rm (also with live children), and the faults: disk full during a
# snapshot, a CLI SIGKILLed mid-snapshot, a snapshot whose image is gone, a
# fork of a paused VM, a VM with mounts.
# One cold boot; every other VM is a restore.
. "$(dirname "$0")/lib.sh"

sh_in() { local vm=$1; shift; "$SMOLVM" exec "$vm" -- sh -c "$*"; }

# ---- the parent: a counter in RAM (/dev/shm), a file on disk ----
"$SMOLVM" create --name par >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create the parent (rc $rc)" "$rc"
# The counter runs in its own session (setsid), so the agent does not kill it
# with the exec's process group; the exec returns once it has counted.
sh_in par 'echo on-disk > /root/disk.txt; sync; echo in-shm > /dev/shm/shm.txt
setsid sh -c "echo \$\$ > /dev/shm/counter.pid; i=0; while :; do i=\$((i+1)); echo \$i > /dev/shm/count; sleep 0.1; done" </dev/null >/dev/null 2>&1 &
n=0; while [ "$(cat /dev/shm/count 2>/dev/null || echo 0)" -lt 3 ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done'
counter_pid=$(sh_in par 'cat /dev/shm/counter.pid')
before=$(sh_in par 'cat /dev/shm/count')
diag "counter pid $counter_pid at $before"

# ---- snapshot create ----
"$SMOLVM" snapshot create --json --name s1 par >"$T/create.json" 2>"$T/err"; rc=$?
check "snapshot create exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "snapshot create --json: id, name, pause and RAM figures" jq_true '.ok and .data.name == "s1" and
        (.data.id | test("^[0-9a-f]{12}$")) and .data.pause_ms > 0 and .data.ram_bytes > 0 and
        .data.ram_bytes < 512 * 1048576' "$T/create.json"
diag "pause $(jq .data.pause_ms "$T/create.json") ms, RAM kept $(jq .data.ram_bytes "$T/create.json") bytes, on disk $(jq .data.disk_bytes "$T/create.json") bytes"
snap_id=$(jq -r .data.id "$T/create.json")
check "the parent carries on (running, counter going)" sh -c "'$SMOLVM' ls | grep -qE '^[0-9a-f]+ +par +running' &&
        [ \"\$('$SMOLVM' exec par -- cat /dev/shm/count)\" -gt $before ]"
"$SMOLVM" snapshot ls --json >"$T/ls.json"
check "snapshot ls --json lists it" jq_true --arg id "$snap_id" '.ok and (.data.snapshots | length) == 1 and
        .data.snapshots[0].id == $id' "$T/ls.json"
check "snapshot info by name (text)" sh -c "'$SMOLVM' snapshot info s1 | grep -q '^id: *$snap_id'"
"$SMOLVM" snapshot create --name s1 par 2>"$T/err"; rc=$?
check "a second snapshot named s1 is refused (rc $rc, names it)" sh -c "[ $rc -ne 0 ] && grep -q \"named 's1' already exists\" '$T/err'"
check "... and leaves no staging dir" test -z "$(ls -A "$SMOLVM_HOME/snapshots" | grep -v "^$snap_id\$")"

# ---- restore: create --from-snapshot continues from the instant ----
t0=$(date +%s)
c1=$("$SMOLVM" create --from-snapshot s1 --name c1 2>"$T/err"); rc=$?
check "create --from-snapshot exits 0 (rc $rc, $(( $(date +%s) - t0 )) s)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
out=$(sh_in c1 "cat /root/disk.txt /dev/shm/shm.txt; kill -0 $counter_pid && echo alive")
check "restored: disk file, /dev/shm file, the counter pid $counter_pid alive" \
        test "$out" = "$(printf 'on-disk\nin-shm\nalive')"
a=$(sh_in c1 'cat /dev/shm/count'); sleep 1; b=$(sh_in c1 'cat /dev/shm/count')
check "the counter continues from its value (>= $before: $a then $b)" sh -c "[ $a -ge $before ] && [ $b -gt $a ]"
check "the restored VM has its own hostname" test "$(sh_in c1 hostname)" = "smolvm-$c1"
# The channel: the supervisor connected on the guest's reset, not on a timer
# (before: it dropped QEMU's first connection and waited for its reconnect, 1 s).
check "the supervisor connected the channel when the guest reset it, first time" \
        sh -c "grep -q 'restore: the guest reset its channel; connecting' '$SMOLVM_HOME/vms/$c1/supervisor.log' &&
               ! grep -q 'no HELLO on the channel' '$SMOLVM_HOME/vms/$c1/supervisor.log'"
guest_now=$(sh_in c1 'date +%s'); host_now=$(date +%s)
check "its wall clock is the host's (guest $guest_now, host $host_now)" \
        sh -c "[ \$(( $host_now - $guest_now )) -le 30 ] && [ \$(( $guest_now - $host_now )) -le 30 ]"

# ---- snapshot rm with a live child: the child keeps its disk ----
"$SMOLVM" snapshot rm s1 >/dev/null 2>"$T/err"; rc=$?
check "snapshot rm with a live child exits 0 (rc $rc)" test "$rc" -eq 0
check "the snapshot is gone" sh -c "! '$SMOLVM' snapshot info s1 2>/dev/null"
check "the child still reads its disk and writes to it" \
        test "$(sh_in c1 'cat /root/disk.txt; echo more > /root/more; sync; cat /root/more')" = "$(printf 'on-disk\nmore')"
"$SMOLVM" rm -f c1 >/dev/null

# ---- fork of a paused VM: 3 children, independent ----
"$SMOLVM" pause par >/dev/null
"$SMOLVM" fork --json -n 3 par >"$T/fork.json" 2>"$T/err"; rc=$?
check "fork -n 3 of a paused VM exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
mapfile -t kids < <(jq -r '.data.ids[]' "$T/fork.json" 2>/dev/null)
check "fork --json gives 3 ids" test "${#kids[@]}" -eq 3
check "the parent stays paused" sh -c "'$SMOLVM' ls | grep -qE '^[0-9a-f]+ +par +paused'"
check "fork leaves no internal snapshot behind" test -z "$("$SMOLVM" snapshot ls --json | jq -r '.data.snapshots[].id')"
for i in 0 1 2; do
        sh_in "${kids[$i]}" "echo child$i > /root/mine; echo child$i > /dev/shm/mine"
done
for i in 0 1 2; do
        out=$(sh_in "${kids[$i]}" 'cat /root/mine /dev/shm/mine')
        check "child $i sees only its own writes (disk and /dev/shm)" test "$out" = "$(printf 'child%s\nchild%s' $i $i)"
        sh_in "${kids[$i]}" "kill -0 $counter_pid" 2>/dev/null
        check "child $i has the counter process" test $? -eq 0
done
"$SMOLVM" resume par >/dev/null
check "the parent sees none of them" sh -c "! '$SMOLVM' exec par -- sh -c 'cat /root/mine || cat /dev/shm/mine' 2>/dev/null"
declare -A seen_rand seen_host seen_mid
uniq_ok=1
for v in par "${kids[@]}"; do
        r=$(sh_in "$v" 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"')
        h=$(sh_in "$v" hostname)
        m=$(sh_in "$v" 'cat /etc/machine-id 2>/dev/null || echo none')
        [ -n "${seen_rand[$r]:-}" ] && uniq_ok=0
        [ -n "${seen_host[$h]:-}" ] && uniq_ok=0
        [ -n "${seen_mid[$m]:-}" ] && [ "$m" != none ] && uniq_ok=0
        seen_rand[$r]=1; seen_host[$h]=1; seen_mid[$m]=1
        diag "$v: host $h, machine-id $m, urandom ${r:0:16}..."
done
check "32 urandom bytes, hostnames and machine-ids all differ" test "$uniq_ok" -eq 1
"$SMOLVM" rm -f "${kids[@]}" >/dev/null

# ---- run --from-snapshot ----
"$SMOLVM" snapshot create --name s2 par >/dev/null 2>"$T/err"
out=$("$SMOLVM" run --from-snapshot s2 -- cat /dev/shm/shm.txt 2>"$T/err"); rc=$?
check "run --from-snapshot -- CMD (rc $rc, out '$out')" sh -c "[ $rc -eq 0 ] && [ '$out' = in-shm ]"

# ---- a snapshot whose image is gone ----
cp -a "$SMOLVM_HOME/snapshots/$("$SMOLVM" snapshot info --json s2 | jq -r .data.id)" "$T/forged"
forged=aaaaaaaaaaaa
jq --arg id $forged '.id = $id | .name = "gone" | .image_dir = "/nonexistent/image-dir"' "$T/forged/snapshot.json" >"$T/rec"
mkdir "$SMOLVM_HOME/snapshots/$forged" && cp -a "$T/forged/." "$SMOLVM_HOME/snapshots/$forged/" &&
        cp "$T/rec" "$SMOLVM_HOME/snapshots/$forged/snapshot.json"
"$SMOLVM" create --from-snapshot gone 2>"$T/err"; rc=$?
check "create from a snapshot whose image is gone fails naming it (rc $rc)" \
        sh -c "[ $rc -ne 0 ] && grep -q '/nonexistent/image-dir' '$T/err' && grep -q 'is gone' '$T/err'"
"$SMOLVM" snapshot rm gone >/dev/null

# ---- a snapshot record that is damaged ----
echo '{"version": 1, "id": "bbbbbbbbbbbb", "layers": ["../../etc/passwd"]}' >"$T/bad"
mkdir "$SMOLVM_HOME/snapshots/bbbbbbbbbbbb" && cp "$T/bad" "$SMOLVM_HOME/snapshots/bbbbbbbbbbbb/snapshot.json"
check "a damaged record is not listed" test "$("$SMOLVM" snapshot ls --json | jq '.data.snapshots | length')" -eq 1
"$SMOLVM" snapshot rm bbbbbbbbbbbb >/dev/null
check "... and snapshot rm ID removes it" test ! -e "$SMOLVM_HOME/snapshots/bbbbbbbbbbbb"

# ---- disk full during a snapshot: nothing left, the VM carries on ----
if snapshots_on_small_fs; then
        "$SMOLVM" snapshot create --name full par 2>"$T/err"; rc=$?
        check "snapshot on a full disk fails with ENOSPC (rc $rc)" sh -c "[ $rc -ne 0 ] && grep -qi 'no space left' '$T/err'"
        check "... leaves no snapshot and no staging dir" test -z "$(ls -A "$T/small/snapshots" | grep -v '\.lock$')"
        check "... the VM carries on" sh -c "'$SMOLVM' ls | grep -qE '^[0-9a-f]+ +par +running' && '$SMOLVM' exec par -- true"
        snapshots_back
else
        diag "no tmpfs mount (not root?): disk-full case not run"
        not_ok "disk full during a snapshot (could not mount a small tmpfs)"
fi

# ---- the CLI SIGKILLed mid-snapshot: consistent state, leftovers swept ----
"$SMOLVM" snapshot create --name killed par >/dev/null 2>&1 &
kpid=$!
sleep 0.15
kill -9 $kpid 2>/dev/null; wait $kpid 2>/dev/null
state=$("$SMOLVM" ls | awk '$2 == "par" {print $3}')
check "after the kill the VM is running or paused ($state)" sh -c "[ '$state' = running ] || [ '$state' = paused ]"
[ "$state" = paused ] && "$SMOLVM" resume par >/dev/null
check "... and works again" "$SMOLVM" exec par -- true
"$SMOLVM" snapshot ls >/dev/null
"$SMOLVM" snapshot create --name after par >/dev/null 2>"$T/err"; rc=$?
check "a later snapshot works (rc $rc) and no staging dir is left" \
        sh -c "[ $rc -eq 0 ] && ! ls -A '$SMOLVM_HOME/snapshots' | grep -q '^\.creating-'"

# ---- a VM with virtio-fs mounts cannot be snapshotted (refused before it is looked at;
# vsock mounts are carried: t_snapshot_mounts) ----
mkdir -p "$T/share"
"$SMOLVM" create --no-start --name mnt --mount "$T/share:/mnt/share" >/dev/null 2>"$T/err"; rc=$?
if [ "$rc" -eq 0 ]; then
        "$SMOLVM" snapshot create mnt 2>"$T/err"; rc=$?
        check "snapshot of a VM with mounts is refused naming --mount-transport vsock (rc $rc)" \
                sh -c "[ $rc -ne 0 ] && grep -q -- '--mount-transport vsock' '$T/err'"
        "$SMOLVM" rm -f mnt >/dev/null
else
        not_ok "create a VM with a mount (rc $rc)"
fi

# ---- a restored guest that cannot take its new identity: the start fails, cleanly ----
# /etc/hostname immutable in the snapshot: the clone cannot take its own hostname.
sh_in par 'chattr +i /etc/hostname'
"$SMOLVM" snapshot create --name imm par >/dev/null 2>"$T/err"; rc=$?
sh_in par 'chattr -i /etc/hostname'
check "snapshot with an immutable /etc/hostname (rc $rc)" test "$rc" -eq 0
"$SMOLVM" create --from-snapshot imm --name imm1 >/dev/null 2>"$T/err"; rc=$?
check "its restore fails (rc $rc), saying the guest did not take its identity, naming the hostname step" \
        sh -c "[ $rc -ne 0 ] && grep -q 'did not take its new identity' '$T/err' && grep -q 'hostname smolvm-' '$T/err'"
diag "$(head -c 600 "$T/err")"
state=$("$SMOLVM" ls | awk '$2 == "imm1" {print $3}')
check "... and that VM is not left running (${state:-gone})" sh -c "[ '$state' != running ]"
"$SMOLVM" rm -f imm1 >/dev/null 2>&1

"$SMOLVM" rm -f par >/dev/null
for s in $("$SMOLVM" snapshot ls --json | jq -r '.data.snapshots[].id'); do "$SMOLVM" snapshot rm "$s" >/dev/null; done
assert_no_leftovers "t_snapshot"
finish
