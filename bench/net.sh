#!/usr/bin/env bash
# Network: our egress path (guest BPF redirection -> agent -> channel -> the
# supervisor's egress duty, by name) against QEMU user-mode networking
# (`-netdev user`, slirp, behind a virtio-net device) in the same VM shape, in the
# same run, against the same loopback server on the host:
#   - download: MIB MiB per connection, read by python in the guest (timed in the guest);
#   - connect latency: 200 connections, each until the server's first byte
#     (time to first byte), and connect() alone, p50/p99;
#   - then bench/port.sh MIB RUNS (port forward guest -> host vs `exec -- cat`).
# Ours runs as every VM does, with the lane (docs/protocol.md: the host -> guest
# bytes on a virtio-net device instead of virtio-serial); a third VM, "nolane",
# is ours booted with SMOLVM_NO_LANE=1 (everything on the channel: what ours was
# before the lane), unless BENCH_NOLANE=0. It boots cold (--cold: before session
# 8 a warm start restored the boot template ours' first start made, with the
# lane's device, so "nolane" had the lane; now SMOLVM_NO_LANE boots cold anyway).
# The slirp peer (booted with SMOLVM_NO_LANE=1: its only NIC is slirp's) is the
# same image, kernel, init, memory and CPUs; it is made with
# SMOLVM_QEMU set to a wrapper that appends `-netdev user -device virtio-net-device`,
# and the guest loads virtio_net (from the cached kernel .deb: our image carries no
# NIC driver) and configures eth0 10.0.2.15/24 with python ioctls (no iproute2 in
# the image). The ours VM reaches the server as bench.test (--add-host to
# 127.0.0.1, --allow-host), the slirp VM as 10.0.2.2 (slirp's alias of the host's
# loopback).
#
# usage: bench/net.sh [MIB] [RUNS]      (default 256 MiB, 3 runs each, alternating)
# BENCH_CPUS/BENCH_MEM set the shape of both VMs (default 1 vCPU, 512 MiB);
# BENCH_PORT=0 skips the port-forward part.
set -euo pipefail
mib=${1:-256}
runs=${2:-3}
. "$(dirname "$0")/lib.sh"
orig_home=${SMOLVM_HOME:-}
bench_env net
vms=(benchours benchslirp)
[ "${BENCH_NOLANE:-1}" = 0 ] || vms=(benchours benchnolane benchslirp)
cleanup_vms() {
        "$smolvm" rm -f benchours >/dev/null 2>&1 || true
        "$smolvm" rm -f benchnolane >/dev/null 2>&1 || true
        "$smolvm" rm -f benchslirp >/dev/null 2>&1 || true
        bench_cleanup
}
trap cleanup_vms EXIT
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

bench_net_server "$mib"

# The slirp peer's QEMU: ours plus one user-mode NIC.
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec %s "$@" -netdev user,id=bn0 -device virtio-net-device,netdev=bn0\n' \
        "${SMOLVM_QEMU:-qemu-system-x86_64}" >"$work/bin/qemu-slirp"
chmod +x "$work/bin/qemu-slirp"
cat >"$work/slirpnet.py" <<'PY'
import ctypes, fcntl, os, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
for m in ("failover", "net_failover", "virtio_net"):
    fd = os.open("/tmp/%s.ko" % m, os.O_RDONLY)
    if libc.syscall(313, fd, b"", 0) != 0 and ctypes.get_errno() != 17:  # finit_module
        raise OSError(ctypes.get_errno(), "finit_module " + m)
    os.close(fd)
name = [n for n in os.listdir("/sys/class/net") if n != "lo"][0].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sin = lambda a: struct.pack("16sH2s4s8s", name, socket.AF_INET, b"\0\0", socket.inet_aton(a), b"\0" * 8)
fcntl.ioctl(s, 0x8916, sin("10.0.2.15"))      # SIOCSIFADDR
fcntl.ioctl(s, 0x891c, sin("255.255.255.0"))  # SIOCSIFNETMASK
flags = struct.unpack_from("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH22s", name, 0, b"")))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH22s", name, flags | 1, b""))  # SIOCSIFFLAGS |= IFF_UP
PY

