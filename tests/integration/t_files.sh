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
check "doctor without an image: exit 1 and the fix named" sh -c "[ $rc -eq 1 ] && grep -q '^fail  image' '$T/doctor.txt' && grep -q 'smolvm image build' '$T/doctor.txt'"

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
"$SMOLVM" exec files -- ln -s deeper/payload /opt/new/link 2>"$T/err"
"$SMOLVM" cp files:/opt/new "$T/dl" 2>"$T/err" && "$SMOLVM" cp files:/opt/new "$T/dl" 2>>"$T/err"; rc=$?
check "the same tree downloaded again (merged, its own symlink replaced)" \
        sh -c "[ $rc -eq 0 ] && [ \"\$(readlink '$T/dl/new/link')\" = deeper/payload ] && cmp -s '$T/payload' '$T/dl/new/deeper/payload'"
"$SMOLVM" cp --json files:/etc/hostname "$T/dl/hn" >"$T/cp.json" 2>"$T/err"
check "cp --json: envelope" jq_true '.ok == true and .command == "cp" and .data.direction == "download"
        and .data.destination != null' "$T/cp.json"
"$SMOLVM" cp --json files:/nope "$T/dl/x" >"$T/cp.json" 2>"$T/err"; rc=$?
check "cp of a missing guest file: 125, not_found" sh -c "[ $rc -eq 125 ] && jq -e '.ok == false and .error.code == \"not_found\"' '$T/cp.json' >/dev/null"
"$SMOLVM" cp --json "$T/payload" nosuchvm:/x >"$T/cp.json" 2>"$T/err"; rc=$?
check "cp to an unknown VM: not_found" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"not_found\"' '$T/cp.json' >/dev/null"
"$SMOLVM" cp "$T/a" "$T/b" 2>"$T/err"; rc=$?
check "cp between two host paths is a usage error" sh -c "[ $rc -eq 125 ] && grep -q 'ID:/path' '$T/err'"

# A guest symlink copied by a first download must never be followed by a later one:
# the second `cp VM:/out DEST` goes into DEST/out (DEST exists), which is that link.
mkdir -m 700 "$T/outside"
"$SMOLVM" exec files -- sh -c "mkdir /out; ln -s '$T/outside' /out/out" 2>"$T/err"
"$SMOLVM" cp files:/out "$T/dl/results" 2>"$T/err"; rc=$?
check "first download: the guest symlink is copied as a symlink" \
        sh -c "[ $rc -eq 0 ] && [ \"\$(readlink '$T/dl/results/out')\" = '$T/outside' ]"
"$SMOLVM" exec files -- sh -c 'rm /out/out; chmod 777 /out; echo key >/out/authorized_keys' 2>"$T/err"
"$SMOLVM" cp files:/out "$T/dl/results" 2>"$T/err"; rc=$?
check "second download into the planted symlink: refused with 125 (got $rc)" test "$rc" -eq 125
check "the error names the symlink and says what to do" \
        sh -c "grep -q '$T/dl/results/out' '$T/err' && grep -qi 'symlink' '$T/err' && grep -q '^hint:' '$T/err'"
check "nothing written through the symlink" test -z "$(ls -A "$T/outside")"
check "the symlink's target keeps mode 700" test "$(stat -c %a "$T/outside")" = 700
"$SMOLVM" cp files:/out/authorized_keys "$T/dl/results/out/" 2>"$T/err"; rc=$?
check "single file into DEST/out/ (a symlink): refused with 125 (got $rc)" test "$rc" -eq 125
check "single file: the error names the symlink" sh -c "grep -q '$T/dl/results/out' '$T/err' && grep -qi 'symlink' '$T/err'"
check "single file: nothing written through the symlink" test -z "$(ls -A "$T/outside")"
"$SMOLVM" cp files:/out/authorized_keys "$T/dl/results/out" 2>"$T/err"; rc=$?
check "single file to DEST/out (a symlink, no slash): refused, not followed" \
        sh -c "[ $rc -eq 125 ] && [ -z \"\$(ls -A '$T/outside')\" ] && [ -L '$T/dl/results/out' ]"
# Directories the user names above the last component are the user's: followed, as cp(1) does.
mkdir "$T/real"; ln -s "$T/real" "$T/mine"
"$SMOLVM" cp files:/out/authorized_keys "$T/mine/sub/" 2>"$T/err"; rc=$?
check "the user's own symlinked directory is followed" sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/real/sub/authorized_keys')\" = key ]"

