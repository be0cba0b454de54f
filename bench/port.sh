#!/usr/bin/env bash
# Port-forward throughput, guest -> host, against `smolvm exec -- cat` of the same
# bytes, in the same run and the same VM: a perl server in the guest writes a file
# (in the guest's page cache) to each connection on a forwarded port; the host reads
# it through the forward (bash /dev/tcp + cat), then through exec's stdout.
#
# usage: bench/port.sh [MIB] [RUNS]     (a built tree in build/; default 256 MiB, 3 runs)
set -euo pipefail
mib=${1:-256}
runs=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${SMOLVM_BUILD_DIR:-$here/build}
smolvm=${SMOLVM_BIN:-$build/host/smolvm}
work=$(mktemp -d /tmp/smolvm-bench.XXXXXX)
trap '"$smolvm" rm -f benchport >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
real_home=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
export SMOLVM_HOME="$work/home"
mkdir -p "$SMOLVM_HOME"
ln -s "$real_home/images" "$SMOLVM_HOME/images"
if [ -z "${SMOLVM_LIBEXECDIR:-}" ]; then
        export SMOLVM_LIBEXECDIR="$work/libexec"
        mkdir -p "$SMOLVM_LIBEXECDIR"
        for b in host/supervisor/smolvm-supervisor guest-init/smolvm-init fs/smolvm-virtiofsd; do
                ln -s "$build/$b" "$SMOLVM_LIBEXECDIR/"
        done
fi

# The file lives on the disk (grown to fit it), in the page cache: /tmp is a tmpfs of
# half the 512 MiB RAM, too small for the default 256 MiB.
"$smolvm" create --name benchport --publish 9100 --disk $((mib + 1024)) --boot-timeout 300 >/dev/null
hp=$("$smolvm" port ls --json benchport | jq '.data.ports[0].host_port')
"$smolvm" exec benchport -- sh -c "head -c $((mib * 1048576)) /dev/urandom >/var/tmp/bench.bin && cat /var/tmp/bench.bin >/dev/null"
# Started by itself: a '&' after the line above would put it in the background too.
"$smolvm" exec benchport -- sh -c "setsid perl -MIO::Socket::INET -e '
          \$SIG{PIPE} = \"IGNORE\";
          my \$s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1\", LocalPort => 9100, Listen => 8, ReuseAddr => 1) or die;
          while (my \$c = \$s->accept) { open(my \$f, \"<\", \"/var/tmp/bench.bin\") or die; my \$b;
            FILE: while (my \$n = sysread(\$f, \$b, 262144)) { my \$o = 0; while (\$o < \$n) { my \$w = syswrite(\$c, \$b, \$n - \$o, \$o); last FILE unless defined \$w; \$o += \$w } }
            close \$c }' >/dev/null 2>&1 </dev/null & sleep 1"
# The supervisor accepts at once; wait until a byte comes from the guest's server.
for _ in $(seq 300); do
        [ "$(bash -c "exec 3<>/dev/tcp/127.0.0.1/$hp; head -c1 <&3" 2>/dev/null | wc -c)" -eq 1 ] && break
        sleep 0.5
done

ms() { echo $(( $(date +%s%N) / 1000000 )); }
tot_port=0 tot_exec=0
for i in $(seq "$runs"); do
        t0=$(ms)
        n=$(bash -c "exec 3<>/dev/tcp/127.0.0.1/$hp; cat <&3 | wc -c")
        t1=$(ms)
        [ "$n" -eq $((mib * 1048576)) ] || { echo "port: got $n bytes" >&2; exit 1; }
        m=$("$smolvm" exec benchport -- cat /var/tmp/bench.bin | wc -c)
        t2=$(ms)
        [ "$m" -eq $((mib * 1048576)) ] || { echo "exec: got $m bytes" >&2; exit 1; }
        printf 'run %d: port forward %5d ms (%6.1f MiB/s)   exec cat %5d ms (%6.1f MiB/s)\n' "$i" \
                $((t1 - t0)) "$(echo "$mib * 1000 / ($t1 - $t0)" | bc -l)" $((t2 - t1)) "$(echo "$mib * 1000 / ($t2 - $t1)" | bc -l)"
        tot_port=$((tot_port + t1 - t0)); tot_exec=$((tot_exec + t2 - t1))
done
printf 'mean of %d, %d MiB: port forward %.1f MiB/s, exec cat %.1f MiB/s, ratio port/exec %.2f\n' "$runs" "$mib" \
        "$(echo "$mib * 1000 * $runs / $tot_port" | bc -l)" "$(echo "$mib * 1000 * $runs / $tot_exec" | bc -l)" \
        "$(echo "$tot_exec / $tot_port" | bc -l)"
