#!/usr/bin/env python3
# The guest's TCP client of bench/net.sh and bench/lane_spike.sh (copied into the
# guest's /tmp). usage: net_client.py dl HOST PORT MIB   prints the seconds to read
# MIB MiB from HOST:PORT to EOF (timed from connect(), the name resolved before);
# net_client.py lat HOST PORT N   prints the p50/p99 of connect() and of the time
# to the server's first byte over N connections, in ms. lane_spike.sh imports
# download() from it.
import socket, sys, time


def resolve(host, port):
    return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]


def download(host, port, mib):
    addr = resolve(host, port)
    buf = bytearray(256 << 10)
    mv = memoryview(buf)
    t0 = time.monotonic()
    s = socket.create_connection(addr)
    got = 0
    while True:
        r = s.recv_into(mv)
        if r == 0:
            break
        got += r
    t = time.monotonic() - t0
    if got != mib << 20:
        sys.exit("got %d bytes" % got)
    return t


def latency(host, port, n):
    addr = resolve(host, port)
    conn, first = [], []
    for _ in range(n):
        t0 = time.monotonic()
        s = socket.create_connection(addr)
        t1 = time.monotonic()
        if s.recv(1) != b"x":
            sys.exit("no first byte")
        t2 = time.monotonic()
        s.close()
        conn.append((t1 - t0) * 1e3)
        first.append((t2 - t0) * 1e3)
    conn.sort(); first.sort()
    pick = lambda v, q: v[min(len(v) - 1, int(q * len(v)))]
    return pick(conn, .5), pick(conn, .99), pick(first, .5), pick(first, .99)


if __name__ == "__main__":
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "dl":
        print("%.3f" % download(host, port, n))
    else:
        print("%.2f %.2f %.2f %.2f" % latency(host, port, n))
