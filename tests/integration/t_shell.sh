#!/usr/bin/env bash
# smolvm behaves like a shell (issue 13), on one persistent VM:
#  - what a command starts in the background (`cmd &`, `nohup cmd &`) keeps
#    running after the exec returned, as over SSH, and never holds the exec
#    open; --timeout, SIGKILL of the client and Ctrl-C still end the whole group;
#  - `exec -d` starts a command, prints its pid and returns; `logs --pid` shows
#    its output (and what background processes wrote after their exec ended);
#  - (terminals: t_shell_tty.sh)
#  - `logs -f` follows the console until Ctrl-C or the VM stops.
. "$(dirname "$0")/lib.sh"

for tool in jq python3; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool not installed"; exit 0; }
done

"$SMOLVM" create --name sh >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create a VM (rc $rc)" "$rc"

# The HTTP status of http://127.0.0.1:$1/ in the guest ("none" if nothing answers).
http_status() {
        "$SMOLVM" exec sh -- python3 -c 'import sys, urllib.request as u
try:
    print(u.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).status)
except Exception:
    print("none")' "$1" 2>>"$T/http.err"
}

# ---- background processes, as over SSH ----

"$SMOLVM" exec sh -- sh -c 'python3 -m http.server 8000 >/tmp/h.log 2>&1 &' 2>"$T/bg.err"; rc=$?
check "exec of 'server &' returns (rc $rc)" test "$rc" -eq 0
wait_secs '[ "$(http_status 8000)" = 200 ]' 60
st=$(http_status 8000)
check "the server started with & in one exec answers in the next (HTTP $st)" test "$st" = 200

"$SMOLVM" exec sh -- sh -c 'nohup sleep 4711 >/dev/null 2>&1 &' 2>>"$T/bg.err"
n=$(guest_count sh '^sleep 4711')
check "nohup sleep & survives its exec (running: $n)" test "$n" = 1

# A background child that keeps the command's stdout open does not hold the exec.
read -r rc ms < <(after_ready timeout 60 "$SMOLVM" exec sh -- sh -c 'sleep 4712 & echo ready' 2>>"$T/bg.err")
diag "exec with a background child holding stdout: rc $rc, ended $ms ms after its command"
check "... returns within a second or two of its command's exit (rc $rc, ${ms} ms < 2000)" \
        test "$rc" -eq 0 -a "$ms" -ge 0 -a "$ms" -lt 2000
n=$(guest_count sh '^sleep 4712')
check "... and the child keeps running (running: $n)" test "$n" = 1

# What a background process writes after its exec ended goes to the exec's log.
"$SMOLVM" exec --json sh -- sh -c '(sleep 2; echo LATE-LINE) &' >"$T/late.json" 2>>"$T/bg.err"
pid=$(jq -r '.data.pid' "$T/late.json" 2>/dev/null)
check "exec --json gives the command's guest pid ($pid)" test "${pid:-x}" -gt 0 2>/dev/null
wait_secs '"$SMOLVM" logs sh --pid "$pid" 2>>"$T/bg.err" | grep -q LATE-LINE' 30
out=$("$SMOLVM" logs sh --pid "$pid" 2>&1)
check "logs --pid shows what the background writer wrote after the exec ended ('$out')" test "$out" = LATE-LINE

# ---- exec -d ----

t0=$(date +%s%N)
dpid=$("$SMOLVM" exec -d sh -- python3 -m http.server 8001 2>"$T/d.err"); rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "exec -d returns at once with a pid (rc $rc, '$dpid', ${ms} ms)" \
        sh -c '[ "$1" -eq 0 ] && [ "$2" -gt 0 ]' _ "$rc" "$dpid"
wait_secs '[ "$(http_status 8001)" = 200 ]' 60
st=$(http_status 8001)
check "the detached server answers (HTTP $st)" test "$st" = 200
wait_secs '"$SMOLVM" logs sh --pid "$dpid" 2>>"$T/d.err" | grep -q "GET / HTTP"' 20
out=$("$SMOLVM" logs sh --pid "$dpid" 2>&1)
check "logs --pid $dpid shows the detached server's output" sh -c 'printf "%s" "$1" | grep -q "\"GET / HTTP/1.1\" 200"' _ "$out"
"$SMOLVM" exec -d --json sh -- sleep 4713 >"$T/d.json" 2>>"$T/d.err"
jpid=$(jq -r '.data.pid' "$T/d.json" 2>/dev/null)
gpid=$("$SMOLVM" exec sh -- pgrep -x -f 'sleep 4713' 2>>"$T/d.err")
check "exec -d --json: data.pid ($jpid) is the command's pid in the guest ($gpid)" \
        sh -c '[ -n "$1" ] && [ "$1" = "$2" ]' _ "$jpid" "$gpid"
