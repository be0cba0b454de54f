# SPDX-License-Identifier: Apache-2.0
"""What the Python tests share: a VM per test class, and witnesses of what a
user would check (guest processes, this process's fds and children)."""
import glob
import os
import subprocess
import sys
import time
import unittest
from typing import List

from smolvm import SmolVM


def guest_pids(vm: SmolVM, name: str) -> List[str]:
    """Pids of the guest processes called name (procps' pgrep, in the guest)."""
    return vm.run(["pgrep", "-x", name]).stdout.split()


def wait_until(cond, timeout: float = 60.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def open_fds() -> List[str]:
    return sorted(os.listdir("/proc/self/fd"))


def children() -> List[int]:
    """This process's children (any thread's), zombies included."""
    pids: List[int] = []
    for f in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(f) as fh:
            pids += [int(p) for p in fh.read().split()]
    return pids


def processes_naming(text: str) -> List[int]:
    """Pids of host processes whose command line contains text."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(d[6:]))
        except OSError:
            pass
    return out


def python_child(code: str, *args: str) -> subprocess.Popen:
    """Another Python process running code (argv[1:] = args), same environment."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


class SharedVM(unittest.TestCase):
    """One running VM for every test of the class (a boot takes seconds)."""

    vm: SmolVM

    @classmethod
    def setUpClass(cls) -> None:
        cls.vm = SmolVM()
        cls.vm.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.vm.delete()
        cls.vm.close()
