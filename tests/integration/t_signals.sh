#!/usr/bin/env bash
# Ctrl-C, SIGTERM and a killed CLI during a run leave no VM behind.
. "$(dirname "$0")/lib.sh"

# Start a long run, wait until its guest command is running, deliver a signal to
# the CLI, and check the exit status and that everything of the VM is gone.
signal_during_run() {
        local sig=$1 want_rc=$2 pid rc
        "$SMOLVM" run -- sh -c 'echo started; exec sleep 1000' >"$T/out.$sig" 2>"$T/err.$sig" &
        pid=$!
        if ! wait_for "grep -q started '$T/out.$sig'" 120; then
                not_ok "SIG$sig: command started in the VM"
                kill -9 $pid 2>/dev/null
                cat "$T/err.$sig" | sed 's/^/# /'
                return
        fi
        ok "SIG$sig: command started in the VM"
        kill -"$sig" "$pid"
        wait "$pid"; rc=$?
        if [ -n "$want_rc" ]; then
                check "SIG$sig: CLI exits $want_rc (got $rc)" test "$rc" -eq "$want_rc"
        fi
        # The supervisor tears down asynchronously after a CLI SIGKILL (parent-death signal).
        wait_for '[ -z "$(our_pids)" ] && [ -z "$(ls -A "$SMOLVM_HOME/vms" 2>/dev/null)" ]' 15
        assert_no_leftovers "SIG$sig during a run"
}

signal_during_run INT 130
signal_during_run TERM 143
signal_during_run KILL ""

finish
