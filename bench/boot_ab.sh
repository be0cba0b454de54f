#!/usr/bin/env bash
# Cold boot, two smolvm setups and the peer of bench/boot.sh, interleaved round by
# round (A, B, peer), so host load hits all three alike: on a shared TCG host the
# spread between hyperfine's back-to-back batches hides a 10 % change.
#
# usage: bench/boot_ab.sh ROUNDS     with, for X in A and B:
#   X_BIN (smolvm binary), X_HOME (its SMOLVM_HOME), X_LIBEXEC (its SMOLVM_LIBEXECDIR);
#   SMOLVM_BUILD_DIR as for bench/boot.sh (its poweroff-init).
# The peer's QEMU argv is taken from B (bench/boot.sh does the rewriting).
set -euo pipefail
rounds=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/smolvm-bench-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
# bench/boot.sh with a peer but no hyperfine: keep its peer command.
sed -e '/^hyperfine/,$d' -e "s|^work=.*|work=$work|" -e '/^trap /d' "$here/bench/boot.sh" > "$work/peer-gen.sh"
SMOLVM_HOME=$B_HOME SMOLVM_LIBEXECDIR=$B_LIBEXEC SMOLVM_BIN=$B_BIN bash "$work/peer-gen.sh" >/dev/null
ms() { local s; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; echo $((($(date +%s%N) - s) / 1000000)); }
for ((i = 1; i <= rounds; i++)); do
        a=$(ms env SMOLVM_HOME="$A_HOME" SMOLVM_LIBEXECDIR="$A_LIBEXEC" "$A_BIN" run -- true)
        b=$(ms env SMOLVM_HOME="$B_HOME" SMOLVM_LIBEXECDIR="$B_LIBEXEC" "$B_BIN" run -- true)
        p=$(ms bash "$work/peer.sh")
        echo "round $i: A $a ms, B $b ms, peer $p ms"
        echo "$a $b $p" >> "$work/rows"
done
python3 - "$work/rows" <<'PY'
import statistics as st, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1])]
col = lambda i: [r[i] for r in rows]
for i, n in enumerate(["A", "B", "peer"]):
    print(f"{n}: mean {st.mean(col(i)):.0f} ms, median {st.median(col(i)):.0f} ms")
for i, n in enumerate(["A", "B"]):
    print(f"ratio {n}/peer: mean {st.mean(col(i)) / st.mean(col(2)):.2f}, median {st.median(col(i)) / st.median(col(2)):.2f}")
PY
