#!/usr/bin/env bash
# SMOLVM_NO_LANE on a warm start: a VM created with SMOLVM_NO_LANE=1 after one
# created warm without it must have no lane (docs/protocol.md, "The lane").
# A boot template keeps the devices of the VM it was made from, which had the
# lane, so such a VM boots cold and says why; the lane VMs' template stays.
# One template build, one restore, one cold boot.
. "$(dirname "$0")/lib.sh"
unset SMOLVM_COLD
lane_mac=52:54:00:5c:4c:01
has_lane() { "$SMOLVM" exec "$1" -- sh -c "cat /sys/class/net/*/address 2>/dev/null" | grep -qx "$lane_mac"; }
no_lane() { ! has_lane "$1"; }
sup_log() { cat "$SMOLVM_HOME/vms/$1/supervisor.log"; }

id=$("$SMOLVM" create --name w1 2>"$T/err"); rc=$?
check_or_bail "create a VM warm (rc $rc)" "$rc"
check "... from a boot template" jq_true '.from_template | length == 64' "$SMOLVM_HOME/vms/$id/vm.json"
check "... with the lane" sh -c "grep -q 'lane: on (epoch' '$SMOLVM_HOME/vms/$id/supervisor.log'"
check "... the guest has the lane's interface" has_lane w1

tpl=$(jq -r .from_template "$SMOLVM_HOME/vms/$id/vm.json")
SMOLVM_NO_LANE=1 "$SMOLVM" create --name w2 --json >"$T/w2.json" 2>"$T/err"; rc=$?
check_or_bail "create a VM with SMOLVM_NO_LANE=1 (rc $rc)" "$rc"
nid=$(jq -r .data.id "$T/w2.json")
diag "its start: $(jq -c '.data | {start, start_note}' "$T/w2.json")"
check "... boots cold and says why" jq_true '.data.start == "cold" and
        (.data.start_note | test("SMOLVM_NO_LANE is set"))' "$T/w2.json"
check "... from no template" jq_true '(.from_template // "") == ""' "$SMOLVM_HOME/vms/$nid/vm.json"
check "... the lane VM's template is still there" test -f "$SMOLVM_HOME/templates/$tpl/template.json"
diag "its supervisor: $(sup_log "$nid" | grep 'lane: ' | head -2 | paste -sd '|' -)"
check "... without the lane (the supervisor says so)" sh -c "grep -q 'lane: off' '$SMOLVM_HOME/vms/$nid/supervisor.log' &&
        ! grep -q 'lane: on' '$SMOLVM_HOME/vms/$nid/supervisor.log'"
check "... the guest has no lane interface" no_lane w2
check "... its channel carries exec -i cat" test "$(head -c 1000000 /dev/zero | "$SMOLVM" exec -i w2 -- wc -c)" = 1000000

"$SMOLVM" rm -f w1 w2 >/dev/null 2>&1
finish
