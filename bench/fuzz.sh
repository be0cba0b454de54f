#!/usr/bin/env bash
# Every libFuzzer target (the `fuzz` suite of a clang build, -Dfuzz=true) for
# SECONDS each, from a copy of its committed seeds: runs, executions per second,
# crashes and the corpus it grew, per target. A crash does not end a target's
# time: the reproducer is kept and fuzzing resumes with the grown corpus.
# usage: bench/fuzz.sh [SECONDS]   (default 120; build dir: $SMOLVM_FUZZ_BUILD_DIR or build-fuzz)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
secs=${1:-120}
build=${SMOLVM_FUZZ_BUILD_DIR:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzz=true >/dev/null
fi
ninja -C "$build" fuzz >/dev/null

# The targets and their arguments, as registered in meson (tests/fuzz/meson.build):
# run.sh TARGET SEEDS ARTIFACTS -- LIBFUZZER_ARGS...
mapfile -t tests < <(meson introspect --tests "$build" |
        jq -c '.[] | select(any(.suite[]; endswith(":fuzz") or . == "fuzz")) | {name, cmd}')
[ "${#tests[@]}" -gt 0 ] || { echo "fuzz.sh: no fuzz targets in $build (clang, -Dfuzz=true?)" >&2; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
work=$(mktemp -d /tmp/smolvm-bench-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf '%-16s %8s %10s %8s %8s %8s\n' target seconds runs exec/s crashes corpus
total_crashes=0
for t in "${tests[@]}"; do
        name=$(jq -r .name <<<"$t")
        target=$(jq -r '.cmd[1]' <<<"$t")
        [[ $target == /* ]] || target="$here/$build/$target" # meson runs tests from the build dir
        seeds=$(jq -r '.cmd[2]' <<<"$t")
        mapfile -t args < <(jq -r '.cmd[5:][]' <<<"$t")
        art="$here/$build/fuzz-artifacts/bench/$name"
        mkdir -p "$art" "$work/$name"
        cp "$seeds"/* "$work/$name/"
        runs=0 crashes=0
        end=$(($(date +%s) + secs))
        while left=$((end - $(date +%s))) && [ "$left" -gt 0 ]; do
                log="$work/$name.log"
                rc=0
                "$target" -max_total_time="$left" -timeout=60 -rss_limit_mb=2048 -error_exitcode=1 \
                        -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$art/" "${args[@]}" \
                        "$work/$name" >"$log" 2>&1 || rc=$?
                # Executions: the final stats, or the last status line before a crash.
                n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
                [ -n "$n" ] || n=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
                runs=$((runs + ${n:-0}))
                if [ "$rc" -ne 0 ]; then
                        crashes=$((crashes + 1))
                        grep -m 1 -E 'ERROR|invariant|SUMMARY' "$log" | sed "s|^|# $name: |" >&2 || true
                fi
        done
        total_crashes=$((total_crashes + crashes))
        printf '%-16s %8s %10s %8s %8s %8s\n' "$name" "$secs" "$runs" "$((runs / secs))" "$crashes" \
                "$(ls "$work/$name" | wc -l)"
done
[ "$total_crashes" -eq 0 ] || echo "reproducers: $build/fuzz-artifacts/bench/" >&2
exit $((total_crashes > 0))
