#!/usr/bin/env bash
# The CLI surface that needs no VM: help, version, flag errors, missing image.
. "$(dirname "$0")/lib.sh"
# Exactly one JSON document on stdin, satisfying FILTER (jq -e alone passes on
# empty input, so an envelope that is not printed could not fail a check).
json_is() { local f=$1; shift; jq -e -s "$@" "length == 1 and (.[0] | $f)" >/dev/null; }
# exit_and_json WANT_RC RC FILTER: the exit code and the envelope on stdin.
exit_and_json() { [ "$2" -eq "$1" ] && json_is "$3"; }

out=$("$SMOLVM" --help 2>&1); rc=$?
check "smolvm --help exits 0" test "$rc" -eq 0
check "smolvm --help lists run" grep -q 'run' <<<"$out"
out=$("$SMOLVM" run --help 2>&1); rc=$?
check "smolvm run --help exits 0 and shows --timeout" sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q -- --timeout" _ "$out"
out=$("$SMOLVM" --version 2>&1); rc=$?
check "smolvm --version prints a version" sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -Eq '[0-9]+\.[0-9]+\.[0-9]+'" _ "$out"

err=$("$SMOLVM" run --no-such-flag -- true 2>&1 >/dev/null); rc=$?
check "unknown flag: exit 125" test "$rc" -eq 125
check "unknown flag: message names the flag" grep -q -- '--no-such-flag' <<<"$err"

err=$("$SMOLVM" frobnicate 2>&1 >/dev/null); rc=$?
check "unknown command: non-zero exit and names it" sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q frobnicate" _ "$err"

err=$("$SMOLVM" run -- 2>&1 >/dev/null); rc=$?
check "run without a command: exit 125" test "$rc" -eq 125

err=$("$SMOLVM" run --timeout abc -- true 2>&1 >/dev/null); rc=$?
check "bad --timeout value: exit 125, names the value" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q abc" _ "$err"

err=$("$SMOLVM" run --image no-such-image -- true 2>&1 >/dev/null); rc=$?
check "missing image: exit 125" test "$rc" -eq 125
check "missing image: message names it and hints at image build" sh -c "printf '%s' \"\$1\" | grep -q no-such-image && printf '%s' \"\$1\" | grep -q 'image build'" _ "$err"
assert_no_leftovers "missing image"

# ---- env keys are checked as the guest checks them, before anything is made ----
for cmd in "create --no-start --env A-B=1" "run --env A-B=1 -- true"; do
        err=$("$SMOLVM" $cmd 2>&1 >/dev/null); rc=$?
        check "$cmd: exit 125, names the key" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'A-B'\"" _ "$err"
done
err=$("$SMOLVM" exec --env 1X=1 nosuchvm -- true 2>&1 >/dev/null); rc=$?
check "exec --env 1X=1: refused before looking for the VM" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'1X'\"" _ "$err"
big=$(head -c 65537 /dev/zero | tr '\0' v)
err=$("$SMOLVM" create --no-start --env "BIG=$big" 2>&1 >/dev/null); rc=$?
check "create --env with a 64 KiB + 1 value: exit 125, names the key" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q BIG" _ "$err"
vid=$("$SMOLVM" create --no-start 2>/dev/null)
err=$("$SMOLVM" env set "$vid" A-B=1 2>&1 >/dev/null); rc=$?
check "env set A-B=1: exit 125, names the key" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'A-B'\"" _ "$err"
"$SMOLVM" rm -f "$vid" >/dev/null 2>&1
assert_no_leftovers "invalid env"

# ---- image names stay inside the image store ----
for cmd in "run --image ../../../etc -- true" "create --no-start --image ../x" "create --no-start --image .hidden"; do
        start=$(date +%s)
        err=$("$SMOLVM" $cmd 2>&1 >/dev/null); rc=$?
        took=$(( $(date +%s) - start ))
        img=$(printf '%s' "$cmd" | sed -E 's/.*--image ([^ ]+).*/\1/')
        check "$cmd: exit 125 at once (${took}s)" sh -c "[ $rc -eq 125 ] && [ $took -lt 5 ]"
        check "$cmd: names the image and the store" sh -c "printf '%s' \"\$1\" | grep -qF \"'$img'\" && printf '%s' \"\$1\" | grep -qF '$SMOLVM_HOME/images'" _ "$err"
