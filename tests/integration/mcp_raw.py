#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""t_mcp.sh's raw witness: writes bytes to `smolvm mcp`'s stdin as a broken or
hostile client would (malformed JSON-RPC, split and oversized lines, requests
out of order) and checks every answer against the JSON-RPC 2.0 and MCP rules,
then the server's own limits (--max-sandboxes, --max-output, --mount, --env),
cancellation, SIGTERM, --keep-sandboxes and --all-snapshots with real VMs. Prints "ok - ..." or
"not ok - ..." per check (t_mcp.sh makes TAP of them).

Usage: mcp_raw.py SMOLVM WORKDIR"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

SMOLVM, WORK = sys.argv[1], sys.argv[2]
HOME = os.environ["SMOLVM_HOME"]
failed = 0


def check(desc, cond, detail=None):
    global failed
    if cond:
        print(f"ok - {desc}", flush=True)
    else:
        failed += 1
        extra = f": {json.dumps(detail)[:300]}" if detail is not None else ""
        print(f"not ok - {desc}{extra}", flush=True)


def vm_dirs():
    try:
        return sorted(os.listdir(os.path.join(HOME, "vms")))
    except FileNotFoundError:
        return []


class Server:
    """One `smolvm mcp` with a reader thread: every stdout line must be a
    JSON-RPC 2.0 object (stdout carries nothing else)."""

    def __init__(self, *args):
        self.p = subprocess.Popen([SMOLVM, "mcp", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(WORK, "mcp-stderr.log"), "ab"))
        self.q = queue.Queue()
        self.bad_lines = []
        self.seen_ids = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try:
                m = json.loads(line)
                if not isinstance(m, dict) or m.get("jsonrpc") != "2.0":
                    raise ValueError("not a JSON-RPC 2.0 object")
            except ValueError:
                self.bad_lines.append(line[:200].decode("utf-8", "replace"))
                continue
            self.seen_ids.append(m.get("id"))
            self.q.put(m)
        self.q.put(None)

    def write(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, msg):
        self.write(json.dumps(msg).encode() + b"\n")

    def recv(self, timeout=30):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def call(self, id, method, params=None, timeout=30):
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.recv(timeout)

    def tool(self, id, name, args, timeout=240):
        return self.call(id, "tools/call", {"name": name, "arguments": args}, timeout)

    def init(self, version):
        return self.call(0, "initialize", {"protocolVersion": version, "capabilities": {},
                                           "clientInfo": {"name": "mcp_raw.py", "version": "1"}})

    def nothing_before(self, id, desc):
        """Nothing was answered before a ping with this id."""
        r = self.call(id, "ping")
        check(desc, r is not None and r.get("id") == id and r.get("result") == {}, r)


def err_code(r):
    return (r or {}).get("error", {}).get("code")


def is_error(r, code, id, desc):
    check(desc, r is not None and err_code(r) == code and r.get("id") == id and "result" not in r, r)


def structured(r):
    return ((r or {}).get("result") or {}).get("structuredContent") or {}


def tool_error_text(r):
    res = (r or {}).get("result") or {}
    if res.get("isError") is not True:
        return None
    return " ".join(c.get("text", "") for c in res.get("content", []))


