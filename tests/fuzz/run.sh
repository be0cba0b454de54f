#!/bin/sh
# run.sh TARGET SEEDS ARTIFACTS [SECONDS] [-- LIBFUZZER_ARGS...]
# One libFuzzer target for a fixed time (default $SMOLVM_FUZZ_SECONDS or 15)
# from its committed seeds, copied so the committed corpus changes only by hand.
# Fails on a crash, a sanitizer report, a leak or a stuck input; the reproducer
# is kept in ARTIFACTS/ (add it to tests/fuzz/corpus/<target>/ with the fix).
set -eu
target=$1 seeds=$2 art=$3
shift 3
secs=${SMOLVM_FUZZ_SECONDS:-15}
if [ $# -gt 0 ] && [ "$1" != "--" ]; then secs=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
name=$(basename "$target")
work=$(mktemp -d "/tmp/smolvm-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$art"
cp "$seeds"/* "$work/"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# libFuzzer's default error exit code is 77, which meson would count as a skip.
set +e
"$target" -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 \
        -print_final_stats=1 -artifact_prefix="$art/" "$@" "$work" >"$work.log" 2>&1
rc=$?
set -e
# The closing stats, or the report of what failed (it can be long: its start and end).
if [ "$rc" -eq 0 ]; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+.*DONE)' "$work.log" || true
else
        head -n 60 "$work.log"
        echo "..."
        tail -n 20 "$work.log"
        echo "$name: failed (exit $rc); reproducer in $art"
fi
rm -f "$work.log"
exit "$rc"
