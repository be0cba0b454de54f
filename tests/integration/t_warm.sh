#!/usr/bin/env bash
# Warm start with real VMs: the first run builds the image's boot template and
# restores it; later runs and creates restore it (--json says "warm"), --cold
# boots from scratch; two warm VMs differ in env, hostname, machine-id and
# urandom; a warm persistent VM can be snapshotted; a damaged template is not
# used (rebuilt); the template is rebuilt when the initramfs changes and a new
# one is made for another VM shape; an image made for an older init (no
# "init_features" in its image.json) boots cold at once and says why; virtio-fs
# mounts boot cold and say why, vsock mounts start warm (and such a VM
# snapshots with its mount); two concurrent first runs both succeed and build
# one template.
# The image is a private copy (hard links, the initramfs copied) so that
# touching its initramfs changes nothing for other tests.
. "$(dirname "$0")/lib.sh"
unset SMOLVM_COLD

img="$T/img"
mkdir "$img"
src=$(readlink -f "$SMOLVM_HOME/images/default")
for f in "$src"/*; do
        case ${f##*/} in
        initramfs.img) cp "$f" "$img/" ;;
        *) ln "$f" "$img/" 2>/dev/null || cp "$f" "$img/" ;;
        esac
done
tdir="$SMOLVM_HOME/templates"
templates() { ls "$tdir" 2>/dev/null | grep -E '^[0-9a-f]{64}$' || true; }
n_templates() { templates | grep -c . || true; }
run_json() { "$SMOLVM" run --json --image "$img" "$@"; }

# ---- first use: the template is built, then used ----
run_json -- true >"$T/first.json" 2>"$T/err"; rc=$?
check_or_bail "first run exits 0 (rc $rc)" "$rc"
check "first run: started warm (its template built on the way)" jq_true '.ok and .data.start == "warm"' "$T/first.json"
key=$(templates)
check "one template, with its record, RAM, device state, disk and template.json" sh -c "
        [ \$(echo '$key' | grep -c .) -eq 1 ] && for f in snapshot.json ram state disk.qcow2 template.json; do
        [ -s '$tdir/$key/'\$f ] || exit 1; done"
check "no build dir left" test -z "$(ls -A "$tdir" | grep '^\.')"
check "the template's record says its VM had the lane's device (restores get it)" \
        jq_true '.lane == true' "$tdir/$key/snapshot.json"

# ---- warm vs --cold ----
run_json -- true >"$T/warm.json" 2>"$T/err"; rc_w=$?
run_json --cold -- true >"$T/cold.json" 2>"$T/err"; rc_c=$?
check "run: warm (rc $rc_w), nothing to explain" jq_true '.ok and .data.start == "warm" and .data.start_note == null' "$T/warm.json"
check "run --cold: cold (rc $rc_c), nothing to explain" jq_true '.ok and .data.start == "cold" and .data.start_note == null' "$T/cold.json"
diag "boot_ms warm $(jq .data.boot_ms "$T/warm.json"), cold $(jq .data.boot_ms "$T/cold.json")"

# ---- a warm run's path: no fsync (an ephemeral VM's files die with it; config.json,
# vm.json and their dir were fsynced: 5-150 ms on a busy disk), no image.json parsed (the
# template's key holds the initramfs its init came in) ----
strace -f -qq --seccomp-bpf -e trace=fsync,fdatasync,syncfs,sync,sync_file_range,open,openat -e signal=none \
        -o "$T/trace" "$SMOLVM" run --image "$img" -- true >/dev/null 2>"$T/err"; rc=$?
grep -E '(fsync|fdatasync|syncfs|sync|sync_file_range)\(' "$T/trace" >"$T/fsyncs"
check "a warm run (rc $rc) calls no fsync: $(grep -c . "$T/fsyncs") calls" sh -c "[ $rc -eq 0 ] && ! grep -q . '$T/fsyncs'"
[ -s "$T/fsyncs" ] && diag "$(head -5 "$T/fsyncs")"
check "... and opens no image.json: $(grep -c image.json "$T/trace") opens" sh -c "! grep -q image.json '$T/trace'"

