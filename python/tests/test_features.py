# SPDX-License-Identifier: Apache-2.0
"""Snapshots, forks, port forwards, workspace archives and egress by name, on
as few real VMs as possible: one parent (with a network), one VM restored from
its snapshot and two forks of it."""
import errno
import http.server
import os
import socket
import tempfile
import threading
import unittest
import urllib.request

from helpers import wait_until
from smolvm import ArchiveResult, NetLogEntry, PortForward, SmolVM, SnapshotInfo
from smolvm.exceptions import SmolVMError


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class TestFeatures(unittest.TestCase):
    vm: SmolVM
    server: http.server.HTTPServer

    @classmethod
    def setUpClass(cls) -> None:
        # A host web server on loopback, reachable from the guest only as the
        # pinned name, on its port.
        cls.server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
        cls.port = cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.vm = SmolVM(allow_hosts=[f"pinned.test:{cls.port}"], add_hosts={"pinned.test": "127.0.0.1"})
        cls.vm.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.vm.delete()
        cls.vm.close()
        cls.server.shutdown()
        cls.server.server_close()

    def fetch_in_guest(self, vm: SmolVM, url: str):
        return vm.run(["python3", "-c", "import sys, urllib.request; "
                       "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())", url],
                      timeout=60)

    def test_allow_hosts(self) -> None:
        r = self.fetch_in_guest(self.vm, f"http://pinned.test:{self.port}/")
        self.assertEqual((r.exit_code, r.stdout), (0, "hello from the host\n"), r.stderr)
        # Not on the list: the same server by address, and another name.
        for url in (f"http://127.0.0.1:{self.port}/", "http://example.com/"):
            r = self.fetch_in_guest(self.vm, url)
            self.assertNotEqual(r.exit_code, 0, f"{url} was reached: {r.stdout!r}")

    def test_net_allow_deny_and_log(self) -> None:
        vm, url = self.vm, f"http://pinned.test:{self.port}/"
        try:
            vm.deny_host("pinned.test")
            r = self.fetch_in_guest(vm, url)
            self.assertNotEqual(r.exit_code, 0, f"reached after deny_host: {r.stdout!r}")
        finally:
            vm.allow_host(f"pinned.test:{self.port}")
        r = self.fetch_in_guest(vm, url)
        self.assertEqual((r.exit_code, r.stdout), (0, "hello from the host\n"), r.stderr)
        log = vm.net_log()
        self.assertTrue(all(isinstance(e, NetLogEntry) for e in log))
        # Denied while denied (at the DNS question: NXDOMAIN), then connected.
        mine = [e for e in log if e.name == "pinned.test"]
        self.assertIn(("dns", "denied"), [(e.kind, e.verdict) for e in mine], log[-10:])
        self.assertIn(("connect", "allowed", self.port, "127.0.0.1"),
                      [(e.kind, e.verdict, e.port, e.address) for e in mine], log[-10:])
        with self.assertRaises(SmolVMError) as cm:
            vm.allow_host("bad pattern!")
        self.assertEqual(cm.exception.errno, errno.EINVAL, str(cm.exception))
        # A VM created without a network has no policy to change (not started: no boot).
        offline = SmolVM()
        try:
            with self.assertRaises(SmolVMError) as cm:
                offline.allow_host("example.com")
            self.assertEqual(cm.exception.errno, errno.EINVAL, str(cm.exception))
            self.assertEqual(offline.net_log(), [])
        finally:
            offline.delete()
            offline.close()

    def test_list_snapshots(self) -> None:
        snap = self.vm.snapshot("py-listed")
        try:
            listed = SmolVM.list_snapshots()
            self.assertTrue(all(isinstance(s, SnapshotInfo) for s in listed))
            mine = [s for s in listed if s.id == snap.id]
            self.assertEqual(len(mine), 1, listed)
            self.assertEqual((mine[0].name, mine[0].vm_id, mine[0].dir), ("py-listed", self.vm.id, snap.dir))
        finally:
            SmolVM.delete_snapshot("py-listed")
        self.assertNotIn(snap.id, [s.id for s in SmolVM.list_snapshots()])

    def test_expose_local(self) -> None:
        vm = self.vm
        vm.write_file("/srv/www/index.txt", "served by the guest\n")
        r = vm.run("cd /srv/www && setsid python3 -m http.server 8123 --bind 127.0.0.1 "
                   ">/dev/null 2>&1 </dev/null & echo started")
        self.assertEqual(r.output, "started")
        host_port = vm.expose_local(8123)
        self.assertGreater(host_port, 0)
        self.assertIn(PortForward(8123, host_port, "127.0.0.1", True, 0), vm.list_exposed())
        url = f"http://127.0.0.1:{host_port}/index.txt"

        def get():
            try:
                return urllib.request.urlopen(url, timeout=10).read()
            except OSError:
                return None
        self.assertTrue(wait_until(lambda: get() is not None, timeout=60), "the forward never answered")
        self.assertEqual(get(), b"served by the guest\n")
        # A connection held open is counted while it lasts.
        with socket.create_connection(("127.0.0.1", host_port), timeout=10):
            self.assertTrue(wait_until(lambda: vm.list_exposed()[0].connections == 1, timeout=30),
                            vm.list_exposed())
        self.assertTrue(wait_until(lambda: vm.list_exposed()[0].connections == 0, timeout=30), vm.list_exposed())
        with self.assertRaises(SmolVMError) as cm:
            vm.expose_local(8123)
        self.assertEqual(cm.exception.errno, errno.EEXIST, str(cm.exception))
        vm.unexpose_local(8123)
        self.assertEqual(vm.list_exposed(), [])
        self.assertIsNone(get())
        vm.run("pkill -f 'http.server 8123'")

    def test_snapshot_and_fork(self) -> None:
        vm = self.vm
        vm.write_file("/root/before.txt", "written before the snapshot\n")
        snap = vm.snapshot("py-snap")
        self.assertIsInstance(snap, SnapshotInfo)
        self.assertEqual((snap.name, snap.vm_id), ("py-snap", vm.id))
        vm.write_file("/root/after.txt", "written after\n")
        try:
            with SmolVM.from_snapshot("py-snap") as restored:
                self.assertNotEqual(restored.id, vm.id)
                self.assertEqual(restored.read_file("/root/before.txt"), "written before the snapshot\n")
                self.assertFalse(restored.run("test -e /root/after.txt").ok)
            with self.assertRaises(SmolVMError) as cm:
                vm.snapshot("py-snap")
            self.assertEqual(cm.exception.errno, errno.EEXIST, str(cm.exception))
        finally:
            SmolVM.delete_snapshot("py-snap")
        with self.assertRaises(SmolVMError):
            SmolVM.from_snapshot("py-snap")

        children = vm.fork(2)
        try:
            self.assertEqual(len(children), 2)
            names = [c.run("hostname").output for c in children]
            names.append(vm.run("hostname").output)
            self.assertEqual(len(set(names)), 3, names)
            for c in children:
                self.assertEqual(c.read_file("/root/after.txt"), "written after\n")
        finally:
            for c in children:
                c.__exit__(None, None, None)
        self.assertEqual([v for v in SmolVM.list() if v.vm_id in {c.id for c in children}], [])

    def test_workspace(self) -> None:
        vm = self.vm
        vm.run("mkdir -p /workspace/sub/empty && printf one > /workspace/a.txt && "
               "printf two > /workspace/sub/b.txt && chmod 0741 /workspace/sub/b.txt && "
               "ln -sf a.txt /workspace/link", timeout=60)
        listing = "cd {} && find . -path ./.smolvm -prune -o -printf '%p %y %m %l\\n' | sort && cat a.txt sub/b.txt"
        want = vm.run(listing.format("/workspace")).stdout
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ws.tar.zst")
            res = vm.persist_workspace(path)
            self.assertIsInstance(res, ArchiveResult)
            self.assertEqual(res.file_bytes, os.path.getsize(path))
            self.assertEqual(len(res.sha256), 64)
            back = vm.hydrate_workspace(path, "/restored")
            self.assertTrue(back.verified)
            self.assertEqual(back.sha256, res.sha256)
            self.assertEqual(vm.run(listing.format("/restored")).stdout, want)
            # An open file works as well as a path.
            with open(os.path.join(d, "ws2.tar.zst"), "w+b") as f:
                vm.persist_workspace(f, "/workspace/sub")
                f.seek(0)
                vm.hydrate_workspace(f, "/restored2")
            self.assertEqual(vm.read_file("/restored2/b.txt"), "two")
            # A damaged archive: a typed error with the library's message, and
            # the target left as it was.
            data = bytearray(open(path, "rb").read())
            data[len(data) // 2] ^= 0xFF
            with open(path, "wb") as f:
                f.write(data)
            with self.assertRaises(SmolVMError) as cm:
                vm.hydrate_workspace(path, "/restored")
            self.assertIn("ws.tar.zst", str(cm.exception))
            self.assertEqual(vm.run(listing.format("/restored")).stdout, want)
        with self.assertRaises(SmolVMError) as cm:
            vm.persist_workspace(os.path.join("/nonexistent-dir", "x.tar.zst"), "/no/such/dir")
        self.assertTrue(cm.exception.message)


if __name__ == "__main__":
    unittest.main()
