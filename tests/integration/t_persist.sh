#!/usr/bin/env bash
# Persistent VMs end to end: create, exec from other processes (by id, prefix and
# name), concurrent execs, env, pause/resume, stop/start keeping the disk, a
# SIGKILLed supervisor, every error code the lifecycle commands can give, rm.
# One VM, three boots (create, start after stop, start after SIGKILL).
. "$(dirname "$0")/lib.sh"

# The VM's processes: supervisor and QEMU name its dir on their command lines.
vm_pids() { pgrep -f -- "$SMOLVM_HOME/vms/$1" || true; }

# ---- create: prints the id, returns while the VM keeps running ----
id=$("$SMOLVM" create --name p1 --env FOO=bar --env 'SPACED=a b' 2>"$T/err"); rc=$?
check "create exits 0 (got $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
check "create prints a 12-hex-digit id ($id)" sh -c "echo '$id' | grep -Eqx '[0-9a-f]{12}'"
check "the VM outlives the creating CLI (supervisor alive)" test -n "$(vm_pids "$id")"
"$SMOLVM" ls --json >"$T/ls.json"
check "ls --json: running, named, with its config" jq_true --arg id "$id" '.ok and .command == "ls" and
        (.data.vms | length) == 1 and .data.vms[0].id == $id and .data.vms[0].name == "p1" and
        .data.vms[0].state == "running" and .data.vms[0].ephemeral == false' "$T/ls.json"
check "ls (text) shows it running" sh -c "'$SMOLVM' ls | grep -qE '^$id +p1 +running'"

# ---- exec: written by one process, read by others ----
"$SMOLVM" exec "$id" -- sh -c 'echo persisted-data > /root/state.txt' 2>"$T/err"; rc=$?
check "exec writes a file (rc $rc)" test "$rc" -eq 0
out=$("$SMOLVM" exec "$id" -- cat /root/state.txt 2>"$T/err")
check "a second process reads it by id" test "$out" = persisted-data
out=$("$SMOLVM" exec p1 -- cat /root/state.txt 2>"$T/err")
check "... by name" test "$out" = persisted-data
out=$("$SMOLVM" exec "${id:0:6}" -- cat /root/state.txt 2>"$T/err")
check "... by id prefix" test "$out" = persisted-data
"$SMOLVM" exec p1 -- sh -c 'exit 7'; rc=$?
check "exec passes the exit code through" test "$rc" -eq 7
out=$("$SMOLVM" exec p1 -- sh -c 'echo "$FOO|$SPACED"')
check "create --env reaches every exec ($out)" test "$out" = "bar|a b"
out=$("$SMOLVM" exec --env FOO=override --workdir /tmp p1 -- sh -c 'echo "$FOO"; pwd')
check "exec --env overrides, --workdir applies" test "$out" = "$(printf 'override\n/tmp')"
out=$(printf 'in-data' | "$SMOLVM" exec p1 -- cat)
check "exec forwards stdin" test "$out" = in-data
"$SMOLVM" exec --json p1 -- sh -c 'echo hi; echo ho >&2; exit 3' >"$T/json"; rc=$?
check "exec --json: exit code 3" test "$rc" -eq 3
check "exec --json: envelope" jq_true '.ok == true and .command == "exec" and .exit_code == 3 and .error == null
        and .data.stdout == "hi\n" and .data.stderr == "ho\n" and .data.timed_out == false' "$T/json"
"$SMOLVM" exec --timeout 1 p1 -- sleep 30; rc=$?
check "exec --timeout gives 124" test "$rc" -eq 124

# ---- 4 CLIs at once on one VM ----
for i in 1 2 3 4; do
        "$SMOLVM" exec p1 -- sh -c "for j in 1 2 3 4 5; do echo c$i-\$j; done; sleep 1; exit $((10 + i))" \
                >"$T/c$i.out" 2>"$T/c$i.err" &
        eval "pid$i=$!"
done
all_ok=1
for i in 1 2 3 4; do
        eval "wait \$pid$i"; rc=$?
        want=$(for j in 1 2 3 4 5; do echo "c$i-$j"; done)
        if [ "$rc" -ne $((10 + i)) ] || [ "$(cat "$T/c$i.out")" != "$want" ]; then
                all_ok=0
                diag "concurrent exec $i: rc $rc, out $(tr '\n' ' ' <"$T/c$i.out")"
        fi
done
check "4 concurrent execs: each its own output and exit code" test "$all_ok" -eq 1

# ---- info, logs, ps ----
"$SMOLVM" info --json p1 >"$T/info.json"
check "info --json: state, dir, boot times" jq_true --arg id "$id" '.ok and .data.id == $id and
        .data.state == "running" and (.data.dir | endswith($id)) and .data.boot.boot_ms > 0 and
        (.data.supervisor_pid | type) == "number"' "$T/info.json"
