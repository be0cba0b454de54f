#!/usr/bin/env bash
# smolvm cp / env / doctor through the CLI, against one persistent VM (one boot).
. "$(dirname "$0")/lib.sh"

# doctor needs no VM. On a nested PVM host it must say so and pick TCG.
"$SMOLVM" doctor --json >"$T/doctor.json" 2>"$T/err"; rc=$?
check "doctor --json: exit 0 (no failed check)" test "$rc" -eq 0
check "doctor --json: envelope with checks" jq_true '.ok == true and .command == "doctor" and .exit_code == 0
        and (.data.checks | length) >= 8 and all(.data.checks[]; .status == "pass" or .status == "warn")' "$T/doctor.json"
if [ -e /sys/module/kvm_pvm ]; then
        check "doctor: nested PVM detected, TCG chosen" jq_true '.data.nested_pvm == true and .data.accel == "tcg"
                and .data.kvm_usable == false
                and (.data.checks[] | select(.name == "kvm") | .status == "warn" and (.message | test("PVM")))' "$T/doctor.json"
else
        check "doctor: accel matches /dev/kvm usability" jq_true '(.data.accel == "kvm") == .data.kvm_usable' "$T/doctor.json"
fi
check "doctor: QEMU version and microvm" jq_true '(.data.qemu_version | test("^[0-9]+\\.[0-9]+"))
        and (.data.checks[] | select(.name == "qemu-microvm") | .status == "pass")' "$T/doctor.json"
SMOLVM_HOME="$T/empty-home" "$SMOLVM" doctor >"$T/doctor.txt" 2>&1; rc=$?
check "doctor without an image: exit 1 and the fix named" sh -c "[ $rc -eq 1 ] && grep -q '^fail  image' '$T/doctor.txt' && grep -q 'smolvm setup' '$T/doctor.txt'"

id=$("$SMOLVM" create --name files 2>"$T/err"); rc=$?
check "create a VM" test "$rc" -eq 0 -a -n "$id"
if [ "$rc" -ne 0 ]; then sed 's/^/# /' "$T/err"; finish; exit; fi

# cp to a guest path whose parents do not exist; modes kept; back again.
head -c 3145728 /dev/urandom >"$T/payload"; chmod 751 "$T/payload"
"$SMOLVM" cp "$T/payload" files:/opt/new/deeper/payload 2>"$T/err"; rc=$?
check "cp to a guest path whose parent does not exist" test "$rc" -eq 0
want=$(sha256sum <"$T/payload" | cut -d' ' -f1)
got=$("$SMOLVM" exec files -- sh -c 'sha256sum </opt/new/deeper/payload | cut -d" " -f1; stat -c %a /opt/new/deeper/payload')
check "guest copy: same sha256 and mode 751" test "$got" = "$(printf '%s\n751' "$want")"
"$SMOLVM" cp "$T/payload" files:/opt/new/ 2>"$T/err"
check "cp into a guest dir (trailing /) keeps the name" "$SMOLVM" exec files -- test -f /opt/new/payload
"$SMOLVM" cp "$T/payload" files:/opt 2>"$T/err"
check "cp to an existing guest dir copies into it" "$SMOLVM" exec files -- test -f /opt/payload
mkdir "$T/dl"
"$SMOLVM" cp files:/opt/new "$T/dl" 2>"$T/err"; rc=$?
check "cp a guest directory into an existing host dir" test "$rc" -eq 0 -a -f "$T/dl/new/deeper/payload"
check "downloaded file: same bytes and mode" sh -c "cmp -s '$T/payload' '$T/dl/new/deeper/payload' && [ \$(stat -c %a '$T/dl/new/deeper/payload') = 751 ]"
"$SMOLVM" cp --json files:/etc/hostname "$T/dl/hn" >"$T/cp.json" 2>"$T/err"
check "cp --json: envelope" jq_true '.ok == true and .command == "cp" and .data.direction == "download"
        and .data.destination != null' "$T/cp.json"
"$SMOLVM" cp --json files:/nope "$T/dl/x" >"$T/cp.json" 2>"$T/err"; rc=$?
check "cp of a missing guest file: 125, not_found" sh -c "[ $rc -eq 125 ] && jq -e '.ok == false and .error.code == \"not_found\"' '$T/cp.json' >/dev/null"
"$SMOLVM" cp --json "$T/payload" nosuchvm:/x >"$T/cp.json" 2>"$T/err"; rc=$?
check "cp to an unknown VM: not_found" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"not_found\"' '$T/cp.json' >/dev/null"
"$SMOLVM" cp "$T/a" "$T/b" 2>"$T/err"; rc=$?
check "cp between two host paths is a usage error" sh -c "[ $rc -eq 125 ] && grep -q 'ID:/path' '$T/err'"

# Persistent environment: later execs and login shells; never on a command line.
"$SMOLVM" env set files GREETING='hello world' 2>"$T/err"
SECRET_FROM_ENV=s3cr3t-9d2 "$SMOLVM" env set files SECRET_FROM_ENV 2>>"$T/err"; rc=$?
check "env set (K=V and a bare K from the environment)" test "$rc" -eq 0
check "a later exec sees both" test "$("$SMOLVM" exec files -- sh -c 'echo "$GREETING|$SECRET_FROM_ENV"')" = "hello world|s3cr3t-9d2"
check "bash -l sees them" test "$("$SMOLVM" exec files -- bash -lc 'echo "$GREETING"')" = "hello world"
check "sh -l sees them" test "$("$SMOLVM" exec files -- sh -lc 'echo "$SECRET_FROM_ENV"')" = "s3cr3t-9d2"
check "the secret is in no guest cmdline" test "$("$SMOLVM" exec files -- sh -c 'grep -l "s3cr3t-9d[2]" /proc/[0-9]*/cmdline; echo end')" = "end"
"$SMOLVM" env ls --json files >"$T/env.json" 2>"$T/err"
check "env ls --json" jq_true '.ok == true and .data.env.GREETING == "hello world" and .data.env.SECRET_FROM_ENV == "s3cr3t-9d2"' "$T/env.json"
"$SMOLVM" env unset files GREETING 2>"$T/err"
check "env unset: gone for a later exec" test "$("$SMOLVM" exec files -- sh -c 'echo "${GREETING-unset}"')" = "unset"
check "env unset: gone for a login shell" test "$("$SMOLVM" exec files -- bash -lc 'echo "${GREETING-unset}"')" = "unset"
check "env ls no longer lists it" sh -c "! '$SMOLVM' env ls files | grep -q GREETING"
"$SMOLVM" env set --json files 'bad-name=1' >"$T/env.json" 2>"$T/err"; rc=$?
check "env set with a bad name: 125, invalid_argument" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"invalid_argument\"' '$T/env.json' >/dev/null"

"$SMOLVM" rm -f files >/dev/null 2>"$T/err"
check "rm the VM" test $? -eq 0
assert_no_leftovers "after cp/env"
finish
