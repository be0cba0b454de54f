#!/usr/bin/env bash
# Egress by name with real clients we did not write (docs/cli.md, "Network"):
# git clone over HTTP from a bare repository the host serves; HTTPS with a
# self-signed CA made here by openssl and given to the guest's urllib; the
# package flow, apt-get update && apt-get install -y with only the host's Debian
# mirror allowed (SKIP with the reason when the host cannot reach it). Local
# names are pinned with --add-host to 127.0.0.1. One VM, one boot.
. "$(dirname "$0")/lib.sh"

# skip DESCRIPTION REASON: a TAP skip (counted as skipped by meson, never as a pass).
skip() { n_test=$((n_test + 1)); echo "ok $n_test - $1 # SKIP $2"; }

# ---- a bare git repository, served by python3 -m http.server (dumb HTTP) ----
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$T/src" "$T/www"
git -C "$T/src" init -q
echo "$token" >"$T/src/token"
git -C "$T/src" add token
git -C "$T/src" -c user.name=t -c user.email=t@t.invalid commit -qm token
git clone -q --bare "$T/src" "$T/www/repo.git"
git -C "$T/www/repo.git" update-server-info

# ---- a CA and a server certificate for secure.test ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 \
        -subj /CN=smolvm-test-ca -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>"$T/openssl.err"
openssl req -newkey rsa:2048 -nodes -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=secure.test \
        2>>"$T/openssl.err"
printf 'subjectAltName=DNS:secure.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$T/srv.ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
        -out "$T/srv.pem" -days 2 -extfile "$T/srv.ext" 2>>"$T/openssl.err"
check "openssl made a CA and a server certificate" test -s "$T/srv.pem"
echo "secret $token" >"$T/www/hello.txt"

python3 -m http.server --bind 127.0.0.1 --directory "$T/www" 0 >"$T/http.log" 2>&1 &
cat >"$T/https.py" <<'EOF'
import functools, http.server, os, ssl, sys
www, cert, key, portfile = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
        functools.partial(http.server.SimpleHTTPRequestHandler, directory=www))
s.socket = ctx.wrap_socket(s.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % s.server_address[1])
os.rename(portfile + ".tmp", portfile)
s.serve_forever()
EOF
python3 "$T/https.py" "$T/www" "$T/srv.pem" "$T/srv.key" "$T/sport" 2>"$T/https.log" &
wait_for "grep -q 'Serving HTTP' '$T/http.log'" 10
wait_for "test -s '$T/sport'" 10
hport=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$T/http.log" | head -1)
read -r sport <"$T/sport"
diag "http $hport, https $sport"

# ---- the host's Debian mirror: the base URI of the main Packages index of the
# guest's release (bookworm, the image's), from apt-get indextargets ----
codename=bookworm
mirror_uri=$(apt-get indextargets --format '$(URI)' 2>/dev/null |
        grep -m1 "/dists/$codename/main/binary-[a-z0-9]*/Packages$")
mirror_base=${mirror_uri%%/dists/*}
mirror_host=$(printf '%s' "$mirror_base" | sed -n 's|^http://\([^/:]*\).*|\1|p')
apt_skip=
if [ -z "$mirror_uri" ]; then
        apt_skip="the host's apt sources have no $codename main index"
elif [ -z "$mirror_host" ]; then
        apt_skip="the host's $codename mirror is not plain http ($mirror_base)"
elif ! python3 -c "
import sys, urllib.request
o = urllib.request.build_opener(urllib.request.ProxyHandler({}))
o.open(sys.argv[1], timeout=15).read(1)" "$mirror_base/dists/$codename/Release" 2>"$T/reach.err"; then
        apt_skip="the host cannot reach $mirror_base directly: $(tail -1 "$T/reach.err")"
fi
mirror_flag=()
[ -z "$apt_skip" ] && mirror_flag=(--allow-host "$mirror_host:80")
diag "mirror: ${mirror_base:-none} ${apt_skip:+(skip: $apt_skip)}"

id=$("$SMOLVM" create --name apps --allow-host "git.test:$hport" --allow-host "secure.test:$sport" \
        "${mirror_flag[@]}" --add-host git.test:127.0.0.1 --add-host secure.test:127.0.0.1 \
        2>"$T/err"); rc=$?
check_or_bail "create with --allow-host/--add-host (rc $rc)" "$rc"

# ---- git clone over HTTP ----
"$SMOLVM" exec apps -- sh -c "git clone -q http://git.test:$hport/repo.git /tmp/clone && cat /tmp/clone/token" \
        >"$T/git.out" 2>"$T/git.err"; rc=$?
check "git clone over HTTP by an allowed name (rc $rc: $(head -c 200 "$T/git.err"))" \
        test "$(cat "$T/git.out")" = "$token"

# ---- HTTPS: the guest's urllib with the CA; without it the certificate is refused ----
"$SMOLVM" exec apps -- python3 -c "
import ssl, urllib.request
ca = '''$(cat "$T/ca.pem")'''
url = 'https://secure.test:$sport/hello.txt'
ctx = ssl.create_default_context(cadata=ca)
try:
    print('ca=' + urllib.request.urlopen(url, context=ctx, timeout=30).read().decode().strip())
except Exception as e:
    print('ca=' + type(e).__name__ + ' ' + str(e))
try:
    urllib.request.urlopen(url, timeout=30).read(); print('noca=fetched')
except Exception as e:
    print('noca=' + ('verify' if 'CERTIFICATE_VERIFY_FAILED' in str(e) else type(e).__name__ + ' ' + str(e)))
" >"$T/https.out" 2>"$T/https.err"
val() { sed -n "s/^$1=//p" "$T/https.out" | head -1; }
check "HTTPS with the test CA fetches the file ($(val ca))" test "$(val ca)" = "secret $token"
check "HTTPS without the CA fails verification ($(val noca))" test "$(val noca)" = verify

"$SMOLVM" net log --json apps >"$T/log.json"
check "net log: git.test connected, allowed" jq_true --argjson p "$hport" \
        'any(.data.entries[]; .kind == "connect" and .name == "git.test" and .port == $p and .verdict == "allowed" and .bytes_in > 0)' "$T/log.json"
check "net log: secure.test connected, allowed" jq_true --argjson p "$sport" \
        'any(.data.entries[]; .kind == "connect" and .name == "secure.test" and .port == $p and .verdict == "allowed" and .bytes_in > 0)' "$T/log.json"

# ---- the package flow ----
if [ -n "$apt_skip" ]; then
        skip "apt-get update && apt-get install -y hello with only the mirror allowed" "$apt_skip"
else
        "$SMOLVM" exec apps -- sh -c "
echo 'deb $mirror_base $codename main' >/etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get -q -o Acquire::Languages=none update &&
DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends hello && hello" \
                >"$T/apt.out" 2>"$T/apt.err"; rc=$?
        check "apt-get update && apt-get install -y hello via $mirror_host (rc $rc: $(tail -2 "$T/apt.err" | head -c 300))" \
                test "$(tail -1 "$T/apt.out")" = "Hello, world!"
        "$SMOLVM" net log --json apps >"$T/log.json"
        check "net log: $mirror_host:80 connected, allowed, bytes in" jq_true --arg n "$mirror_host" \
                'any(.data.entries[]; .kind == "connect" and .name == $n and .port == 80 and .verdict == "allowed" and .bytes_in > 1000000)' "$T/log.json"
fi

"$SMOLVM" rm -f apps >/dev/null 2>&1
kill %1 %2 2>/dev/null
assert_no_leftovers "rm"
finish