# Free space: checked against the announced sizes before anything is written.
mkdir -p "$T/small"
if mount -t tmpfs -o size=8m smolvm-cp-test "$T/small" 2>/dev/null; then
        "$SMOLVM" exec files -- sh -c 'truncate -s 20M /root/twenty; mkdir -p /root/pair;
                head -c 5M /dev/zero >/root/pair/a; head -c 5M /dev/zero >/root/pair/b' 2>"$T/err"
        "$SMOLVM" cp files:/root/twenty "$T/small/" 2>"$T/err"; rc=$?
        check "20 MiB file into an 8 MiB tmpfs: 125 (got $rc)" test "$rc" -eq 125
        check "...refused up front: the error gives the sizes" sh -c "grep -qi 'free' '$T/err' && grep -q '20.0 MiB' '$T/err'"
        check "...nothing left in the tmpfs" test -z "$(ls -A "$T/small")"
        "$SMOLVM" cp --json files:/root/pair "$T/small/" >"$T/cp.json" 2>"$T/err"; rc=$?
        check "a 10 MiB tree into an 8 MiB tmpfs: refused before any file is written" \
                sh -c "[ $rc -eq 125 ] && [ -z \"\$(ls -A '$T/small')\" ]"
        check "...error.code no_space" jq_true '.ok == false and .error.code == "no_space"' "$T/cp.json"
        umount -l "$T/small"
else
        ok "free-space refusal # SKIP cannot mount a tmpfs here (not root)"
fi

# --max-size: on the announced size, for a file and for a tree's total.
"$SMOLVM" exec files -- sh -c 'head -c 2M /dev/zero >/root/two; mkdir -p /root/cap;
        head -c 600K /dev/zero >/root/cap/a; head -c 600K /dev/zero >/root/cap/b' 2>"$T/err"
mkdir "$T/cap"
"$SMOLVM" cp --max-size 1M files:/root/two "$T/cap/two" 2>"$T/err"; rc=$?
check "--max-size 1M refuses a 2 MiB file: 125, the limit named" \
        sh -c "[ $rc -eq 125 ] && grep -qi 'limit' '$T/err' && [ -z \"\$(ls -A '$T/cap')\" ]"
"$SMOLVM" cp --max-size=4M files:/root/two "$T/cap/two" 2>"$T/err"; rc=$?
check "--max-size=4M lets a 2 MiB file through" sh -c "[ $rc -eq 0 ] && [ \$(stat -c %s '$T/cap/two') -eq 2097152 ]"
"$SMOLVM" cp --json --max-size 1M files:/root/cap "$T/cap/" >"$T/cp.json" 2>"$T/err"; rc=$?
check "--max-size 1M refuses a 1.2 MiB tree before writing it" \
        sh -c "[ $rc -eq 125 ] && [ ! -e '$T/cap/cap' ]"
check "...error.code too_large" jq_true '.ok == false and .error.code == "too_large"' "$T/cp.json"
"$SMOLVM" cp --max-size 2X files:/root/two "$T/cap/x" 2>"$T/err"; rc=$?
check "--max-size 2X is a usage error" sh -c "[ $rc -eq 125 ] && grep -q 'max-size' '$T/err' && [ ! -e '$T/cap/x' ]"

# SIGINT/SIGTERM/SIGHUP mid-download: the temporary file goes, exit 128+N.
"$SMOLVM" exec files -- truncate -s 4G /root/huge 2>"$T/err"
for sig in INT TERM HUP; do
        d="$T/sig-$sig"
        mkdir "$d"
        json=; [ "$sig" = HUP ] && json=--json
        "$SMOLVM" cp $json files:/root/huge "$d/huge" >"$T/out.$sig" 2>"$T/err.$sig" &
        pid=$!
        if wait_for "ls -A '$d' | grep -q '^\.smolvm-.*\.tmp\$'" 60; then
                kill -"$sig" "$pid"
                # A CLI that ignores the signal would copy all 4 GiB: do not wait for that.
                wait_for "! kill -0 $pid 2>/dev/null" 30 || kill -9 "$pid"
                wait "$pid"; rc=$?
                want=$((128 + $(kill -l "$sig")))
                check "SIG$sig mid-download: exit $want (got $rc)" test "$rc" -eq "$want"
                check "SIG$sig mid-download: no temporary file left" test -z "$(ls -A "$d")"
                [ -n "$json" ] && check "SIG$sig with --json: envelope cancelled, exit_code $want" \
                        jq_true ".ok == false and .error.code == \"cancelled\" and .exit_code == $want" "$T/out.$sig"
        else
                not_ok "SIG$sig: the download started (a temporary file appeared)"
                kill -9 "$pid" 2>/dev/null
                sed 's/^/# /' "$T/err.$sig"
        fi
done
"$SMOLVM" exec files -- rm -f /root/huge /root/twenty 2>"$T/err"

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
