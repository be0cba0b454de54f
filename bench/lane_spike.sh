#!/usr/bin/env bash
# Spike (issue 11): can a second, migratable device move host -> guest bytes into a
# guest process faster than slirp's download? The candidate "lane": a virtio-net
# device on `-netdev stream` (a unix socket; frames 4-byte big-endian length-prefixed)
# whose guest interface carries no IP, only our frames (ethertype 0x88b5), read by a
# guest process from an AF_PACKET socket, with a large MTU (host_mtu=) so one frame
# and one recv() carry up to ~64 KiB, not the 4 KiB buffer virtio-serial returns.
#
# One VM (same image/kernel/init/shape as bench/net.sh) with two extra NICs from a
# SMOLVM_QEMU wrapper: slirp (`-netdev user`, the peer) and the lane. Alternating,
# in the same run, into a python process in the guest:
#   - slirp: MIB MiB over TCP from a host loopback server (as bench/net.sh: 10.0.2.2);
#   - lane:  MIB MiB as frames from a host python sender on the unix socket, with a
#     window (at most WIN bytes unacknowledged; the guest acknowledges every ACK
#     bytes with a frame back over the same lane) so nothing is dropped;
# then once without a window (the sender blasts; the guest counts what arrives and
# the packet socket's drop counter): what the guest does when it cannot keep up;
# then a snapshot, a restore (create --from-snapshot) and one more lane transfer
# into the restored VM (does the lane survive migration?).
#
# usage: bench/lane_spike.sh [MIB] [RUNS]   (default 64 MiB, 2 runs each)
# BENCH_CPUS (default 1), LANE_MTU (default 65000), LANE_WIN (KiB, default 1024).
set -euo pipefail
mib=${1:-64}
runs=${2:-2}
mtu=${LANE_MTU:-65000}
win=$(( ${LANE_WIN:-1024} * 1024 ))
. "$(dirname "$0")/lib.sh"
bench_env lane
cleanup_vms() {
        "$smolvm" rm -f benchlane benchlane2 benchours >/dev/null 2>&1 || true
        "$smolvm" snapshot rm benchlanesnap >/dev/null 2>&1 || true
        bench_cleanup
}
trap cleanup_vms EXIT
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# slirp's server: bench/net.sh's.
bench_net_server "$mib"

# The lane's host side: connects to QEMU's stream socket, answers each GO frame
# from the guest (total bytes, window or 0 = none) with data frames; ACK frames
# carry the guest's consumed byte count. Frame: dst mac, src mac, 0x88b5, 1 byte
# type, payload.
cat >"$work/lane_host.py" <<'PY'
import os, select, socket, struct, sys, time
path, mtu = sys.argv[1], int(sys.argv[2])
ETH = b"\x52\x54\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5"
payload = mtu - 1
data = os.urandom(payload)
while True:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        break
    except OSError:
        time.sleep(0.2)
print("lane host: connected", file=sys.stderr, flush=True)
inbuf = b""
def frames():
    global inbuf
    r = s.recv(1 << 20)
    if not r:
        sys.exit("lane host: QEMU closed the socket")
    inbuf += r
    out = []
    while len(inbuf) >= 4:
        n = struct.unpack(">I", inbuf[:4])[0]
        if len(inbuf) < 4 + n:
            break
        out.append(inbuf[4:4 + n])
        inbuf = inbuf[4 + n:]
    return out
while True:
    for f in frames():
        if len(f) < 15 or f[12:14] != b"\x88\xb5" or f[14:15] != b"G":
            continue
        total, win = struct.unpack("<QQ", f[15:31])
        sent = acked = 0
        frame = struct.pack(">I", 15 + payload) + ETH + b"D" + data
        while sent < total:
            if win == 0 or sent - acked + payload <= win:
                n = min(payload, total - sent)
                if n < payload:
                    s.sendall(struct.pack(">I", 15 + n) + ETH + b"D" + data[:n])
                else:
                    s.sendall(frame)
                sent += n
                if not win:
                    continue
                r, _, _ = select.select([s], [], [], 0)
                if not r:
                    continue
            for g in frames():
                if len(g) >= 23 and g[14:15] == b"A":
                    acked = max(acked, struct.unpack("<Q", g[15:23])[0])
        print("lane host: sent %d bytes, window %d" % (sent, win), file=sys.stderr, flush=True)
