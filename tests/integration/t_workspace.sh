#!/usr/bin/env bash
# Workspace archives and cp's tar streams, two real VMs: persist a tricky tree
# (names with spaces and newlines, modes, owners, symlinks, hard links, empty
# dirs, a fifo) from one, hydrate it into a fresh one: identical manifests made
# in each guest. The archive lists with the host's tar; pipes both ways; a
# damaged or truncated archive unpacks nothing; Ctrl-C leaves no file.
. "$(dirname "$0")/lib.sh"

# A manifest a guest makes of a directory: per entry its name (repr: newlines
# and all), type, mode, owner, size and SHA-256 of files, symlink target, and
# the first name of its hard-link group (inode numbers differ between VMs).
manifest_py='
import hashlib, os, stat, sys
os.chdir(sys.argv[1])
paths = ["."]
for d, ds, fs in os.walk("."):
    paths += [os.path.join(d, n) for n in ds + fs]
paths.sort()
st = {p: os.lstat(p) for p in paths}
group = {}
for p in paths:
    if stat.S_ISREG(st[p].st_mode) and st[p].st_nlink > 1:
        group.setdefault(st[p].st_ino, p)
kinds = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l", stat.S_IFIFO: "p"}
for p in paths:
    s = st[p]
    k = kinds.get(stat.S_IFMT(s.st_mode), "?")
    extra = ""
    if k == "f":
        with open(p, "rb") as f:
            extra = "%d %s group=%r" % (s.st_size, hashlib.sha256(f.read()).hexdigest(), group.get(s.st_ino, p))
    elif k == "l":
        extra = repr(os.readlink(p))
    print(repr(p), k, oct(stat.S_IMODE(s.st_mode)), "%d:%d" % (s.st_uid, s.st_gid), extra)
'
manifest() { "$SMOLVM" exec "$1" -- python3 -c "$manifest_py" "$2"; }

"$SMOLVM" create --name wsa >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create the source VM" "$rc"
check "/workspace exists at boot (755, root)" test "$("$SMOLVM" exec wsa -- stat -c '%a %U' /workspace)" = "755 root"

"$SMOLVM" exec wsa -- sh -c '
set -e
cd /workspace
mkdir -p "dir with space/sub" empty/nested/deeper sticky
chmod 751 "dir with space"; chmod 1777 sticky
echo plain > plain.txt
echo spaced > "dir with space/c d.txt"
printf "newline\n" > "$(printf "nl\nname")"
echo unicode > "ünïcode ✓"
echo dash > ./-dash
echo secret > secret; chmod 600 secret
echo ro > ro; chmod 444 ro
printf "#!/bin/sh\n" > tool; chmod 4755 tool
echo owned > owned; chown 1234:5678 owned
ln -s plain.txt rel; ln -s /etc/hostname abs; ln -s nowhere dangling; ln -s empty dlink
echo linked > h1; ln h1 h2; ln h1 "dir with space/h3"
mkfifo fifo
head -c 4194304 /dev/urandom > random.bin
head -c 4194304 /dev/zero > zeros.bin
' 2>"$T/err"
check_or_bail "populate /workspace" $?
manifest wsa /workspace >"$T/m.a" 2>"$T/err"
check "manifest of the source (python3 in the guest)" test -s "$T/m.a" -a "$(grep -c . "$T/m.a")" -ge 25

# ---- persist ----
"$SMOLVM" workspace persist --json wsa -o "$T/ws.tar.zst" >"$T/p.json" 2>"$T/err"; rc=$?
check "persist -o FILE: exit 0" test "$rc" -eq 0
check "persist --json: sizes, sha256, io" jq_true '.ok and .command == "workspace persist" and .data.path == "/workspace"
        and .data.tar_bytes > 8388608 and .data.file_bytes > 4194304 and .data.file_bytes < .data.tar_bytes
        and (.data.sha256 | test("^[0-9a-f]{64}$")) and (.data.io | length > 0)' "$T/p.json"
check "the file has the size the envelope says" test "$(stat -c %s "$T/ws.tar.zst")" = "$(jq .data.file_bytes "$T/p.json")"
# The guest's tar writes 64 KiB records (-b 128), not its default 10 KiB: a
# tar of 10 KiB records costs the guest twice the CPU (bench/workspace.sh).
check "the guest's tar wrote 64 KiB records (tar_bytes a multiple of 65536)" \
        jq_true '.data.tar_bytes % 65536 == 0' "$T/p.json"
