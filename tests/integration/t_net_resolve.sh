#!/usr/bin/env bash
# The supervisor resolves names for egress off its event loop (docs/internals.md,
# "Egress"): a DNS server this test runs answers the host's lookups, holding the
# ones for slow.test until told and never answering never.test. Meanwhile an exec
# and a fetch by another (pinned) name must go through; an answer that comes late
# (late.test, 2 s) still decides its connection; a lookup that never ends is given up
# after the per-lookup timeout (the guest's connection is reset, the log says so);
# a stop with a lookup in flight is prompt and leaves nothing.
# The host's resolver is pointed at the test's server with a private mount
# namespace (a resolv.conf bound over /etc/resolv.conf): root only.
if [ -z "${SMOLVM_T_NS:-}" ]; then
        if [ "$(id -u)" -ne 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
                echo "1..0 # SKIP needs root for a private mount namespace (unshare -m)"
                exit 0
        fi
        SMOLVM_T_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

# ---- the DNS server, on a loopback address of its own (port 53: resolv.conf has no port) ----
dns=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
cat >"$T/dns.py" <<'PY'
import os, socket, struct, sys, threading, time
addr, logf, release = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
lock = threading.Lock()
def log(line):
    with lock, open(logf, "a") as f:
        f.write(line + "\n")
def answer(q, peer, name, qtype, hold):
    if hold == "never":
        return
    while hold == "slow" and not os.path.exists(release):
        time.sleep(0.05)
    if hold == "late":
        time.sleep(2)
    qend = 12
    while q[qend]:
        qend += q[qend] + 1
    qend += 5
    known = hold in ("slow", "late")
    an = b""
    if known and qtype == 1:
        an = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    flags = 0x8180 if known else 0x8183
    r = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], flags, 1, 1 if an else 0, 0, 0) + q[12:qend] + an
    s.sendto(r, peer)
    log("answered %s %d" % (name, qtype))
while True:
    q, peer = s.recvfrom(512)
    try:
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += q[i] + 1
        name, qtype = ".".join(labels).lower(), struct.unpack(">H", q[i + 1:i + 3])[0]
    except Exception:
        continue
    log("query %s %d" % (name, qtype))
    hold = name[:-5] if name in ("slow.test", "never.test", "late.test") else ""
    threading.Thread(target=answer, args=(q, peer, name, qtype, hold), daemon=True).start()
PY
python3 "$T/dns.py" "$dns" "$T/dns.log" "$T/release" 2>"$T/dns.err" &
dns_pid=$!
printf 'nameserver %s\noptions timeout:30 attempts:5\n' "$dns" >"$T/resolv.conf"
mount --bind "$T/resolv.conf" /etc/resolv.conf
check "the host's resolver asks the test's server" wait_secs "getent hosts nx.test >/dev/null; grep -qs 'query nx.test' '$T/dns.log'" 10

# ---- an HTTP server for the pinned name ----
mkdir -p "$T/www"
head -c 1048576 /dev/urandom >"$T/www/blob"
python3 -m http.server -b 127.0.0.1 -d "$T/www" 0 >"$T/http.log" 2>&1 &
http_pid=$!
wait_for "grep -q 'Serving HTTP' '$T/http.log'" 10
hport=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$T/http.log" | head -1)

"$SMOLVM" create --name res1 --allow-host slow.test --allow-host never.test --allow-host late.test --allow-host "fast.test:$hport" \
        --add-host fast.test:127.0.0.1 >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create (rc $rc)" "$rc"
netlog() { cat "$SMOLVM_HOME"/vms/*/net.log 2>/dev/null; }
# Connect to NAME:80 in the background in the guest; the outcome goes to /tmp/NAME.out.
bg_connect() {
        "$SMOLVM" exec -d res1 -- python3 -c "
import socket
try:
    socket.create_connection(('$1', 80), timeout=120).recv(1); r = 'connected'
except Exception as e:
    r = type(e).__name__
open('/tmp/$1.out', 'w').write(r)" >/dev/null
}

# ---- a held lookup stalls nothing else ----
bg_connect slow.test
check "the supervisor's lookup of slow.test reached the server (held there)" \
        wait_secs "grep -q 'query slow.test' '$T/dns.log'" 60
t0=$(date +%s)
out=$(timeout 60 "$SMOLVM" exec res1 -- python3 -c "
import urllib.request
print(len(urllib.request.urlopen('http://fast.test:$hport/blob', timeout=50).read()))" 2>&1)
t1=$(date +%s)
check "while slow.test's lookup is held: an exec fetches 1 MiB by another name ($out, $((t1 - t0)) s)" \
        test "$out" = 1048576
check "... and the held lookup was not answered meanwhile" bash -c "! grep -q 'answered slow.test' '$T/dns.log'"
touch "$T/release"
# (Answered or given up first, whichever came first on a loaded host: both deny.)
check "once released, the held connection is decided: reset" \
        wait_secs "test \"\$(\"$SMOLVM\" exec res1 -- cat /tmp/slow.test.out 2>/dev/null)\" = ConnectionResetError" 60
check "... and logged denied" \
        bash -c "$(declare -f netlog); netlog | jq -e -s 'any(.[]; .name == \"slow.test\" and .kind == \"connect\" and .verdict == \"denied\")' >/dev/null"

# ---- an answer that comes late (2 s) decides the connection ----
bg_connect late.test
check "a late answer (127.0.0.1 after 2 s): the connection is reset" \
        wait_secs "test \"\$(\"$SMOLVM\" exec res1 -- cat /tmp/late.test.out 2>/dev/null)\" = ConnectionResetError" 60
check "... logged denied by the answer: resolves only to loopback" \
        bash -c "$(declare -f netlog); netlog | jq -e -s 'any(.[]; .name == \"late.test\" and .kind == \"connect\" and .verdict == \"denied\" and (.reason | test(\"loopback\")))' >/dev/null"

# ---- a lookup that never ends is given up ----
bg_connect never.test
check "a lookup never answered: the guest's connection is reset" \
        wait_secs "test \"\$(\"$SMOLVM\" exec res1 -- cat /tmp/never.test.out 2>/dev/null)\" = ConnectionResetError" 90
check "... logged: host resolution timed out" \
        bash -c "$(declare -f netlog); netlog | jq -e -s 'any(.[]; .name == \"never.test\" and (.reason // \"\" | test(\"timed out\")))' >/dev/null"
check "an exec still works" test "$(timeout 60 "$SMOLVM" exec res1 -- echo ok 2>&1)" = ok

# ---- stop with a lookup in flight ----
bg_connect never.test
wait_secs "test \$(grep -c 'query never.test' '$T/dns.log') -gt 2" 60
t0=$(date +%s)
timeout 60 "$SMOLVM" stop res1 >/dev/null 2>"$T/err"; rc=$?
t1=$(date +%s)
check "stop with a lookup in flight (rc $rc, $((t1 - t0)) s)" test "$rc" -eq 0
check "... in under 15 s" test $((t1 - t0)) -lt 15
"$SMOLVM" rm -f res1 >/dev/null 2>&1
kill "$dns_pid" "$http_pid" 2>/dev/null
wait "$dns_pid" "$http_pid" 2>/dev/null
assert_no_leftovers "after rm"
finish
