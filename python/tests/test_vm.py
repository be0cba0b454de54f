# SPDX-License-Identifier: Apache-2.0
"""Commands, files, environment and threads on one running VM."""
import concurrent.futures
import errno
import os
import tempfile
import threading
import time
import unittest

from helpers import SharedVM, guest_pids, open_fds, wait_until
from smolvm import SmolVM, VMState
from smolvm.exceptions import (CommandExecutionUnavailableError, OperationTimeoutError, SmolVMError,
                               VMNotFoundError)


class TestRun(SharedVM):
    def test_result(self) -> None:
        r = self.vm.run("echo out; echo err >&2; exit 3")
        self.assertEqual((r.exit_code, r.stdout, r.stderr, r.ok, r.output), (3, "out\n", "err\n", False, "out"))
        self.assertTrue(self.vm.run("true").ok)

    def test_argv_and_shell(self) -> None:
        self.assertEqual(self.vm.run(["printf", "%s|", "a b", "c"]).stdout, "a b|c|")
        self.assertEqual(self.vm.run("printf 'x\\ny\\n' | wc -l").output, "2")

    def test_bytes_and_signals(self) -> None:
        r = self.vm.run("printf '\\377A'")
        self.assertEqual(r.stdout_bytes, b"\xffA")
        self.assertEqual(r.stdout, "\ufffdA")
        r = self.vm.run("kill -9 $$")
        self.assertEqual((r.exit_code, r.signal), (137, 9))

    def test_input_env_cwd(self) -> None:
        self.assertEqual(self.vm.run("cat", input=b"\x00abc").stdout_bytes, b"\x00abc")
        self.assertEqual(self.vm.run(["cat"], input="héllo").stdout, "héllo")
        r = self.vm.run("echo $ONLY_HERE; pwd", env={"ONLY_HERE": "a b"}, cwd="/tmp")
        self.assertEqual(r.stdout, "a b\n/tmp\n")
        self.assertEqual(self.vm.run("echo ${ONLY_HERE:-unset}").output, "unset")
        with self.assertRaises(SmolVMError) as cm:
            self.vm.run("true", cwd="relative")
        self.assertEqual(cm.exception.code, -errno.EINVAL)

    def test_missing_command(self) -> None:
        with self.assertRaises(SmolVMError) as cm:
            self.vm.run(["no-such-command"])
        e = cm.exception
        self.assertNotIsInstance(e, VMNotFoundError)
        self.assertTrue(e.from_guest)
        self.assertEqual(e.errno, errno.ENOENT)
        self.assertIn("no-such-command", e.message)
        self.assertEqual(self.vm.run("no-such-command").exit_code, 127)  # through the shell

    def test_timeout_kills_the_process_group(self) -> None:
        t0 = time.monotonic()
        with self.assertRaises(OperationTimeoutError) as cm:
            self.vm.run("echo before; sleep 300 & sleep 300", timeout=2)
        e = cm.exception
        self.assertEqual(e.timeout, 2)
        self.assertEqual(e.result.stdout, "before\n")
        self.assertEqual(e.code, -errno.ETIMEDOUT)
        self.assertLess(time.monotonic() - t0, 60)
        # Both sleeps (the background one too) went with the group.
        self.assertTrue(wait_until(lambda: guest_pids(self.vm, "sleep") == [], 20), guest_pids(self.vm, "sleep"))

    def test_output_cap(self) -> None:
        r = self.vm.run("head -c 100000 /dev/zero", max_output_bytes=1000)
        self.assertEqual(len(r.stdout_bytes), 1000)
        self.assertTrue(r.stdout_truncated)
        self.assertFalse(r.stderr_truncated)

    def test_stream(self) -> None:
        with self.vm.stream("for i in 1 2 3; do echo $i; sleep 0.1; done; echo done >&2; exit 4") as s:
            got = list(s)
        self.assertEqual("".join(t for n, t in got if n == "stdout"), "1\n2\n3\n")
        self.assertEqual([t for n, t in got if n == "stderr"], ["done\n"])
        self.assertEqual((s.exit_code, s.ok), (4, False))
        self.assertGreater(s.pid, 0)

    def test_stream_is_complete_and_bounded(self) -> None:
        # 8 MiB through a 1 MiB queue: every byte arrives, in order.
        total = 0
        with self.vm.stream("head -c 8388608 /dev/zero") as s:
            for _, text in s:
                total += len(text)
        self.assertEqual((total, s.exit_code), (8388608, 0))

    def test_stream_closed_early_kills_the_command(self) -> None:
        s = self.vm.stream("echo start; exec sleep 300")
        self.assertEqual(next(iter(s)), ("stdout", "start\n"))
        s.close()
        self.assertIsNone(s.exit_code)
        self.assertTrue(wait_until(lambda: guest_pids(self.vm, "sleep") == [], 20))

    def test_stream_timeout(self) -> None:
        got = []
        with self.assertRaises(OperationTimeoutError):
            for _, text in self.vm.stream("echo x; sleep 300", timeout=2):
                got.append(text)
        self.assertEqual(got, ["x\n"])

    def test_callbacks(self) -> None:
        out, err = [], []
        r = self.vm.run("echo a; echo b >&2; echo c", on_stdout=out.append, on_stderr=err.append)
        self.assertEqual(("".join(out), "".join(err)), ("a\nc\n", "b\n"))
        self.assertEqual((r.stdout, r.stderr, r.exit_code), ("a\nc\n", "b\n", 0))
        with self.assertRaises(OperationTimeoutError) as cm:
            self.vm.run("echo partial; sleep 300", timeout=2, on_stdout=out.append)
        self.assertEqual(cm.exception.result.stdout, "partial\n")


