#!/usr/bin/env bash
# Stress our virtio-fs back-end (smolvm-virtiofsd) to catch a lost request or a
# lost interrupt: a `git status` over a share hung once on a loaded host
# (docs/benchmarks.md, "A virtio-fs hang seen"). Each round, in every VM at once:
# drop the guest's caches, then in parallel GIT_PAR `git status` over a real
# repository, `find | xargs cat` over a FILES-file tree, and a stat storm
# (STAT_THREADS python threads lstat-ing known and missing names), and dentry
# and inode evictions (FORGETs) meanwhile. Odd rounds
# also load the host: one busy loop per host CPU for the round.
#
# A round that has not finished after ROUND_TIMEOUT seconds is a hang if the
# back-end then uses no CPU for 20 s (slow is not hung): then the evidence is
# kept in $EVIDENCE/<time>-<vm>/ (the guest's waiting tasks' kernel stacks,
# interrupt counts and dmesg through `smolvm exec`, which does not use the
# share; the VM's logs; the back-end's thread backtraces and ring state by gdb -p; the
# eventfd counters of QEMU and the back-end from /proc/PID/fdinfo) and the run
# stops with status 2, the VMs left running for a look until $work/release
# exists (KEEP=0 removes them at once).
#
# usage: SMOLVM_HOME=<image home> bench/fs_stress.sh [ROUNDS]   (default 10)
#   NVMS=2        VMs (the first has 1 vCPU as bench/fs.sh's, the others 2)
#   FILES=20000   files in the generated tree
#   GIT_PAR=3  STAT_THREADS=16  ROUND_TIMEOUT=300  EVIDENCE=/tmp/fs-stress-evidence
#   REPO=DIR      a git repository to share instead of golang-1.19-src (as bench/fs.sh)
#   CAPTURE_AT=N  capture s-1's state during round N anyway (to check the capture)
# Not part of the test suite: run by hand (needs gdb for the back-end's state).
set -euo pipefail
rounds=${1:-10}
nvms=${NVMS:-2}
files=${FILES:-20000}
round_timeout=${ROUND_TIMEOUT:-300}
evidence=${EVIDENCE:-/tmp/fs-stress-evidence}
. "$(dirname "$0")/lib.sh"
bench_env fs_stress
# A signal ends the run through the EXIT trap (bench_cleanup): nothing is left behind.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the share: a generated tree and a real repository ----
share="$work/share"
mkdir -p "$share/tree"
bench_file_tree "$share/tree" "$files"
if [ -n "${REPO:-}" ]; then
        git clone -q "$REPO" "$share/repo"
else
        bench_go_repo "$share/repo"
fi
log "share: $(du -sh "$share" | cut -f1), $(find "$share" | wc -l) entries"

# ---- the guest's round ----
cat >"$work/round.sh" <<'EOF'
# sh round.sh GIT_PAR STAT_THREADS: one round over /share; fails if a part failed.
sync
echo 3 > /proc/sys/vm/drop_caches
pids=
i=0
while [ $i -lt "$1" ]; do
        git -c safe.directory='*' -C /share/repo status --porcelain >/dev/null &
        pids="$pids $!"
        i=$((i + 1))
done
(find /share/tree -type f | xargs cat >/dev/null) &
pids="$pids $!"
python3 /root/stat_storm.py /share "$2" &
pids="$pids $!"
# Evict dentries and inodes mid-round: FORGETs on the hiprio queue while
# LOOKUPs for the same names are in flight.
(for k in 1 2 3; do sleep 2; echo 2 > /proc/sys/vm/drop_caches; done) &
pids="$pids $!"
rc=0
for p in $pids; do wait "$p" || rc=$?; done
exit $rc
EOF
cat >"$work/stat_storm.py" <<'EOF'
import os, random, sys, threading
root, n = sys.argv[1], int(sys.argv[2])
names = []
for d in range(200):
    for f in range(0, 100, 7):
        names.append("%s/tree/d%03d/f%03d.txt" % (root, d, f))
        names.append("%s/tree/d%03d/nope%03d" % (root, d, f))
