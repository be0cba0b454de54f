#!/usr/bin/env bash
# The channel's bulk paths (issue 11: the channel every stream shares): 48 MiB
# host -> guest on exec's stdin and guest -> host on its stdout, intact; and,
# under TCG, the guest CPU without ERMS (the reason: with it the guest kernel
# copies with `rep movsb`, which QEMU's TCG runs one byte per iteration, and
# the channel costs the guest 2-3 copies of every byte; qemu.c).
. "$(dirname "$0")/lib.sh"

mib=48
"$SMOLVM" create --name ch >/dev/null 2>"$T/err"
check_or_bail "create" "$?"

"$SMOLVM" exec ch -- cat /proc/cpuinfo >"$T/cpuinfo" 2>>"$T/err"
if grep -q '^model name.*QEMU TCG CPU' "$T/cpuinfo"; then
        check "TCG: the guest CPU has no erms flag (flags: $(grep -m1 -o 'rep_good\|erms' "$T/cpuinfo" | tr '\n' ' '))" \
                sh -c "! grep -m1 '^flags' '$T/cpuinfo' | grep -qw erms"
else
        diag "not TCG ($(grep -m1 '^model name' "$T/cpuinfo")): the erms check does not apply"
fi

head -c $((mib << 20)) /dev/urandom >"$T/big"
want=$(sha256sum <"$T/big" | cut -d' ' -f1)
got=$("$SMOLVM" exec ch -- sha256sum <"$T/big" 2>>"$T/err" | cut -d' ' -f1)
check "$mib MiB host -> guest (exec stdin): sha256 $got = $want" [ "$got" = "$want" ]

"$SMOLVM" exec ch -- sh -c "cat >/tmp/big" <"$T/big" 2>>"$T/err"
got=$("$SMOLVM" exec ch -- cat /tmp/big 2>>"$T/err" | sha256sum | cut -d' ' -f1)
check "$mib MiB guest -> host (exec stdout): sha256 $got = $want" [ "$got" = "$want" ]

"$SMOLVM" rm -f ch >/dev/null 2>>"$T/err"
finish
