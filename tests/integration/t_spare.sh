#!/usr/bin/env bash
# Spares (docs/internals.md, "Spares"): after a warm run a spare is parked (a
# supervisor and its QEMU started for the boot template, not listed by ls);
# the next warm run claims it (--json start_note says so; the output and its
# fresh hostname/machine-id are right) and a new one is parked; two concurrent
# runs with one spare both succeed, one of them on the spare; --cold neither
# claims nor parks; a rebuilt template's spare goes at once; a spare whose supervisor was SIGKILLed is not claimed and
# its dir goes; a VM made from a spare dies with its SIGKILLed CLI; an idle
# spare exits and leaves nothing; SMOLVM_SPARE_IDLE_MS=0 parks none.
. "$(dirname "$0")/lib.sh"
unset SMOLVM_COLD
export SMOLVM_SPARE_IDLE_MS=60000
vms="$SMOLVM_HOME/vms"

# The ids of the parked spares (a dir with the marker), one a line.
spares() { for d in "$vms"/*/; do [ -f "$d/spare" ] && basename "$d"; done 2>/dev/null || true; }
n_spares() { spares | grep -c . || true; }
sup_pid() { cat "$vms/$1/supervisor.pid" 2>/dev/null; }
# A live process (a zombie waiting for its reaper is not).
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
# The QEMUs of VM dir $1 ([q]: the pattern must not match a shell holding it).
qemus_of() { pgrep -f -- "[q]emu-system.*$vms/$1/" || true; }
run_json() { "$SMOLVM" run --json "$@"; }
note_is_spare() { jq_true '.ok and .data.start == "warm" and (.data.start_note // "" | test("spare"))' "$1"; }

# ---- the first warm run (builds the template) leaves a spare ----
run_json -- true >"$T/first.json" 2>"$T/err"; rc=$?
check_or_bail "first run exits 0 (rc $rc)" "$rc"
check "a spare is parked after it" wait_secs '[ "$(n_spares)" -eq 1 ]' 60
s1=$(spares)
p1=$(sup_pid "$s1")
check "its supervisor ($p1) and QEMU are alive" sh -c "kill -0 '$p1' && pgrep -P '$p1' -f '[q]emu-system' >/dev/null"
"$SMOLVM" ls >"$T/ls" 2>&1
"$SMOLVM" ls --json >"$T/ls.json" 2>&1
check "smolvm ls does not show it" sh -c "! grep -q '$s1' '$T/ls'"
check "smolvm ls --json neither" jq_true '.ok and (.data.vms | length == 0)' "$T/ls.json"

# ---- the next warm run claims it ----
# A spare's guest runs before its claim (parked once it said HELLO), so what
# must differ between clones or follow the host comes at the claim: also the
# RNG (32 bytes of /dev/urandom) and the wall clock, after 3 s parked.
sleep 3
probe='hostname; cat /etc/machine-id; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; date +%s'
run_json -- sh -c "$probe" >"$T/claim.json" 2>"$T/err"; rc=$?
host_now=$(date +%s)
check "the next warm run exits 0 (rc $rc) from the spare" note_is_spare "$T/claim.json"
host=$(jq -r '.data.stdout' "$T/claim.json" | sed -n 1p)
mid1=$(jq -r '.data.stdout' "$T/claim.json" | sed -n 2p)
check "its hostname is the spare's id: $host" test "$host" = "smolvm-$s1"
check "its supervisor is gone with it, its QEMU and dir too" wait_secs "! alive $p1 && [ -z \"\$(qemus_of $s1)\" ] && [ ! -e '$vms/$s1' ]" 5
check "a new spare is parked after it" wait_secs '[ "$(n_spares)" -eq 1 ] && [ "$(spares)" != "$s1" ]' 60
s2=$(spares)
run_json -- sh -c "$probe" >"$T/claim2.json" 2>"$T/err"; rc=$?
check "another claim (rc $rc)" note_is_spare "$T/claim2.json"
mid2=$(jq -r '.data.stdout' "$T/claim2.json" | sed -n 2p)
check "each VM from a spare has its own machine-id ($mid1, $mid2)" sh -c "[ ${#mid1} -eq 32 ] && [ '$mid1' != '$mid2' ]"
rnd1=$(jq -r '.data.stdout' "$T/claim.json" | sed -n 3p)
rnd2=$(jq -r '.data.stdout' "$T/claim2.json" | sed -n 3p)
check "... and its own RNG: /dev/urandom differs ($rnd1, $rnd2)" sh -c "[ ${#rnd1} -eq 64 ] && [ '$rnd1' != '$rnd2' ]"
t1=$(jq -r '.data.stdout' "$T/claim.json" | sed -n 4p)
check "... and the host's wall clock ($t1 vs $host_now, parked 3 s before)" \
        sh -c "[ -n '$t1' ] && [ \$(( $host_now - ${t1:-0} )) -ge -2 ] && [ \$(( $host_now - ${t1:-0} )) -le 5 ]"
check "hostname smolvm-$s2" sh -c "jq -r .data.stdout '$T/claim2.json' | grep -qx 'smolvm-$s2'"

# ---- back to back: the next run waits for the spare still on its way ----
# (without the wait it restored beside it: 4 of 8 from a spare in a loop)
check "(a spare is parked)" wait_secs '[ "$(n_spares)" -eq 1 ]' 60
run_json -- true >"$T/b1.json" 2>"$T/err" && run_json -- true >"$T/b2.json" 2>>"$T/err"; rc=$?
diag "back to back: $(jq -c '.data.start_note' "$T/b1.json" "$T/b2.json" | paste -sd ' ' -)"
check "two runs back to back (rc $rc) both come from a spare" sh -c "note_is_spare() { jq -e '.ok and (.data.start_note // \"\" | test(\"spare\"))' \"\$1\" >/dev/null; }; note_is_spare '$T/b1.json' && note_is_spare '$T/b2.json'"

# ---- --cold neither claims nor parks ----
check "(a spare is parked again)" wait_secs '[ "$(n_spares)" -eq 1 ]' 60
s3=$(spares)
run_json --cold -- true >"$T/cold.json" 2>"$T/err"; rc=$?
check "run --cold (rc $rc) boots cold" jq_true '.ok and .data.start == "cold"' "$T/cold.json"
check "... and leaves the spare alone" sh -c "sleep 1; [ '$(spares)' = '$s3' ] && [ \$(ls '$vms' | wc -l) -eq 1 ]"

# ---- two concurrent warm runs, one spare: both succeed, one claims ----
run_json -- echo a >"$T/c1.json" 2>"$T/c1.err" &
c1=$!
run_json -- echo b >"$T/c2.json" 2>"$T/c2.err" &
c2=$!
wait $c1; rc1=$?
wait $c2; rc2=$?
check "two concurrent runs both succeed (rc $rc1 $rc2)" sh -c "[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && \
        jq -e '.data.stdout == \"a\n\"' '$T/c1.json' >/dev/null && jq -e '.data.stdout == \"b\n\"' '$T/c2.json' >/dev/null"
n_from=$(cat "$T/c1.json" "$T/c2.json" | jq -s '[.[] | select(.data.start_note // "" | test("spare"))] | length')
check "exactly one of them came from the spare ($n_from)" test "$n_from" = 1
check "one spare parked after them (at most one per template)" \
        sh -c "sleep 2; [ \"\$(ls '$vms' | wc -l)\" -eq 1 ]"
wait_secs '[ "$(n_spares)" -eq 1 ]' 60

# ---- a template rebuilt: its spare is not claimed, and goes at once ----
sr=$(spares)
pr=$(sup_pid "$sr")
cp "$vms/$sr/spare" "$T/old_tag"
key=$(cut -d: -f1 "$T/old_tag")
printf 'X' | dd of="$SMOLVM_HOME/templates/$key/state" bs=1 seek=4096 conv=notrunc status=none
run_json -- true >"$T/rebuilt.json" 2>"$T/err"; rc=$?
check "a run after the template was damaged (rc $rc): rebuilt, not from the old spare" \
        jq_true '.ok and .data.start == "warm" and (.data.start_note // "" | test("rebuilt"))' "$T/rebuilt.json"
check "the old template's spare was taken down with it" \
        sh -c "[ ! -e '$vms/$sr' ] && ! grep -qs . /proc/$pr/cmdline"
check "a spare of the new template is parked" wait_secs '[ "$(n_spares)" -eq 1 ] && [ "$(spares)" != "$sr" ]' 60
sn=$(spares)
old_snap=$(cut -d: -f2 "$T/old_tag" 2>/dev/null)
new_snap=$(cut -d: -f2 "$vms/$sn/spare")
check "... with the new template's snapshot id ($new_snap, was $old_snap)" sh -c "[ '$new_snap' != '$old_snap' ] && \
        [ '$new_snap' = \"\$(jq -r .id '$SMOLVM_HOME/templates/$key/snapshot.json')\" ]"

# ---- a SIGKILLed spare is not claimed, and its dir goes ----
s4=$(spares)
p4=$(sup_pid "$s4")
kill -9 "$p4"
wait_secs "! alive $p4" 10
run_json -- true >"$T/dead.json" 2>"$T/err"; rc=$?
check "a run after the spare's supervisor was SIGKILLed (rc $rc): warm, not from it" \
        jq_true '.ok and .data.start == "warm" and (.data.start_note // "" | test("spare") | not)' "$T/dead.json"
check "the dead spare's dir is removed" test ! -e "$vms/$s4"
check "its QEMU is gone (PDEATHSIG)" test -z "$(qemus_of "$s4")"

# ---- a VM from a spare dies with its SIGKILLed CLI ----
wait_secs '[ "$(n_spares)" -eq 1 ]' 60
s5=$(spares)
p5=$(sup_pid "$s5")
"$SMOLVM" run -- sleep 60 >/dev/null 2>&1 &
cli=$!
check "the run claimed the spare (its dir has a record)" wait_secs "[ -e '$vms/$s5/vm.json' ] && [ ! -e '$vms/$s5/spare' ]" 30
sleep 1
kill -9 "$cli"
wait "$cli" 2>/dev/null
check "after the CLI's SIGKILL its VM is gone: supervisor, QEMU, dir" \
        wait_secs "! alive $p5 && [ -z \"\$(qemus_of $s5)\" ] && [ ! -e '$vms/$s5' ]" 15
check "... and no new spare (its CLI never got to the end)" sh -c "sleep 1; [ -z \"\$(ls -A '$vms')\" ]"

# ---- SMOLVM_SPARE_IDLE_MS=0: no spare; an idle spare exits, leaving nothing ----
SMOLVM_SPARE_IDLE_MS=0 run_json -- true >"$T/off.json" 2>"$T/err"; rc=$?
check "with SMOLVM_SPARE_IDLE_MS=0 a warm run (rc $rc) parks no spare" \
        sh -c "jq -e .ok '$T/off.json' >/dev/null && sleep 2 && [ -z \"\$(ls -A '$vms')\" ]"
SMOLVM_SPARE_IDLE_MS=2000 run_json -- true >"$T/idle.json" 2>"$T/err"; rc=$?
check "a run with SMOLVM_SPARE_IDLE_MS=2000 (rc $rc) parks one" wait_secs '[ "$(n_spares)" -eq 1 ]' 60
check "it exits once idle: no process, no dir" wait_secs "[ -z \"\$(ls -A '$vms')\" ] && [ -z \"\$(our_pids)\" ]" 30
assert_no_leftovers "the end"
finish
