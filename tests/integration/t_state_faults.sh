#!/usr/bin/env bash
# A VM's state when something dies under it: QEMU stopped (SIGSTOP) or killed
# (SIGKILL) behind the supervisor's back, a start that fails after the guest
# booted, `smolvm rm -f` and `smolvm create` SIGKILLed part-way. One VM, three boots.
. "$(dirname "$0")/lib.sh"

# The VM's processes: supervisor and QEMU name its dir on their command lines.
vm_pids() { pgrep -f -- "$SMOLVM_HOME/vms/$1" || true; }
# The VM's QEMU: the supervisor's child running qemu-system-*.
qemu_of() {
        local sup
        sup=$(cat "$SMOLVM_HOME/vms/$1/supervisor.pid" 2>/dev/null) || return 0
        pgrep -P "$sup" -f qemu-system || true
}
# Anything of VM $1 left in vms/ (its dir, or a half-removed copy of it).
vm_leftovers() { ls -A "$SMOLVM_HOME/vms" 2>/dev/null | grep -F -- "$1" || true; }

# ---- a VM whose QEMU is stopped: exec says "not responding", in bounded time ----
id=$("$SMOLVM" create --name sf1 2>"$T/err"); rc=$?
check_or_bail "create sf1 (rc $rc)" "$rc"
qemu=$(qemu_of "$id")
check "found the VM's QEMU (pid $qemu)" test -n "$qemu"
kill -STOP $qemu
start=$(date +%s)
"$SMOLVM" exec --timeout 5 sf1 -- true >/dev/null 2>"$T/err"; rc=$?
took=$(( $(date +%s) - start ))
check "exec, QEMU stopped: exit 125 (got $rc)" test "$rc" -eq 125
check "exec, QEMU stopped: fails within 30 s (took ${took}s)" test "$took" -lt 30
check "exec, QEMU stopped: 'not responding', naming the VM" \
        sh -c "grep -q 'not responding' '$T/err' && grep -Eq '$id|sf1' '$T/err'"
check "exec, QEMU stopped: not 'refused'" sh -c "! grep -qi 'refused' '$T/err'"
check "exec, QEMU stopped: a hint with the fix" grep -q '^hint: .*smolvm' "$T/err"
[ "$rc" -eq 125 ] && grep -q 'not responding' "$T/err" || sed 's/^/# /' "$T/err"
"$SMOLVM" exec --json --timeout 5 sf1 -- true >"$T/json" 2>/dev/null
check "exec --json, QEMU stopped: error.code exec_unavailable" \
        jq_true '.ok == false and .error.code == "exec_unavailable"' "$T/json"
kill -CONT $qemu
out=$("$SMOLVM" exec sf1 -- echo back 2>"$T/err")
check "after SIGCONT, exec works again ($out)" test "$out" = back

# A QEMU under strace stops ('t') for a moment at each of its system calls: that
# is not a stopped VM (it was once taken for one and every exec failed).
strace -f -q -p "$qemu" -o /dev/null & tracer=$!   # scripts/deps.txt installs strace
sleep 1
fails=0
for i in 1 2 3 4 5; do
        "$SMOLVM" exec sf1 -- true 2>>"$T/traced" || fails=$((fails + 1))
done
kill $tracer; wait $tracer 2>/dev/null
check "exec while strace traces QEMU: 5 of 5 work ($fails failed)" test "$fails" -eq 0
[ "$fails" -eq 0 ] || diag "$(cat "$T/traced")"

# The supervisor itself stopped: nobody answers the connection at all.
sup=$(cat "$SMOLVM_HOME/vms/$id/supervisor.pid")
kill -STOP "$sup"
start=$(date +%s)
"$SMOLVM" exec --json --timeout 5 sf1 -- true >"$T/json" 2>"$T/err"; rc=$?
took=$(( $(date +%s) - start ))
kill -CONT "$sup"
check "exec, supervisor stopped: exit 125 within 40 s (rc $rc, ${took}s)" sh -c "[ $rc -eq 125 ] && [ $took -lt 40 ]"
check "exec, supervisor stopped: 'not responding', exec_unavailable" \
        jq_true --arg id "$id" '.error.code == "exec_unavailable" and (.error.message | test("not responding"))
        and (.error.message | contains($id))' "$T/json"
jq_true '.error.code == "exec_unavailable"' "$T/json" || sed 's/^/# /' "$T/err"
out=$("$SMOLVM" exec sf1 -- echo back 2>"$T/err")
check "after SIGCONT of the supervisor, exec works again ($out)" test "$out" = back