def session_protocol():
    s = Server()
    is_error(s.call(1, "tools/list"), -32600, 1, "a request before initialize: -32600")
    r = s.call(2, "ping")
    check("ping is answered before initialize", r == {"jsonrpc": "2.0", "id": 2, "result": {}}, r)
    is_error(s.call(3, "initialize", {"protocolVersion": "2025-06-18"}), -32602, 3,
             "initialize without capabilities and clientInfo: -32602")
    r = s.init("2025-06-18")
    check("initialize 2025-06-18: the same version back, tools capability",
          (r or {}).get("result", {}).get("protocolVersion") == "2025-06-18" and
          "tools" in r["result"].get("capabilities", {}), r)
    is_error(s.init("2025-06-18"), -32600, 0, "a second initialize: -32600")
    s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    s.send({"jsonrpc": "2.0", "method": "notifications/no_such_thing", "params": {}})
    s.send({"jsonrpc": "2.0", "id": 99, "result": {}})  # a response to nothing of the server's
    s.write(b"\n   \n")
    s.nothing_before(4, "notifications, a stray response and blank lines get no answer")

    s.write(b"{not json\n")
    is_error(s.recv(), -32700, None, "malformed JSON: -32700 with id null")
    s.write(b'[{"jsonrpc":"2.0","id":5,"method":"ping"}]\n')
    is_error(s.recv(), -32600, None, "a batch: -32600 (MCP has none since 2025-06-18)")
    s.write(b'"just a string"\n')
    is_error(s.recv(), -32600, None, "not an object: -32600")
    s.send({"jsonrpc": "1.0", "id": 6, "method": "ping"})
    is_error(s.recv(), -32600, 6, "jsonrpc 1.0: -32600 with its id")
    s.send({"jsonrpc": "2.0", "id": None, "method": "ping"})
    is_error(s.recv(), -32600, None, "id null: -32600")
    s.send({"jsonrpc": "2.0", "id": 1.5, "method": "ping"})
    is_error(s.recv(), -32600, None, "a fractional id: -32600")
    s.send({"jsonrpc": "2.0", "id": 7})
    is_error(s.recv(), -32600, 7, "no method: -32600")
    s.send({"jsonrpc": "2.0", "id": 8, "method": 42})
    is_error(s.recv(), -32600, 8, "a method that is not a string: -32600")
    is_error(s.call(9, "tools/list", [1]), -32602, 9, "params not an object: -32602")
    is_error(s.call(10, "resources/list"), -32601, 10, "an unknown method: -32601")
    is_error(s.call("str-id", "no/such"), -32601, "str-id", "a string id comes back as it was")
    is_error(s.call(11, "tools/list", {"cursor": "x"}), -32602, 11, "a cursor never given: -32602")
    is_error(s.call(12, "tools/call", {"arguments": {}}), -32602, 12, "tools/call without a name: -32602")
    r = s.call(13, "tools/call", {"name": "nope", "arguments": {}})
    is_error(r, -32602, 13, "an unknown tool: -32602")
    check("... naming the tool", "nope" in (r or {}).get("error", {}).get("message", ""), r)
    is_error(s.call(14, "tools/call", {"name": "run", "arguments": [1]}), -32602, 14,
             "arguments not an object: -32602")
    for id, args, want in [
        (15, {"language": "python"}, "missing required property 'code'"),
        (16, {"code": "1", "language": "python", "extra": 1}, "unknown property 'extra'"),
        (17, {"code": "1", "language": "python", "timeout": "5"}, "arguments.timeout: expected an integer"),
        (18, {"code": "1", "language": "python", "timeout": 0}, "less than the minimum 1"),
        (19, {"code": "", "language": "python"}, "shorter than the minimum 1"),
        (20, {"code": "a\u0000b", "language": "bash"}, "U+0000"),
        (21, {"code": "x" * 32001, "language": "bash"}, "longer than the maximum 32000"),
    ]:
        r = s.tool(id, "run", args)
        is_error(r, -32602, id, f"2025-06-18, bad arguments ({want}): -32602")
        check(f"... the message says {want}", want in (r or {}).get("error", {}).get("message", ""), r)
    # Framing: a message in pieces, CRLF, and one longer than the limit.
    s.write(b'{"jsonrpc":"2.0",')
    time.sleep(0.2)
    s.write(b'"id":23,"method":"ping"}\r\n')
    r = s.recv()
    check("a message written in two pieces, ended by CRLF", r == {"jsonrpc": "2.0", "id": 23, "result": {}}, r)
    big = b'{"jsonrpc":"2.0","id":24,"method":"ping","params":{"pad":"' + b"x" * (17 << 20) + b'"}}\n'
    s.write(big)
    is_error(s.recv(60), -32600, None, "a 17 MiB message: -32600")
    r = s.call(25, "ping")
    check("... and the server keeps serving", r == {"jsonrpc": "2.0", "id": 25, "result": {}}, r)

    s.p.stdin.close()
    rc = s.p.wait(60)
    check("stdin closed: the server exits 0", rc == 0, rc)
    check("stdout carried only JSON-RPC messages", not s.bad_lines, s.bad_lines)


