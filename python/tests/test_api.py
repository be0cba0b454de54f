# SPDX-License-Identifier: Apache-2.0
"""The API without booting: arguments, errors and their types, handles."""
import concurrent.futures
import errno
import os
import pydoc
import tempfile
import unittest

import smolvm
from smolvm import CommandResult, PortForward, SmolVM, VMConfig, VMState
from smolvm.exceptions import (CommandExecutionUnavailableError, FeatureUnavailableError, OperationTimeoutError,
                               SmolVMError, VMNotFoundError)


class TestAPI(unittest.TestCase):
    def tearDown(self) -> None:
        # Every test leaves the VM list as it found it (empty).
        left = [v.vm_id for v in SmolVM.list()]
        for vm_id in left:
            SmolVM.from_id(vm_id).delete()
        self.assertEqual(left, [], "a test left VMs behind")

    def test_exceptions_importable_and_related(self) -> None:
        for cls in (VMNotFoundError, OperationTimeoutError, CommandExecutionUnavailableError,
                    FeatureUnavailableError):
            self.assertTrue(issubclass(cls, SmolVMError), cls)
        self.assertTrue(issubclass(FeatureUnavailableError, NotImplementedError))
        self.assertIs(smolvm.SmolVMError, SmolVMError)
        self.assertEqual(CommandExecutionUnavailableError("VM x is paused").reason, "VM x is paused")

    def test_allow_hosts_bad_pattern(self) -> None:
        # The library's own check, as a typed error with its message; no VM left.
        with self.assertRaises(SmolVMError) as cm:
            SmolVM(allow_hosts=["bad host name!"])
        self.assertEqual(cm.exception.errno, errno.EINVAL, str(cm.exception))
        self.assertIn("bad host name!", cm.exception.message)
        self.assertEqual(SmolVM.list(), [])

    def test_from_id_missing_vm(self) -> None:
        with self.assertRaises(VMNotFoundError) as cm:
            SmolVM.from_id("no-such-vm")
        e = cm.exception
        self.assertIn("no-such-vm", e.message)
        self.assertNotEqual(e.hint, "")
        self.assertEqual((e.code, e.errno, e.vm_id), (-errno.ENOENT, errno.ENOENT, "no-such-vm"))
        self.assertIn(e.hint, str(e))

    def test_invalid_config_says_what_and_how(self) -> None:
        with self.assertRaises(SmolVMError) as cm:
            SmolVM(vcpu_count=999)
        e = cm.exception
        self.assertEqual(type(e), SmolVMError)
        self.assertEqual(e.code, -errno.EINVAL)
        self.assertIn("999", e.message)
        self.assertIn("64", e.hint)

    def test_missing_image(self) -> None:
        with self.assertRaises(SmolVMError) as cm:
            SmolVM(image="no-such-image")
        self.assertEqual(cm.exception.code, -errno.ENOMEDIUM)  # SMOLVM_EIMAGE
        self.assertIn("no-such-image", cm.exception.message)

    def test_mount_arguments(self) -> None:
        with self.assertRaises(ValueError):
            SmolVM(mounts=[("/tmp", "/w", "rx")])
        with self.assertRaises(TypeError):
            SmolVM(mounts=[("/tmp", "/w")], host_mounts=[("/tmp", "/w")])
        with tempfile.TemporaryDirectory() as d:
            missing = os.path.join(d, "missing")
            with self.assertRaises(SmolVMError) as cm:
                SmolVM(mounts=[(missing, "/w", "ro")])
        # A missing host directory is not a missing VM.
        self.assertNotIsInstance(cm.exception, VMNotFoundError)
        self.assertEqual(cm.exception.code, -errno.ENOENT)
        self.assertIn(missing, cm.exception.message)

    def test_config_or_keywords(self) -> None:
        with self.assertRaises(TypeError):
            SmolVM(VMConfig(), vcpu_count=2)
        vm = SmolVM(VMConfig(vm_id="from-config", vcpu_count=2, mem_size_mib=256, disk_size_mib=2048))
        try:
            info = vm.info()
            self.assertEqual((info.name, info.vcpu_count, info.mem_size_mib, info.disk_size_mib, info.status),
                             ("from-config", 2, 256, 2048, VMState.CREATED))
            self.assertEqual(vm.vm_id, "from-config")
            self.assertEqual(len(vm.id), 12)
            self.assertEqual(SmolVM.from_id("from-config").id, vm.id)
            self.assertEqual([v.vm_id for v in SmolVM.list()], [vm.id])
        finally:
            vm.delete()

    def test_name_taken(self) -> None:
        vm = SmolVM(vm_id="taken")
        try:
            with self.assertRaises(SmolVMError) as cm:
                SmolVM(vm_id="taken")
            self.assertEqual(cm.exception.code, -errno.EEXIST)
        finally:
            vm.delete()

    def test_closed_handle(self) -> None:
        vm = SmolVM()
        vm.close()
        vm.close()  # idempotent
        with self.assertRaises(SmolVMError) as cm:
            vm.run("true")
        self.assertIn("closed", cm.exception.message)
        self.assertIn("closed", repr(vm))
        SmolVM.from_id(vm.id).delete()

    def test_not_started_vm_cannot_run(self) -> None:
        vm = SmolVM()
        try:
            self.assertEqual(vm.status, VMState.CREATED)
            with self.assertRaises(CommandExecutionUnavailableError) as cm:
                vm.run("true")
            self.assertIn("not running", cm.exception.reason)
        finally:
            vm.delete()
        # Deleted: now the VM itself is missing.
        with self.assertRaises(VMNotFoundError):
            vm.run("true")

    def test_features_without_booting(self) -> None:
        with self.assertRaises(SmolVMError) as cm:
            SmolVM.from_snapshot("no-such-snapshot")
        self.assertEqual(cm.exception.errno, errno.ENOENT, str(cm.exception))
        self.assertIn("no-such-snapshot", cm.exception.message)
        with self.assertRaises(SmolVMError):
            SmolVM.delete_snapshot("no-such-snapshot")
        vm = SmolVM()
        try:
            with self.assertRaises(ValueError):
                vm.fork(0)
            with self.assertRaises(ValueError):
                vm.expose_local(70000)
            # A VM that is not running gets the record; its port is chosen at start.
            self.assertEqual(vm.expose_local(8080), 0)
            self.assertEqual(vm.list_exposed(), [PortForward(8080, 0, "127.0.0.1")])
            vm.unexpose_local(8080)
            self.assertEqual(vm.list_exposed(), [])
            with self.assertRaises(SmolVMError) as cm:
                vm.unexpose_local(8080)
            self.assertEqual(cm.exception.errno, errno.ENOENT, str(cm.exception))
        finally:
            vm.delete()

    def test_concurrent_creates(self) -> None:
        # Many threads creating (and deleting) VMs at once: each create sweeps
        # interrupted creations, and must never take another's for one.
        def one(i: int) -> str:
            vm = SmolVM(vm_id=f"c{i}" if i % 2 else None)
            vm.delete()
            return vm.id

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            ids = list(pool.map(one, range(200)))
        self.assertEqual(len(set(ids)), 200)

    def test_command_result(self) -> None:
        r = CommandResult(0, "  hi\n", "")
        self.assertTrue(r.ok)
        self.assertEqual(r.output, "hi")
        self.assertFalse(CommandResult(1, "", "boom").ok)

    def test_help_reads_well(self) -> None:
        text = pydoc.render_doc(SmolVM, renderer=pydoc.plaintext)
        for needle in ("with SmolVM() as vm", "run(self, cmd", "Raises:", "OperationTimeoutError", "from_id",
                       "set_env_vars", "upload_file", "stream("):
            self.assertIn(needle, text)
        self.assertNotIn("\"'", text)  # no doubly quoted annotations


if __name__ == "__main__":
    unittest.main()