tar --zstd -tf "$T/ws.tar.zst" >"$T/list" 2>"$T/err"; rc=$?
check "the host's tar --zstd -t lists it" sh -c "[ $rc -eq 0 ] && grep -qx './dir with space/h3' '$T/list' && grep -qx './empty/nested/deeper/' '$T/list' && grep -qx './random.bin' '$T/list'"
check "the host's zstd -t accepts it" zstd -q -t "$T/ws.tar.zst"
"$SMOLVM" workspace persist wsa -o - 2>"$T/err" | cat >"$T/ws2.tar.zst"
check "persist -o - through a pipe: a complete archive" sh -c "zstd -q -t '$T/ws2.tar.zst' && [ \$(tar --zstd -tf '$T/ws2.tar.zst' | wc -l) = \$(wc -l <'$T/list') ]"
"$SMOLVM" workspace persist wsa -o - >"$T/x" 2>"$T/err" </dev/null; rc=$?
tar --zstd -tf "$T/x" >"$T/xlist" 2>/dev/null
check "persist -o - to a file works as well" sh -c "[ $rc -eq 0 ] && cmp -s '$T/xlist' '$T/list'"

# ---- hydrate into a fresh VM ----
"$SMOLVM" create --name wsb >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create the destination VM" "$rc"
"$SMOLVM" workspace hydrate --json wsb "$T/ws.tar.zst" >"$T/h.json" 2>"$T/err"; rc=$?
check "hydrate FILE: exit 0" test "$rc" -eq 0
check "hydrate --json: verified, same sha256" jq_true --arg sha "$(jq -r .data.sha256 "$T/p.json")" \
        '.ok and .data.verified == true and .data.sha256 == $sha' "$T/h.json"
manifest wsb /workspace >"$T/m.b" 2>"$T/err"
check "hydrated tree identical: names, types, modes, owners, contents, links, hard-link groups" cmp -s "$T/m.a" "$T/m.b"
cmp -s "$T/m.a" "$T/m.b" || diff "$T/m.a" "$T/m.b" | head -20 | sed 's/^/# /'
check "no staging directory left" test -z "$("$SMOLVM" exec wsb -- find /workspace -maxdepth 1 -name '.smolvm-hydrate-*')"

cat "$T/ws2.tar.zst" | "$SMOLVM" workspace hydrate wsb - --path /restore2 2>"$T/err"; rc=$?
check "hydrate - from a pipe into a new --path" test "$rc" -eq 0
manifest wsb /restore2 >"$T/m.c" 2>"$T/err"
check "the piped copy is identical too" cmp -s "$T/m.a" "$T/m.c"

# Into a directory with content: the archive's names replaced, the rest kept.
"$SMOLVM" exec wsb -- sh -c 'mkdir /merge && echo mine > /merge/keep.me && echo old > /merge/plain.txt && ln -s x /merge/rel'
"$SMOLVM" workspace hydrate wsb "$T/ws.tar.zst" --path /merge 2>"$T/err"; rc=$?
got=$("$SMOLVM" exec wsb -- sh -c 'cat /merge/keep.me /merge/plain.txt; readlink /merge/rel; stat -c %h /merge/h1')
check "hydrate over existing entries: replaced, others kept, hard links intact" \
        test "$rc" -eq 0 -a "$got" = "$(printf 'mine\nplain\nplain.txt\n3')"

# A plain .tar.zst made on the host.
mkdir -p "$T/plain/sub" && echo host > "$T/plain/sub/f"
tar --zstd -C "$T/plain" -cf "$T/plain.tar.zst" .
"$SMOLVM" workspace hydrate --json wsb "$T/plain.tar.zst" --path /plain >"$T/h.json" 2>"$T/err"; rc=$?
check "a host-made tar --zstd archive hydrates (verified: false)" \
        sh -c "[ $rc -eq 0 ] && jq -e '.data.verified == false' '$T/h.json' >/dev/null && [ \"\$('$SMOLVM' exec wsb -- cat /plain/sub/f)\" = host ]"

# ---- damage: nothing unpacked, a clear error ----
size=$(stat -c %s "$T/ws.tar.zst")
cp "$T/ws.tar.zst" "$T/flip.tar.zst"
printf '\x5a' | dd of="$T/flip.tar.zst" bs=1 seek=$((size / 2)) conv=notrunc status=none
head -c $((size - 100)) "$T/ws.tar.zst" >"$T/cut.tar.zst"
"$SMOLVM" exec wsb -- mkdir /dmg
"$SMOLVM" workspace hydrate --json wsb "$T/flip.tar.zst" --path /dmg >"$T/d.json" 2>"$T/err"; rc=$?
check "bit-flipped archive: 125, corrupt, says damaged" sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"corrupt\" and (.error.message | test(\"damaged\"))' '$T/d.json' >/dev/null"
"$SMOLVM" workspace hydrate wsb "$T/cut.tar.zst" --path /dmg 2>"$T/err"; rc=$?
check "truncated archive: 125, says truncated" sh -c "[ $rc -eq 125 ] && grep -q truncated '$T/err'"
cat "$T/cut.tar.zst" | "$SMOLVM" workspace hydrate wsb - --path /dmg 2>"$T/err"; rc=$?
check "truncated archive through a pipe: 125, says truncated" sh -c "[ $rc -eq 125 ] && grep -q truncated '$T/err'"
cat "$T/flip.tar.zst" | "$SMOLVM" workspace hydrate wsb - --path /dmg 2>"$T/err"; rc=$?
check "bit-flipped archive through a pipe: 125" test "$rc" -eq 125
check "after all four: nothing unpacked, no staging left" test -z "$("$SMOLVM" exec wsb -- ls -A /dmg)"

