#!/usr/bin/env bash
# The life of an exec stream, end to end on one persistent VM:
#  - a client that dies (SIGKILL) takes its guest command with it, also after a
#    half-close; a half-close alone (stdin EOF) still gets the command's output;
#  - a writer that escaped the command's process group (setsid) cannot hold the
#    exec open after the command exited, and --timeout says "timed out" (124);
#  - --json keeps the whole envelope bounded in memory and size, and says so.
. "$(dirname "$0")/lib.sh"

for tool in jq python3; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool not installed"; exit 0; }
done

id=$("$SMOLVM" create --name life 2>"$T/err"); rc=$?
check_or_bail "create a VM (rc $rc)" "$rc"
sock="$SMOLVM_HOME/vms/$id/vsock.sock"

# A raw agent client (not our library), in python: CONNECT, an exec REQUEST (the
# JSON in argv[3]), then, if argv[2] is "halfclose", shutdown(SHUT_WR) at once.
# Prints STDOUT frames to stdout and "EXIT <json>" for the EXIT frame.
cat >"$T/raw_exec.py" <<'PYEOF'
import socket, struct, sys
path, mode, req = sys.argv[1], sys.argv[2], sys.argv[3].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(b"CONNECT 1024\n")
line = b""
while not line.endswith(b"\n"):
    c = s.recv(1)
    if not c:
        sys.exit("no OK line")
    line += c
if not line.startswith(b"OK "):
    sys.exit("refused: %r" % line)
s.sendall(struct.pack("<IHH", len(req), 1, 0) + req)
if mode == "halfclose":
    s.shutdown(socket.SHUT_WR)
buf = b""
while True:
    d = s.recv(65536)
    if not d:
        sys.exit("EOF before EXIT")
    buf += d
    while len(buf) >= 8:
        n, t, _ = struct.unpack("<IHH", buf[:8])
        if len(buf) < 8 + n:
            break
        p, buf = buf[8:8 + n], buf[8 + n:]
        if t == 17:
            sys.stdout.write(p.decode(errors="replace"))
        elif t == 19:
            print("EXIT " + p.decode(), flush=True)
            sys.exit(0)
        elif t == 20:
            sys.exit("ERROR " + p.decode())
PYEOF

# ---- a client that dies takes its command with it ----

# $1: description, $2: the guest regex, $3: the client's command line (run with
# exec in the background, so its pid is the client's).
killed_client_check() {
        local what=$1 re=$2 pid n
        eval "exec $3" &
        pid=$!
        if ! wait_secs "[ \"\$(guest_count life '$re')\" = 1 ]" 60; then
                not_ok "$what: the command runs in the guest"
                kill -9 "$pid" 2>/dev/null
                return
        fi
        ok "$what: the command runs in the guest"
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        # The guest learns at once; 20 s only covers a loaded TCG guest.
        wait_secs "[ \"\$(guest_count life '$re')\" = 0 ]" 20
        n=$(guest_count life "$re")
        check "$what: SIGKILL of the client kills the guest command (left: $n)" test "$n" = 0
}

killed_client_check "smolvm exec, silent command" '^slee[p] 4321' \
        '"$SMOLVM" exec life -- sleep 4321 </dev/null >"$T/k1.out" 2>&1'
killed_client_check "raw client after a half-close" '^slee[p] 4322' \
        "python3 '$T/raw_exec.py' '$sock' halfclose '{\"op\":\"exec\",\"argv\":[\"sleep\",\"4322\"],\"stdin\":true}' >'$T/k2.out' 2>&1"

# ---- a half-close is not a death: the output still comes ----

out=$(python3 "$T/raw_exec.py" "$sock" halfclose \
        '{"op":"exec","argv":["sh","-c","cat; sleep 2; echo done"],"stdin":true}' 2>"$T/raw.err")
check "raw client, stdin half-closed at once: the output and EXIT still arrive" \
        sh -c 'printf "%s\n" "$1" | grep -qx done && printf "%s\n" "$1" | grep -q "^EXIT .*\"exit_code\": *0"' _ "$out"
[ -s "$T/raw.err" ] && sed 's/^/# /' "$T/raw.err"
out=$("$SMOLVM" exec life -- sh -c 'cat; sleep 2; echo done' </dev/null 2>&1); rc=$?
check "smolvm exec, stdin /dev/null: output after stdin EOF (rc $rc, '$out')" test "$rc" -eq 0 -a "$out" = done
out=$(true | "$SMOLVM" exec life -- sh -c 'cat; sleep 2; echo done' 2>&1); rc=$?
check "smolvm exec, stdin a closed pipe: output after stdin EOF (rc $rc, '$out')" test "$rc" -eq 0 -a "$out" = done

# ---- a writer outside the process group cannot hold the exec open ----

# The trickler: a byte every 30 ms, in its own session (setsid), so the agent's
# kill of the command's process group at its exit does not reach it. It creates
# /tmp/tr once it runs (python starts slowly under TCG). A shell loop forking
# `sleep` would be slower than the agent's 100 ms idle limit on this emulator.
printf '%s\n' 'import os, time' 'open("/tmp/tr", "w").close()' \
        'while True:' '    os.write(1, b"x")' '    time.sleep(0.03)' >"$T/trickle.py"
