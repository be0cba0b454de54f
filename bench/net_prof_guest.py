#!/usr/bin/env python3
# The guest's side of bench/net_profile.sh (copied into the guest's /tmp next to
# net_client.py): one download, with the guest's CPU accounting around it.
# usage: net_prof_guest.py HOST PORT MIB   prints "key value" lines: seconds, the
# guest CPU's ticks by kind (/proc/stat), PID 1's and this process's user/sys
# ticks and context switches, interrupts, and each interface's rx packets/drops.
import os, sys, time
sys.path.insert(0, "/tmp")
from client import download

HZ = os.sysconf("SC_CLK_TCK")


def cpu():
    f = open("/proc/stat").readline().split()[1:8]
    return dict(zip(("user", "nice", "sys", "idle", "iowait", "irq", "softirq"), map(int, f)))


def proc(pid):
    st = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    d = {"utime": int(st[11]), "stime": int(st[12])}
    for line in open("/proc/%s/status" % pid):
        k, _, v = line.partition(":")
        if k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            d[k[:4]] = int(v)
    return d


def intr():
    return int(open("/proc/stat").read().split("\nintr ")[1].split()[0])


def nets():
    d = {}
    for n in os.listdir("/sys/class/net"):
        if n == "lo":
            continue
        s = "/sys/class/net/%s/statistics/" % n
        d[n] = tuple(int(open(s + k).read()) for k in ("rx_packets", "rx_bytes", "rx_dropped", "tx_packets"))
    return d


host, port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c0, p0, s0, i0, n0 = cpu(), proc(1), proc("self"), intr(), nets()
t = download(host, port, mib)
c1, p1, s1, i1, n1 = cpu(), proc(1), proc("self"), intr(), nets()
print("seconds %.3f" % t)
tot = sum(c1[k] - c0[k] for k in c0)
for k in c0:
    print("guest_cpu_%s %.1f%%" % (k, 100.0 * (c1[k] - c0[k]) / max(tot, 1)))
for name, a, b in (("pid1", p0, p1), ("client", s0, s1)):
    print("%s_user_ms %d" % (name, (b["utime"] - a["utime"]) * 1000 // HZ))
    print("%s_sys_ms %d" % (name, (b["stime"] - a["stime"]) * 1000 // HZ))
    print("%s_vcsw %d" % (name, b["volu"] - a["volu"]))
    print("%s_nvcsw %d" % (name, b["nonv"] - a["nonv"]))
print("interrupts %d" % (i1 - i0))
for n in n0:
    d = [y - x for x, y in zip(n0[n], n1[n])]
    print("net_%s rx_packets %d rx_bytes %d rx_dropped %d tx_packets %d" % (n, *d))