# ---- QEMU killed behind the supervisor's back: state error, with the reason ----
qemu=$(qemu_of "$id")
kill -KILL $qemu
wait_for "[ -z \"\$(vm_pids $id)\" ]" 20
check "the supervisor exits when its QEMU is killed" test -z "$(vm_pids "$id")"
"$SMOLVM" info --json sf1 >"$T/json" 2>"$T/err"
check "info after QEMU's SIGKILL: state error" jq_true '.data.state == "error"' "$T/json"
check "info: the reason names QEMU and the signal" \
        jq_true '.data.error | test("QEMU") and test("signal 9|SIGKILL|Killed")' "$T/json"
jq_true '.data.state == "error"' "$T/json" || sed 's/^/# /' "$T/json"
check "info (text) shows the reason" sh -c "'$SMOLVM' info sf1 | grep -q '^error: .*QEMU'"
check "logs shows what happened to QEMU" sh -c "'$SMOLVM' logs sf1 | grep -q 'smolvm-supervisor.*QEMU'"
check "ls: error" jq_true '.data.vms[0].state == "error"' <("$SMOLVM" ls --json)

# ---- a start that fails after the guest booted leaves nothing running ----
# An env entry the guest refuses (the record is only ever written by create,
# which refuses it now; a damaged record must not leave a VM running).
rec="$SMOLVM_HOME/vms/$id/vm.json"
jq '.env = ["A-B=1"]' "$rec" >"$T/rec" && cat "$T/rec" >"$rec"
rm -f "$SMOLVM_HOME/vms/$id/env.applied"
"$SMOLVM" start sf1 >/dev/null 2>"$T/err"; rc=$?
check "start with an env key the guest refuses: exit 125 (got $rc)" test "$rc" -eq 125
check "... naming the key" grep -q "A-B" "$T/err"
check "... leaves no supervisor or QEMU running" test -z "$(vm_pids "$id")"
state=$("$SMOLVM" ls --json | jq -r '.data.vms[0].state')
check "... state error or stopped, not running ($state)" sh -c "[ '$state' = error ] || [ '$state' = stopped ]"
jq '.env = []' "$rec" >"$T/rec" && cat "$T/rec" >"$rec"
"$SMOLVM" start sf1 >/dev/null 2>"$T/err"; rc=$?
check "start after fixing the record works" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "info: no error while running" jq_true '.data.state == "running" and .data.error == null' \
        <("$SMOLVM" info --json sf1)