class TestEnvAndFiles(SharedVM):
    def test_env_vars(self) -> None:
        self.vm.set_env_vars({"K1": "v 1", "K2": "x=y"})
        self.assertEqual(self.vm.list_env_vars(), {"K1": "v 1", "K2": "x=y"})
        self.assertEqual(self.vm.run("echo \"$K1|$K2\"").output, "v 1|x=y")
        self.vm.unset_env_vars(["K1", "ABSENT"])
        self.assertEqual(self.vm.list_env_vars(), {"K2": "x=y"})
        with self.assertRaises(SmolVMError) as cm:
            self.vm.set_env_vars({"1BAD": "x"})
        self.assertEqual(cm.exception.code, -errno.EINVAL)
        self.assertIn("1BAD", cm.exception.message)

    def test_write_read(self) -> None:
        self.vm.write_file("/tmp/d/e/f.txt", "héllo\n", mode=0o600)
        self.assertEqual(self.vm.read_file("/tmp/d/e/f.txt"), "héllo\n")
        self.assertEqual(self.vm.run("stat -c %a /tmp/d/e/f.txt").output, "600")
        blob = bytes(range(256)) * 64
        self.vm.write_file("/tmp/blob", blob)
        self.assertEqual(self.vm.read_file("/tmp/blob", binary=True), blob)
        with self.assertRaises(SmolVMError) as cm:
            self.vm.read_file("/tmp/blob", max_bytes=100)
        self.assertEqual(cm.exception.errno, errno.EFBIG)
        with self.assertRaises(SmolVMError) as cm:
            self.vm.read_file("/nonexistent")
        self.assertTrue(cm.exception.from_guest)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertNotIsInstance(cm.exception, VMNotFoundError)

    def test_upload_download_tree(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "src")
            os.makedirs(os.path.join(src, "sub"))
            with open(os.path.join(src, "sub", "a.txt"), "w") as f:
                f.write("A")
            os.chmod(os.path.join(src, "sub", "a.txt"), 0o640)
            self.vm.upload_file(src, "/tmp/up")
            self.assertEqual(self.vm.run("cat /tmp/up/sub/a.txt; stat -c %a /tmp/up/sub/a.txt").stdout, "A640\n")
            dst = os.path.join(d, "dst")
            os.mkdir(dst)
            path = self.vm.download_file("/tmp/up", dst)  # into an existing dir, like cp
            self.assertEqual(path, os.path.join(dst, "up"))
            with open(os.path.join(path, "sub", "a.txt")) as f:
                self.assertEqual(f.read(), "A")
            with self.assertRaises(SmolVMError):
                self.vm.upload_file(os.path.join(d, "missing"), "/tmp/x")


class TestThreads(SharedVM):
    def test_many_threads_one_vm(self) -> None:
        def job(i: int) -> str:
            return "".join(self.vm.run(f"echo {i}-{k}").stdout for k in range(3))

        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(job, range(24)))
        self.assertEqual(results, ["".join(f"{i}-{k}\n" for k in range(3)) for i in range(24)])

    def test_gil_released_while_waiting(self) -> None:
        stop = threading.Event()
        count = [0]

        def spin() -> None:
            while not stop.is_set():
                count[0] += 1

        t = threading.Thread(target=spin)
        t.start()
        try:
            self.vm.run("sleep 2")
        finally:
            stop.set()
            t.join()
        self.assertGreater(count[0], 10000)

    def test_close_while_a_call_runs(self) -> None:
        h = SmolVM.from_id(self.vm.id)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            # Events, not durations: the command runs until we let it end.
            f = pool.submit(h.run, "touch /tmp/close-started; while [ ! -e /tmp/close-go ]; do sleep 0.1; done; "
                            "echo finished")
            self.assertTrue(wait_until(lambda: self.vm.run("test -e /tmp/close-started").ok, 120))
            h.close()  # returns at once; the handle is freed when the run ends
            self.assertFalse(f.done())
            self.vm.run("touch /tmp/close-go")
            self.assertEqual(f.result(timeout=120).stdout, "finished\n")
        with self.assertRaises(SmolVMError):
            h.run("true")
        self.assertEqual(self.vm.status, VMState.RUNNING)  # close never stops the VM

    def test_no_fd_leak(self) -> None:
        self.vm.run("true")
        before = open_fds()
        for _ in range(10):
            self.vm.run("echo x")
        list(self.vm.stream("echo y"))
        s = self.vm.stream("sleep 300")
        s.close()
        self.vm.write_file("/tmp/fd", "x")
        self.vm.read_file("/tmp/fd")
        self.vm.list_env_vars()
        self.vm.status
        self.assertEqual(open_fds(), before)


class TestStates(SharedVM):
    def test_pause_resume_stop_start(self) -> None:
        vm = self.vm
        vm.pause()
        try:
            self.assertEqual(vm.status, VMState.PAUSED)
            with self.assertRaises(CommandExecutionUnavailableError) as cm:
                vm.run("true")
            self.assertIn("paused", cm.exception.reason)
            self.assertNotEqual(cm.exception.hint, "")
            vm.pause()  # already paused: fine
        finally:
            vm.resume()
        self.assertEqual(vm.run("echo back").output, "back")
        vm.write_file("/root/kept", "on disk")
        vm.stop()
        self.assertEqual(vm.status, VMState.STOPPED)
        with self.assertRaises(CommandExecutionUnavailableError):
            vm.run("true")
        vm.start()
        vm.start()  # already running: fine
        self.assertEqual(vm.read_file("/root/kept"), "on disk")


if __name__ == "__main__":
    unittest.main()