for top in ("src", "src/runtime", "src/net/http", "src/cmd/compile/internal"):
    try:
        names += [os.path.join(root, "repo", top, e) for e in os.listdir(os.path.join(root, "repo", top))]
    except OSError:
        pass
def storm(seed):
    r = random.Random(seed)
    for _ in range(400):
        try:
            os.lstat(r.choice(names))
        except OSError:
            pass
ts = [threading.Thread(target=storm, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
EOF

# ---- evidence of a hang ----
# busy_ns VM: CPU time (ns) the VM's back-end (smolvm-virtiofsd) has used so far.
busy_ns() {
        local p t sum=0
        for p in $(pids_of "$1"); do
                case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in *smolvm-virtiofsd*) ;; *) continue ;; esac
                for t in /proc/"$p"/task/*/schedstat; do
                        sum=$((sum + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0)))
                done
        done
        echo "$sum"
}
# pids_of VM: the supervisor's process tree (the back-end's serving child included).
pids_of() {
        local sup todo=() p
        sup=$(cat "$SMOLVM_HOME/vms/$(cat "$work/id-$1")/supervisor.pid" 2>/dev/null) || return 0
        todo=("$sup")
        while [ ${#todo[@]} -gt 0 ]; do
                p=${todo[0]}
                todo=("${todo[@]:1}")
                echo "$p"
                todo+=($(pgrep -P "$p" || true))
        done
}
capture() { # VM DIR
        local vm=$1 d=$2 p
        mkdir -p "$d"
        log "capturing the state of $vm into $d"
        "$smolvm" exec --timeout 60 "$vm" -- sh -c '
                mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections
                for c in /sys/fs/fuse/connections/*/waiting; do [ -e "$c" ] && echo "$c $(cat "$c")"; done
                for p in /proc/[0-9]*; do
                        s=$(cat $p/stack 2>/dev/null) || continue
                        case "$s" in *fuse*|*virtio*|*d_alloc_parallel*|*wait_on*)
                                echo "== ${p#/proc/} $(cat $p/comm) $(cat $p/wchan)"; echo "$s" ;;
                        esac
                done
                echo "== interrupts"; cat /proc/interrupts
                echo "== dmesg"; dmesg | tail -80' >"$d/guest.txt" 2>&1 || true
        pids_of "$vm" >"$d/pids"
        cp "$SMOLVM_HOME/vms/$(cat "$work/id-$vm")"/*.log "$d/" 2>/dev/null || true
        for p in $(cat "$d/pids"); do
                {
                        echo "== $p $(tr '\0' ' ' <"/proc/$p/cmdline")"
                        for t in /proc/"$p"/task/*; do echo "task ${t##*/} $(cat "$t/comm") $(cat "$t/wchan")"; done
                        for f in /proc/"$p"/fdinfo/*; do
                                grep -q eventfd-count "$f" 2>/dev/null &&
                                        echo "fd ${f##*/} -> $(readlink "/proc/$p/fd/${f##*/}") $(grep eventfd "$f" | tr '\n' ' ')"
                        done
                } >>"$d/host.txt" 2>&1 || true
                case $(tr '\0' ' ' <"/proc/$p/cmdline") in
                *smolvm-virtiofsd*)
                        # Its root is a sandbox tmpfs: give gdb the binary and the host's libraries.
                        timeout 60 gdb -batch -ex 'set sysroot /' -ex 'thread apply all bt full' \
                                "$build/fs/smolvm-virtiofsd" -p "$p" >"$d/gdb-$p.txt" 2>&1 || true
                        # The rings, read through the back-end's own mapping of guest RAM.
                        timeout 60 gdb -batch -ex 'set sysroot /' -x "$here/bench/fs_stress_rings.gdb" \
                                "$build/fs/smolvm-virtiofsd" -p "$p" >"$d/rings-$p.txt" 2>&1 || true ;;
                esac
        done
}

