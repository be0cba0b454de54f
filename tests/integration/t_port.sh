#!/usr/bin/env bash
# Port forwarding end to end (smolvm port, --publish): python3 -m http.server in the
# guest, fetched from the host with curl and python's urllib: 100 MiB intact, 50
# concurrent connections; half-close both ways (a perl server in the guest that
# answers after EOF, a python client on the host that shuts its write side); a
# guest port nobody listens on closes the host connection at once; a taken host
# port is an error naming it; port ls, close, and the forward back on the same
# host port after stop/start. One VM, two boots; then --publish on an ephemeral run.
. "$(dirname "$0")/lib.sh"

# Wait until `curl URL` succeeds (python takes ~20 s of CPU to start under TCG).
wait_http() { wait_for "curl -sf -m 10 -o /dev/null '$1'" "$2"; }

# ---- create with --publish: the forward exists once create returns ----
id=$("$SMOLVM" create --name pf --publish 8000 2>"$T/err"); rc=$?
check_or_bail "create --publish 8000 exits 0" "$rc"
"$SMOLVM" port ls --json pf >"$T/ls.json" 2>"$T/err"
check "port ls --json: guest 8000 on 127.0.0.1, a host port chosen" jq_true '.ok and (.data.ports | length) == 1 and
        .data.ports[0].guest_port == 8000 and .data.ports[0].bind == "127.0.0.1" and .data.ports[0].host_port > 0' "$T/ls.json"
hp=$(jq '.data.ports[0].host_port' "$T/ls.json")
check "port ls (text) shows it, listening, no connection" \
        sh -c "'$SMOLVM' port ls pf | grep -Eq '^8000 +127\\.0\\.0\\.1:$hp +yes +0\$'"
check "port ls --json: active, 0 connections" jq_true '.data.ports[0].active == true and .data.ports[0].connections == 0' "$T/ls.json"

# ---- nothing listens in the guest yet: the host client is closed at once ----
t0=$(date +%s%N)
curl -s -m 60 "http://127.0.0.1:$hp/" >/dev/null 2>"$T/err"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "no guest listener: curl fails (rc $rc, not 28 = timeout) within 15 s (${ms} ms)" \
        sh -c "[ $rc -ne 0 ] && [ $rc -ne 28 ] && [ $ms -lt 15000 ]"

# ---- the guest servers: http.server on 8000 (serving /srv), a half-close echo on 9000 ----
# A perl server that reads to EOF, then answers how much it got (half-close both ways).
cat >"$T/echo.pl" <<'PL'
use IO::Socket::INET;
my $port = shift;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $port, Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
        my ($n, $b) = (0, "");
        while (my $r = sysread($c, $b, 65536)) { $n += $r }
        print $c "got $n bytes after EOF\n";
        close $c;
}
PL
"$SMOLVM" cp "$T/echo.pl" pf:/root/echo.pl 2>"$T/err"
"$SMOLVM" exec pf -- sh -c 'mkdir -p /srv && head -c 104857600 /dev/urandom >/srv/big && echo small-file >/srv/small' 2>>"$T/err"
"$SMOLVM" exec pf -- sh -c 'cd /srv; setsid python3 -m http.server 8000 >/tmp/http.log 2>&1 </dev/null &
        setsid perl /root/echo.pl 9000 >/tmp/echo.log 2>&1 </dev/null &
        sleep 1' 2>>"$T/err"; rc=$?
check_or_bail "guest servers started" "$rc"
guest_sha=$("$SMOLVM" exec pf -- sha256sum /srv/big | cut -d' ' -f1)
check "wait for the guest's http.server through the forward" wait_http "http://127.0.0.1:$hp/small" 120

# ---- 100 MiB intact ----
curl -sf -m 300 -o "$T/big" "http://127.0.0.1:$hp/big"; rc=$?
host_sha=$(sha256sum "$T/big" | cut -d' ' -f1)
check "100 MiB through the forward: curl rc $rc, sha256 matches the guest's" \
        sh -c "[ $rc -eq 0 ] && [ \$(stat -c %s '$T/big') -eq 104857600 ] && [ '$host_sha' = '$guest_sha' ]"
rm -f "$T/big"

# ---- 50 concurrent connections (python urllib, one thread each) ----
python3 - "$hp" >"$T/conc" 2>&1 <<'PY'
import sys, threading, urllib.request
url = "http://127.0.0.1:%s/small" % sys.argv[1]
barrier = threading.Barrier(50)
res = []
def one():
    barrier.wait()
    try:
        res.append(urllib.request.urlopen(url, timeout=120).read())
    except Exception as e:
        res.append(repr(e).encode())
ts = [threading.Thread(target=one) for _ in range(50)]
[t.start() for t in ts]
[t.join() for t in ts]
good = sum(1 for r in res if r == b"small-file\n")
print("good %d of %d" % (good, len(res)))
for r in res:
    if r != b"small-file\n":
        print("bad:", r[:200])
PY
check "50 concurrent urllib fetches all get the file ($(head -1 "$T/conc"))" grep -qx 'good 50 of 50' "$T/conc"
grep '^bad' "$T/conc" | head -3 | sed 's/^/# /'

# ---- port ls counts the connections being relayed: two held open, then closed ----
exec 7<>"/dev/tcp/127.0.0.1/$hp" 8<>"/dev/tcp/127.0.0.1/$hp"
check "port ls --json: two connections held open are counted" \
        wait_secs "jq -e '.data.ports[0] | .active and .connections == 2' <(\"$SMOLVM\" port ls --json pf) >/dev/null" 30