# ---- one hostname rule, warm or cold: smolvm-<id>, in /etc/hostname, resolvable ----
names='hostname; cat /etc/hostname; getent hosts "$(hostname)" | tr -s " \t" " "'
for how in warm cold; do
        if [ "$how" = cold ]; then run_json --cold -- sh -c "$names"; else run_json -- sh -c "$names"; fi \
                >"$T/hn.json" 2>"$T/err"
        mapfile -t H < <(jq -r .data.stdout "$T/hn.json")
        check "$how: hostname smolvm-<id> (${H[0]-}), /etc/hostname (${H[1]-}), /etc/hosts (${H[2]-}) agree" \
                sh -c "printf '%s\n' '${H[0]-}' | grep -Eqx 'smolvm-[0-9a-f]{12}' && [ '${H[1]-}' = '${H[0]-}' ] &&
                       [ '${H[2]-}' = '127.0.1.1 ${H[0]-}' ]"
done

# ---- two warm VMs are different machines ----
probe='echo "$X"; hostname; cat /etc/machine-id; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo'
run_json -e X=one -- sh -c "$probe" >"$T/a.json" 2>"$T/err"
run_json -e X=two -- sh -c "$probe" >"$T/b.json" 2>"$T/err"
check "both warm" jq_true '.data.start == "warm"' "$T/a.json"
check "... (the second too)" jq_true '.data.start == "warm"' "$T/b.json"
mapfile -t A < <(jq -r .data.stdout "$T/a.json")
mapfile -t B < <(jq -r .data.stdout "$T/b.json")
check "env: each its own (${A[0]-} / ${B[0]-})" sh -c "[ '${A[0]-}' = one ] && [ '${B[0]-}' = two ]"
check "hostnames differ, smolvm-<id> (${A[1]-} / ${B[1]-})" sh -c "[ '${A[1]-}' != '${B[1]-}' ] && case '${A[1]-}' in smolvm-*) ;; *) exit 1;; esac"
check "machine-ids differ" sh -c "[ -n '${A[2]-}' ] && [ '${A[2]-}' != '${B[2]-}' ]"
out=$(run_json --cold -- cat /etc/machine-id 2>"$T/err" | jq -r .data.stdout)
check "a cold boot has a machine-id too, from the host ($out)" sh -c "printf '%s\n' '$out' | grep -Eqx '[0-9a-f]{32}'"
check "32 bytes of urandom differ" sh -c "[ \"\$(printf %s '${A[3]-}' | wc -c)\" -eq 64 ] && [ '${A[3]-}' != '${B[3]-}' ]"