# ---- smolvm rm -f SIGKILLed part-way: what is left is shown or finished ----
# After the kill: either `ls` lists the VM and a second rm -f removes it, or
# nothing of it is left once `ls` has run.
after_killed_rm() { # WHAT ID NAME FIRST(ls|rm)
        local what=$1 vid=$2 name=$3 first=$4 listed rc
        if [ "$first" = rm ]; then
                "$SMOLVM" rm -f "$vid" >/dev/null 2>"$T/err"; rc=$?
                check "$what: a second 'rm -f ID' exits 0 (got $rc)" test "$rc" -eq 0
                [ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
        fi
        listed=$("$SMOLVM" ls --json | jq --arg id "$vid" '[.data.vms[] | select(.id == $id)] | length')
        if [ "$listed" = 1 ]; then
                ok "$what: ls shows it"
                "$SMOLVM" rm -f "$name" >/dev/null 2>"$T/err"; rc=$?
                check "$what: a second 'rm -f NAME' exits 0 (got $rc)" test "$rc" -eq 0
                [ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
        fi
        check "$what: nothing of it left in vms/ ($(vm_leftovers "$vid"))" test -z "$(vm_leftovers "$vid")"
        check "$what: no process of it left" test -z "$(vm_pids "$vid")"
}

# 1. A running VM. strace holds one syscall of rm (delay_enter), a point at
#    which it is SIGKILLed: deterministic, and nothing in smolvm itself.
# strace_rm SYSCALLS DELAY_US COND: rm -f sf1 under strace, SIGKILLed once COND holds.
strace_rm() {
        local spid
        strace -f -qq -o /dev/null -e trace="$1" -e inject="$1":delay_enter="$2" "$SMOLVM" rm -f sf1 >/dev/null 2>&1 &
        spid=$!
        wait_for "[ -n \"\$(pgrep -P $spid)\" ] && $3" 30
        kill -KILL $(pgrep -P $spid) 2>/dev/null
        sleep 0.2
        kill -KILL "$spid" 2>/dev/null # it would sit out its delay timer
        wait "$spid" 2>/dev/null
}
if command -v strace >/dev/null && strace -qq -o /dev/null -e inject=getpid:delay_enter=1 true 2>/dev/null; then
        # a. In its first kill(2) (probing the supervisor, ms after it started;
        #    held 20 s), before it stopped anything: the VM still runs.
        strace_rm kill 20000000 "sleep 3"
        check "rm -f killed before stopping the VM: ls shows it running" \
                jq_true --arg id "$id" 'any(.data.vms[]; .id == $id and .state == "running")' <("$SMOLVM" ls --json)
        # b. Once the VM is stopped: its rename is held, nothing is removed yet.
        strace_rm rename,renameat,renameat2 20000000 "[ -z \"\$(vm_pids $id)\" ]"
        after_killed_rm "rm -f of a running VM killed after stopping it" "$id" sf1 ls
else
        ok "rm -f of a running VM killed part-way # SKIP no strace with syscall delay injection"
        "$SMOLVM" rm -f sf1 >/dev/null 2>&1
fi

# 2./3. A VM dir that takes a while to remove, killed in the middle of it.
big_vm() { # NAME -> id; a created VM with 30,000 files in its dir
        local vid
        vid=$("$SMOLVM" create --no-start --name "$1" 2>"$T/err") || return 1
        mkdir "$SMOLVM_HOME/vms/$vid/junk"
        (cd "$SMOLVM_HOME/vms/$vid/junk" && seq 1 30000 | xargs touch)
        echo "$vid"
}
for first in rm ls; do
        vid=$(big_vm "big-$first")
        check_or_bail "create --no-start big-$first" $?
        "$SMOLVM" rm -f "big-$first" >/dev/null 2>&1 &
        rmpid=$!
        # vm.json leaves the VM's dir (path) when the removal has begun.
        wait_for "[ ! -e '$SMOLVM_HOME/vms/$vid/vm.json' ]" 20
        kill -KILL "$rmpid" 2>/dev/null; killed=$?
        wait "$rmpid" 2>/dev/null
        check "rm -f big-$first was killed in the middle (left: $(vm_leftovers "$vid"))" \
                sh -c "[ $killed -eq 0 ] && [ -n '$(vm_leftovers "$vid")' ]"
        after_killed_rm "rm -f killed mid-removal, then $first" "$vid" "big-$first" "$first"
done

# 4. Killed right after it started.
vid=$("$SMOLVM" create --no-start --name quick 2>"$T/err")
check_or_bail "create --no-start quick" $?
"$SMOLVM" rm -f quick >/dev/null 2>&1 &
rmpid=$!
sleep 0.01
kill -KILL "$rmpid" 2>/dev/null; wait "$rmpid" 2>/dev/null
after_killed_rm "rm -f killed at once" "$vid" quick ls

# 5. create SIGKILLed before its record is complete (held in its first rename,
#    the atomic write of config.json): the next ls leaves nothing half-made,
#    and the name is free again.
if command -v strace >/dev/null && strace -qq -o /dev/null -e inject=getpid:delay_enter=1 true 2>/dev/null; then
        strace -f -qq -o /dev/null -e trace=rename,renameat,renameat2 \
                -e inject=rename,renameat,renameat2:delay_enter=20000000 \
                "$SMOLVM" create --no-start --name half >/dev/null 2>&1 &
        spid=$!
        wait_for "[ -n \"\$(pgrep -P $spid)\" ] && [ -n \"\$(ls -A '$SMOLVM_HOME/vms')\" ]" 30
        made=$(ls -A "$SMOLVM_HOME/vms" | tr '\n' ' ')
        kill -KILL $(pgrep -P $spid) 2>/dev/null
        sleep 0.2
        kill -KILL "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        check "create killed part-way had made its dir ($made)" test -n "$made"
        check "ls after a killed create: no VM 'half'" \
                jq_true '[.data.vms[] | select(.name == "half")] | length == 0' <("$SMOLVM" ls --json)
        check "ls after a killed create: nothing left in vms/ ($(ls -A "$SMOLVM_HOME/vms" | tr '\n' ' '))" \
                test -z "$(ls -A "$SMOLVM_HOME/vms")"
        "$SMOLVM" create --no-start --name half >/dev/null 2>"$T/err"; rc=$?
        check "the name is free again: create half (rc $rc)" test "$rc" -eq 0
        "$SMOLVM" rm -f half >/dev/null 2>&1
else
        ok "create killed part-way # SKIP no strace with syscall delay injection"
fi

# 6. Creates at the same time: none takes another's half-built dir for a
#    leftover (each create sweeps leftovers first).
for i in 1 2 3 4 5 6 7 8; do
        ( "$SMOLVM" create --no-start --name "par$i" >/dev/null 2>"$T/par$i.err"; echo $? >"$T/par$i.rc" ) &
done
wait
bad=""
for i in 1 2 3 4 5 6 7 8; do
        [ "$(cat "$T/par$i.rc")" = 0 ] || bad="$bad par$i:$(head -c 200 "$T/par$i.err")"
done
check "8 concurrent creates all succeed${bad:+ (failed:$bad)}" test -z "$bad"
n=$("$SMOLVM" ls --json | jq '[.data.vms[] | select(.name | startswith("par"))] | length')
check "ls shows the 8 ($n)" test "$n" = 8
for i in 1 2 3 4 5 6 7 8; do "$SMOLVM" rm -f "par$i" >/dev/null 2>&1; done

assert_no_leftovers "state faults"
finish
