#!/usr/bin/env bash
# virtio-fs direct I/O (issue 10 part 6, docs/internals.md "Direct I/O"). By default
# a share goes through the guest's page cache, so a shared read-only mmap works
# (python's mmap.ACCESS_READ, numpy.memmap, LMDB, safetensors); with
# SMOLVM_FS_DIRECT_IO=1 the server answers every OPEN with FOPEN_DIRECT_IO: reads go
# straight into the reader's buffer (what makes sequential reads as fast as 9p under
# TCG) and the bytes are the same, private mmap and exec work, and the guest's page
# cache stays empty after a read (fincore). A shared mmap fails with ENODEV on the
# 6.1 guest kernel (the documented price); a 6.6+ guest offers
# FUSE_DIRECT_IO_ALLOW_MMAP, the server takes it, and shared mmap works.
# Boots: two persistent VMs (default, direct), at once.
. "$(dirname "$0")/lib.sh"

share="$T/share"
mkdir -p "$share"
head -c $((8 * 1024 * 1024 + 12345)) /dev/urandom >"$share/big"
cp /bin/true "$share/true"
want=$(sha256sum <"$share/big" | cut -d' ' -f1)

# Reads every way we care about; prints one "name: result" line each.
cat >"$T/probe.py" <<'EOF'
import hashlib, mmap, subprocess, sys
p = sys.argv[1]
def h(b):
    return hashlib.sha256(b).hexdigest()
with open(p, "rb") as f:
    d = hashlib.sha256()
    while True:
        b = f.read(100000)  # not a page multiple: unaligned direct reads
        if not b:
            break
        d.update(b)
    print("read:", d.hexdigest())
with open(p, "rb") as f:
    f.seek(4097)
    print("pread:", h(f.read(333)))
for name, acc in (("shared mmap", mmap.ACCESS_READ), ("private mmap", mmap.ACCESS_COPY)):
    with open(p, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=acc) as m:
                print(name + ":", h(m[:]))
        except OSError as e:
            print(name + ":", e.strerror)
r = subprocess.run(["/share/true"])
print("exec:", r.returncode)
EOF
with_open=$(python3 -c 'import hashlib,sys; f=open(sys.argv[1],"rb"); f.seek(4097); print(hashlib.sha256(f.read(333)).hexdigest())' "$share/big")

"$SMOLVM" create --name plain --mount "$share:/share" >/dev/null 2>"$T/err"
check_or_bail "create with a share (default)" $?
SMOLVM_FS_DIRECT_IO=1 "$SMOLVM" create --name direct --mount "$share:/share" >/dev/null 2>"$T/err"
check_or_bail "create with a share, SMOLVM_FS_DIRECT_IO=1" $?
n=$(pgrep -f -- "smolvm-virtiofsd --fd=3 --ready-fd=4 --shared-dir $share --read-only --direct-io" | wc -l)
check "exactly one back-end runs with --direct-io (the direct VM's; got $n processes)" test "$n" -ge 1 -a "$n" -le 2
n=$(pgrep -f -- "smolvm-virtiofsd --fd=3 --ready-fd=4 --shared-dir $share --read-only$" | wc -l)
check "the default VM's back-end runs without it ($n processes)" test "$n" -ge 1

for vm in plain direct; do
        "$SMOLVM" cp "$T/probe.py" "$vm:/root/probe.py" >/dev/null
        "$SMOLVM" exec "$vm" -- python3 /root/probe.py /share/big >"$T/$vm.out" 2>"$T/err"
        check "$vm: the probe ran (rc $?)" test -s "$T/$vm.out"
        sed "s/^/# $vm: /" "$T/$vm.out"
        check "$vm: read() in 100000-byte chunks gives the host's bytes" grep -qx "read: $want" "$T/$vm.out"
        check "$vm: a 333-byte read at offset 4097 gives the host's bytes" grep -qx "pread: $with_open" "$T/$vm.out"
        check "$vm: private mmap gives the host's bytes" grep -qx "private mmap: $want" "$T/$vm.out"
        check "$vm: a binary on the share runs" grep -qx "exec: 0" "$T/$vm.out"
done
check "default: shared read-only mmap works and gives the host's bytes" grep -qx "shared mmap: $want" "$T/plain.out"
kver=$("$SMOLVM" exec direct -- uname -r)
kmaj=${kver%%.*} kmin=${kver#*.}
kmin=${kmin%%[!0-9]*}
if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -ge 6 ]; }; then
        check "direct: shared mmap works on the $kver guest (FUSE_DIRECT_IO_ALLOW_MMAP) and gives the host's bytes" \
                grep -qx "shared mmap: $want" "$T/direct.out"
else
        check "direct: shared mmap is refused with ENODEV on the $kver guest" \
                grep -qx "shared mmap: No such device" "$T/direct.out"
fi
cached() {
        "$SMOLVM" exec "$1" -- sh -c 'echo 3 >/proc/sys/vm/drop_caches; cat /share/big >/dev/null; fincore -rnb -o RES /share/big'
}
check "default: a read leaves the file in the guest's page cache" test "$(cached plain)" -gt 0
check "direct: a read leaves none of it in the guest's page cache (FOPEN_DIRECT_IO reached the guest)" \
        test "$(cached direct)" -eq 0
out=$("$SMOLVM" exec direct -- sh -c 'dd if=/share/big bs=1M 2>/dev/null | sha256sum' | cut -d' ' -f1)
check "direct: dd bs=1M gives the host's bytes" test "$out" = "$want"

"$SMOLVM" rm -f plain direct >/dev/null 2>"$T/err"
check "rm -f both (rc $?)" test $? -eq 0
assert_no_leftovers "direct I/O VMs"
finish
