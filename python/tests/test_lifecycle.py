# SPDX-License-Identifier: Apache-2.0
"""Lifecycle across `with` blocks, processes and handles; mounts and create-time env."""
import os
import tempfile
import unittest

from helpers import children, open_fds, processes_naming, python_child
from smolvm import SmolVM, VMState
from smolvm.exceptions import VMNotFoundError

# A second process: reconnect by name, append to a file in the guest, print it.
TURN = """
import sys
from smolvm import SmolVM
vm = SmolVM.from_id(sys.argv[1])
r = vm.run("echo turn-$N >> /root/state; cat /root/state", env={"N": sys.argv[2]}, timeout=60)
vm.close()
print(r.stdout, end="")
"""


class TestLifecycle(unittest.TestCase):
    def assert_gone(self, vm_id: str, vm_dir: str) -> None:
        self.assertNotIn(vm_id, [v.vm_id for v in SmolVM.list()])
        with self.assertRaises(VMNotFoundError):
            SmolVM.from_id(vm_id)
        self.assertFalse(os.path.exists(vm_dir))
        self.assertEqual(processes_naming(vm_dir), [])

    def test_with_block_deletes_its_vm(self) -> None:
        fds, kids = open_fds(), children()
        with SmolVM() as vm:
            self.assertEqual(vm.status, VMState.RUNNING)
            self.assertEqual(vm.run("echo in").output, "in")
            vm_dir = vm._h.dir
        self.assert_gone(vm.id, vm_dir)
        with self.assertRaises(ValueError):
            with SmolVM() as vm2:
                vm_dir = vm2._h.dir
                raise ValueError("inside the block")
        self.assert_gone(vm2.id, vm_dir)
        # No zombie, no fd left by either block.
        self.assertEqual((open_fds(), children()), (fds, kids))

    def test_state_across_processes(self) -> None:
        vm = SmolVM(vm_id="agent-workspace")
        vm.start()
        vm.run("echo turn-0 > /root/state")
        vm.close()  # released, not stopped
        for n in ("1", "2"):
            p = python_child(TURN, "agent-workspace", n)
            out, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out, "turn-0\nturn-1\nturn-2\n")
        # A `with` on a VM it did not create leaves it running.
        with SmolVM.from_id("agent-workspace") as again:
            self.assertEqual(again.status, VMState.RUNNING)
        vm = SmolVM.from_id("agent-workspace")
        self.assertEqual(vm.status, VMState.RUNNING)
        vm.stop()
        self.assertEqual(vm.status, VMState.STOPPED)
        vm.start()  # the disk survived the stop
        self.assertEqual(vm.read_file("/root/state"), "turn-0\nturn-1\nturn-2\n")
        vm_dir = vm._h.dir
        vm.delete()
        vm.close()
        self.assert_gone("agent-workspace", vm_dir)

    def test_deleted_elsewhere(self) -> None:
        vm = SmolVM()
        SmolVM.from_id(vm.id).delete()
        with self.assertRaises(VMNotFoundError):
            vm.status
        with self.assertRaises(VMNotFoundError):
            vm.start()
        vm.close()

    def test_mounts_and_create_env(self) -> None:
        with tempfile.TemporaryDirectory() as repo, tempfile.TemporaryDirectory() as out:
            with open(os.path.join(repo, "README.md"), "w") as f:
                f.write("# repo\n")
            mounts = [(repo, "/workspace", "ro"), (out, "/out", "rw")]
            with SmolVM(mounts=mounts, env_vars={"APP_MODE": "test"}) as vm:
                self.assertEqual(vm.run("cat /workspace/README.md").stdout, "# repo\n")
                r = vm.run("touch /workspace/new")
                self.assertNotEqual(r.exit_code, 0)
                self.assertIn("Read-only", r.stderr)
                self.assertEqual(vm.run("echo $APP_MODE > /out/mode").exit_code, 0)
                self.assertEqual(vm.list_env_vars(), {"APP_MODE": "test"})
            self.assertEqual(os.listdir(repo), ["README.md"])
            with open(os.path.join(out, "mode")) as f:
                self.assertEqual(f.read(), "test\n")


if __name__ == "__main__":
    unittest.main()