# ---- the VMs ----
for i in $(seq "$nvms"); do
        cpus=2
        [ "$i" = 1 ] && cpus=1
        "$smolvm" create --name "s-$i" --mem 1024 --cpus "$cpus" --mount "$share:/share" >"$work/id-s-$i"
        "$smolvm" cp "$work/round.sh" "s-$i:/root/round.sh" >/dev/null
        "$smolvm" cp "$work/stat_storm.py" "s-$i:/root/stat_storm.py" >/dev/null
        log "s-$i up ($cpus vCPU)"
done

busy=()
stop_busy() { [ ${#busy[@]} -gt 0 ] && kill "${busy[@]}" 2>/dev/null; busy=(); }
trap 'stop_busy; bench_cleanup' EXIT
hung=
for r in $(seq "$rounds"); do
        if [ $((r % 2)) = 1 ]; then
                for _ in $(seq "$(nproc)"); do
                        (exec -a "$work/busy" bash -c 'while :; do :; done') &
                        busy+=($!)
                done
        fi
        t0=$(ms)
        declare -A pid=()
        for i in $(seq "$nvms"); do
                "$smolvm" exec "s-$i" -- sh /root/round.sh "${GIT_PAR:-3}" "${STAT_THREADS:-16}" \
                        >"$work/out-$i" 2>&1 &
                pid[$i]=$!
        done
        deadline=$(($(date +%s) + round_timeout))
        left=$nvms
        declare -A done_=()
        while [ "$left" -gt 0 ]; do
                for i in $(seq "$nvms"); do
                        [ -n "${done_[$i]:-}" ] && continue
                        if ! kill -0 "${pid[$i]}" 2>/dev/null; then
                                wait "${pid[$i]}" || log "round $r s-$i: exit $? $(head -c 300 "$work/out-$i" | tr '\n' ' ')"
                                done_[$i]=$(($(ms) - t0))
                                left=$((left - 1))
                        fi
                done
                [ "$left" -gt 0 ] || break
                if [ "$r" = "${CAPTURE_AT:-0}" ]; then
                        capture s-1 "$evidence/$(date -u +%H%M%S)-s-1-test"
                        CAPTURE_AT=0
                fi
                if [ "$(date +%s)" -ge "$deadline" ]; then
                        for i in $(seq "$nvms"); do
                                [ -n "${done_[$i]:-}" ] && continue
                                # Slow is not hung: hung is a back-end that used no CPU for 20 s
                                # while the guest's round still waits on it.
                                b1=$(busy_ns "s-$i")
                                sleep 20
                                b2=$(busy_ns "s-$i")
                                if kill -0 "${pid[$i]}" 2>/dev/null && [ "$b1" = "$b2" ]; then
                                        hung+=" s-$i"
                                        capture "s-$i" "$evidence/$(date -u +%H%M%S)-s-$i"
                                fi
                        done
                        [ -n "$hung" ] && break
                        deadline=$(($(date +%s) + 60))
                fi
                sleep 1
        done
        stop_busy
        line="round $r ($([ $((r % 2)) = 1 ] && echo loaded || echo unloaded), load $(cut -d' ' -f1 /proc/loadavg)):"
        for i in $(seq "$nvms"); do line+=" s-$i ${done_[$i]:-HUNG} ms"; done
        log "$line"
        # What the back-ends said (a stall they got past, a broken queue): shown, kept.
        for i in $(seq "$nvms"); do
                f="$SMOLVM_HOME/vms/$(cat "$work/id-s-$i")/virtiofsd-0.log"
                if [ -s "$f" ]; then
                        log "s-$i back-end log: $(tail -3 "$f" | tr '\n' ' ')"
                        mkdir -p "$evidence" && cp "$f" "$evidence/backend-s-$i.log"
                fi
        done
        if [ -n "$hung" ]; then
                log "HANG in$hung: evidence in $evidence"
                if [ "${KEEP:-1}" = 1 ]; then
                        log "VMs left running (SMOLVM_HOME=$SMOLVM_HOME): touch $work/release to clean up"
                        while [ ! -e "$work/release" ]; do sleep 5; done
                fi
                exit 2
        fi
        unset pid done_
done
for i in $(seq "$nvms"); do "$smolvm" rm -f "s-$i" >/dev/null 2>&1 || true; done
log "$rounds rounds, no hang"
