#!/usr/bin/env bash
# `vm.run("true")` from Python vs the C library vs the CLI, same VM, same run:
# N calls each, p50/p99 (target: Python <= 1.1x the C library). Two passes in
# opposite orders, so a load change during the run shows rather than biases.
#  - C:      bench/lib_exec.c (smolvm_run of argv ["true"])
#  - Python: the build tree's package (build/python): vm.run(["true"]), the same
#            request, and vm.run("true"), the seeds' form (/bin/sh -c true)
#  - CLI:    `smolvm exec ID -- true`, fork+exec of the CLI included
# usage: bench/python.sh [N]     (default 200; SMOLVM_HOME: where the images are,
#        SMOLVM_LIBEXECDIR: default the build's own supervisor and init)
set -euo pipefail
n=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${SMOLVM_BUILD_DIR:-$here/build}
smolvm=${SMOLVM_BIN:-$build/host/smolvm}
python=${SMOLVM_PYTHON:-python3}
work=$(mktemp -d /tmp/smolvm-bench-py.XXXXXX)
real_home=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
export SMOLVM_HOME="$work/home" PYTHONPATH="$build/python"
mkdir -p "$SMOLVM_HOME"
ln -s "$real_home/images" "$SMOLVM_HOME/images"
# The build's supervisor, init and virtiofsd unless told otherwise (as the tests do).
if [ -z "${SMOLVM_LIBEXECDIR:-}" ]; then
        export SMOLVM_LIBEXECDIR="$work/libexec"
        mkdir -p "$SMOLVM_LIBEXECDIR"
        ln -s "$build/host/supervisor/smolvm-supervisor" "$build/guest-init/smolvm-init" \
                "$build/fs/smolvm-virtiofsd" "$SMOLVM_LIBEXECDIR/"
fi
id=
trap '[ -n "$id" ] && "$smolvm" rm -f "$id" >/dev/null 2>&1; rm -rf "$work"' EXIT

id=$("$smolvm" create --name bench-py)
"$smolvm" exec "$id" -- true

py_bench() {
        "$python" - "$id" "$n" "$1" <<'EOF'
import sys, time
from smolvm import SmolVM
vm = SmolVM.from_id(sys.argv[1])
cmd = ["true"] if sys.argv[3] == "argv" else "true"
lat = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter_ns()
    r = vm.run(cmd)
    lat.append((time.perf_counter_ns() - t0) // 1000)
    assert r.exit_code == 0
lat.sort()
print(lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)])
EOF
}

cli_bench() {
        "$python" - "$smolvm" "$id" "$n" <<'EOF'
import subprocess, sys, time
lat = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter_ns()
    subprocess.run([sys.argv[1], "exec", sys.argv[2], "--", "true"], check=True)
    lat.append((time.perf_counter_ns() - t0) // 1000)
lat.sort()
print(lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)])
EOF
}

c_bench() { "$build/bench/lib_exec" "$id" "$n" | jq -r '"\(.lib_exec_p50_us) \(.lib_exec_p99_us)"'; }

declare -A p50 p99
one() {
        local r
        r=$("${@:2}")
        p50[$1]="${p50[$1]:-} ${r% *}" p99[$1]="${p99[$1]:-} ${r#* }"
        echo "$1: p50 ${r% *} us, p99 ${r#* } us"
}
echo "== $n x true, pass 1"
one c c_bench; one py_argv py_bench argv; one py_shell py_bench shell; one cli cli_bench
echo "== $n x true, pass 2 (reverse order)"
one cli cli_bench; one py_shell py_bench shell; one py_argv py_bench argv; one c c_bench
for k in py_argv py_shell cli; do
        read -r a b <<<"${p50[$k]}"
        read -r ca cb <<<"${p50[c]}"
        echo "ratio_p50 $k/c: pass1 $(awk "BEGIN{printf \"%.2f\", $a/$ca}") pass2 $(awk "BEGIN{printf \"%.2f\", $b/$cb}")"
done
