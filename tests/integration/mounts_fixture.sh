# Sourced by t_mounts.sh and t_mounts_vsock.sh (after lib.sh): the shared tree
# with everything a hostile guest might abuse, its manifest before the boot, and
# the hashes the guest catalogue (t_mounts_guest.py) compares against.
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