def session_versions():
    s = Server()
    r = s.init("2024-11-05")
    check("initialize 2024-11-05 (not spoken): our latest, 2025-11-25",
          (r or {}).get("result", {}).get("protocolVersion") == "2025-11-25", r)
    r = s.tool(1, "run", {"code": "1", "language": "cobol"})
    text = tool_error_text(r)
    check("2025-11-25, bad arguments: a tool result with isError (SEP-1303)",
          text is not None and "'cobol' is not one of 'python', 'bash'" in text, r)
    is_error(s.tool(2, "nope", {}), -32602, 2, "2025-11-25, an unknown tool is still -32602")
    s.p.stdin.close()
    check("exit 0", s.p.wait(60) == 0)
    s = Server()
    r = s.init("2025-11-25")
    check("initialize 2025-11-25: the same back", (r or {}).get("result", {}).get("protocolVersion") == "2025-11-25", r)
    s.p.stdin.close()
    s.p.wait(60)


def session_limits():
    share = os.path.join(WORK, "share")
    os.makedirs(share, exist_ok=True)
    with open(os.path.join(share, "hello.txt"), "w") as f:
        f.write("hello\n")
    s = Server("--max-sandboxes", "1", "--max-output", "1", "--mount", f"{share}:/workspace",
               "--env", "MCP_TEST=yes", "--timeout", "30")
    r = s.init("2025-11-25")
    instr = (r or {}).get("result", {}).get("instructions", "")
    check("instructions state the server's limits and mounts",
          "30 s" in instr and "1 KiB" in instr and "/workspace (read-only)" in instr, instr)

    # Cancelled while it boots: no answer, and its VM is removed.
    s.send({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
            "params": {"name": "run", "arguments": {"code": "sleep 600", "language": "bash"}}})
    time.sleep(1)
    s.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 10, "reason": "test"}})
    s.nothing_before(11, "a cancelled call is not answered; ping still is")
    deadline = time.time() + 60
    while vm_dirs() and time.time() < deadline:
        time.sleep(0.2)
    check("the cancelled run's VM is gone", not vm_dirs(), vm_dirs())

    r = s.tool(12, "sandbox_create", {})
    sid = structured(r).get("sandbox_id")
    check("sandbox_create under --max-sandboxes 1", sid is not None, r)
    text = tool_error_text(s.tool(13, "sandbox_create", {}))
    check("a second sandbox is refused (--max-sandboxes)", text is not None and "--max-sandboxes" in text, text)
    text = tool_error_text(s.tool(14, "run", {"code": "true", "language": "bash"}))
    check("so is a run: it would be a second live VM", text is not None and "--max-sandboxes" in text, text)
    r = s.tool(15, "sandbox_exec", {"sandbox_id": sid, "language": "bash",
                                    "code": "cat /workspace/hello.txt; echo $MCP_TEST; touch /workspace/new"})
    sc = structured(r)
    check("--mount is there, read-only; --env reaches the command",
          sc.get("stdout") == "hello\nyes\n" and sc.get("exit_code") != 0 and "Read-only" in sc.get("stderr", ""), r)
    check("... and nothing was written on the host", not os.path.exists(os.path.join(share, "new")))
    r = s.tool(16, "sandbox_exec", {"sandbox_id": sid, "language": "python",
                                    "code": "import sys; sys.stdout.write('b' * 5000); sys.stderr.write('\\x01' * 300)"})
    sc = structured(r)
    check("--max-output 1: stdout cut at 1024 bytes and marked",
          sc.get("stdout_truncated") is True and sc.get("stdout", "").startswith("b" * 1024) and
          "truncated after 1024 bytes of text; 5000 bytes in all" in sc.get("stdout", ""), sc)
    check("... the cap counts JSON text: 300 control bytes are 1800 bytes of it",
          sc.get("stderr_truncated") is True and sc.get("stderr", "").startswith("\x01" * 170), sc)
    s.tool(17, "sandbox_exec", {"sandbox_id": sid, "language": "bash", "code": "head -c 2000 /dev/zero > /root/z"})
    text = tool_error_text(s.tool(18, "sandbox_read_file", {"sandbox_id": sid, "path": "/root/z"}))
    check("a file larger than --max-output is refused, with a way out", text is not None and
          "larger than the 1024 bytes" in text and "sandbox_exec" in text, text)
    text = tool_error_text(s.tool(19, "sandbox_exec", {"sandbox_id": sid, "language": "bash", "code": "x",
                                                       "timeout": 31}))
    check("--timeout 30: 31 s is refused", text is not None and "more than the maximum 30" in text, text)

    s.p.send_signal(signal.SIGTERM)
    rc = s.p.wait(60)
    check("SIGTERM: the server exits 143", rc == 143, rc)
    check("SIGTERM: its sandbox is deleted", not vm_dirs(), vm_dirs())
    check("stdout carried only JSON-RPC messages", not s.bad_lines, s.bad_lines)
    check("the cancelled call (10) was never answered", 10 not in s.seen_ids, s.seen_ids)