PY

# Guest: modules, slirp NIC 10.0.2.15/24, lane NIC up with the large MTU, no address.
cat >"$work/netsetup.py" <<'PY'
import ctypes, fcntl, os, socket, struct, sys
mtu = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
for m in ("failover", "net_failover", "virtio_net"):
    fd = os.open("/tmp/%s.ko" % m, os.O_RDONLY)
    if libc.syscall(313, fd, b"", 0) != 0 and ctypes.get_errno() != 17:  # finit_module
        raise OSError(ctypes.get_errno(), "finit_module " + m)
    os.close(fd)
import time
for _ in range(50):
    names = [n for n in os.listdir("/sys/class/net") if n != "lo"]
    if len(names) >= 2:
        break
    time.sleep(0.1)
by_mac = {open("/sys/class/net/%s/address" % n).read().strip(): n for n in names}
slirp, lane = by_mac["52:54:00:00:00:01"].encode(), by_mac["52:54:00:00:00:02"].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sin = lambda name, a: struct.pack("16sH2s4s8s", name, socket.AF_INET, b"\0\0", socket.inet_aton(a), b"\0" * 8)
def up(name):
    flags = struct.unpack_from("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH22s", name, 0, b"")))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH22s", name, flags | 1, b""))  # SIOCSIFFLAGS |= IFF_UP
fcntl.ioctl(s, 0x8916, sin(slirp, "10.0.2.15"))      # SIOCSIFADDR
fcntl.ioctl(s, 0x891c, sin(slirp, "255.255.255.0"))  # SIOCSIFNETMASK
up(slirp)
try:
    open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % lane.decode(), "w").write("1")
except OSError:
    pass
fcntl.ioctl(s, 0x8922, struct.pack("16si20s", lane, mtu, b""))  # SIOCSIFMTU
up(lane)
print(lane.decode())
PY

