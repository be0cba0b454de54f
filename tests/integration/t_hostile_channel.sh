#!/usr/bin/env bash
# A compromised guest on the channel (docs/protocol.md "Hostile peer"). Guest root
# takes the virtio-serial channel fd from PID 1 (pidfd_getfd, hostile_flood.py) and
# writes into it:
#  - well-formed floods on VM a: a REQUEST storm, CREDIT_REQUEST floods (one with the
#    agent frozen under ptrace, so the host's answers back up), and RW far beyond
#    the credit on one stream: the supervisor keeps serving; that stream, and only
#    it, is reset;
#  - a header with len above 65536 (VM a), random bytes (VM c): the channel breaks,
#    the supervisor logs it, stops the VM cleanly (state error, no process left).
# Throughout: each supervisor's peak RSS (VmHWM) stays under HWM_MAX_KIB (docs/
# protocol.md: the mux's buffers are bounded), and VM b's execs keep working.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
# An idle supervisor peaks at ~2 MiB; the mux's bounds (about 1 MiB of data and 1 MiB
# of control packets queued, a 128 KiB input buffer, 256 KiB per stream) add at most
# a few MiB with the handful of streams here.
HWM_MAX_KIB=8192

vm_dir() { "$SMOLVM" info "$1" --json | jq -r .data.dir; }
sup_pid() { "$SMOLVM" info "$1" --json | jq -r .data.supervisor_pid; }
state() { "$SMOLVM" info "$1" --json | jq -r .data.state; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# gone PID DIR: the supervisor has exited and no process names the VM dir (QEMU).
gone() { ! kill -0 "$1" 2>/dev/null && ! pgrep -f -- "$2/" >/dev/null; }

# 1. Three VMs at once: a and c are attacked, b is the bystander.
for v in a b c; do
        "$SMOLVM" create --name "$v" >/dev/null 2>"$T/err-$v" &
        eval "create_$v=$!"
done
for v in a b c; do
        eval "wait \$create_$v"
        rc=$?
        cp "$T/err-$v" "$T/err"
        check_or_bail "create $v" "$rc"
done
dir_a=$(vm_dir a) dir_c=$(vm_dir c)
sup_a=$(sup_pid a) sup_c=$(sup_pid c)
for v in a c; do
        check "flood script copied into $v" "$SMOLVM" cp "$here/hostile_flood.py" "$v:/tmp/flood.py"
done

# 2. The bystander: execs on b in a loop until told to stop; counts in $T/b-count.
(
        n=0 f=0
        while [ ! -e "$T/stop-b" ]; do
                if out=$("$SMOLVM" exec b -- echo ok 2>&1) && [ "$out" = ok ]; then
                        n=$((n + 1))
                else
                        f=$((f + 1))
                        printf '%s\n' "$out" >>"$T/b-failures"
                fi
                echo "$n $f" >"$T/b-count.tmp" && mv "$T/b-count.tmp" "$T/b-count"
        done
) &
bystander=$!
b_ok() { [ -s "$T/b-count" ] && cut -d' ' -f1 "$T/b-count" || echo 0; }
wait_for '[ "$(b_ok)" -ge 1 ]' 60
b_before=$(b_ok)

# 3. A victim stream on a: a raw hybrid-vsock client (python) connected to the agent's
# port that sends nothing and reads only when told; it reports what it got.
python3 - "$dir_a/vsock.sock" "$T/victim-read" >"$T/victim.out" 2>&1 <<'EOF' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 1024\n")
line = s.makefile("rb", buffering=0).readline()  # unbuffered: byte by byte, nothing after it
if not line.startswith(b"OK "):
    sys.exit("refused: %r" % line)
print(line.split()[1].decode(), flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
s.settimeout(20)
got = bytearray()
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    end = "eof"
except socket.timeout:
    end = "timeout"
print("%s %d bytes, %s" % (end, len(got), "all 0xa5" if got and got.count(0xa5) == len(got) else "other bytes"))
EOF
victim=$!
wait_for '[ -s "$T/victim.out" ]' 10
vport=$(head -n 1 "$T/victim.out")
check "victim stream connected (host port $vport)" test "$vport" -ge 49152

# 4. Well-formed floods: the channel must survive them.
"$SMOLVM" exec a -- python3 /tmp/flood.py wellformed "$vport" >"$T/flood-a.out" 2>&1
rc=$?
sed 's/^/# /' "$T/flood-a.out"
check "well-formed flood ran to its end (rc $rc)" grep -q '^wellformed: [0-9]* bytes sent$' "$T/flood-a.out"
touch "$T/victim-read"
wait "$victim"
diag "victim: $(tail -n 1 "$T/victim.out")"
# The RW beyond its credit reset it: EOF after the flood's own bytes, not the agent's
# answer to a missing request (an ERROR frame after 30 s).
check "the stream that broke its credit was reset" grep -q '^eof [1-9][0-9]* bytes, all 0xa5$' "$T/victim.out"
check "a still serves after the floods" test "$("$SMOLVM" exec a -- echo alive 2>&1)" = alive
check "a still running" test "$(state a)" = running
hwm=$(hwm_kib "$sup_a")
diag "a's supervisor VmHWM after the floods: $hwm KiB"
check "a's supervisor peak RSS ${hwm} KiB <= $HWM_MAX_KIB KiB" test "${hwm:-999999}" -le "$HWM_MAX_KIB"
check "a's channel did not break" bash -c "! grep -q 'channel broken' '$dir_a/supervisor.log'"
b_after=$(b_ok)
check "b's execs went on during the floods ($b_before -> $b_after)" test "$b_after" -gt "$b_before"

# 5. A len above the maximum: framing is lost, the VM is stopped.
"$SMOLVM" exec a -- python3 /tmp/flood.py oversize >"$T/flood-a2.out" 2>&1
check "exec over a broken channel fails" test $? -ne 0
wait_for '[ "$(state a)" = error ]' 60
check "a is in state error" test "$(state a)" = error
check "a's supervisor logged the broken channel" \
        grep -q 'guest channel broken: packet length above the maximum' "$dir_a/supervisor.log"
check "a's supervisor stopped the VM itself" grep -q 'the guest channel broke .*: stopping the VM' "$dir_a/supervisor.log"
check "smolvm logs a says why" bash -c "'$SMOLVM' logs a 2>&1 | grep -q 'error: the guest channel broke .*: the VM was stopped'"
wait_for 'gone "$sup_a" "$dir_a"' 10
check "a's supervisor and QEMU are gone" gone "$sup_a" "$dir_a"

# 6. Random bytes on c; its supervisor's peak RSS is read until it exits.
( while kill -0 "$sup_c" 2>/dev/null; do h=$(hwm_kib "$sup_c") && [ -n "$h" ] && echo "$h" >"$T/hwm-c"; sleep 0.1; done ) &
sampler=$!
b_before=$(b_ok)
"$SMOLVM" exec c -- python3 /tmp/flood.py garbage >"$T/flood-c.out" 2>&1
check "exec flooding garbage fails when the VM stops" test $? -ne 0
wait_for '[ "$(state c)" = error ]' 60
check "c is in state error" test "$(state c)" = error
check "c's supervisor logged the broken channel" grep -q 'guest channel broken: ' "$dir_c/supervisor.log"
check "c's supervisor stopped the VM itself" grep -q 'the guest channel broke .*: stopping the VM' "$dir_c/supervisor.log"
wait "$sampler"
hwm=$(cat "$T/hwm-c" 2>/dev/null)
check "c's supervisor peak RSS ${hwm} KiB <= $HWM_MAX_KIB KiB" test "${hwm:-999999}" -le "$HWM_MAX_KIB"
wait_for 'gone "$sup_c" "$dir_c"' 10
check "c's supervisor and QEMU are gone" gone "$sup_c" "$dir_c"

# 7. The bystander never failed and is still fine.
wait_for '[ "$(b_ok)" -gt '"$b_before"' ]' 30
touch "$T/stop-b"
wait "$bystander"
read -r b_n b_f <"$T/b-count"
check "b: $b_n execs during the attacks, $b_f failed" test "$b_f" -eq 0 -a "$b_n" -ge 2
[ -s "$T/b-failures" ] && diag "b failures: $(head -n 3 "$T/b-failures")"
check "b still serves" test "$("$SMOLVM" exec b -- echo fine 2>&1)" = fine
check "b still running" test "$(state b)" = running

for v in a b c; do
        "$SMOLVM" rm -f "$v" >/dev/null 2>"$T/err"
        check "rm -f $v" test $? -eq 0
done
assert_no_leftovers "after rm -f"
finish