# ---- persist failures ----
"$SMOLVM" workspace persist --json wsa --path /nope -o "$T/nope.tar.zst" >"$T/e.json" 2>"$T/err"; rc=$?
check "persist of a missing guest dir: 125, not_found, names it" \
        sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"not_found\" and (.error.message | test(\"/nope\"))' '$T/e.json' >/dev/null"
check "... and no file, no temporary" test -z "$(ls -A "$T" | grep -e nope.tar.zst -e '\.part$')"

# The guest decides how much it sends: a cap stops it (random.bin alone is 4 MiB).
"$SMOLVM" workspace persist --json wsa --max-size 1M -o "$T/cap.tar.zst" >"$T/e.json" 2>"$T/err"; rc=$?
check "persist --max-size 1M of a 8 MiB tree: 125, too_large, no file" \
        sh -c "[ $rc -eq 125 ] && jq -e '.error.code == \"too_large\"' '$T/e.json' >/dev/null && [ -z \"\$(ls -A '$T' | grep cap.tar)\" ]"
"$SMOLVM" cp --max-size 1M wsa:/workspace - 2>"$T/err" | wc -c >"$T/n"; rc=${PIPESTATUS[0]}
check "cp --max-size 1M VM:/dir -: 125 after at most 1 MiB" \
        sh -c "[ $rc -eq 125 ] && [ \$(cat '$T/n') -le 1048576 ] && grep -q 'limit of 1.0 MiB' '$T/err'"

"$SMOLVM" exec wsa -- sh -c 'head -c 67108864 /dev/urandom > /workspace/big' 2>"$T/err"
"$SMOLVM" workspace persist wsa -o "$T/int.tar.zst" 2>"$T/err" &
pid=$!
# Mid-transfer: its temporary file exists and has grown.
wait_for "[ \"\$(find '$T' -maxdepth 1 -name '.int.tar.zst.*.part' -size +1M | wc -l)\" = 1 ]" 120
kill -INT "$pid"
wait "$pid"; rc=$?
check "Ctrl-C mid-persist: exit 130" test "$rc" -eq 130
check "Ctrl-C mid-persist: no file and no temporary left" test -z "$(ls -A "$T" | grep -e int.tar.zst)"

# ---- cp's tar streams ----
"$SMOLVM" cp wsa:/workspace - 2>"$T/err" | tar -tf - >"$T/cplist"; rc=${PIPESTATUS[0]}
check "cp VM:/dir - | tar -t: entries named dir/..." \
        sh -c "[ $rc -eq 0 ] && grep -qx 'workspace/dir with space/h3' '$T/cplist' && grep -qx 'workspace/big' '$T/cplist'"
"$SMOLVM" cp wsa:/workspace - 2>"$T/err" | wc -c >"$T/cpbytes"
check "cp VM:/dir -: the guest's tar wrote 64 KiB records" sh -c "[ \$(cat '$T/cpbytes') -gt 0 ] && [ \$((\$(cat '$T/cpbytes') % 65536)) -eq 0 ]"
mkdir -p "$T/up/d" && head -c 100000 /dev/urandom >"$T/up/d/blob" && ln -s d/blob "$T/up/link"
tar -C "$T/up" -cf - . | "$SMOLVM" cp - wsb:/workspace 2>"$T/err"; rc=$?
got=$("$SMOLVM" exec wsb -- sh -c 'sha256sum < /workspace/d/blob; readlink /workspace/link')
check "tar -c | cp - VM:/dir: unpacked in the guest" \
        test "$rc" -eq 0 -a "$got" = "$(sha256sum <"$T/up/d/blob")$(printf '\nd/blob')"
echo "not a tar" | "$SMOLVM" cp - wsb:/workspace 2>"$T/err"; rc=$?
check "cp - with garbage: 125 and the guest tar's words" sh -c "[ $rc -eq 125 ] && grep -q 'does not look like a tar' '$T/err'"
"$SMOLVM" cp --json wsa:/workspace - >/dev/null 2>"$T/err"; rc=$?
check "cp VM:/dir - --json is refused (stdout is the tar)" test "$rc" -eq 125

"$SMOLVM" workspace persist --help >"$T/help" 2>&1
check "workspace persist --help" grep -q -- '-o, --output' "$T/help"

"$SMOLVM" rm -f wsa wsb >/dev/null 2>"$T/err"
check "rm the VMs" test $? -eq 0
assert_no_leftovers "after workspace"
finish