# Guest client: "tcp HOST PORT MIB" (slirp) or "lane IFACE MIB WIN ACK" prints seconds
# (and, for the lane, frames, the packet socket's drops, bytes received).
cat >"$work/client.py" <<'PY'
import socket, struct, sys, time
mode = sys.argv[1]
if mode == "tcp":  # bench/net_client.py's download, copied beside this file
    from net_client import download
    print("%.3f" % download(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    sys.exit(0)
ifname, n, win, ack = sys.argv[2], int(sys.argv[3]) << 20, int(sys.argv[4]), int(sys.argv[5])
delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0  # a reader that starts late
relay = len(sys.argv) > 7 and sys.argv[7] == "1"  # relay to a loopback TCP reader (an agent's path)
if relay:
    import os
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
    child = os.fork()
    if child == 0:
        c = socket.create_connection(ls.getsockname())
        b = bytearray(256 << 10); m = memoryview(b); k = 0
        while True:
            r = c.recv_into(m)
            if r == 0:
                break
            k += r
        os._exit(0 if k == n else 1)
    out, _ = ls.accept()
ETHP = 0x88b5
# Protocol 0 here, ETHP at bind: a socket opened with a protocol hooks it on
# every device at once, and bind() then unhooks it with synchronize_rcu(), which
# once waited > 9 minutes in this guest (packet_do_bind -> __unregister_prot_hook).
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
s.bind((ifname, ETHP))
hdr = b"\x02\x00\x00\x00\x00\x01" + b"\x52\x54\x00\x00\x00\x02" + b"\x88\xb5"
buf = bytearray(70000); mv = memoryview(buf)
t0 = time.monotonic()
s.send(hdr + b"G" + struct.pack("<QQ", n, win))
time.sleep(delay)
got = frames = 0
last_ack = 0
s.settimeout(1.0 if win else 5.0)
try:
    while got < n:
        try:
            r = s.recv_into(mv)
        except socket.timeout:
            if not win or frames:
                raise
            s.send(hdr + b"G" + struct.pack("<QQ", n, win))  # the host was not there yet
            continue
        if r < 15 or buf[14] != ord("D"):
            continue
        got += r - 15
        if relay:
            out.sendall(mv[15:r])
        frames += 1
        if frames == 1 and win:
            s.settimeout(None)
        if win and got - last_ack >= ack:
            s.send(hdr + b"A" + struct.pack("<Q", got))
            last_ack = got
except socket.timeout:
    pass
if relay:
    out.close()
    if os.waitpid(child, 0)[1] != 0:
        sys.exit("the loopback reader did not get %d bytes" % n)
t = time.monotonic() - t0 - (0 if got >= n else 5.0) - delay
pk, drops = struct.unpack("II", s.getsockopt(263, 6, 8))  # PACKET_STATISTICS
print("%.3f %d %d %d" % (t, frames, drops, got))
PY

mkdir -p "$work/bin"
printf '#!/bin/sh\nexec %s "$@" -netdev user,id=bn0 -device virtio-net-device,netdev=bn0,mac=52:54:00:00:00:01 -netdev stream,id=ln0,server=on,addr.type=unix,addr.path=%s -device virtio-net-device,netdev=ln0,mac=52:54:00:00:00:02,host_mtu=%d,rx_queue_size=1024\n' \
        "${SMOLVM_QEMU:-qemu-system-x86_64}" "$work/lane.sock" "$mtu" >"$work/bin/qemu-lane"
chmod +x "$work/bin/qemu-lane"

cc -O2 -static -o "$work/lane_relay" "$here/bench/lane_relay.c"

shape=(--cpus "${BENCH_CPUS:-1}" --mem "${BENCH_MEM:-512}" --boot-timeout 300)
SMOLVM_QEMU="$work/bin/qemu-lane" "$smolvm" create --name benchlane "${shape[@]}" >/dev/null
# Our egress path (virtio-serial channel, the agent's relay) in its own VM of the
# same shape: its BPF redirection would take slirp's connections too.
"$smolvm" create --name benchours "${shape[@]}" --allow-host bench.test --add-host bench.test:127.0.0.1 >/dev/null
"$smolvm" exec benchours -- sh -c 'cat >/tmp/client.py' <"$work/client.py"
for vm in benchours benchlane; do "$smolvm" exec $vm -- sh -c 'cat >/tmp/net_client.py' <"$here/bench/net_client.py"; done
"$smolvm" exec benchlane -- sh -c 'cat >/tmp/lane_relay && chmod +x /tmp/lane_relay' <"$work/lane_relay"
bench_nic_modules benchlane
"$smolvm" exec benchlane -- sh -c 'cat >/tmp/netsetup.py' <"$work/netsetup.py"
lane_if=$("$smolvm" exec benchlane -- python3 /tmp/netsetup.py "$mtu")
"$smolvm" exec benchlane -- sh -c 'cat >/tmp/client.py' <"$work/client.py"
python3 "$work/lane_host.py" "$work/lane.sock" "$mtu" 2>"$work/lane_host.log" &
lane_pid=$!
# Warm-up: a small transfer each.
"$smolvm" exec benchlane -- python3 /tmp/client.py tcp 10.0.2.2 "$port" "$mib" >/dev/null
"$smolvm" exec benchours -- python3 /tmp/client.py tcp bench.test "$port" "$mib" >/dev/null
"$smolvm" exec benchlane -- python3 /tmp/client.py lane "$lane_if" 4 "$win" $((win / 4)) >/dev/null

declare -A sum
for i in $(seq "$runs"); do
        t=$("$smolvm" exec benchours -- python3 /tmp/client.py tcp bench.test "$port" "$mib")
        sum[ours]=$(echo "${sum[ours]:-0} + $t" | bc -l)
        printf 'run %d: ours  download %d MiB in %6.2f s (%6.1f MiB/s) (egress over the channel)\n' "$i" "$mib" "$t" "$(echo "$mib / $t" | bc -l)"
        t=$("$smolvm" exec benchlane -- python3 /tmp/client.py tcp 10.0.2.2 "$port" "$mib")
        sum[slirp]=$(echo "${sum[slirp]:-0} + $t" | bc -l)
        printf 'run %d: slirp download %d MiB in %6.2f s (%6.1f MiB/s)\n' "$i" "$mib" "$t" "$(echo "$mib / $t" | bc -l)"
        out=$("$smolvm" exec benchlane -- python3 /tmp/client.py lane "$lane_if" "$mib" "$win" $((win / 4)))
        read -r t fr dr got <<<"$out"
        sum[lane]=$(echo "${sum[lane]:-0} + $t" | bc -l)
        printf 'run %d: lane  %d MiB in %6.2f s (%6.1f MiB/s), %d frames, %d dropped\n' "$i" "$mib" "$t" \
                "$(echo "$mib / $t" | bc -l)" "$fr" "$dr"
        out=$("$smolvm" exec benchlane -- python3 /tmp/client.py lane "$lane_if" "$mib" "$win" $((win / 4)) 0 1)
        read -r t fr dr got <<<"$out"
        sum[relay]=$(echo "${sum[relay]:-0} + $t" | bc -l)
        printf 'run %d: lane relayed (python) through guest loopback TCP to a second process, %d MiB in %6.2f s (%6.1f MiB/s)\n' \
                "$i" "$mib" "$t" "$(echo "$mib / $t" | bc -l)"
        out=$("$smolvm" exec benchlane -- /tmp/lane_relay "$lane_if" "$mib" "$win")
        read -r t fr dr got <<<"$out"
        sum[crelay]=$(echo "${sum[crelay]:-0} + $t" | bc -l)
        printf 'run %d: lane relayed (C) through guest loopback TCP to a second process, %d MiB in %6.2f s (%6.1f MiB/s)\n' \
                "$i" "$mib" "$t" "$(echo "$mib / $t" | bc -l)"
done
"$smolvm" rm -f benchours >/dev/null
c=$(echo "$mib * $runs / ${sum[crelay]}" | bc -l)
o=$(echo "$mib * $runs / ${sum[ours]}" | bc -l)
r=$(echo "$mib * $runs / ${sum[relay]}" | bc -l)
l=$(echo "$mib * $runs / ${sum[lane]}" | bc -l)
s=$(echo "$mib * $runs / ${sum[slirp]}" | bc -l)
printf 'mean of %d: lane %.1f MiB/s, slirp %.1f MiB/s, ratio lane/slirp %.2f (window %d KiB, MTU %d)\n' \
        "$runs" "$l" "$s" "$(echo "$l / $s" | bc -l)" $((win / 1024)) "$mtu"
printf 'mean of %d: lane relayed by python %.1f MiB/s (%.2f of slirp), by C %.1f MiB/s (%.2f of slirp); ours (egress, channel) %.1f MiB/s (%.2f of slirp)\n' \
        "$runs" "$r" "$(echo "$r / $s" | bc -l)" "$c" "$(echo "$c / $s" | bc -l)" "$o" "$(echo "$o / $s" | bc -l)"

# Without a window: the host blasts MIB MiB; what reaches the reader, one that
# keeps up and one that starts reading 2 s late (its socket buffer: 8 MiB)?
for d in 0 2; do
        out=$("$smolvm" exec benchlane -- python3 /tmp/client.py lane "$lane_if" "$mib" 0 0 $d)
        read -r t fr dr got <<<"$out"
        printf 'no window, reader %d s late: %d of %d bytes reached the reader (%d frames), packet socket drops %d\n' \
                "$d" "$got" $((mib << 20)) "$fr" "$dr"
done

# Migration: snapshot, restore into a new VM (same wrapper: same devices, the socket
# path re-bound), one lane transfer into it.
kill "$lane_pid" 2>/dev/null || true; wait "$lane_pid" 2>/dev/null || true
"$smolvm" snapshot create benchlane --name benchlanesnap >/dev/null
"$smolvm" rm -f benchlane >/dev/null
rm -f "$work/lane.sock"
SMOLVM_QEMU="$work/bin/qemu-lane" "$smolvm" create --name benchlane2 --from-snapshot benchlanesnap >/dev/null
python3 "$work/lane_host.py" "$work/lane.sock" "$mtu" 2>>"$work/lane_host.log" &
lane_pid=$!
if out=$(timeout 120 "$smolvm" exec benchlane2 -- python3 /tmp/client.py lane "$lane_if" "$mib" "$win" $((win / 4))); then
        read -r t fr dr got <<<"$out"
        printf 'after restore: lane %d MiB in %6.2f s (%6.1f MiB/s), %d dropped\n' "$mib" "$t" "$(echo "$mib / $t" | bc -l)" "$dr"
else
        echo "after restore: the lane transfer failed"
fi
kill "$lane_pid" 2>/dev/null || true
cat "$work/lane_host.log"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
