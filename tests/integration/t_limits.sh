#!/usr/bin/env bash
# Resource limits of a persistent VM hold: --mem, --cpus, --disk (a guest filling
# its disk fills only its own overlay, bounded by --disk). One boot.
. "$(dirname "$0")/lib.sh"

DISK_MIB=900
id=$("$SMOLVM" create --mem 256 --cpus 2 --disk $DISK_MIB 2>"$T/err"); rc=$?
check "create --mem 256 --cpus 2 --disk $DISK_MIB (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err"

mem_kib=$("$SMOLVM" exec "$id" -- awk '/^MemTotal:/ {print $2}' /proc/meminfo)
diag "guest MemTotal: ${mem_kib} KiB"
check "--mem 256: guest MemTotal within [200, 256] MiB" \
        test "${mem_kib:-0}" -ge $((200 * 1024)) -a "${mem_kib:-0}" -le $((256 * 1024))
n=$("$SMOLVM" exec "$id" -- nproc)
check "--cpus 2: nproc is 2 (got $n)" test "$n" = 2

overlay="$SMOLVM_HOME/vms/$id/overlay.qcow2"
vsize=$(qemu-img info --output=json -U "$overlay" | jq '."virtual-size"')
check "overlay virtual size is --disk ($vsize bytes)" test "$vsize" -eq $((DISK_MIB * 1024 * 1024))
fs_mib=$("$SMOLVM" exec "$id" -- df -m --output=size / | tail -1 | tr -d ' ')
diag "guest root file system: ${fs_mib} MiB"
check "guest grew its root file system to --disk (${fs_mib} MiB)" test "${fs_mib:-0}" -ge $((DISK_MIB * 8 / 10))

# Fill the disk from the guest until ENOSPC; the overlay stays bounded.
"$SMOLVM" exec --timeout 600 "$id" -- sh -c 'dd if=/dev/zero of=/root/fill bs=1M 2>/dev/null; sync; exit 0'
out=$("$SMOLVM" exec "$id" -- sh -c 'echo x > /root/more 2>&1 && echo wrote || echo enospc')
check "the guest's disk is full ($out)" test "$out" = enospc
size_mib=$(( $(stat -c %s "$overlay") / 1024 / 1024 ))
alloc_mib=$(( $(du -k "$overlay" | cut -f1) / 1024 ))
diag "overlay: ${size_mib} MiB file, ${alloc_mib} MiB allocated"
check "overlay file stays below --disk + 64 MiB" test "$size_mib" -lt $((DISK_MIB + 64))
check "overlay allocation stays below --disk + 64 MiB" test "$alloc_mib" -lt $((DISK_MIB + 64))
check "the VM still answers after ENOSPC" test "$("$SMOLVM" exec "$id" -- echo alive)" = alive

"$SMOLVM" rm -f "$id" >/dev/null 2>"$T/err"
assert_no_leftovers "after rm -f"
finish
