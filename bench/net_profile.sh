#!/usr/bin/env bash
# Where the time of our egress download goes (bench/net.sh's "download", ours
# only): one VM per variant (ours with the lane; BENCH_NOLANE=1 adds one booted
# with SMOLVM_NO_LANE=1, cold: see bench/net.sh), the same loopback server, MIB MiB per download, RUNS
# downloads each. Around each download: the host's CPU per thread of QEMU and of
# the supervisor (/proc/PID/task/*/stat), and in the guest (net_prof_guest.py)
# the vCPU's split (user/sys/softirq/idle), PID 1's and the client's CPU and
# context switches, interrupts, and each NIC's packets. With BENCH_STRACE=1 one
# more download per variant runs under `strace -c -f` of the supervisor
# (syscalls per MiB on the host side; strace slows it: its time is not a figure).
#
# usage: bench/net_profile.sh [MIB] [RUNS]     (default 128 MiB, 2 runs)
set -euo pipefail
mib=${1:-128}
runs=${2:-2}
. "$(dirname "$0")/lib.sh"
bench_env netprof
vms=(profours)
[ "${BENCH_NOLANE:-0}" = 1 ] && vms+=(profnolane)
# BENCH_IMAGE_B=DIR (an image directory, e.g. another tree's image home's
# images/default) adds a VM "b" booted from it, with BENCH_LIBEXEC_B (a build's
# dir holding host/supervisor/smolvm-supervisor) as its supervisor if set: an A/B
# of a change in the same run.
[ -n "${BENCH_IMAGE_B:-}" ] && vms+=(profb)
cleanup_vms() {
        local vm
        for vm in "${vms[@]}"; do "$smolvm" rm -f "$vm" >/dev/null 2>&1 || true; done
        bench_cleanup
}
trap cleanup_vms EXIT
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_net_server "$mib"
shape=(--cpus "${BENCH_CPUS:-1}" --mem "${BENCH_MEM:-512}" --boot-timeout 300)
net=(--allow-host bench.test --add-host bench.test:127.0.0.1)
declare -A vmid
for vm in "${vms[@]}"; do
        if [ "$vm" = profnolane ]; then
                vmid[$vm]=$(SMOLVM_NO_LANE=1 "$smolvm" create --name "$vm" --cold "${shape[@]}" "${net[@]}")
        elif [ "$vm" = profb ]; then
                lx=$SMOLVM_LIBEXECDIR
                if [ -n "${BENCH_LIBEXEC_B:-}" ]; then
                        lx=$work/libexec-b
                        mkdir -p "$lx"
                        ln -sf "$BENCH_LIBEXEC_B/host/supervisor/smolvm-supervisor" "$SMOLVM_LIBEXECDIR/smolvm-init" \
                                "$SMOLVM_LIBEXECDIR/smolvm-virtiofsd" "$lx/"
                fi
                vmid[$vm]=$(SMOLVM_LIBEXECDIR=$lx "$smolvm" create --name "$vm" --image "$BENCH_IMAGE_B" "${shape[@]}" "${net[@]}")
        else
                vmid[$vm]=$("$smolvm" create --name "$vm" "${shape[@]}" "${net[@]}")
        fi
        "$smolvm" exec "$vm" -- sh -c 'cat >/tmp/client.py' <"$here/bench/net_client.py"
        "$smolvm" exec "$vm" -- sh -c 'cat >/tmp/prof.py' <"$here/bench/net_prof_guest.py"
        "$smolvm" exec "$vm" -- python3 /tmp/client.py lat bench.test $((port + 1)) 5 >/dev/null
done

# host_ticks SUP_PID: "thread ticks" lines (utime+stime) for the supervisor's and
# its QEMU's threads, named process/thread.
host_ticks() {
        local sup=$1 q
        q=$(pgrep -P "$sup" -f qemu-system | head -1)
        python3 - "$sup" "$q" <<'PY'
import os, sys
for pid, who in ((sys.argv[1], "sup"), (sys.argv[2], "qemu")):
    for t in sorted(os.listdir("/proc/%s/task" % pid)):
        s = open("/proc/%s/task/%s/stat" % (pid, t)).read()
        comm = s[s.index("(") + 1:s.rindex(")")]
        f = s.rsplit(")", 1)[1].split()
        print("%s/%s/%s %d" % (who, comm.replace(" ", "_"), t, int(f[11]) + int(f[12])))
PY
}
hz=$(getconf CLK_TCK)
for i in $(seq "$runs"); do
        for vm in "${vms[@]}"; do
                sup=$(pgrep -f -- "--vm-dir $SMOLVM_HOME/vms/${vmid[$vm]} " | head -1)
                before=$(host_ticks "$sup")
                out=$("$smolvm" exec "$vm" -- python3 /tmp/prof.py bench.test "$port" "$mib")
                after=$(host_ticks "$sup")
                secs=$(echo "$out" | awk '$1 == "seconds" {print $2}')
                echo "== run $i ${vm#prof}: $mib MiB in $secs s ($(echo "$mib / $secs" | bc -l | cut -c1-6) MiB/s)"
                echo "$out" | sed 's/^/   guest /'
                join <(echo "$before" | sort) <(echo "$after" | sort) |
                        awk -v hz="$hz" -v s="$secs" -v m="$mib" '{d = ($3 - $2) * 1000 / hz; if (d > 0) printf "   host %-40s %6d ms (%3.0f%% of the download, %5.1f ms/MiB)\n", $1, d, 100 * d / 1000 / s, d / m}'
        done
done
if [ "${BENCH_STRACE:-0}" = 1 ]; then
        for vm in "${vms[@]}"; do
                sup=$(pgrep -f -- "--vm-dir $SMOLVM_HOME/vms/${vmid[$vm]} " | head -1)
                strace -c -f -p "$sup" -o "$work/strace.$vm" &
                st=$!
                sleep 1
                "$smolvm" exec "$vm" -- python3 /tmp/client.py dl bench.test "$port" "$mib" >/dev/null
                kill -INT $st
                wait $st || true
                echo "== strace -c -f of the supervisor, ${vm#prof}, one $mib MiB download (calls per MiB):"
                awk -v m="$mib" '$4 ~ /^[0-9]+$/ && $NF != "total" {printf "   %-20s %8d calls %8.1f /MiB %s\n", $NF, $4, $4 / m, ($5 ~ /^[0-9]+$/ ? $5 " errors" : "")}' \
                        "$work/strace.$vm" | sort -k2 -nr | head -12
        done
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
