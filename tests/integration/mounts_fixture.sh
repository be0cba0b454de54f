# Sourced by t_mounts.sh and t_mounts_vsock.sh (after lib.sh, with $here set):
# the shared tree with everything a hostile guest might abuse, its manifest
# before the boot, the hashes the guest catalogue (t_mounts_guest.py) compares
# against, and the steps both tests take with them (run_catalogue,
# check_host_unchanged).
for tool in jq git python3 mknod; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool not installed"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (mknod of a device node in the share)"; exit 77; }

P="$T/parent"          # the share's host parent: must stay invisible
TREE="$P/tree"         # shared read-only
RW="$T/rwshare"        # shared read-write
mkdir -p "$TREE/sub/deeper" "$TREE/emptydir" "$RW"
marker="PARENT_MARKER_$RANDOM$RANDOM"
secret="parent-secret-$RANDOM$RANDOM"
printf '%s\n' "$secret" >"$P/$marker"
printf 'hello world\n' >"$TREE/file.txt"
: >"$TREE/empty"
echo inner >"$TREE/sub/inner.txt"
chmod 640 "$TREE/sub/inner.txt"
head -c 262144 /dev/urandom >"$TREE/sub/deeper/x.bin"
ln -s /etc/shadow "$TREE/link_shadow"
ln -s ../.. "$TREE/link_up"
ln -s "$P/$marker" "$TREE/link_abs"
mkfifo "$TREE/fifo"
mknod "$TREE/devnode" c 1 3
printf 'v1\n' >"$TREE/changing.txt"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.smolvm", b"keep")' "$TREE/file.txt" 2>/dev/null ||
        diag "no user xattrs on $T's file system: removexattr is tried on a missing attribute"
git init -q "$TREE/gitrepo"
echo "a real repository" >"$TREE/gitrepo/README"
git -C "$TREE/gitrepo" add README
git -C "$TREE/gitrepo" -c user.name=smolvm -c user.email=smolvm@example.com commit -q -m "headline commit for --mount"
# A change to the host's own files would show here.
sha() { sha256sum "$1" | cut -d' ' -f1; }
host_shadow=$(sha /etc/shadow)
host_passwd=$(sha /etc/passwd)
bin_sha=$(sha "$TREE/sub/deeper/x.bin")

# Every path with mode, size, type, link target, link count, owner, mtime and
# ctime; every file's sha256; every xattr. Anything the guest changes shows.
manifest() {
        (
                cd "$1" || exit 1
                find . -printf '%p %m %s %y %l %n %U %G %T@ %C@\n' | LC_ALL=C sort
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
                python3 - <<'EOF'
import os
for root, dirs, files in sorted(os.walk(".")):
    for n in sorted(dirs + files):
        p = os.path.join(root, n)
        if os.path.islink(p):
            continue
        try:
            print(p, sorted((k, os.getxattr(p, k)) for k in os.listxattr(p)))
        except OSError as e:
            print(p, "xattr", e.errno)
EOF
        )
}
manifest "$TREE" >"$T/before.txt"
manifest "$P" | grep -v '\./tree' >"$T/parent-before.txt"

guest_py() { # vm phase -> stdout
        "$SMOLVM" exec -i "$1" -- python3 - /workspace "$host_shadow" "$marker" "$secret" "$bin_sha" "$2" \
                <"$here/t_mounts_guest.py" 2>"$T/py.err"
}
# One TAP line per attempt: REFUSED passes, ALLOWED or ERROR fails.
report_mutations() { # label file
        local n=0 line
        while IFS= read -r line; do
                case "$line" in
                REFUSED*) ok "$1: ${line#REFUSED }"; n=$((n + 1)) ;;
                ALLOWED*) not_ok "$1: ${line#ALLOWED } was ALLOWED" ;;
                ERROR*) not_ok "$1: broken attempt: ${line#ERROR }" ;;
                esac
        done <"$2"
        check "$1: the whole catalogue ran ($n refused, DONE)" sh -c "[ $n -ge 48 ] && grep -qx DONE '$2'"
}

# The whole catalogue against VM $1's read-only /workspace (file system type
# $2 in the guest's /proc/mounts; TAP lines prefixed with $3): as mounted, where
# the guest kernel refuses most of it itself; then as a compromised guest sees
# it, its own MS_RDONLY dropped by a remount, so that every request reaches the
# host server, which must refuse (EROFS) on its own; then every read past the
# share's root.
run_catalogue() { # vm fstype label-prefix
        local rc n_erofs line l
        guest_py "$1" mutations >"$T/mut-ro.txt"
        report_mutations "${3}guest-ro" "$T/mut-ro.txt"

        "$SMOLVM" exec "$1" -- mount -o remount,rw /workspace 2>"$T/err"; rc=$?
        check "guest root remounts /workspace read-write (rc $rc)" test "$rc" -eq 0
        check "... the guest now believes it is writable" sh -c "'$SMOLVM' exec $1 -- grep -q ' /workspace $2 rw' /proc/mounts"
        guest_py "$1" mutations >"$T/mut-rw.txt"
        report_mutations "${3}guest-rw" "$T/mut-rw.txt"
        n_erofs=$(grep -c ': EROFS ' "$T/mut-rw.txt")
        check "the host server answered EROFS to $n_erofs attempts (>= 30)" test "$n_erofs" -ge 30
        diag "refusals not answered by the server (guest kernel checks first):" \
                "$(grep '^REFUSED' "$T/mut-rw.txt" | grep -v ': EROFS ' | sed 's/^REFUSED //' | tr '\n' ';')"

        guest_py "$1" reads >"$T/reads.txt"
        while IFS= read -r line; do
                case "$line" in
                "CHECK "*" PASS"*) l=${line#CHECK }; ok "${3}read: ${l/ PASS/ (pass)}" ;;
                "CHECK "*) not_ok "${3}read: ${line#CHECK }" ;;
                INFO*) diag "${line#INFO }" ;;
                ALLOWED* | ERROR*) not_ok "${3}read: $line" ;;
                esac
        done <"$T/reads.txt"
        check "reads: all checks ran (DONE)" grep -qx DONE "$T/reads.txt"
        [ -s "$T/py.err" ] && sed 's/^/# guest stderr: /' "$T/py.err"
}

# After the catalogue: not a byte of the share, its host parent or the host's
# /etc/shadow changed.
check_host_unchanged() {
        manifest "$TREE" >"$T/after.txt"
        if cmp -s "$T/before.txt" "$T/after.txt"; then
                ok "host tree byte-identical: $(wc -l <"$T/before.txt") manifest lines (listing, sha256, xattrs)"
        else
                not_ok "host tree byte-identical"
                diff "$T/before.txt" "$T/after.txt" | head -20 | sed 's/^/# /'
        fi
        manifest "$P" | grep -v '\./tree' >"$T/parent-after.txt"
        check "host parent dir unchanged" cmp -s "$T/parent-before.txt" "$T/parent-after.txt"
        check "host /etc/shadow unchanged" test "$(sha /etc/shadow)" = "$host_shadow"
}