done
err=$("$SMOLVM" create --no-start --json --image ../x 2>/dev/null); rc=$?
check "create --image ../x --json: invalid_argument" json_is '.error.code == "invalid_argument"' <<<"$err"
assert_no_leftovers "invalid image names"

# ---- guest mount points the guest's init owns are refused at once ----
mkdir -p "$T/share"
start=$(date +%s)
err=$("$SMOLVM" run --boot-timeout 15 --mount "$T/share:/dev" -- true 2>&1 >/dev/null); rc=$?
took=$(( $(date +%s) - start ))
check "run --mount X:/dev: exit 125 within 5 s (rc $rc, ${took}s)" sh -c "[ $rc -eq 125 ] && [ $took -lt 5 ]"
check "run --mount X:/dev: names /dev" sh -c "printf '%s' \"\$1\" | grep -q \"'/dev'\"" _ "$err"
for g in /proc /sys/kernel /dev/shm /run /run/smolvm/x /tmp /etc/smolvm /etc /a/../b /a//b /a/; do
        err=$("$SMOLVM" create --no-start --mount "$T/share:$g" 2>&1 >/dev/null); rc=$?
        check "create --mount X:$g: refused, naming it" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -qF \"'$g'\"" _ "$err"
done
vid=$("$SMOLVM" create --no-start --mount "$T/share:/run/data" --mount "$T/share:/tmp/x" --mount "$T/share:/devices" 2>"$T/err"); rc=$?
check "create --mount X:/run/data, /tmp/x, /devices: accepted" test "$rc" -eq 0
[ "$rc" -eq 0 ] && "$SMOLVM" rm -f "$vid" >/dev/null 2>&1
assert_no_leftovers "reserved mount points"

# ---- option syntax: one parser for every command (host/cli/cli_opts.c) ----
err=$("$SMOLVM" exec -ie 1X=1 nosuchvm -- true 2>&1 >/dev/null); rc=$?
check "exec -ie 1X=1 (combined short flags): -e parsed, the key refused (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'1X'\"" _ "$err"
err=$("$SMOLVM" run -iw rel -- true 2>&1 >/dev/null); rc=$?
check "run -iw rel: -w is --workdir, 'rel' refused (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'rel' for --workdir\"" _ "$err"
err=$("$SMOLVM" run -e A-B=1 -- true 2>&1 >/dev/null); rc=$?
check "run -e A-B=1: -e is --env (rc $rc)" sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'A-B'\"" _ "$err"
err=$("$SMOLVM" exec --env=1X=1 --timeout=5 nosuchvm -- true 2>&1 >/dev/null); rc=$?
check "exec --env=1X=1 --timeout=5: --opt=value form (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"'1X'\"" _ "$err"
err=$("$SMOLVM" run --time 5 -- true 2>&1 >/dev/null); rc=$?
check "run --time (an abbreviation): unknown option, not --timeout (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q \"unknown option '--time'\"" _ "$err"
err=$("$SMOLVM" run --timeout 2>&1 >/dev/null); rc=$?
check "run --timeout without a value: exit 125, says it needs one (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && printf '%s' \"\$1\" | grep -q -- '--timeout needs a value'" _ "$err"
out=$("$SMOLVM" exec nosuchvm --json --timeout 5 2>/dev/null); rc=$?
check "exec ID --json ...: after the VM the words are the guest's (not_found, no envelope) (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && [ -z \"\$1\" ]" _ "$out"
out=$("$SMOLVM" rm -- --json 2>"$T/err"); rc=$?
check "rm -- --json: '--' ends the options, '--json' is an id (rc $rc)" \
        sh -c "[ $rc -eq 125 ] && [ -z \"\$1\" ] && grep -q -- '--json' '$T/err'" _ "$out"
out=$("$SMOLVM" exec --help 2>&1); rc=$?
check "exec --help: generated options list -e, --env and -w, --workdir" \
        sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q -- '-e, --env K=V' && printf '%s' \"\$1\" | grep -q -- '-w, --workdir DIR'" _ "$out"
