#!/usr/bin/env bash
# smolvm run end to end: each case boots a real microVM (TCG here).
. "$(dirname "$0")/lib.sh"

# stdout and stderr travel separately and intact; the exit code is the command's.
"$SMOLVM" run -- sh -c 'echo out1; echo err1 >&2; echo out2; exit 3' >"$T/out" 2>"$T/err"; rc=$?
check "exit code 3 passed through" test "$rc" -eq 3
check "stdout has exactly the command's stdout" test "$(cat "$T/out")" = "$(printf 'out1\nout2')"
check "stderr carries the command's stderr" grep -qx err1 "$T/err"
check "stderr has no stdout lines" sh -c "! grep -q out1 '$T/err'"

for code in 0 1 42; do
        "$SMOLVM" run -- sh -c "exit $code" >/dev/null 2>&1; rc=$?
        check "exit code $code" test "$rc" -eq "$code"
done

"$SMOLVM" run -- sh -c 'kill -KILL $$' >/dev/null 2>&1; rc=$?
check "death by SIGKILL gives 137" test "$rc" -eq 137

out=$("$SMOLVM" run --env FOO=bar --env 'SPACED=a b' --workdir /tmp -- sh -c 'echo "$FOO|$SPACED"; pwd' 2>"$T/err"); rc=$?
check "env and workdir applied" test "$rc:$out" = "$(printf '0:bar|a b\n/tmp')"

out=$(printf 'data\nmore' | "$SMOLVM" run -- cat 2>"$T/err"); rc=$?
check "stdin round trip" test "$rc:$out" = "$(printf '0:data\nmore')"

# 10 MiB of output arrives intact.
want=$(yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 10485760 | sha256sum | cut -d' ' -f1)
got=$("$SMOLVM" run -- sh -c 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 10485760' 2>"$T/err" | sha256sum | cut -d' ' -f1)
check "10 MiB of stdout intact (sha256)" test "$got" = "$want"

# --json: one object with the documented fields.
"$SMOLVM" run --json -- sh -c 'echo hi; echo ho >&2; exit 5' >"$T/json" 2>"$T/err"; rc=$?
check "--json: exit status is the command's" test "$rc" -eq 5
check "--json: envelope" jq_true '.ok == true and .command == "run" and .exit_code == 5 and .error == null' "$T/json"
check "--json: fields in data" jq_true '.data.exit_code == 5 and (.data.signal == null or .data.signal == 0)
        and .data.timed_out == false and .data.stdout == "hi\n" and .data.stderr == "ho\n"
        and (.data.duration_ms | type) == "number" and (.data.boot_ms | type) == "number" and .data.boot_ms > 0' "$T/json"

# Timeout: the whole process group dies, 124, within a few seconds of the deadline.
start=$(date +%s)
"$SMOLVM" run --timeout 2 -- sh -c 'sleep 1000 & sleep 1000' >/dev/null 2>"$T/err"; rc=$?
took=$(( $(date +%s) - start ))
check "timeout gives 124" test "$rc" -eq 124
check "timeout returns within boot + a few seconds (took ${took}s)" test "$took" -lt 60
"$SMOLVM" run --json --timeout 1 -- sleep 30 >"$T/json" 2>/dev/null
check "--json reports timed_out" jq_true '.data.timed_out == true and .exit_code == 124' "$T/json"

assert_no_leftovers "after all runs"
finish
