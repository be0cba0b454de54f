#!/usr/bin/env bash
# What a restore costs over QEMU's own floor, and what forks cost in memory,
# measured in one run:
#  - restore: `smolvm create --from-snapshot S` then `exec -- echo` (to the first
#    output) against the raw QEMU floor: the exact argv QEMU got for a restored VM
#    (read from /proc/PID/cmdline) and the same RAM file, with only what needs our
#    supervisor swapped out (console to null, chan/monitor sockets in a scratch
#    dir, a fresh overlay on the snapshot's disk layer), the device state loaded by
#    `migrate-incoming exec:cat STATE`, timed from exec to QEMU reporting
#    "running". No supervisor, no agent, no guest work.
#  - fork: `fork -n N` of a VM to N children answering, against N `create
#    --cold` in a row (boots, not warm starts); then the same workload in every
#    VM (python3 allocating and touching 64 MiB, left running) and the host
#    memory (PSS, /proc/PID/smaps_rollup) of the N children's QEMUs summed
#    against the N cold VMs' QEMUs summed.
#
# usage: bench/snapshot_floor.sh [RUNS] [N]     (defaults 3 and 8; needs python3)
# SMOLVM_HOME (default ~/.local/state/smolvm): only its images are used (bench/lib.sh);
# SMOLVM_BIN: another CLI than the build's.
set -euo pipefail
runs=${1:-3}
nkids=${2:-8}
. "$(dirname "$0")/lib.sh"
bench_env floor

qemu_of() { pgrep -f -- "qemu-system.*$SMOLVM_HOME/vms/$1/" | head -1; }
pss_kb() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }

"$smolvm" create --boot-timeout 300 --name par >/dev/null
"$smolvm" snapshot create --name s par >/dev/null
snapdir=$(ls -d "$SMOLVM_HOME"/snapshots/*/ | head -1)

# The argv of a restored VM's QEMU, one argument per line.
probe=$("$smolvm" create --from-snapshot s)
tr '\0' '\n' <"/proc/$(qemu_of "$probe")/cmdline" >"$work/argv"
"$smolvm" rm -f "$probe" >/dev/null

floor() { # prints ms from exec to "running"
        qemu-img create -q -f qcow2 -F qcow2 -b "${snapdir}disk.qcow2" "$work/floor.qcow2"
        python3 - "$work" "${snapdir}state" "$work/argv" <<'PY'
import json, os, socket, subprocess, sys, time
work, state, argv_file = sys.argv[1], sys.argv[2], sys.argv[3]
argv, skip = [], False
src = [l.rstrip("\n") for l in open(argv_file)]
for i, a in enumerate(src):
    if skip:
        skip = False
        continue
    if a == "-qmp":
        skip = True
        continue
    if a.startswith("socket,id=console,"):
        a = "null,id=console"
    elif a.startswith("socket,id=chan,"):
        a = "socket,id=chan,path=%s/chan.sock,server=on,wait=off" % work
    elif a.startswith("socket,id=restore,"):
        a = "socket,id=restore,path=%s/mon.sock,server=on,wait=off" % work
    elif a.startswith("stream,id=lane,"):
        a = "stream,id=lane,server=on,addr.type=unix,addr.path=%s/lane.sock" % work
    elif a.startswith("id=root,file="):
        a = ",".join(["file=%s/floor.qcow2" % work if p.startswith("file=") else p for p in a.split(",")])
    argv.append(a)
t0 = time.monotonic()
p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(work + "/floor.log", "w"))
try:
    s = socket.socket(socket.AF_UNIX)
    while True:
        try:
            s.connect(work + "/mon.sock")
            break
        except OSError:
            if p.poll() is not None or time.monotonic() - t0 > 120:
                sys.exit("floor: QEMU did not open its monitor (see %s/floor.log)" % work)
            time.sleep(0.001)
    f = s.makefile("rw")
    def cmd(name, args=None):
        f.write(json.dumps({"execute": name, **({"arguments": args} if args else {})}) + "\n")
        f.flush()
        while True:
            m = json.loads(f.readline())
            if "return" in m or "error" in m:
                if "error" in m:
                    sys.exit("floor: %s: %s" % (name, m["error"]))
                return m["return"]
    f.readline()  # greeting
    cmd("qmp_capabilities")
    cmd("migrate-set-capabilities", {"capabilities": [{"capability": "x-ignore-shared", "state": True}]})
    # As the supervisor does (host/supervisor/qemu.c): no self-announce, and
    # the lane's stream has its client before the state loads (QEMU 7.2
    # crashes delivering a packet to a stream nobody connected).
    cmd("migrate-set-parameters", {"announce-rounds": 0})
    lane = None
    if any(a.startswith("stream,id=lane,") for a in argv):
        lane = socket.socket(socket.AF_UNIX)
        while lane.connect_ex(work + "/lane.sock") != 0:
            if time.monotonic() - t0 > 120:
                sys.exit("floor: QEMU did not open the lane's socket (see %s/floor.log)" % work)
            time.sleep(0.001)
    cmd("migrate-incoming", {"uri": "exec:cat " + state})
    while cmd("query-status")["status"] != "running":
        if time.monotonic() - t0 > 120:
            sys.exit("floor: QEMU never ran (see %s/floor.log)" % work)
        time.sleep(0.001)
    print(int((time.monotonic() - t0) * 1000))
finally:
    p.kill()
    p.wait()
PY
        rm -f "$work/floor.qcow2"
}

fl=(); ours=()
for _ in $(seq "$runs"); do
        v=$(floor) || { echo "the floor run failed" >&2; exit 1; }
        fl+=("$v")
        t=$(ms); id=$("$smolvm" create --from-snapshot s); "$smolvm" exec "$id" -- echo hi >/dev/null
        ours+=($(( $(ms) - t )))
        "$smolvm" rm -f "$id" >/dev/null
done
fl_med=$(printf '%s\n' "${fl[@]}" | median)
ours_med=$(printf '%s\n' "${ours[@]}" | median)

# Fork against cold creates, then memory under the same workload.
work_cmd='setsid python3 -c "import time; b = bytearray(64 << 20); b[::4096] = b\"x\" * (len(b) // 4096); time.sleep(3600)" </dev/null >/dev/null 2>&1 &'
t=$(ms); "$smolvm" fork -n "$nkids" par >"$work/kids"; "$smolvm" exec "$(tail -1 "$work/kids")" -- true
fork_ms=$(( $(ms) - t ))
t=$(ms); for _ in $(seq "$nkids"); do "$smolvm" create --cold --boot-timeout 300 >>"$work/cold"; done
cold_ms=$(( $(ms) - t ))
for id in $(cat "$work/kids" "$work/cold"); do "$smolvm" exec "$id" -- sh -c "$work_cmd"; done
sleep 5
kids_pss=0; cold_pss=0
for id in $(cat "$work/kids"); do kids_pss=$((kids_pss + $(pss_kb "$(qemu_of "$id")"))); done
for id in $(cat "$work/cold"); do cold_pss=$((cold_pss + $(pss_kb "$(qemu_of "$id")"))); done
"$smolvm" rm -f $(cat "$work/kids" "$work/cold") par >/dev/null

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus, runs $runs"
echo "raw QEMU restore floor:             ${fl[*]} ms (median $fl_med)"
echo "create --from-snapshot + exec echo: ${ours[*]} ms (median $ours_med)"
echo "ratio ours / floor:                 $(awk -v a="$ours_med" -v b="$fl_med" 'BEGIN {printf "%.2f", a / b}')"
echo "fork -n $nkids to the last child answering: $fork_ms ms; $nkids cold creates: $cold_ms ms"
echo "QEMU PSS, $nkids children: $((kids_pss / 1024)) MiB; $nkids cold VMs: $((cold_pss / 1024)) MiB" \
        "(ratio $(awk -v a="$kids_pss" -v b="$cold_pss" 'BEGIN {printf "%.2f", a / b}'))"