shape=(--cpus "${BENCH_CPUS:-1}" --mem "${BENCH_MEM:-512}" --boot-timeout 300)
"$smolvm" create --name benchours "${shape[@]}" --allow-host bench.test --add-host bench.test:127.0.0.1 >/dev/null
[ "${vms[1]}" = benchnolane ] &&
        SMOLVM_NO_LANE=1 "$smolvm" create --name benchnolane --cold "${shape[@]}" --allow-host bench.test --add-host bench.test:127.0.0.1 >/dev/null
SMOLVM_NO_LANE=1 SMOLVM_QEMU="$work/bin/qemu-slirp" "$smolvm" create --name benchslirp "${shape[@]}" >/dev/null
bench_nic_modules benchslirp
"$smolvm" exec benchslirp -- python3 - <"$work/slirpnet.py"
# The guest's client (dl, lat): bench/net_client.py.
for vm in "${vms[@]}"; do "$smolvm" exec $vm -- sh -c 'cat >/tmp/client.py' <"$here/bench/net_client.py"; done

peer() { [ "$1" = benchslirp ] && echo 10.0.2.2 || echo bench.test; }
# Warm-up: one small download each (page cache, python, the first connection).
for vm in "${vms[@]}"; do "$smolvm" exec $vm -- python3 /tmp/client.py lat "$(peer $vm)" $((port + 1)) 5 >/dev/null; done

declare -A dl_sum
for i in $(seq "$runs"); do
        for vm in "${vms[@]}"; do
                t=$("$smolvm" exec $vm -- python3 /tmp/client.py dl "$(peer $vm)" "$port" "$mib")
                dl_sum[$vm]=$(echo "${dl_sum[$vm]:-0} + $t" | bc -l)
                printf 'run %d: %-10s download %d MiB in %6.2f s (%6.1f MiB/s)\n' "$i" "${vm#bench}" "$mib" "$t" \
                        "$(echo "$mib / $t" | bc -l)"
        done
done
o=$(echo "$mib * $runs / ${dl_sum[benchours]}" | bc -l)
s=$(echo "$mib * $runs / ${dl_sum[benchslirp]}" | bc -l)
printf 'download, mean of %d: ours %.1f MiB/s, slirp %.1f MiB/s, ratio ours/slirp %.2f\n' "$runs" "$o" "$s" \
        "$(echo "$o / $s" | bc -l)"
if [ "${vms[1]}" = benchnolane ]; then
        n=$(echo "$mib * $runs / ${dl_sum[benchnolane]}" | bc -l)
        printf 'download, mean of %d: ours without the lane %.1f MiB/s, ratio nolane/slirp %.2f, ours/nolane %.2f\n' \
                "$runs" "$n" "$(echo "$n / $s" | bc -l)" "$(echo "$o / $n" | bc -l)"
fi

for vm in "${vms[@]}"; do
        read -r c50 c99 f50 f99 < <("$smolvm" exec $vm -- python3 /tmp/client.py lat "$(peer $vm)" $((port + 1)) 200)
        printf 'latency, 200 connections, %-5s: first byte p50 %6.2f ms p99 %6.2f ms; connect() p50 %6.2f ms p99 %6.2f ms\n' \
                "${vm#bench}" "$f50" "$f99" "$c50" "$c99"
done
for vm in "${vms[@]}"; do "$smolvm" rm -f $vm >/dev/null; done
echo "load after the network part: $(cut -d' ' -f1-3 /proc/loadavg)"
# Port forwarding, same invocation: bench/port.sh with its own VM.
[ "${BENCH_PORT:-1}" = 0 ] && exit 0
SMOLVM_HOME=$real_home "$here/bench/port.sh" "$mib" "$runs"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
