#!/usr/bin/env bash
# Egress by name (docs/cli.md, "Network"): servers on the host's loopback that
# this test starts, names pinned with --add-host. Allowed names work (HTTP with
# urllib, a raw TCP echo with half-close); denied names fail at once and are
# logged; DNS for an unlisted name is NXDOMAIN without a host resolution; what
# guest root tries around it (raw addresses, another resolver, UDP, IPv6, the
# metadata address, the host's loopback) fails; net suggest, net allow/deny
# while running; a connection flood leaves the VM's network working.
# One VM, one boot.
. "$(dirname "$0")/lib.sh"

# ---- host servers: HTTP and echo on 127.0.0.1, a second echo on every address ----
mkdir -p "$T/www"
head -c 1048576 /dev/urandom >"$T/www/blob"
sum=$(sha256sum "$T/www/blob" | cut -d' ' -f1)
cat >"$T/servers.py" <<'EOF'
import http.server, socket, socketserver, sys, threading, functools, os
www, portfile = sys.argv[1], sys.argv[2]
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        # Echo until EOF, then close: a half-close must reach us for this to end.
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            self.request.sendall(d)
class TS(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
h = TS(("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=www))
e = TS(("127.0.0.1", 0), Echo)
a = TS(("0.0.0.0", 0), Echo)
for s in (h, e, a):
    threading.Thread(target=s.serve_forever, daemon=True).start()
with open(portfile + ".tmp", "w") as f:
    f.write("%d %d %d\n" % (h.server_address[1], e.server_address[1], a.server_address[1]))
os.rename(portfile + ".tmp", portfile)
threading.Event().wait()
EOF
python3 "$T/servers.py" "$T/www" "$T/ports" 2>"$T/servers.log" &
wait_for "test -s '$T/ports'" 10
read -r hport eport aport <"$T/ports"
hostip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
diag "http $hport, echo $eport, echo on all addresses $aport, host address ${hostip:-none}"

id=$("$SMOLVM" create --name net1 --allow-host "web.test:$hport" --allow-host echo.test \
        --allow-host "host.smolvm.internal:$eport" \
        --add-host web.test:127.0.0.1 --add-host echo.test:127.0.0.1 --add-host denied.test:127.0.0.1 \
        2>"$T/err"); rc=$?
check_or_bail "create with --allow-host/--add-host (rc $rc)" "$rc"

# `net log -f`: one follower from the start (text), one that Ctrl-C ends later
# (SIGINT at its default: a background job of a script would ignore it).
"$SMOLVM" net log -f net1 >"$T/follow" 2>"$T/follow.err" &
follow_pid=$!
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
        "$SMOLVM" net log -f --json net1 >"$T/follow2" 2>"$T/follow2.err" &
follow2_pid=$!

# Run python in the guest; its stdout is key=value lines.
gpy() { "$SMOLVM" exec net1 -- python3 -c "$1" 2>>"$T/gerr"; }
val() { sed -n "s/^$1=//p" "$T/out" | head -1; }

# ---- one guest run: HTTP and a raw echo by allowed names, DNS for two unlisted ones ----
gpy "
import hashlib, socket, urllib.request
d = urllib.request.urlopen('http://web.test:$hport/blob', timeout=30).read()
print('len=%d' % len(d)); print('sha=' + hashlib.sha256(d).hexdigest())
s = socket.create_connection(('echo.test', $eport), timeout=20)
s.sendall(b'x' * 200000); s.shutdown(socket.SHUT_WR)
n = 0
while True:
    d = s.recv(65536)
    if not d: break
    n += len(d)
print('echoed=%d' % n)
for n in ('denied.test', 'other.test'):
    try:
        print(n + '=' + socket.gethostbyname(n))
    except socket.gaierror as e:
        print(n + '=err%d' % e.errno)
" >"$T/out"
check "allowed name: urllib fetches 1 MiB intact ($(val len) bytes)" test "$(val sha)" = "$sum"
check "allowed name: raw TCP echo of 200000 bytes after a half-close (got $(val echoed))" test "$(val echoed)" = 200000
noname=$(python3 -c 'import socket; print(socket.EAI_NONAME)')
check "unlisted (even if pinned) name: NXDOMAIN ($(val denied.test))" test "$(val denied.test)" = "err$noname"
check "another unlisted name: NXDOMAIN ($(val other.test))" test "$(val other.test)" = "err$noname"
"$SMOLVM" net suggest net1 >"$T/suggest" 2>"$T/err"
check "net suggest prints exactly the two denied names" \
        test "$(cat "$T/suggest")" = "$(printf -- '--allow-host denied.test\n--allow-host other.test')"
"$SMOLVM" net suggest --json net1 >"$T/suggest.json" 2>"$T/err"
check "net suggest --json: data.allow is exactly the two names" \
        jq_true '.ok and .data.allow == ["denied.test", "other.test"]' "$T/suggest.json"
check "net log -f (started before any traffic) follows: the fetch's entry appeared" \
        wait_secs "grep -q 'connect.*allowed.*web.test:$hport' '$T/follow'" 20
check "net log -f --json follows: one JSON object a line, the denied DNS questions among them" \
        wait_secs "jq -e -s 'length > 0 and any(.[]; .name == \"other.test\" and .verdict == \"denied\")' '$T/follow2' >/dev/null" 20
kill -INT "$follow2_pid"
check "net log -f ends on Ctrl-C (SIGINT)" wait_secs "! kill -0 $follow2_pid 2>/dev/null" 10

# ---- AAAA: an allowed name gets an empty NOERROR (no v6 address: connections go
# over v4), a denied one NXDOMAIN; getaddrinfo of any family answers at once ----
gpy "
import socket, struct, time
def ask(name, qtype):
    q = struct.pack('>HHHHHH', 0x1234, 0x100, 1, 0, 0, 0)
    q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('>HH', qtype, 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(10)
    u.sendto(q, ('198.18.0.53', 53))
    r = u.recv(512)
    return '%d/%d' % (r[3] & 15, struct.unpack('>H', r[6:8])[0])
print('aaaa_allowed=' + ask('web.test', 28))
print('a_allowed=' + ask('web.test', 1))
print('aaaa_denied=' + ask('other.test', 28))
t = time.monotonic()
fams = sorted(set(a[0].name for a in socket.getaddrinfo('web.test', $hport, type=socket.SOCK_STREAM)))
print('unspec=' + ','.join(fams))
try:
    socket.getaddrinfo('web.test', $hport, socket.AF_INET6, socket.SOCK_STREAM); print('v6=found')
except socket.gaierror as e:
    print('v6=err%d' % e.errno)
print('gai_ms=%d' % ((time.monotonic() - t) * 1000))
" >"$T/out"
check "AAAA for an allowed name: NOERROR, no answer ($(val aaaa_allowed))" test "$(val aaaa_allowed)" = 0/0
check "A for an allowed name: NOERROR, one answer ($(val a_allowed))" test "$(val a_allowed)" = 0/1
check "AAAA for a denied name: NXDOMAIN ($(val aaaa_denied))" test "$(val aaaa_denied)" = 3/0
check "getaddrinfo AF_UNSPEC of an allowed name: v4 only ($(val unspec))" test "$(val unspec)" = AF_INET
nodata=$(python3 -c 'import socket; print(socket.EAI_NODATA if hasattr(socket, "EAI_NODATA") else -5)')
check "getaddrinfo AF_INET6 of an allowed name: no data, not a timeout ($(val v6), $(val gai_ms) ms)" \
        test "$(val v6)" = "err$nodata" -o "$(val v6)" = "err$noname"
check "... both lookups answered without a resolver timeout ($(val gai_ms) ms < 4000)" test "$(val gai_ms)" -lt 4000
"$SMOLVM" net log --json net1 >"$T/log.json"
check "net log: denied.test only as denied DNS questions, never resolved or connected" \
        jq_true '[.data.entries[] | select(.name == "denied.test")] | length > 0 and
                 all(.kind == "dns" and .verdict == "denied" and (has("address") | not))' "$T/log.json"
check "net log: the fetch is logged with its address and bytes" \
        jq_true --argjson p "$hport" 'any(.data.entries[]; .kind == "connect" and .name == "web.test" and
                 .port == $p and .verdict == "allowed" and .address == "127.0.0.1" and .bytes_in > 1048576)' "$T/log.json"

# ---- one guest run: an allowed name on another port, guest root around the
# policy (raw addresses, UDP and another resolver, IPv6, metadata), the host's
# loopback through host.smolvm.internal ----
gpy "
import socket, time
def tcp(addr, port, fam=socket.AF_INET):
    try:
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(10)
        s.connect((addr, port)); s.sendall(b'ping')
        d = s.recv(10)
        return 'open' if d else 'closed'
    except OSError as e:
        return type(e).__name__
t = time.monotonic()
print('port=' + tcp('web.test', $eport))
print('secs=%.1f' % (time.monotonic() - t))
print('rawhost=' + tcp('${hostip:-192.0.2.1}', $aport))
print('metadata=' + tcp('169.254.169.254', 80))
print('v6=' + tcp('2001:db8::1', 80, socket.AF_INET6))
print('internal_other=' + tcp('10.0.2.2', $eport))
print('hostother=' + tcp('host.smolvm.internal', $hport))
s = socket.create_connection(('host.smolvm.internal', $eport), timeout=20)
s.sendall(b'hello'); s.shutdown(socket.SHUT_WR); print('internal=' + s.recv(10).decode())
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
    u.sendto(b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01', ('8.8.8.8', 53))
    print('udp=answer%d' % len(u.recv(512)))
except OSError as e:
    print('udp=' + type(e).__name__)
conf = open('/etc/resolv.conf').read()
open('/etc/resolv.conf', 'w').write('nameserver 8.8.8.8\n')
try:
    print('resolv=' + socket.gethostbyname('web.test'))
except OSError as e:
    print('resolv=' + type(e).__name__)
open('/etc/resolv.conf', 'w').write(conf)
" >"$T/out"
check "allowed name, port not allowed: reset ($(val port))" test "$(val port)" = ConnectionResetError
check "... at once ($(val secs) s)" python3 -c "import sys; sys.exit(not float('$(val secs)' or 99) < 5)"
for k in rawhost metadata v6 internal_other hostother; do
        check "guest root: TCP $k is reset ($(val $k))" test "$(val $k)" = ConnectionResetError
done
check "host.smolvm.internal:PORT reaches the host's loopback ($(val internal))" test "$(val internal)" = hello
check "guest root: UDP to an outside resolver gets nothing ($(val udp))" sh -c "case '$(val udp)' in answer*|'') exit 1;; esac"
check "guest root: another resolver in resolv.conf resolves nothing ($(val resolv))" sh -c "case '$(val resolv)' in gaierror|timeout|OSError) exit 0;; *) exit 1;; esac"
"$SMOLVM" net log --json net1 >"$T/log.json"
for a in "${hostip:-192.0.2.1}" 169.254.169.254 2001:db8::1 10.0.2.2; do
        check "net log: $a denied" jq_true --arg a "$a" \
                'any(.data.entries[]; .kind == "connect" and .name == $a and .verdict == "denied")' "$T/log.json"
done
check "net log: web.test on a port not allowed denied" jq_true --argjson p "$eport" \
        'any(.data.entries[]; .kind == "connect" and .name == "web.test" and .port == $p and .verdict == "denied")' "$T/log.json"

# ---- net deny / net allow while it runs ----
fetch="
import urllib.request
try:
    print('fetch=%d' % len(urllib.request.urlopen('http://web.test:$hport/blob', timeout=30).read()))
except Exception as e:
    print('fetch=' + type(e).__name__)
"
"$SMOLVM" net deny --json net1 web.test >"$T/deny.json" 2>"$T/err"; rc=$?
check "net deny exits 0 (rc $rc)" test "$rc" -eq 0
check "net deny --json: the envelope names the pattern" jq_true '.ok and .data.denied == "web.test"' "$T/deny.json"
gpy "$fetch" >"$T/out"
check "after net deny the name is gone ($(val fetch))" test "$(val fetch)" = URLError
"$SMOLVM" net allow --json net1 "web.test:$hport" >"$T/allow.json" 2>"$T/err"; rc=$?
check "net allow --json: the envelope names the pattern" jq_true --arg p "web.test:$hport" '.ok and .data.allowed == $p' "$T/allow.json"
gpy "$fetch" >"$T/out"
check "after net allow it works again ($(val fetch))" test "$(val fetch)" = 1048576
check "the record keeps the change" jq_true --arg p "web.test:$hport" \
        '.net.allow | index($p) != null' "$SMOLVM_HOME/vms/$id/vm.json"
"$SMOLVM" net allow net1 'bad pattern!' >/dev/null 2>"$T/err"; rc=$?
check "net allow refuses a bad pattern (rc $rc)" test "$rc" -ne 0

# ---- a flood: 400 connections at once (more than the host takes), 200 DNS
# questions; then, in the same guest run, a fetch still works ----
gpy "
import socket, urllib.request
socks = []
for i in range(400):
    s = socket.socket(); s.setblocking(False)
    try: s.connect_ex(('198.18.1.0', $hport))
    except OSError: pass
    socks.append(s)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(200):
    u.sendto(b'\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05flood\x04test\x00\x00\x01\x00\x01', ('198.18.0.53', 53))
print('flooded=1')
for s in socks: s.close()
try:
    print('fetch=%d' % len(urllib.request.urlopen('http://web.test:$hport/blob', timeout=60).read()))
except Exception as e:
    print('fetch=' + type(e).__name__)
" >"$T/out"
check "the guest floods connections and DNS" test "$(val flooded)" = 1
check "after the flood the network still works ($(val fetch))" test "$(val fetch)" = 1048576
sup=$(pgrep -f -- "smolvm-supervisor --vm-dir $SMOLVM_HOME/vms/$id" | head -1)
rss=$(awk '/VmHWM/ {print $2}' /proc/"$sup"/status 2>/dev/null)
check "the supervisor's peak RSS stays bounded (${rss:-?} kB < 65536)" test "${rss:-999999}" -lt 65536

# ---- fork: the child keeps the parent's policy, and its guest's redirection and
# DNS work with the child's own supervisor ----
kid=$("$SMOLVM" fork net1 2>"$T/err"); rc=$?
check "fork of a VM with a network policy (rc $rc $(head -c 200 "$T/err"))" test "$rc" -eq 0
if [ "$rc" -eq 0 ]; then
        "$SMOLVM" exec "$kid" -- python3 -c "
import hashlib, urllib.request
try:
    print('sha=' + hashlib.sha256(urllib.request.urlopen('http://web.test:$hport/blob', timeout=60).read()).hexdigest())
except Exception as e:
    print('sha=' + repr(e))
import socket
try:
    print('other=' + socket.gethostbyname('other.test'))
except socket.gaierror:
    print('other=nxdomain')
" >"$T/out" 2>>"$T/gerr"
        check "the child fetches from the allowed, pinned name ($(val sha | head -c 80))" test "$(val sha)" = "$sum"
        check "the child still answers NXDOMAIN for a name not allowed ($(val other))" test "$(val other)" = nxdomain
        check "the child's net.json is the parent's policy" \
                cmp -s "$SMOLVM_HOME/vms/$id/net.json" "$SMOLVM_HOME/vms/$kid/net.json"
        check "the child's net log has its fetch" jq_true --argjson p "$hport" \
                'any(.data.entries[]; .kind == "connect" and .name == "web.test" and .port == $p and .verdict == "allowed")' \
                <("$SMOLVM" net log --json "$kid")
        gpy "$fetch" >"$T/out"
        check "the parent still fetches after the fork ($(val fetch))" test "$(val fetch)" = 1048576
        "$SMOLVM" rm -f "$kid" >/dev/null 2>&1
fi

# A snapshot of a VM without a network cannot give a restored VM one: its guest
# never set up egress (a record as `smolvm snapshot` writes it, without "net").
mkdir -p "$SMOLVM_HOME/snapshots/0123456789ab"
imgdir=$(readlink -f "$SMOLVM_HOME/images/default")
jq -n --arg d "$imgdir" '{version: 1, id: "0123456789ab", vm_id: "ba9876543210", created: 1, image: "default",
        image_dir: $d, accel: "auto", vcpus: 1, mem_mib: 512, disk_mib: 0, internal: false, pause_ms: 0,
        ram_bytes: 0, layers: []}' >"$SMOLVM_HOME/snapshots/0123456789ab/snapshot.json"
"$SMOLVM" create --from-snapshot 0123456789ab --allow-host web.test >/dev/null 2>"$T/err"; rc=$?
check "create --from-snapshot of a VM without a network, with --allow-host: refused, saying why (rc $rc: $(head -c 160 "$T/err"))" \
        sh -c "[ $rc -ne 0 ] && grep -q 'without a network' '$T/err'"
rm -rf "$SMOLVM_HOME/snapshots/0123456789ab"

"$SMOLVM" rm -f net1 >/dev/null 2>&1
check "net log -f ends once the VM is gone" wait_secs "! kill -0 $follow_pid 2>/dev/null" 15
wait "$follow_pid"; rc=$?
check "... with exit code 0 (rc $rc)" test "$rc" -eq 0
kill %1 2>/dev/null
grep -q . "$T/gerr" && sed 's/^/# guest stderr: /' "$T/gerr" | head -20
assert_no_leftovers "rm"
finish
