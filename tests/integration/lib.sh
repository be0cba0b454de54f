# Shared by the integration tests (sourced). Each test gets a private work dir and
# a private $SMOLVM_HOME (sharing only the read-only image cache), a TAP plan, and
# a cleanup that kills every process it started and fails the test if a VM, a
# supervisor or a VM directory is left behind.
set -u

: "${SMOLVM_BUILD_DIR:?run through meson test (sets SMOLVM_BUILD_DIR)}"
# The images the tests boot: $SMOLVM_REAL_HOME, else root's own store, else the system
# store scripts/setup.sh builds (/var/lib/smolvm).
real_home=${SMOLVM_REAL_HOME:-${HOME}/.local/state/smolvm}
if [ -z "${SMOLVM_REAL_HOME:-}" ] && [ ! -e "$real_home/images/default" ]; then
        real_home=${SMOLVM_SYSTEM_STORE:-/var/lib/smolvm}
fi
[ -e "$real_home/images/default" ] || { echo "1..0 # SKIP no default image: run scripts/setup.sh"; exit 0; }  # meson reads TAP skips, not exit 77

T=$(mktemp -d /tmp/smolvm-test.XXXXXX)
export SMOLVM_HOME="$T/home"
# Hermetic: the tests' images are $SMOLVM_HOME's, never the host's system store.
export SMOLVM_SYSTEM_STORE="$T/no-system-store"
mkdir -p "$SMOLVM_HOME"
ln -s "$real_home/images" "$SMOLVM_HOME/images"
export SMOLVM_LIBEXECDIR="$T/libexec"
mkdir -p "$SMOLVM_LIBEXECDIR"
ln -s "$SMOLVM_BUILD_DIR/host/supervisor/smolvm-supervisor" "$SMOLVM_LIBEXECDIR/smolvm-supervisor"
ln -s "$SMOLVM_BUILD_DIR/guest-init/smolvm-init" "$SMOLVM_LIBEXECDIR/smolvm-init"
ln -s "$SMOLVM_BUILD_DIR/fs/smolvm-virtiofsd" "$SMOLVM_LIBEXECDIR/smolvm-virtiofsd"
SMOLVM="$SMOLVM_BUILD_DIR/host/smolvm"
# Cold boots unless a test asks for warm starts (t_warm unsets it): each test
# has its own home, so a warm default would build one template per test (a cold
# boot and a snapshot), and many tests look at what a boot does (console, timing).
# SMOLVM_COLD=0 runs the suite warm.
export SMOLVM_COLD=${SMOLVM_COLD-1}
# No spares (a QEMU parked for the next warm start, living on after the run
# for SMOLVM_SPARE_IDLE_MS): every test must end with nothing of its own left,
# and the warm tests look at one restore at a time. t_spare turns them on.
export SMOLVM_SPARE_IDLE_MS=${SMOLVM_SPARE_IDLE_MS-0}

n_test=0
n_fail=0
# A TAP line is one short line: control characters in a description (captured
# output) become spaces, and past 1000 characters it is cut (meson splits a line
# over 64 KiB in two, and the second half is an unknown TAP line).
tap_desc() {
        local d=${1//[[:cntrl:]]/ }
        [ "${#d}" -gt 1000 ] && d="${d:0:1000}... (cut: ${#d} characters)"
        printf '%s' "$d"
}
ok() { n_test=$((n_test + 1)); echo "ok $n_test - $(tap_desc "$*")"; }
not_ok() { n_test=$((n_test + 1)); n_fail=$((n_fail + 1)); echo "not ok $n_test - $(tap_desc "$*")"; }
# jq -e as a check: its printed result would be an unknown TAP line.
# The input must be exactly one JSON document (jq -e alone passes on empty input,
# so a check on an envelope that was never printed could not fail).
# Usage: jq_true [--arg N V | --argjson N V]... FILTER [FILE...]
jq_true() {
        local opts=()
        while [ $# -gt 0 ]; do
                case $1 in
                --arg | --argjson) opts+=("$1" "$2" "$3"); shift 3 ;;
                -*) opts+=("$1"); shift ;;
                *) break ;;
                esac
        done
        local filter=$1
        shift
        jq -e -s "${opts[@]}" "length == 1 and (.[0] | $filter)" "$@" >/dev/null
}
# check DESCRIPTION COMMAND...: one TAP line from a command's success.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# diag LINE...: TAP comments; every line of a multi-line argument gets its '#'.
diag() { local a; for a in "$@"; do printf '# %s\n' "${a//$'\n'/$'\n'# }"; done; }
# check_or_bail DESCRIPTION RC: one TAP line for a step that every later check
# needs (a create): if RC is not 0, its stderr ($T/err) is shown and the test ends.
check_or_bail() {
        check "$1" test "$2" -eq 0
        [ "$2" -eq 0 ] && return 0
        sed 's/^/# /' "$T/err"
        finish
        exit 1
}

