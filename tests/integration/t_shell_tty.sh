#!/usr/bin/env bash
# Terminals in the guest (issue 13), driven by tmux: `exec -it VM -- bash`
# (typing, the window size and its changes, Ctrl-C, the exit code, the host
# terminal restored), `smolvm shell` (a login shell, on a terminal and with
# commands on stdin), `run -it -- python3` (Ctrl-D).
. "$(dirname "$0")/lib.sh"

command -v tmux >/dev/null || { echo "1..0 # SKIP tmux not installed"; exit 0; }

"$SMOLVM" create --name sh >/dev/null 2>"$T/err"; rc=$?
check_or_bail "create a VM (rc $rc)" "$rc"

"$SMOLVM" exec -t sh -- true </dev/null >/dev/null 2>"$T/nottty.err"; rc=$?
check "exec -t without a terminal: exit 125, 'the input device is not a TTY' (rc $rc)" \
        sh -c '[ "$1" -eq 125 ] && grep -q "the input device is not a TTY" "$2"' _ "$rc" "$T/nottty.err"

tm() { tmux -S "$T/tmux.sock" "$@"; }
# A private server, no config, no status line (a pane is its whole window).
# Each step runs its command line as a session of its own, with no shell around
# it: keys typed there reach smolvm or nothing, never a host shell.
tm -f /dev/null new-session -d -s base 'sleep 100000'
tm set-option -g status off
# in_pane NAME COMMAND-LINE
in_pane() { tm new-session -d -s "$1" -x 100 -y 30 "$2"; }
pane() { tm capture-pane -p -J -t "$1" -S -1000 2>/dev/null; }
# type_line NAME TEXT: type a line into the pane.
type_line() { tm send-keys -t "$1" -l "$2"; tm send-keys -t "$1" Enter; }
# pane_has NAME REGEX SECS: wait for the pane to show a line matching REGEX.
pane_has() {
        local end=$(($(date +%s) + $3))
        until pane "$1" | grep -Eq -- "$2"; do
                [ "$(date +%s)" -ge "$end" ] && return 1
                sleep 0.2
        done
}
pane_diag() { pane "$1" | grep -v '^$' | tail -n 15 | sed 's/^/# pane: /'; }
# check_stty BEFORE AFTER: the host terminal's settings (stty -a) are as they
# were. Windows are resized on purpose: the size is left out.
check_stty() {
        local what="the host terminal is as before (stty -a identical but for the window size)"
        stty_settings() { sed -E 's/rows [0-9]+; columns [0-9]+;//' "$1"; }
        if [ -s "$2" ] && diff <(stty_settings "$1") <(stty_settings "$2") >"$T/stty.diff"; then
                ok "$what"
        else
                not_ok "$what"
                sed 's/^/# /' "$T/stty.diff"
        fi
}

in_pane it "stty -a >$T/stty.before; $SMOLVM exec -it sh -- bash --norc 2>$T/it.err; echo \$? >$T/rc; stty -a >$T/stty.after"
if pane_has it '^bash-[0-9.]+# ' 60; then
        ok "exec -it sh -- bash: the guest's bash prompt"
else
        not_ok "exec -it sh -- bash: the guest's bash prompt"
        pane_diag it
        sed 's/^/# /' "$T/it.err"
fi
type_line it 'echo MARK$((6*7))'
check "a typed command runs and its output shows" pane_has it '^MARK42' 20
type_line it 'stty size; tty'
check "the pty has the window's size (30 100)" pane_has it '^30 100' 20
check "... and is a terminal in the guest" pane_has it '^/dev/pts/[0-9]+' 5
tm resize-window -t it -x 120 -y 40
sleep 1
type_line it 'stty size'
check "a resize reaches the guest (40 120)" pane_has it '^40 120' 20
type_line it 'sleep 100'
sleep 2
tm send-keys -t it C-c
type_line it 'echo INT$((2+3))'
check "Ctrl-C interrupts sleep 100 in the guest" pane_has it '^INT5' 20
type_line it 'exit 3'
wait_secs "[ -s '$T/stty.after' ]" 30
check "exit 3 in the guest: smolvm exits 3 ($(cat "$T/rc" 2>/dev/null))" test "$(cat "$T/rc" 2>/dev/null)" = 3
check_stty "$T/stty.before" "$T/stty.after"
[ -s "$T/stty.after" ] || pane_diag it

# Another way out: Ctrl-Z stops a job in the guest's shell, then SIGTERM to
# smolvm (the client killed from elsewhere) ends it, restores the terminal and
# kills the guest session, stopped job included.
in_pane term "stty -a >$T/stty2.before; sh -c 'echo \$\$ >$T/term.pid; exec $SMOLVM exec -it sh -- bash --norc' 2>$T/term.err; echo \$? >$T/rc4; stty -a >$T/stty2.after"
pane_has term '^bash-[0-9.]+# ' 60 || { pane_diag term; sed 's/^/# /' "$T/term.err"; }
type_line term 'sleep 4721'
sleep 2
tm send-keys -t term C-z
check "Ctrl-Z stops sleep in the guest's shell" pane_has term 'Stopped +sleep 4721' 20
type_line term 'echo BACK$((3+4))'
check "... and the shell takes commands again" pane_has term '^BACK7' 20
kill -TERM "$(cat "$T/term.pid")"
wait_secs "[ -s '$T/stty2.after' ]" 30
check "SIGTERM to smolvm exec -it: exit 143 ($(cat "$T/rc4" 2>/dev/null))" test "$(cat "$T/rc4" 2>/dev/null)" = 143
check_stty "$T/stty2.before" "$T/stty2.after"
wait_secs '[ "$(guest_count sh "^sleep 4721")" = 0 ]' 20
n=$(guest_count sh '^sleep 4721')
check "... and the guest's session is gone, stopped job included (left: $n)" test "$n" = 0

in_pane login "$SMOLVM shell sh 2>$T/login.err; echo \$? >$T/rc2"
pane_has login '^root@' 60 || { pane_diag login; sed 's/^/# /' "$T/login.err"; }
type_line login 'shopt -q login_shell && echo LOGIN$((4+4))'
check "smolvm shell: a login shell" pane_has login '^LOGIN8' 20
type_line login 'exit'
wait_secs "[ -s '$T/rc2' ]" 30
check "smolvm shell: exit 0 ($(cat "$T/rc2" 2>/dev/null))" test "$(cat "$T/rc2" 2>/dev/null)" = 0
out=$(echo 'shopt -q login_shell && echo login-yes' | "$SMOLVM" shell sh 2>&1)
check "smolvm shell with commands on stdin (no terminal): a login shell runs them ('$out')" test "$out" = login-yes

in_pane py "$SMOLVM run -it -- python3 -q 2>$T/py.err; echo \$? >$T/rc3"
pane_has py '^>>> ' 120 || { pane_diag py; sed 's/^/# /' "$T/py.err"; }
type_line py 'print(6*7)'
check "run -it -- python3: the REPL answers" pane_has py '^42$' 20
tm send-keys -t py C-d
wait_secs "[ -s '$T/rc3' ]" 60
check "run -it: Ctrl-D ends python3, exit 0 ($(cat "$T/rc3" 2>/dev/null))" test "$(cat "$T/rc3" 2>/dev/null)" = 0
tm kill-server


"$SMOLVM" rm -f sh >/dev/null 2>"$T/err"
assert_no_leftovers "after rm -f"
finish
