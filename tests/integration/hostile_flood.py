#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Guest side of t_hostile_channel.sh: a compromised guest root writing hostile
traffic into the host channel (docs/protocol.md "The channel").

PID 1 (smolvm-init) holds the virtio-serial port /dev/vportNp1 open and a second
open() gets EBUSY, so the fd is taken from PID 1 with pidfd_open + pidfd_getfd
(a dup of its open file: same port, O_NONBLOCK as the agent set it). Nothing is
read from it: host->guest traffic stays the agent's.

usage: hostile_flood.py wellformed VICTIM_HOST_PORT | oversize | garbage
Writes whole packets per write() and at most 32 KiB at a time (one virtio-serial
buffer), so the agent's own packets are never cut by ours. Prints what it sent;
touches /tmp/flood.done at the end."""
import ctypes
import os
import select
import struct
import sys

SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438
CID_HOST, CID_GUEST = 2, 3
OP_REQUEST, OP_RW, OP_CREDIT_REQUEST = 1, 5, 7
TYPE_STREAM = 1
AGENT_PORT = 1024
WRITE_MAX = 32 * 1024

libc = ctypes.CDLL(None, use_errno=True)


def steal_channel():
    for name in sorted(os.listdir("/proc/1/fd"), key=int):
        try:
            target = os.readlink("/proc/1/fd/" + name)
        except OSError:
            continue
        if target.startswith("/dev/vport"):
            pidfd = libc.syscall(SYS_PIDFD_OPEN, 1, 0)
            if pidfd < 0:
                raise OSError(ctypes.get_errno(), "pidfd_open(1)")
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            err = ctypes.get_errno()
            os.close(pidfd)
            if fd < 0:
                raise OSError(err, "pidfd_getfd(%s)" % target)
            return fd, target
    sys.exit("no /dev/vport* among PID 1's fds")


PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207


class Frozen:
    """PID 1 stopped under ptrace: the agent reads nothing from the channel, so
    the host's replies back up and its bounds (not the agent's speed) decide."""

    def __enter__(self):
        for req in (PTRACE_SEIZE, PTRACE_INTERRUPT):
            if libc.ptrace(req, 1, None, None) < 0:
                raise OSError(ctypes.get_errno(), "ptrace(%#x, 1)" % req)
        os.waitpid(1, 0x40000000)  # __WALL: until it has stopped
        return self

    def __exit__(self, *exc):
        if libc.ptrace(PTRACE_DETACH, 1, None, None) < 0:
            raise OSError(ctypes.get_errno(), "ptrace(PTRACE_DETACH, 1)")


def hdr(src_port, dst_port, op, length=0, typ=TYPE_STREAM, buf_alloc=256 * 1024, fwd_cnt=0):
    return struct.pack("<QQIIIHHIII", CID_GUEST, CID_HOST, src_port, dst_port, length, typ, op, 0,
                       buf_alloc, fwd_cnt)


class Channel:
    def __init__(self, fd):
        self.fd = fd
        self.sent = 0
        self.closed = False

    def write(self, buf, stall_s=None):
        """One write() of buf (<= WRITE_MAX), waiting while the port is full.
        Returns False when the port stayed full for stall_s seconds."""
        while not self.closed:
            try:
                n = os.write(self.fd, buf)
            except BlockingIOError:
                _, w, _ = select.select([], [self.fd], [], stall_s if stall_s else 1.0)
                if stall_s and not w:
                    return False
                continue
            except OSError as e:  # the host side went away (channel broken)
                print("write: %s" % e, flush=True)
                self.closed = True
                return
            self.sent += n
            if n == len(buf):
                return True
            buf = buf[n:]  # not expected from virtio-serial: finish it all the same
        return False

    def packets(self, pkts, stall_s=None):
        """Whole packets, grouped into writes of at most WRITE_MAX bytes. Stops
        (returns False) when the port stays full for stall_s seconds."""
        batch = bytearray()
        for p in pkts:
            if batch and len(batch) + len(p) > WRITE_MAX:
                if not self.write(bytes(batch), stall_s):
                    return False
                batch.clear()
            batch += p
        return not batch or self.write(bytes(batch), stall_s)


def main():
    mode = sys.argv[1]
    fd, path = steal_channel()
    ch = Channel(fd)
    print("took %s from PID 1 as fd %d" % (path, fd), flush=True)
    if mode == "wellformed":
        victim = int(sys.argv[2])
        # REQUEST storm: guest ports 40000.. to host ports 1..; the host accepts
        # no guest-initiated stream, so each gets an RST.
        ch.packets(hdr(40000 + i, 1 + i, OP_REQUEST) for i in range(5000))
        # CREDIT_REQUEST floods: on pairs that do not exist (orphan RSTs, capped)
        # and on the victim's live stream (each answered by a CREDIT_UPDATE).
        ch.packets(hdr(AGENT_PORT, 1000000 + i, OP_CREDIT_REQUEST) for i in range(20000))
        ch.packets(hdr(AGENT_PORT, victim, OP_CREDIT_REQUEST) for _ in range(20000))
        # The same with the agent frozen: every CREDIT_UPDATE the host owes stays
        # queued on its side until it stops reading the channel (back-pressure:
        # our writes then stall). 200,000 requests would be 8.8 MB.
        with Frozen():
            before = ch.sent
            done = ch.packets((hdr(AGENT_PORT, victim, OP_CREDIT_REQUEST) for _ in range(200000)), stall_s=3)
            print("agent frozen: %d bytes taken, %s" % (ch.sent - before, "all" if done else "then the port stalled"),
                  flush=True)
        # RW far beyond the credit the host granted on the victim's stream: 4 MiB
        # in 16 KiB packets against a 256 KiB buffer; the host resets that stream.
        payload = b"\xa5" * 16384
        ch.packets(hdr(AGENT_PORT, victim, OP_RW, len(payload)) + payload for _ in range(256))
    elif mode == "oversize":
        ch.packets([hdr(AGENT_PORT, 1, OP_RW, 65537) + b"\0" * 64])
    elif mode == "garbage":
        for _ in range(64):
            if ch.closed:
                break
            ch.write(os.urandom(WRITE_MAX))
    else:
        sys.exit("unknown mode " + mode)
    print("%s: %d bytes sent%s" % (mode, ch.sent, ", channel closed" if ch.closed else ""), flush=True)
    open("/tmp/flood.done", "w").close()


if __name__ == "__main__":
    main()