def session_keep():
    s = Server("--keep-sandboxes")
    s.init("2025-11-25")
    sid = structured(s.tool(1, "sandbox_create", {})).get("sandbox_id")
    check("--keep-sandboxes: a sandbox", sid is not None)
    s.p.stdin.close()
    check("... the server exits 0 at EOF", s.p.wait(60) == 0)
    out = subprocess.run([SMOLVM, "info", "--json", sid or "none"], capture_output=True, text=True).stdout
    state = (json.loads(out or "{}").get("data") or {}).get("state")
    check("... and the sandbox is still running", state == "running", out[:300])
    print(f"# kept {sid}")


def session_foreign_mounts():
    """--all-snapshots opens the store, not the host: another's snapshot that
    carries a host directory mount is refused, and nothing is started."""
    share = os.path.join(WORK, "foreign-share")
    os.makedirs(share, exist_ok=True)
    made = subprocess.run([SMOLVM, "create", "--mount", share + ":/m", "--mount-transport", "vsock"],
                          capture_output=True, text=True)
    vid = made.stdout.strip()
    snap = subprocess.run([SMOLVM, "snapshot", "create", "--name", "foreign-mount", vid], capture_output=True, text=True)
    subprocess.run([SMOLVM, "rm", "-f", vid], capture_output=True)
    check("another process snapshotted a VM with a vsock mount", made.returncode == 0 and snap.returncode == 0,
          made.stderr + snap.stderr)
    before = vm_dirs()  # session_keep's sandbox is still there
    s = Server("--all-snapshots")
    s.init("2025-11-25")
    text = tool_error_text(s.tool(1, "sandbox_from_snapshot", {"snapshot": "foreign-mount"}))
    check("--all-snapshots: a foreign snapshot with a host mount is refused",
          text is not None and "carries host directory mounts" in text, text)
    check("... and no sandbox was started", vm_dirs() == before, vm_dirs())
    s.p.stdin.close()
    check("... the server exits 0 at EOF", s.p.wait(60) == 0)
    subprocess.run([SMOLVM, "snapshot", "rm", "foreign-mount"], capture_output=True)


for session in (session_protocol, session_versions, session_limits, session_keep, session_foreign_mounts):
    try:
        session()
    except Exception as e:  # one broken session must not hide the others' results
        check(f"{session.__name__} ran to the end", False, repr(e))
sys.exit(1 if failed else 0)