# Processes of this test: anything whose command line names our private home.
our_pids() { pgrep -f -- "$T/" || true; }

# No VM of this test may be left: no qemu, no supervisor, no VM directory.
assert_no_leftovers() {
        local what=$1 pids dirs
        pids=$(our_pids)
        dirs=$(ls -A "$SMOLVM_HOME/vms" 2>/dev/null || true)
        if [ -z "$pids" ] && [ -z "$dirs" ]; then
                ok "$what: no process or VM dir left"
        else
                not_ok "$what: no process or VM dir left"
                [ -n "$pids" ] && ps -o pid,args -p "$(echo $pids | tr ' ' ,)" | sed 's/^/# /'
                [ -n "$dirs" ] && diag "left in vms/: $dirs"
        fi
}

cleanup() {
        local pids
        pids=$(our_pids)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
        # Our own tmpfs mounts (disk-full test), then the work dir.
        grep -o " $T/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
        rm -rf "$T"
}
trap cleanup EXIT
# meson sends SIGTERM on timeout: clean up then too (the EXIT trap runs on exit).
trap "exit 143" TERM INT

# A full disk for snapshots: $SMOLVM_HOME/snapshots moved onto a 16 MiB tmpfs
# ($T/small/snapshots) until snapshots_back. Fails when no tmpfs can be mounted
# (not root?). The cleanup unmounts it if the test ends in between.
snapshots_on_small_fs() {
        mkdir -p "$T/small"
        mount -t tmpfs -o size=16m tmpfs "$T/small" 2>/dev/null || return 1
        mv "$SMOLVM_HOME/snapshots" "$T/snaps-real"
        mkdir "$T/small/snapshots" && ln -s "$T/small/snapshots" "$SMOLVM_HOME/snapshots"
}
snapshots_back() {
        rm "$SMOLVM_HOME/snapshots"
        mv "$T/snaps-real" "$SMOLVM_HOME/snapshots"
        umount -l "$T/small"
}

# Wait (up to $2 s) until a condition command succeeds.
wait_for() {
        local cond=$1 secs=$2 i=0
        while ! eval "$cond"; do
                i=$((i + 1))
                [ "$i" -gt $((secs * 10)) ] && return 1
                sleep 0.1
        done
}

# Wait up to $2 seconds of wall time until the condition $1 (evaluated) holds
# (wait_for counts its own sleeps: right only for a condition that costs nothing).
wait_secs() {
        local end=$(($(date +%s) + $2))
        until eval "$1"; do
                [ "$(date +%s)" -ge "$end" ] && return 1
                sleep 0.2
        done
}

# How many processes in VM $1 match the extended regex $2 (anchor it or use the
# [x] trick: the sh -c running pgrep must not match). "err" if the exec failed.
guest_count() {
        local n
        n=$("$SMOLVM" exec "$1" -- sh -c "pgrep -f '$2' | wc -l" 2>>"$T/guest_count.err") || { echo err; return; }
        echo "$n"
}

# after_ready CMD...: runs CMD; prints its exit code and the ms from "ready" on
# its stdout (the command's last words before it exits) to its end (-1: never).
after_ready() {
        [ -f "$T/after_ready.py" ] || cat >"$T/after_ready.py" <<'PYEOF'
import subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
tail, t_ready = b"", None
while True:
    d = p.stdout.read1(65536)
    if not d:
        break
    w = tail + d
    if t_ready is None and b"ready" in w:
        t_ready = time.monotonic()
    tail = w[-8:]
rc = p.wait()
print(rc, -1 if t_ready is None else int((time.monotonic() - t_ready) * 1000))
PYEOF
        python3 "$T/after_ready.py" "$@"
}

finish() {
        echo "1..$n_test"
        [ "$n_fail" -eq 0 ]
}