"$SMOLVM" exec -i life -- sh -c 'cat > /root/trickle.py' <"$T/trickle.py"
start_trickler='rm -f /tmp/tr; setsid python3 /root/trickle.py & while [ ! -e /tmp/tr ]; do sleep 0.1; done'
stop_tricklers() { "$SMOLVM" exec life -- sh -c "pkill -f '^python3 /root/trickl[e]'; exit 0"; }

read -r rc ms < <(after_ready timeout 60 "$SMOLVM" exec life -- \
        sh -c "$start_trickler; echo ready; exit 0" 2>"$T/trickle.err")
check "a setsid trickler does not hold the exec open (rc $rc, ends ${ms} ms after the command, < 5000)" \
        test "$rc" -eq 0 -a "$ms" -ge 0 -a "$ms" -lt 5000
stop_tricklers

# 8 s: the trickler (python) must be running before the timeout, also on a loaded TCG guest.
read -r rc ms < <(after_ready timeout 90 "$SMOLVM" exec --timeout 8 life -- \
        sh -c "$start_trickler; echo ready; sleep 1000" 2>"$T/to.err")
err=$(cat "$T/to.err")
check "--timeout 8 with a setsid trickler: exit 124 < 14 s after ready, not 8 + 15 s (rc $rc, ${ms} ms)" \
        test "$rc" -eq 124 -a "$ms" -ge 0 -a "$ms" -lt 14000
check "... the error says the command timed out ('$err')" sh -c 'printf "%s" "$1" | grep -q "timed out after 8 s"' _ "$err"
check "... not that the agent is not responding" sh -c '! printf "%s" "$1" | grep -qi "not responding"' _ "$err"
stop_tricklers

"$SMOLVM" exec --timeout 2 life -- sleep 1000 >/dev/null 2>"$T/to2.err"; rc=$?
err=$(cat "$T/to2.err")
check "--timeout 2 sleep 1000: exit 124 and says it timed out (rc $rc, '$err')" \
        sh -c '[ "$1" -eq 124 ] && printf "%s" "$2" | grep -q "timed out after 2 s"' _ "$rc" "$err"

# The host's own safety net (15 s after the timeout) when the guest cannot report:
# its vCPUs are paused. The command did time out: that is what it must say.
t0=$(date +%s)
"$SMOLVM" exec --timeout 6 life -- sleep 4323 >/dev/null 2>"$T/net.err" &
pid=$!
if wait_secs "[ \"\$(guest_count life '^slee[p] 4323')\" = 1 ]" 30; then
        "$SMOLVM" pause life >/dev/null 2>>"$T/net.err"
        wait "$pid"; rc=$?
        secs=$(($(date +%s) - t0))
        "$SMOLVM" resume life >/dev/null 2>>"$T/net.err"
        err=$(cat "$T/net.err")
        if [ "$secs" -lt 18 ]; then
                ok "# SKIP the guest reported its timeout before the pause (${secs} s): machine too slow for this check"
        else
                check "paused guest, --timeout 6: the host's safety net exits 124 after ${secs} s and says timed out ('$err')" \
                        sh -c '[ "$1" -eq 124 ] && printf "%s" "$2" | grep -q "timed out after 6 s"' _ "$rc" "$err"
        fi
else
        not_ok "paused guest: the command runs before the pause"
        kill -9 "$pid" 2>/dev/null
fi

# ---- --json: the envelope is bounded ----

# 16 MiB of \x01 on each stream: 96 MiB of JSON text each ("\u0001" per byte),
# above the 64 MiB cap of each string. The CLI's peak memory must stay near the
# caps (2 x 64 MiB), not a multiple of the escaped output.
cap=$((64 * 1024 * 1024))
python3 - "$T/json.out" "$SMOLVM" exec --json life -- sh -c \
        'head -c 16777216 /dev/zero | tr "\0" "\1" & head -c 16777216 /dev/zero | tr "\0" "\1" >&2; wait' \
        >"$T/rss" 2>"$T/json.err" <<'PYEOF'
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PYEOF
read -r rc rss_kib <"$T/rss"
diag "--json with 2 x 16 MiB of control bytes: rc $rc, peak RSS ${rss_kib} KiB, envelope $(stat -c %s "$T/json.out") bytes"
check "--json, control bytes: exit 0" test "${rc:-x}" = 0
check "--json, control bytes: peak RSS ${rss_kib} KiB < 3 x the 64 MiB cap" test "${rss_kib:-999999999}" -lt $((3 * cap / 1024))
check "--json, control bytes: valid JSON that says both streams were truncated" \
        jq_true '.ok == true and .exit_code == 0 and .data.stdout_truncated == true and .data.stderr_truncated == true' "$T/json.out"
# Each string holds as many "\u0001" (6 bytes) as fit in 64 MiB of JSON text.
check "--json, control bytes: each string is cut at 64 MiB of JSON text" \
        jq_true --argjson n $((cap / 6)) '(.data.stdout | length) == $n and (.data.stderr | length) == $n and
                (.data.stdout | test("^\u0001+$"))' "$T/json.out"
check "--json, control bytes: the envelope is at most 2 x 64 MiB + 1 KiB" \
        test "$(stat -c %s "$T/json.out")" -le $((2 * cap + 1024))

"$SMOLVM" rm -f life >/dev/null 2>"$T/err"
assert_no_leftovers "after rm -f"
finish