check "port ls (text): ACTIVE yes, CONNS 2" sh -c "'$SMOLVM' port ls pf | grep -Eq '^8000 +127\\.0\\.0\\.1:$hp +yes +2\$'"
exec 7>&- 8>&-
check "... and no longer once closed" \
        wait_secs "jq -e '.data.ports[0].connections == 0' <(\"$SMOLVM\" port ls --json pf) >/dev/null" 30

# ---- port expose at run time, half-close both ways ----
ep=$("$SMOLVM" port expose pf 9000 2>"$T/err"); rc=$?
check "port expose pf 9000 prints a host port ($ep)" sh -c "[ $rc -eq 0 ] && [ '$ep' -gt 0 ] 2>/dev/null"
wait_for "bash -c 'exec 3<>/dev/tcp/127.0.0.1/$ep' 2>/dev/null" 30
# Send 1 MiB, shut the write side (the guest server sees EOF), read its answer to EOF.
half_close() {
        python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=120)
s.sendall(b"x" * (1 << 20))
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
print(out.decode(errors="replace").strip())
PY
}
half_close "$ep" >"$T/half" 2>&1
check "half-close: the guest saw EOF after 1 MiB and its answer came back ($(head -c 80 "$T/half"))" \
        grep -qx 'got 1048576 bytes after EOF' "$T/half"

# ---- errors: a taken host port, a forwarded guest port again ----
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(120)' >"$T/busy" &
busy_pid=$!
wait_for "[ -s '$T/busy' ]" 10
busy=$(cat "$T/busy")
"$SMOLVM" port expose --host-port "$busy" --json pf 9001 >"$T/json" 2>"$T/err"; rc=$?
check "expose on a taken host port: exit 125, code port_in_use, message names 127.0.0.1:$busy" \
        sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"port_in_use\"' '$T/json' >/dev/null && grep -q '127.0.0.1:$busy' '$T/err'"
kill "$busy_pid" 2>/dev/null; wait "$busy_pid" 2>/dev/null
"$SMOLVM" port expose pf 8000 >/dev/null 2>"$T/err"; rc=$?
check "exposing 8000 again: refused, says it is exposed" sh -c "[ $rc -ne 0 ] && grep -q 'already exposed' '$T/err'"
check "port ls lists 8000 and 9000 only" jq_true '[.data.ports[].guest_port] == [8000, 9000]' <("$SMOLVM" port ls --json pf)

# ---- close ----
"$SMOLVM" port close pf 9000 2>"$T/err"; rc=$?
check "port close pf 9000 exits 0" test "$rc" -eq 0
check "the host port no longer accepts connections" sh -c "! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$ep' 2>/dev/null"
check "port ls no longer lists 9000" jq_true '[.data.ports[].guest_port] == [8000]' <("$SMOLVM" port ls --json pf)
"$SMOLVM" port close pf 9000 2>"$T/err"; rc=$?
check "closing it again: not found (125)" sh -c "[ $rc -eq 125 ] && grep -q 'not exposed' '$T/err'"

# ---- stop/start: the forward comes back on the same host port ----
"$SMOLVM" stop pf >/dev/null 2>"$T/err"
check "after stop, nothing listens on $hp" sh -c "! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$hp' 2>/dev/null"
check "after stop, port ls keeps the forward, not active" jq_true --argjson hp "$hp" \
        '.data.ports == [{"guest_port": 8000, "host_port": $hp, "bind": "127.0.0.1", "active": false, "connections": 0}]' \
        <("$SMOLVM" port ls --json pf)
"$SMOLVM" start pf >/dev/null 2>"$T/err"; rc=$?
check_or_bail "start again" "$rc"
check "after start, port ls has the same host port, active" jq_true --argjson hp "$hp" '.data.ports == [{"guest_port": 8000, "host_port": $hp, "bind": "127.0.0.1", "active": true, "connections": 0}]' <("$SMOLVM" port ls --json pf)
check "after start, the supervisor listens on $hp again" bash -c "exec 3<>/dev/tcp/127.0.0.1/$hp"
"$SMOLVM" exec pf -- sh -c 'setsid perl /root/echo.pl 8000 >/tmp/echo.log 2>&1 </dev/null & sleep 1'
wait_for "half_close $hp >'$T/half2' 2>&1; grep -q 'after EOF' '$T/half2'" 60
check "and reaches a guest server on 8000 again ($(head -c 80 "$T/half2"))" grep -qx 'got 1048576 bytes after EOF' "$T/half2"

grep -i 'relay\|error' "$SMOLVM_HOME/vms/$id/supervisor.log" | head -5 | sed 's/^/# supervisor.log: /'
"$SMOLVM" rm -f pf >/dev/null 2>&1
assert_no_leftovers "after rm"

# ---- --publish on an ephemeral run: the guest's one-shot server is reached on the
# host port asked for; once run returns the port is free and nothing is left ----
rp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SMOLVM" run --publish "$rp:7000" -- python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 7000)); s.listen(1)
c, _ = s.accept(); c.sendall(b'hello from run\\n'); c.close()" >"$T/run.out" 2>"$T/run.err" &
run_pid=$!
# The supervisor accepts at once and closes while nothing listens in the guest yet.
wait_secs "[ \"\$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/$rp; head -c 15 <&3' 2>/dev/null)\" = 'hello from run' ]" 120
check "run --publish $rp:7000: the host reaches the guest's server on $rp" test $? -eq 0
wait "$run_pid"; rc=$?
check "run --publish exits 0 once its command did (rc $rc)" test "$rc" -eq 0
# (SO_REUSEADDR: the relayed connection's TIME_WAIT may hold the port, no listener does.)
check "after the run, nothing listens on $rp and it can be listened on again" \
        python3 -c "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $rp)); s.listen()"
assert_no_leftovers "after run --publish"
finish
