# SPDX-License-Identifier: Apache-2.0
"""smolvm: run untrusted code in disposable QEMU microVMs, from Python.

    from smolvm import SmolVM

    with SmolVM() as vm:
        result = vm.run("echo 'Hello from the sandbox!'")
        print(result.output)

The API follows SmolVM's (``SmolVM``, ``run()`` results, ``from_id``, env vars,
mounts, typed exceptions in :mod:`smolvm.exceptions`). It is a thin layer over
libsmolvm (a C extension, ``smolvm._smolvm``): VMs made here are the same VMs
the ``smolvm`` command lists and drives. docs/python.md has the details.
"""
from . import _smolvm
from .exceptions import (CommandExecutionUnavailableError, FeatureUnavailableError, OperationTimeoutError,
                         SmolVMError, VMNotFoundError)
from .types import ArchiveResult, CommandResult, NetLogEntry, PortForward, SnapshotInfo, VMConfig, VMInfo, VMState
from .vm import CommandStream, SmolVM

__version__ = "0.1.0"
#: The version of the libsmolvm this module runs on.
library_version: str = _smolvm.version()

__all__ = [
    "SmolVM",
    "VMConfig",
    "VMState",
    "VMInfo",
    "CommandResult",
    "SnapshotInfo",
    "PortForward",
    "NetLogEntry",
    "ArchiveResult",
    "CommandStream",
    "SmolVMError",
    "VMNotFoundError",
    "OperationTimeoutError",
    "CommandExecutionUnavailableError",
    "FeatureUnavailableError",
    "library_version",
]