"$SMOLVM" logs sh --pid 999999 >/dev/null 2>"$T/nolog.err"; rc=$?
check "logs --pid of a pid without a log: exit 125 naming it (rc $rc)" \
        sh -c '[ "$1" -eq 125 ] && grep -q 999999 "$2"' _ "$rc" "$T/nolog.err"
"$SMOLVM" exec -d -i sh -- true </dev/null >/dev/null 2>"$T/di.err"; rc=$?
check "exec -d -i is a usage error (rc $rc)" test "$rc" -eq 125

# ---- what still ends the whole group ----

"$SMOLVM" exec --timeout 3 sh -- sh -c 'sleep 4714 & sleep 4715' 2>"$T/to.err"; rc=$?
check "--timeout 3: exit 124 (rc $rc)" test "$rc" -eq 124
wait_secs '[ "$(guest_count sh "^sleep 471[45]")" = 0 ]' 20
n=$(guest_count sh '^sleep 471[45]')
check "--timeout leaves no process of its group (left: $n)" test "$n" = 0

# $1: the signal for the client, $2 $3: the sleeps' arguments.
signalled_client_check() {
        local sig=$1 a=$2 b=$3 pid n rc
        "$SMOLVM" exec sh -- sh -c "sleep $a & exec sleep $b" </dev/null >/dev/null 2>&1 &
        pid=$!
        if ! wait_secs "[ \"\$(guest_count sh '^sleep ($a|$b)\$')\" = 2 ]" 60; then
                not_ok "SIG$sig to the client: its command and background child run first"
                kill -9 "$pid" 2>/dev/null
                return
        fi
        kill -"$sig" "$pid"
        wait "$pid"; rc=$?
        wait_secs "[ \"\$(guest_count sh '^sleep ($a|$b)\$')\" = 0 ]" 20
        n=$(guest_count sh "^sleep ($a|$b)\$")
        check "SIG$sig to the client (rc $rc) kills its command and background child (left: $n)" test "$n" = 0
}
signalled_client_check KILL 4716 4717
signalled_client_check INT 4718 4719

# ---- logs -f ----

"$SMOLVM" logs -f --json sh >/dev/null 2>&1; rc=$?
check "logs -f --json is a usage error (rc $rc)" test "$rc" -eq 125
"$SMOLVM" logs -f sh >"$T/f1.out" 2>"$T/f1.err" &
f1=$!
"$SMOLVM" logs -f sh >"$T/f2.out" 2>"$T/f2.err" &
f2=$!
wait_secs "[ -s '$T/f1.out' ] && [ -s '$T/f2.out' ]" 20
"$SMOLVM" exec sh -- sh -c 'echo FOLLOW-MARK-$((1+1)) >/dev/console'
wait_secs "grep -q FOLLOW-MARK-2 '$T/f1.out'" 20
check "logs -f shows a console line written after it started" grep -q FOLLOW-MARK-2 "$T/f1.out"
kill -INT "$f1"
wait "$f1"; rc=$?
check "logs -f ends on Ctrl-C with exit 0 (rc $rc)" test "$rc" -eq 0
"$SMOLVM" stop sh >/dev/null 2>>"$T/err"
wait_secs "! kill -0 $f2 2>/dev/null" 30
if kill -0 "$f2" 2>/dev/null; then
        not_ok "logs -f ends when the VM stops"
        kill -9 "$f2"
else
        wait "$f2"; rc=$?
        check "logs -f ends when the VM stops (rc $rc), having shown the line too" \
                sh -c '[ "$1" -eq 0 ] && grep -q FOLLOW-MARK-2 "$2"' _ "$rc" "$T/f2.out"
fi

"$SMOLVM" rm -f sh >/dev/null 2>"$T/err"
assert_no_leftovers "after rm -f"
finish