# ---- a warm persistent VM: own RAM copy, so it can be snapshotted ----
"$SMOLVM" create --json --image "$img" --name w1 >"$T/create.json" 2>"$T/err"; rc=$?
check "create: warm (rc $rc)" jq_true '.ok and .data.start == "warm"' "$T/create.json"
# The template was warmed before its snapshot (a command run through the exec
# path): the first command of a restored VM finds the shell, coreutils, ld.so
# and libc in the guest's page cache. Witness: QEMU's own count of the bytes
# the guest read from its disk (QMP query-blockstats, from 0 at QEMU's start).
w1_dir="$SMOLVM_HOME/vms/$(jq -r .data.id "$T/create.json")"
disk_read() {
        python3 - "$w1_dir/qmp.sock" <<'PYEOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for c in ("qmp_capabilities", "query-blockstats"):
    f.write(json.dumps({"execute": c}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            break
print(sum(d["stats"]["rd_bytes"] for d in r["return"]))
PYEOF
}
rd0=$(disk_read)
check "exec in it" test "$("$SMOLVM" exec w1 -- sh -c 'env true && echo hi' 2>&1)" = hi
rd1=$(disk_read)
check "its first command (sh, env, true) read < 256 KiB from the disk: the template's page cache had them ($rd0 -> $rd1 bytes)" \
        sh -c "[ -n '$rd0' ] && [ -n '$rd1' ] && [ \$(( $rd1 - $rd0 )) -lt 262144 ]"
# The restore identity (RNG seed, clock, hostname, machine-id) comes with the
# channel handshake, applied by PID 1 before the supervisor says ready: no agent
# op after the start.
check "the guest took its identity in the channel handshake (supervisor.log)" \
        grep -q 'restore: the guest took its identity' "$w1_dir/supervisor.log"
mid1=$("$SMOLVM" exec w1 -- cat /etc/machine-id 2>&1)
"$SMOLVM" snapshot create --name ws w1 >/dev/null 2>"$T/err"; rc=$?
check "a warm VM can be snapshotted (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"
"$SMOLVM" stop w1 >/dev/null 2>&1
"$SMOLVM" start w1 >/dev/null 2>"$T/err"; rc=$?
check "stop + start: it boots (cold, on its own disk) (rc $rc)" sh -c "[ $rc -eq 0 ] && [ \"\$('$SMOLVM' exec w1 -- echo ok)\" = ok ]"
mid2=$("$SMOLVM" exec w1 -- cat /etc/machine-id 2>&1)
check "... its machine-id is the host's for this VM, the same after stop + cold start ($mid1 / $mid2)" \
        sh -c "printf '%s\n' '$mid1' | grep -Eqx '[0-9a-f]{32}' && [ '$mid1' = '$mid2' ]"
"$SMOLVM" rm -f w1 >/dev/null 2>&1
"$SMOLVM" snapshot rm ws >/dev/null 2>&1

# ---- a damaged template is not used: rebuilt ----
printf 'X' | dd of="$tdir/$key/state" bs=1 seek=4096 conv=notrunc status=none
run_json -- true >"$T/bad1.json" 2>"$T/err"; rc=$?
check "a bit flipped in the device state: not used, rebuilt (rc $rc)" jq_true '.ok and .data.start == "warm" and
        (.data.start_note | test("rebuilt.*state"))' "$T/bad1.json"
truncate -s 1M "$tdir/$key/ram"
run_json -- true >"$T/bad2.json" 2>"$T/err"; rc=$?
check "a truncated RAM file (a partial template): not used, rebuilt (rc $rc)" jq_true '.ok and .data.start == "warm" and
        (.data.start_note | test("rebuilt.*ram"))' "$T/bad2.json"
check "still one template" test "$(n_templates)" -eq 1

# ---- the initramfs changes: a new template, the old one goes ----
touch "$img/initramfs.img"
run_json -- true >"$T/init.json" 2>"$T/err"; rc=$?
new_key=$(templates)
check "after the initramfs changed: warm (rc $rc) from a new template (${key:0:8} -> ${new_key:0:8})" sh -c "
        jq -e '.data.start == \"warm\"' '$T/init.json' >/dev/null && [ '$new_key' != '$key' ] && [ \$(echo '$new_key' | grep -c .) -eq 1 ]"

# ---- another VM shape: a template of its own ----
run_json --mem 384 -- sh -c 'grep MemTotal /proc/meminfo' >"$T/mem.json" 2>"$T/err"; rc=$?
check "--mem 384: warm (rc $rc), with 384 MiB" jq_true '.data.start == "warm" and
        (.data.stdout | capture("MemTotal: +(?<k>[0-9]+)").k | tonumber) < 400000' "$T/mem.json"
check "two templates now (one per shape)" test "$(n_templates)" -eq 2

# ---- an image made for an older init: cold at once, no template, the note says what to do ----
# (image.json without "init_features", as every image made before the restore identity)
check "the image records its init's features" jq_true '.initramfs.init_features >= 1' "$img/image.json"
old="$T/old-img"
mkdir "$old"
for f in "$img"/*; do
        [ "${f##*/}" = image.json ] || ln "$f" "$old/" 2>/dev/null || cp "$f" "$old/"
done
jq 'del(.initramfs.init_features)' "$img/image.json" >"$old/image.json"
before=$(n_templates)
"$SMOLVM" run --json --image "$old" -- true >"$T/old.json" 2>"$T/err"; rc=$?
check "an image made for an older init: runs (rc $rc) cold, the note says to rebuild it" jq_true '.ok and
        .data.start == "cold" and (.data.start_note | test("older smolvm-init.*smolvm image build"))' "$T/old.json"
check "... and no template was built for it" test "$(n_templates)" -eq "$before"

# ---- mounts: cold, and --json says why ----
mkdir -p "$T/share" && echo shared >"$T/share/f"
run_json --mount "$T/share:/mnt" -- cat /mnt/f >"$T/mnt.json" 2>"$T/err"; rc=$?
check "--mount (virtio-fs) works (rc $rc): cold, the note names the mounts and the way to warm" jq_true '.ok and
        .data.stdout == "shared\n" and .data.start == "cold" and (.data.start_note | test("mounts.*vsock"))' "$T/mnt.json"

# ---- vsock mounts: warm, mounted after the restore as after a boot ----
run_json --mount-transport vsock --mount "$T/share:/mnt" -- sh -c 'cat /mnt/f; touch /mnt/new 2>&1' \
        >"$T/vmnt.json" 2>"$T/err"; rc=$?
check "--mount-transport vsock: warm (rc $rc), the share read, read-only" jq_true '.ok and .data.start == "warm" and
        (.data.stdout | startswith("shared\n")) and (.data.stdout | test("Read-only file system"))' "$T/vmnt.json"
[ "$rc" -eq 0 ] || diag "$(cat "$T/vmnt.json" "$T/err")"
check "... the host tree untouched" test "$(ls "$T/share")" = f
# A warm persistent VM with a vsock mount can be snapshotted; the snapshot carries it.
"$SMOLVM" create --json --image "$img" --name wm --mount-transport vsock --mount "$T/share:/mnt" \
        >"$T/wm.json" 2>"$T/err"; rc=$?
check "create with a vsock mount: warm (rc $rc)" jq_true '.ok and .data.start == "warm"' "$T/wm.json"
"$SMOLVM" snapshot create --name wms wm >/dev/null 2>"$T/err"; rc=$?
check "... snapshotted (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || diag "$(cat "$T/err")"
out=$("$SMOLVM" run --from-snapshot wms -- cat /mnt/f 2>"$T/err")
check "... a VM restored from it reads the mount ($out)" test "$out" = shared
"$SMOLVM" rm -f wm >/dev/null 2>&1
"$SMOLVM" snapshot rm wms >/dev/null 2>&1

# ---- two concurrent first uses of a new shape ----
run_json --cpus 2 -- nproc >"$T/c1.json" 2>"$T/c1.err" &
p1=$!
run_json --cpus 2 -- nproc >"$T/c2.json" 2>"$T/c2.err" &
p2=$!
wait $p1; rc1=$?
wait $p2; rc2=$?
check "two concurrent first runs both succeed (rc $rc1, $rc2)" sh -c "[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] &&
        jq -e '.data.stdout == \"2\n\"' '$T/c1.json' >/dev/null && jq -e '.data.stdout == \"2\n\"' '$T/c2.json' >/dev/null"
diag "concurrent: $(jq -c '[.data.start, .data.start_note]' "$T/c1.json") $(jq -c '[.data.start, .data.start_note]' "$T/c2.json")"
check "... and one template was built for it (three in all), no build dir left" sh -c "
        [ $(n_templates) -eq 3 ] && [ -z \"\$(ls -A '$tdir' | grep '^\.')\" ]"

assert_no_leftovers "t_warm"
finish
