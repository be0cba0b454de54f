#!/usr/bin/env python3
# The host server of bench/net.sh and bench/lane_spike.sh: port P sends MIB MiB
# and closes; port P+1 sends one byte and closes (latency). Threads: a
# connection never waits for another.  usage: net_server.py MIB P
import os, socket, sys, threading
mib, port = int(sys.argv[1]), int(sys.argv[2])
chunk = os.urandom(1 << 20)
def serve(ls, big):
    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c, big), daemon=True).start()
def one(c, big):
    try:
        if big:
            for _ in range(mib):
                c.sendall(chunk)
        else:
            c.sendall(b"x")
            c.shutdown(socket.SHUT_WR)
            c.recv(1)
    except OSError:
        pass
    c.close()
socks = []
for p, big in ((port, True), (port + 1, False)):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p))
    s.listen(256)
    socks.append((s, big))
for s, big in socks[1:]:
    threading.Thread(target=serve, args=(s, big), daemon=True).start()
serve(*socks[0])
