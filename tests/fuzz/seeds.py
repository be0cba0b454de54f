#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the hand-made seed inputs of fuzz_mux and fuzz_agent into
tests/fuzz/corpus/<target>/seed-*: well-formed conversations the fuzzers start
mutating from (their formats are described at the top of fuzz_mux.c and
fuzz_agent.c). Deterministic; rerun after changing an input format."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- fuzz_agent: op, agent flags, param, then the agent's bytes ----
SEP = b"||NEXT||"
T = {"STARTED": 16, "STDOUT": 17, "STDERR": 18, "EXIT": 19, "ERROR": 20, "RESULT": 21}


FSEP = b"||F||"
AG_FRAMED = 0x10  # the fake agent writes the frame headers: see fuzz_agent.c


def frame(kind, payload):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    return struct.pack("<IHH", len(payload), T[kind], 0) + payload


def framed(seed):
    """The same seed in AG_FRAMED form: <type><payload> pieces joined by FSEP."""
    op, flags, param, rest = seed[0], seed[1], seed[2], seed[3:]
    segs = []
    for seg in rest.split(SEP):
        pieces, off = [], 0
        while off + 8 <= len(seg):
            n, t, _ = struct.unpack_from("<IHH", seg, off)
            pieces.append(bytes([t]) + seg[off + 8:off + 8 + n])
            off += 8 + n
        segs.append(FSEP.join(pieces))
    return bytes([op, flags | AG_FRAMED, param]) + SEP.join(segs)


def exec_ok(out=b"hi\n", code=0):
    return (frame("STARTED", {"pid": 42}) + frame("STDOUT", out) + frame("STDERR", b"warn\n")
            + frame("EXIT", {"exit_code": code, "signal": 0, "timed_out": False, "duration_ms": 3}))


def agent_seeds():
    s = {}
    s["exec"] = bytes([0, 1, 0]) + exec_ok()
    s["exec-stdin"] = bytes([0, 3, 3]) + exec_ok()
    s["exec-signal"] = bytes([0, 1, 0x20]) + frame("STARTED", {"pid": 1}) + frame(
        "EXIT", {"exit_code": -1, "signal": 9, "timed_out": True, "duration_ms": 10})
    s["exec-error"] = bytes([0, 1, 0]) + frame("ERROR", {"errno": 2, "message": "exec nope: No such file"})
    s["run"] = bytes([1, 5, 1]) + exec_ok(b"x" * 100)
    s["read"] = bytes([2, 1, 0]) + frame("RESULT", {"ok": True, "size": 5, "mode": 420}) + frame("STDOUT", b"hello")
    s["read-short"] = bytes([2, 0, 1]) + frame("RESULT", {"ok": True, "size": 9, "mode": 420}) + frame(
        "STDOUT", b"hel") + frame("ERROR", {"errno": 5, "message": "read_file /g/file: I/O error"})
    s["download-file"] = bytes([3, 1, 0]) + frame("RESULT", {"ok": True, "size": 3, "mode": 0o4755}) + frame(
        "STDOUT", b"abc")
    tree = {"ok": True, "entries": [
        {"path": "d", "type": "dir", "mode": 0o755, "size": 4096},
        {"path": "d/f", "type": "file", "mode": 0o6644, "size": 3},
        {"path": "l", "type": "symlink", "mode": 0o777, "size": 4, "target": "../x"},
        {"path": "p", "type": "fifo", "mode": 0o644, "size": 0}]}
    s["download-tree"] = bytes([3, 3, 0]) + SEP.join([
        frame("ERROR", {"errno": 21, "message": "read_file /g: Is a directory"}),
        frame("RESULT", tree),
        frame("RESULT", {"ok": True, "size": 3, "mode": 0o644}) + frame("STDOUT", b"abc"),
        exec_ok(b"755\n")])
    s["download-unsafe"] = bytes([3, 1, 0]) + SEP.join([
        frame("ERROR", {"errno": 21, "message": "dir"}),
        frame("RESULT", {"ok": True, "entries": [{"path": "../up", "type": "dir", "mode": 493}]})])
    s["write"] = bytes([4, 1, 1]) + frame("RESULT", {"ok": True, "bytes": 100})
    s["write-early-error"] = bytes([4, 0, 3]) + frame("ERROR", {"errno": 28, "message": "write_file: No space"})
    s["env-list"] = bytes([5, 1, 0]) + frame("RESULT", {"ok": True, "env": {"A": "1", "B": "two words"}})
    s["env-set"] = bytes([6, 1, 0]) + frame("RESULT", {"ok": True, "env": {"A": "1"}})
    s["env-unset"] = bytes([7, 1, 0]) + frame("RESULT", {"ok": True, "env": {}})
    ok = frame("RESULT", {"ok": True})
    # mkdir /g, then readdir order (here: link, sub, sub/b.txt, a.txt; it varies by file system)
    s["upload"] = bytes([8, 3, 0]) + SEP.join([ok, exec_ok(b""), ok, frame("RESULT", {"ok": True, "bytes": 9}),
                                              frame("RESULT", {"ok": True, "bytes": 9})])
    for k, v in s.items():
        write("fuzz_agent", k, v)
        write("fuzz_agent", k + "-framed", framed(v))