check "logs shows the guest console" sh -c "'$SMOLVM' logs p1 | grep -q 'smolvm-init'"
check "ps lists the guest's init" sh -c "'$SMOLVM' ps p1 | grep -Eq '^ +1 +0 .*/init'"
"$SMOLVM" ps --json p1 >"$T/ps.json"
check "ps --json: processes with pid 1" jq_true '.ok and any(.data.processes[]; .pid == 1)' "$T/ps.json"

# ---- pause / resume ----
"$SMOLVM" pause p1 >/dev/null 2>"$T/err"; rc=$?
check "pause exits 0" test "$rc" -eq 0
check "ls shows paused" jq_true '.data.vms[0].state == "paused"' <("$SMOLVM" ls --json)
start=$(date +%s)
"$SMOLVM" exec p1 -- true 2>"$T/err"; rc=$?
took=$(( $(date +%s) - start ))
check "exec on a paused VM fails with 125 (got $rc)" test "$rc" -eq 125
check "... at once (${took}s)" test "$took" -lt 3
check "... saying it is paused" grep -q 'is paused' "$T/err"
check "... with a hint to resume" grep -q '^hint: resume it' "$T/err"
"$SMOLVM" exec --json p1 -- true >"$T/json" 2>/dev/null
check "exec --json on a paused VM: error.code paused" jq_true '.ok == false and .error.code == "paused"
        and (.error.message | test("paused")) and (.error.recovery | length) > 0' "$T/json"
"$SMOLVM" pause p1 >/dev/null 2>"$T/err"; rc=$?
check "pause twice: 125, already paused" sh -c "[ $rc -eq 125 ] && grep -q 'already paused' '$T/err'"
"$SMOLVM" resume p1 >/dev/null 2>"$T/err"; rc=$?
check "resume exits 0" test "$rc" -eq 0
out=$("$SMOLVM" exec p1 -- cat /root/state.txt 2>"$T/err")
check "exec works again after resume" test "$out" = persisted-data

# ---- error codes reachable from the CLI ----
"$SMOLVM" exec nosuchvm -- true 2>"$T/err"; rc=$?
check "unknown VM: 125, 'no such VM'" sh -c "[ $rc -eq 125 ] && grep -q 'no such VM' '$T/err'"
"$SMOLVM" exec --json nosuchvm -- true >"$T/json" 2>/dev/null
check "unknown VM --json: not_found" jq_true '.ok == false and .exit_code == 125 and .error.code == "not_found"' "$T/json"
"$SMOLVM" create --json --no-start --name p1 >"$T/json" 2>"$T/err"; rc=$?
check "duplicate name: 125, already_exists" sh -c "[ $rc -eq 125 ] && grep -q 'already exists' '$T/err'"
check "duplicate name --json: already_exists" jq_true '.error.code == "already_exists"' "$T/json"
"$SMOLVM" create --json --no-start --name 'bad name' >"$T/json" 2>"$T/err"; rc=$?
check "invalid name: 125, invalid_argument" sh -c "[ $rc -eq 125 ] && grep -q 'invalid VM name' '$T/err'"
check "invalid name --json: invalid_argument" jq_true '.error.code == "invalid_argument"' "$T/json"
"$SMOLVM" create --json --mem 1 >"$T/json" 2>"$T/err"; rc=$?
check "invalid --mem: 125, invalid_argument" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"invalid_argument\"' '$T/json' >/dev/null"
"$SMOLVM" create --json --no-start --image no-such-image >"$T/json" 2>"$T/err"; rc=$?
check "missing image: 125, image_error" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"image_error\"' '$T/json' >/dev/null"
"$SMOLVM" rm --json p1 >"$T/json" 2>"$T/err"; rc=$?
check "rm of a running VM without -f: refused (busy)" sh -c "[ $rc -eq 125 ] && grep -q 'is running' '$T/err'"
check "rm refused --json: busy" jq_true '.error.code == "busy"' "$T/json"
check "... and the VM still runs" test -n "$(vm_pids "$id")"
check "no VM was left by the failed creates" test "$(ls "$SMOLVM_HOME/vms" | wc -l)" -eq 1