out=$("$SMOLVM" start --help 2>&1); rc=$?
check "start --help: usage and --json" \
        sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q 'Usage: smolvm start \[--json\] ID' && printf '%s' \"\$1\" | grep -q -- '--json'" _ "$out"
vid=$("$SMOLVM" create --no-start --name=optname --cpus=2 2>/dev/null)
check "create --name=optname --cpus=2: both taken" json_is '.data.name == "optname" and .data.vcpus == 2' \
        <<<"$("$SMOLVM" info --json optname 2>/dev/null)"
"$SMOLVM" rm -f "$vid" >/dev/null 2>&1

# ---- --json: an envelope for every failure, with the full command name ----
out=$("$SMOLVM" frobnicate --json 2>/dev/null); rc=$?
check "unknown command --json: envelope, invalid_argument, exit 125 (rc $rc)" json_is \
        '.ok == false and .command == "frobnicate" and .exit_code == 125 and .error.code == "invalid_argument" and (.error.message | test("frobnicate")) and (.error.recovery | length > 0)' <<<"$out"
check "unknown command --json: exit 125" test "$rc" -eq 125
out=$("$SMOLVM" stop --bogus --json x 2>/dev/null); rc=$?
check "stop --bogus --json: usage envelope naming the option (rc $rc)" json_is \
        '.ok == false and .command == "stop" and .error.code == "invalid_argument" and (.error.message | test("--bogus"))' <<<"$out"
out=$("$SMOLVM" image ls --json 2>/dev/null); rc=$?
check "image ls --json: command is 'image ls' (rc $rc)" json_is '.ok and .command == "image ls" and (.data.images | length >= 1)' <<<"$out"
out=$("$SMOLVM" image ls --bogus --json 2>/dev/null); rc=$?
check "image ls --bogus --json: usage envelope, exit 125 (rc $rc)" \
        exit_and_json 125 "$rc" '.command == "image ls" and .error.code == "invalid_argument"' <<<"$out"
out=$("$SMOLVM" env set --json 2>/dev/null); rc=$?
check "env set --json without ID: envelope 'env set' (rc $rc)" json_is \
        '.ok == false and .command == "env set" and .error.code == "invalid_argument"' <<<"$out"

# ---- smolvm-fs: the same envelope, error table and exit codes ----
FS="$SMOLVM_BUILD_DIR/fs/smolvm-fs"
if [ -x "$FS" ]; then
        mkdir -p "$T/mnt"
        out=$("$FS" mount --json nosuchvm:/etc "$T/mnt" 2>"$T/err"); rc=$?
        check "smolvm-fs mount of an unknown sandbox: exit 125 (rc $rc)" test "$rc" -eq 125
        check "smolvm-fs mount --json: envelope not_found with recovery" json_is \
                '.ok == false and .command == "mount" and .exit_code == 125 and .error.code == "not_found" and (.error | has("recovery"))' <<<"$out"
        check "smolvm-fs: the message on stderr names the sandbox" grep -q '^smolvm-fs: .*nosuchvm' "$T/err"
        out=$("$FS" umount --json "$T/mnt" 2>/dev/null); rc=$?
        check "smolvm-fs umount of a plain dir: exit 125, not_mounted (rc $rc)" \
                exit_and_json 125 "$rc" '.command == "umount" and .error.code == "not_mounted"' <<<"$out"
        out=$("$FS" mount --json nosuchvm "$T/mnt" 2>/dev/null); rc=$?
        check "smolvm-fs mount without :/path: usage error 125, invalid_argument (rc $rc)" \
                exit_and_json 125 "$rc" '.error.code == "invalid_argument"' <<<"$out"
        out=$("$FS" frob --json 2>/dev/null); rc=$?
        check "smolvm-fs unknown command --json: envelope, 125 (rc $rc)" \
                exit_and_json 125 "$rc" '.ok == false and .error.code == "invalid_argument"' <<<"$out"
        out=$("$FS" mount --help 2>&1); rc=$?
        check "smolvm-fs mount --help: exit 0, lists --background" sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q -- '--background'" _ "$out"
else
        ok "smolvm-fs checks # SKIP smolvm-fs not built (libfuse3 missing)"
fi
assert_no_leftovers "option syntax"

finish
