#!/usr/bin/env bash
# smolvm mcp with real VMs, witnessed by clients we did not write: the official
# MCP TypeScript SDK's Client over stdio (mcp-client/client_test.cjs: tools,
# run, sandboxes, files, bounded output, timeouts, cancellation, errors) and a
# raw client in Python writing bytes to the server's stdin (mcp_raw.py:
# malformed JSON-RPC, framing, both protocol revisions, the server's limits,
# SIGTERM, --keep-sandboxes), and the SDK client again for snapshots, fork,
# workspace archives, ports and the server's network flags
# (mcp-client/client_state.cjs). Every sandbox and snapshot of a server is gone
# after its client leaves.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

# relay FILE PREFIX: "ok - ..." / "not ok - ..." lines of a witness as TAP.
relay() {
        local line
        while IFS= read -r line; do
                case $line in
                "ok - "*) ok "$2: ${line#ok - }" ;;
                "not ok - "*) not_ok "$2: ${line#not ok - }" ;;
                "# "*) echo "$line" ;;
                esac
        done <"$1"
}

# The SDK, pinned by mcp-client/package-lock.json, installed with npm ci once
# per build directory (.installed: the lock it was installed from). Without
# the registry and without a previous install this fails: CI has the registry.
sdk=$SMOLVM_BUILD_DIR/mcp-client
install_sdk() {
        cmp -s "$here/mcp-client/package-lock.json" "$sdk/.installed" && return 0
        rm -rf "$sdk" && mkdir -p "$sdk" &&
                cp "$here/mcp-client/package.json" "$here/mcp-client/package-lock.json" "$sdk/" &&
                (cd "$sdk" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) >"$T/npm.log" 2>&1 &&
                cp "$here/mcp-client/package-lock.json" "$sdk/.installed"
}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        not_ok "node and npm are on PATH (scripts/setup.sh installs them: nodejs in scripts/deps.txt, npm)"
        finish
        exit 1
fi
if install_sdk; then
        ok "the MCP SDK ($(node -p "require('$sdk/node_modules/@modelcontextprotocol/sdk/package.json').version")) is installed (node $(node --version))"
else
        not_ok "npm ci of the MCP SDK (tests/integration/mcp-client)"
        sed 's/^/# /' "$T/npm.log" | tail -20
        finish
        exit 1
fi

# 1. The SDK client; its last sandbox is left for the disconnect to remove.
timeout 600 node "$here/mcp-client/client_test.cjs" "$sdk" "$SMOLVM" >"$T/sdk.out" 2>"$T/sdk.err"
rc=$?
relay "$T/sdk.out" sdk
check "the SDK client finished (exit $rc)" test "$rc" -eq 0
[ "$rc" -ne 0 ] && tail -20 "$T/sdk.err" | sed 's/^/# /'
check "the server said it shut down when the client closed stdin" grep -q "the client closed stdin" "$T/sdk.err"
assert_no_leftovers "after the SDK client disconnected"

# 2. Raw bytes, the limits, SIGTERM, --keep-sandboxes.
mkdir -p "$T/raw"
timeout 600 python3 "$here/mcp_raw.py" "$SMOLVM" "$T/raw" >"$T/raw.out"
rc=$?
relay "$T/raw.out" raw
check "the raw client finished (exit $rc)" test "$rc" -eq 0
[ "$rc" -ne 0 ] && tail -20 "$T/raw/mcp-stderr.log" | sed 's/^/# /'
kept=$(sed -n 's/^# kept //p' "$T/raw.out")
check "the kept sandbox is removed with smolvm rm -f" bash -c '"$1" rm -f "$2" >/dev/null' _ "$SMOLVM" "$kept"
check "no sandbox deletion failed in the server's log" \
        bash -c "! grep -E 'deleting sandbox|out of memory' '$T/raw/mcp-stderr.log' '$T/sdk.err'"
assert_no_leftovers "after every server"

# 3. Snapshots, fork, workspace, ports, network: a host web server on loopback,
# reachable from the model's sandboxes only as the pinned, allowed web.test; a
# snapshot another process made, which the model may neither use nor delete; a
# workspace directory holding a symlink out of it.
mkdir -p "$T/www" "$T/ws"
echo "hello from the host" >"$T/www/hello.txt"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$T/www" >"$T/http.log" 2>&1 &
hpid=$!
wait_for "grep -q 'Serving HTTP' '$T/http.log'" 10
wport=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$T/http.log" | head -1)
echo secret >"$T/outside.txt"
ln -s "$T/outside.txt" "$T/ws/link.tar.zst"
fid=$("$SMOLVM" create --name foreign 2>"$T/err") && "$SMOLVM" snapshot create --name foreign-snap "$fid" >/dev/null 2>>"$T/err" &&
        "$SMOLVM" rm -f "$fid" >/dev/null 2>>"$T/err"
check_or_bail "another process made snapshot foreign-snap (port $wport)" "$?"
timeout 900 node "$here/mcp-client/client_state.cjs" "$sdk" "$SMOLVM" "$wport" foreign-snap \
        --max-sandboxes 3 --allow-host "web.test:$wport" --add-host web.test:127.0.0.1 \
        --add-host other.test:127.0.0.1 --workspace-dir "$T/ws" --allow-expose >"$T/state.out" 2>"$T/state.err"
rc=$?
relay "$T/state.out" state
check "the SDK client (state tools) finished (exit $rc)" test "$rc" -eq 0
[ "$rc" -ne 0 ] && tail -20 "$T/state.err" | sed 's/^/# /'
kill "$hpid" && wait "$hpid" 2>/dev/null
assert_no_leftovers "after the state client disconnected"
snaps=$("$SMOLVM" snapshot ls --json | jq -r '[.data.snapshots[] | .name] | sort | join(" ")')
check "only the other process's snapshot is left (the server's own were removed at exit): '$snaps'" \
        test "$snaps" = foreign-snap
check "the archive is in the workspace directory, nothing else was written there" \
        bash -c 'cd "$1" && [ "$(ls -A | sort | tr "\n" " ")" = "link.tar.zst ws1.tar.zst " ]' _ "$T/ws"
check "no archive was written outside it" bash -c '! find "$1" -name "evil*" | grep -q . && [ "$(cat "$1/outside.txt")" = secret ]' _ "$T"
check "no snapshot or archive error in the server's log" bash -c "! grep -E 'deleting snapshot|deleting sandbox' '$T/state.err'"
"$SMOLVM" snapshot rm foreign-snap >/dev/null
finish