# ---- stop / start keep the disk ----
start=$(date +%s)
"$SMOLVM" stop p1 >/dev/null 2>"$T/err"; rc=$?
took=$(( $(date +%s) - start ))
check "stop exits 0 (took ${took}s)" test "$rc" -eq 0
check "stop was graceful (guest powered off, no SIGTERM)" sh -c "! grep -q 'received Terminated' '$SMOLVM_HOME/vms/$id/supervisor.log'"
check "stop: no process of the VM left" test -z "$(vm_pids "$id")"
check "stop: disk and record kept, sockets gone" sh -c "cd '$SMOLVM_HOME/vms/$id' && test -f overlay.qcow2 -a -f vm.json -a ! -e vsock.sock -a ! -e supervisor.pid"
check "ls shows stopped" jq_true '.data.vms[0].state == "stopped"' <("$SMOLVM" ls --json)
"$SMOLVM" exec --json p1 -- true >"$T/json" 2>"$T/err"; rc=$?
check "exec on a stopped VM: 125, not_running" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"not_running\"' '$T/json' >/dev/null"
"$SMOLVM" exec p1 -- true 2>"$T/err"
check "... saying so, with a hint to start" sh -c "grep -q 'is not running' '$T/err' && grep -q '^hint: start it' '$T/err'"
"$SMOLVM" pause p1 2>"$T/err"; rc=$?
check "pause of a stopped VM: not running" sh -c "[ $rc -eq 125 ] && grep -q 'not running' '$T/err'"
"$SMOLVM" start p1 >/dev/null 2>"$T/err"; rc=$?
check "start exits 0" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
out=$("$SMOLVM" exec p1 -- cat /root/state.txt 2>"$T/err")
check "the file survived stop/start" test "$out" = persisted-data
"$SMOLVM" start p1 2>"$T/err"; rc=$?
check "start of a running VM: 125, already running" sh -c "[ $rc -eq 125 ] && grep -q 'already running' '$T/err'"

# ---- supervisor killed with SIGKILL ----
sup=$(cat "$SMOLVM_HOME/vms/$id/supervisor.pid")
kill -KILL "$sup"
wait_for "[ -z \"\$(vm_pids $id)\" ]" 10
check "SIGKILL of the supervisor takes QEMU with it" test -z "$(vm_pids "$id")"
state=$("$SMOLVM" ls --json | jq -r '.data.vms[0].state')
check "ls after SIGKILL: error or stopped, not running ($state)" sh -c "[ '$state' = error ] || [ '$state' = stopped ]"
"$SMOLVM" exec p1 -- true 2>"$T/err"; rc=$?
check "exec after SIGKILL: not running" sh -c "[ $rc -eq 125 ] && grep -q 'not running' '$T/err'"
"$SMOLVM" start p1 >/dev/null 2>"$T/err"; rc=$?
check "start after SIGKILL works (stale sockets removed)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
out=$("$SMOLVM" exec p1 -- cat /root/state.txt 2>"$T/err")
check "the file survived the crash" test "$out" = persisted-data

# ---- rm ----
"$SMOLVM" rm -f --json p1 >"$T/json" 2>"$T/err"; rc=$?
check "rm -f exits 0" test "$rc" -eq 0
check "rm --json names the removed id" jq_true --arg id "$id" '.ok and .data.removed == [$id]' "$T/json"
check "rm: VM dir gone" test ! -e "$SMOLVM_HOME/vms/$id"
check "ls is empty" jq_true '.data.vms == []' <("$SMOLVM" ls --json)
"$SMOLVM" rm p1 2>"$T/err"; rc=$?
check "rm again: 125, no such VM" sh -c "[ $rc -eq 125 ] && grep -q 'no such VM' '$T/err'"

# ---- a half-written record is reported, not crashed on, and still removable ----
cid=$("$SMOLVM" create --no-start --name broken 2>"$T/err")
check "create --no-start: state created" jq_true '.data.vms[0].state == "created"' <("$SMOLVM" ls --json)
printf '{"version":1,"id":"%s","crea' "$cid" >"$SMOLVM_HOME/vms/$cid/vm.json"
"$SMOLVM" ls --json >"$T/json" 2>"$T/err"; rc=$?
check "ls with a corrupt record: exit 0, VM shown as error" sh -c "[ $rc -eq 0 ] && jq -e '.data.vms[0].state == \"error\"' '$T/json' >/dev/null"
"$SMOLVM" info --json "$cid" >"$T/json" 2>"$T/err"; rc=$?
check "info of a corrupt VM: 125, corrupt, naming the file" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"corrupt\"' '$T/json' >/dev/null && grep -q 'vms/$cid/vm.json' '$T/err'"
"$SMOLVM" rm -f "$cid" >/dev/null 2>"$T/err"; rc=$?
check "rm -f of a corrupt VM works" sh -c "[ $rc -eq 0 ] && [ ! -e '$SMOLVM_HOME/vms/$cid' ]"

assert_no_leftovers "after rm"
finish
