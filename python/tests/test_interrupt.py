# SPDX-License-Identifier: Apache-2.0
"""Ctrl-C: SIGINT to a Python process blocked in smolvm kills what runs in the
guest (or the boot) and ends that process with KeyboardInterrupt."""
import signal
import unittest

from helpers import guest_pids, processes_naming, python_child, wait_until
from smolvm import SmolVM, VMState

RUN = """
import sys
from smolvm import SmolVM
vm = SmolVM.from_id(sys.argv[1])
print("running", flush=True)
vm.run("sleep 100")
"""

STREAM = """
import sys
from smolvm import SmolVM
vm = SmolVM.from_id(sys.argv[1])
print("running", flush=True)
for _ in vm.stream("echo go; sleep 100"):
    pass
"""

START = """
import sys
from smolvm import SmolVM
vm = SmolVM.from_id(sys.argv[1])
print("starting", flush=True)
vm.start()
print("started", flush=True)
"""

WITH = """
from smolvm import SmolVM
with SmolVM() as vm:
    print(vm.id, vm._h.dir, flush=True)
    vm.run("sleep 100")
"""


class TestInterrupt(unittest.TestCase):
    def assert_interrupted(self, p) -> str:
        out, err = p.communicate(timeout=120)
        # An uncaught KeyboardInterrupt ends Python by SIGINT (3.8+), after the traceback.
        self.assertEqual(p.returncode, -signal.SIGINT, err)
        self.assertIn("KeyboardInterrupt", err)
        return out

    def interrupt_command(self, code: str) -> None:
        vm = SmolVM()
        try:
            vm.start()
            p = python_child(code, vm.id)
            self.assertEqual(p.stdout.readline(), "running\n")
            self.assertTrue(wait_until(lambda: guest_pids(vm, "sleep") != [], 60), "the command never started")
            p.send_signal(signal.SIGINT)
            self.assert_interrupted(p)
            # The guest has no sleep left: the command was killed, not abandoned.
            self.assertTrue(wait_until(lambda: guest_pids(vm, "sleep") == [], 20), guest_pids(vm, "sleep"))
        finally:
            vm.delete()

    def test_ctrl_c_kills_run(self) -> None:
        self.interrupt_command(RUN)

    def test_ctrl_c_kills_stream(self) -> None:
        self.interrupt_command(STREAM)

    def test_ctrl_c_during_start(self) -> None:
        vm = SmolVM()
        vm_dir = vm._h.dir
        try:
            p = python_child(START, vm.id)
            self.assertEqual(p.stdout.readline(), "starting\n")
            # Interrupt while it boots: once its supervisor exists, before it is ready.
            self.assertTrue(wait_until(lambda: processes_naming(vm_dir) != [], 60), "no supervisor appeared")
            p.send_signal(signal.SIGINT)
            self.assertNotIn("started", self.assert_interrupted(p))
            # The boot was abandoned: nothing of the VM runs, and it can start again.
            self.assertTrue(wait_until(lambda: processes_naming(vm_dir) == [], 30), processes_naming(vm_dir))
            self.assertNotEqual(vm.status, VMState.RUNNING)
            self.assertIn("interrupted", vm.info().error)
            vm.start()
            self.assertEqual(vm.run("echo up").output, "up")
        finally:
            vm.delete()

    def test_ctrl_c_in_with_block_deletes_the_vm(self) -> None:
        p = python_child(WITH)
        vm_id, vm_dir = p.stdout.readline().split()
        self.assertTrue(wait_until(lambda: guest_pids(SmolVM.from_id(vm_id), "sleep") != [], 60))
        p.send_signal(signal.SIGINT)
        self.assert_interrupted(p)
        self.assertEqual(SmolVM.list(), [])
        self.assertEqual(processes_naming(vm_dir), [])


if __name__ == "__main__":
    unittest.main()
