# SPDX-License-Identifier: Apache-2.0
"""Installing the package as a user would: pip into a virtualenv, offline (no
network namespace at all when unshare can make one), and scripts/install-python.sh
(what scripts/setup.sh runs) for each python3 of this machine, twice. Built
against this build tree's libsmolvm (build/meson-uninstalled/smolvm-uninstalled.pc)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("SMOLVM_BUILD_DIR", os.path.join(SRC, "build"))


def env_for_install() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env["PKG_CONFIG_PATH"] = os.path.join(BUILD, "meson-uninstalled")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def tree(top: str) -> List[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(top) for f in files)


def offline() -> List[str]:
    """A prefix that runs a command with no network (only a loopback that is down)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def make_venv(python: str, where: str) -> str:
    subprocess.run([python, "-m", "venv", where], check=True, capture_output=True, env=env_for_install())
    return os.path.join(where, "bin", "python3")


def interpreters() -> List[str]:
    """This test's python and the python3 first on PATH, when it is another one."""
    out = [sys.executable]
    on_path: Optional[str] = shutil.which("python3")
    if on_path:
        real = subprocess.run([on_path, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                              env=env_for_install()).stdout.strip()
        if real and real != sys.prefix:
            out.append(on_path)
    return out


class TestInstall(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="smolvm-pyinst-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_pip_install_into_venv_offline(self) -> None:
        py = make_venv(sys.executable, os.path.join(self.tmp, "venv"))
        before = tree(os.path.join(SRC, "python"))
        p = subprocess.run([*offline(), py, "-m", "pip", "install", "--no-build-isolation", "./python"], cwd=SRC,
                           capture_output=True, text=True, env=env_for_install(), timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(tree(os.path.join(SRC, "python")), before, "the build wrote into python/")
        # From elsewhere, as the venv's user: the installed copy, a real VM.
        code = ("import smolvm, sys\n"
                "assert smolvm.__file__.startswith(sys.prefix), smolvm.__file__\n"
                "with smolvm.SmolVM() as vm:\n"
                "    print(vm.run('echo hello from $(uname -s)').output)\n")
        env = env_for_install()
        for k in ("SMOLVM_HOME", "SMOLVM_LIBEXECDIR"):
            if k in os.environ:
                env[k] = os.environ[k]
        r = subprocess.run([py, "-c", code], cwd="/", capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual((r.returncode, r.stdout), (0, "hello from Linux\n"), r.stderr)

    def test_install_script_for_each_python(self) -> None:
        script = os.path.join(SRC, "scripts", "install-python.sh")
        for i, base in enumerate(interpreters()):
            py = make_venv(base, os.path.join(self.tmp, f"venv{i}"))
            first = subprocess.run([*offline(), script, py], capture_output=True, text=True,
                                   env=env_for_install(), timeout=300)
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertIn(f"installing for {py}", first.stderr)
            again = subprocess.run([script, py, py], capture_output=True, text=True, env=env_for_install(),
                                   timeout=300)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(again.stderr, f"==> python package: up to date for {py} "
                             f"({os.path.join(self.tmp, f'venv{i}')}/lib/python{self.version(py)}/site-packages)\n")
            r = subprocess.run([py, "-c", "import smolvm; print(smolvm.library_version, smolvm.SmolVM.__doc__ "
                                "is not None)"], cwd="/", capture_output=True, text=True, env=env_for_install())
            self.assertEqual((r.returncode, r.stdout.split()[-1]), (0, "True"), r.stderr)

    @staticmethod
    def version(py: str) -> str:
        return subprocess.run([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                              text=True, check=True).stdout.strip()


if __name__ == "__main__":
    unittest.main()