# ---- fuzz_agent_client: flags (reply kind % 3, 0x04 rx_buf, 0x08 EOF, 0x10 small bound), piece size, bytes ----
ANSWER, STREAM, EXEC = 0, 1, 2


def agent_client_seeds():
    s = {}
    s["answer-result"] = bytes([ANSWER, 0]) + frame("RESULT", {"ok": True, "bytes": 3})
    s["answer-handoff"] = bytes([ANSWER | 0x10, 5]) + frame("RESULT", {"ok": True}) + b"\x28\0\0\0\x1a\0\0\0FUSE"
    s["answer-error"] = bytes([ANSWER | 0x04, 3]) + frame("ERROR", {"errno": 2, "message": "mkdir /x: No such file"})
    s["stream-read"] = bytes([STREAM | 0x08, 0]) + frame("RESULT", {"ok": True, "size": 5, "mode": 420}) + frame(
        "STDOUT", b"hel") + frame("STDOUT", b"lo")
    s["stream-short"] = bytes([STREAM | 0x04, 7]) + frame("RESULT", {"ok": True, "size": 9}) + frame(
        "STDOUT", b"abc") + frame("ERROR", {"errno": 5, "message": "read_file /x: the file shrank"})
    s["exec"] = bytes([EXEC, 0]) + exec_ok()
    s["exec-signal"] = bytes([EXEC | 0x04 | 0x08, 1]) + frame("STARTED", {"pid": 7}) + frame(
        "EXIT", {"exit_code": -1, "signal": 9, "timed_out": True, "duration_ms": 10})
    s["exec-eof"] = bytes([EXEC | 0x08, 0]) + frame("STARTED", {"pid": 7}) + frame("STDERR", b"x")
    for k, v in s.items():
        write("fuzz_agent_client", k, v)


# ---- fuzz_mux: config byte, then ops (see run_op() in fuzz_mux.c) ----
def mux_seeds():
    s = {}
    # guest side, accepting: REQUEST (known port table), RW, SHUTDOWN, drain, turns
    s["guest-stream"] = bytes([0x00, 1, 0x01, 0xf0 & 0, 0x00, 12, 4, 1, 0x05, 0x00, 0x00, 0x10, 0x00,
                               9, 0, 12, 8, 1, 0x04, 0x00, 0x40, 12, 8, 8, 0, 0x00, 0x01, 12, 8])
    # host side like the supervisor (refuse-all accept): local connect, peer answers, data both ways
    s["host-connect"] = bytes([0x03, 7, 0x80, 12, 4, 14, 1, 15, 0x01, 12, 4, 8, 0, 0x00, 0x02, 12, 8,
                               1, 0x05, 0x00, 0x00, 0x20, 0x00, 12, 8, 9, 0, 10, 0, 1, 12, 8])
    # REQUEST storm to many ports (flood op, ports stepping)
    s["request-storm"] = bytes([0x00, 4, 0x01, 0xf3, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 1, 0x05, 0x04, 12, 16])
    # CREDIT_REQUEST flood on a stream with the peer not reading (back-pressure)
    # (3 x 6000 CREDIT_UPDATEs owed: more than MUX_CTL_MAX plus one read's worth)
    s["credit-flood"] = bytes([0x04, 1, 0x01, 0x00, 0x00, 19, 0x6f, 0x17, 19, 0x6f, 0x17, 19, 0x6f, 0x17,
                               12, 31, 14, 1, 12, 31])
    # RW beyond the credit: 32 x 64 KiB at a stream whose local reader sleeps; then
    # an oversized len header
    s["credit-violation"] = bytes([0x00, 1, 0x01, 0x00, 0x00, 4, 0x05, 0x00, 0x00, 0xff, 0xff, 0x08, 0x1f, 0x00,
                                   12, 8, 5, 0x01, 0x00, 0x00, 0x00, 0x00, 12, 8])
    # connect, time out, HELLO, peer EOF
    s["timeout-eof"] = bytes([0x01, 7, 0x80, 17, 6, 16, 12, 4, 16, 0, 12, 4])
    for k, v in s.items():
        write("fuzz_mux", k, v)


if __name__ == "__main__":
    agent_seeds()
    agent_client_seeds()
    mux_seeds()
    sys.exit(0)
