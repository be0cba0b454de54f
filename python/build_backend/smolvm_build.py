# SPDX-License-Identifier: Apache-2.0
"""The PEP 517 build backend of the smolvm Python package (python/pyproject.toml).

Standard library only, so ``pip install ./python`` works offline and in any
virtualenv, also one without setuptools or wheel (Python 3.12+ venvs have
neither). It compiles python/src/*.c with the C compiler this Python was built
with, against the installed libsmolvm found by ``pkg-config smolvm`` (set
PKG_CONFIG_PATH to use another, e.g. a build tree's meson-uninstalled/), and
zips a wheel: the package, the extension, its .pyi stub and dist-info.

Environment: CC (the compiler), PKG_CONFIG (the pkg-config program),
SMOLVM_PY_CFLAGS (extra compiler flags).
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent.parent  # python/
PACKAGE = "smolvm"
PACKAGE_FILES = ["__init__.py", "exceptions.py", "types.py", "vm.py", "_smolvm.pyi", "py.typed"]


class BuildError(Exception):
    pass


def _project() -> Dict[str, str]:
    """[project]'s string fields from pyproject.toml (tomllib is 3.11's: a
    line parser for the simple file we write otherwise)."""
    text = (HERE / "pyproject.toml").read_text()
    try:
        import tomllib
        return {k: v for k, v in tomllib.loads(text)["project"].items() if isinstance(v, str)}
    except ImportError:
        pass
    fields: Dict[str, str] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
            continue
        m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"\s*$', line)
        if section == "[project]" and m:
            fields[m.group(1)] = m.group(2)
    return fields


def _tag() -> str:
    if sys.implementation.name != "cpython":
        raise BuildError("smolvm's extension uses the CPython C API: build it with CPython")
    ver = f"{sys.version_info[0]}{sys.version_info[1]}"
    abi = f"cp{ver}{getattr(sys, 'abiflags', '')}"
    plat = re.sub(r"[^A-Za-z0-9_]", "_", sysconfig.get_platform())
    return f"cp{ver}-{abi}-{plat}"


def _dist_info_name() -> str:
    p = _project()
    return f"{p['name']}-{p['version']}.dist-info"


def _metadata() -> str:
    p = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}"]
    if "description" in p:
        lines.append(f"Summary: {p['description']}")
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    lines.append("License: Apache-2.0")
    return "\n".join(lines) + "\n"


def _pkg_config(*args: str) -> List[str]:
    prog = os.environ.get("PKG_CONFIG", "pkg-config")
    try:
        out = subprocess.run([prog, *args, "smolvm"], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise BuildError(f"{prog} not found: install pkg-config (Debian: apt-get install pkg-config)") from None
    except subprocess.CalledProcessError as e:
        raise BuildError(
            "libsmolvm not found by pkg-config (" + e.stderr.strip() + "): install smolvm first "
            "(scripts/setup.sh), or point PKG_CONFIG_PATH at its .pc file (a build tree's is in "
            "build/meson-uninstalled/)") from None
    return shlex.split(out)


def _compile(out_dir: Path) -> Path:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        raise BuildError(f"Python.h not found in {include}: install this Python's headers "
                         "(Debian: apt-get install python3-dev)")
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    cflags = _pkg_config("--cflags")
    libs = _pkg_config("--libs")
    # Find libsmolvm where pkg-config found it, also outside the loader's path.
    rpath = [f"-Wl,-rpath,{a[2:]}" for a in _pkg_config("--libs-only-L") if a.startswith("-L")]
    target = out_dir / ("_smolvm" + sysconfig.get_config_var("EXT_SUFFIX"))
    sources = sorted(str(p) for p in (HERE / "src").glob("*.c"))
    cmd = [*cc, "-shared", "-fPIC", "-O2", "-std=gnu11", "-D_GNU_SOURCE", "-fvisibility=hidden", "-Wall",
           f"-I{include}", *cflags, *shlex.split(os.environ.get("SMOLVM_PY_CFLAGS", "")), *sources,
           "-o", str(target), *libs, "-pthread", *rpath]
    print("smolvm_build:", " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    try:
        subprocess.run(cmd, check=True)
    except FileNotFoundError:
        raise BuildError(f"C compiler {cc[0]} not found (Debian: apt-get install gcc)") from None
    except subprocess.CalledProcessError:
        raise BuildError("compiling the smolvm extension failed (the compiler's messages are above)") from None
    return target


def _source_paths() -> List[str]:
    """Every file a build reads, relative to python/ (an sdist holds them)."""
    paths = ["pyproject.toml", "build_backend/smolvm_build.py", *(f"{PACKAGE}/{f}" for f in PACKAGE_FILES)]
    return paths + sorted(str(x.relative_to(HERE)) for x in (HERE / "src").iterdir() if x.suffix in (".c", ".h"))


def source_id() -> str:
    """What an install is built from: this backend, the package's files and
    sources, and the libsmolvm pkg-config finds (version and flags). The wheel
    carries it as ``smolvm._build.SOURCE_ID``, so scripts/install-python.sh
    rebuilds only what changed."""
    h = hashlib.sha256()
    for rel in _source_paths():
        data = (HERE / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode() + data)
    for args in (("--modversion",), ("--cflags", "--libs")):
        h.update(" ".join(_pkg_config(*args)).encode() + b"\0")
    return h.hexdigest()


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_dist_info(directory: Path) -> Dict[str, bytes]:
    tag = _tag()
    files = {
        "METADATA": _metadata().encode(),
        "WHEEL": (f"Wheel-Version: 1.0\nGenerator: smolvm_build\nRoot-Is-Purelib: false\nTag: {tag}\n").encode(),
        "top_level.txt": f"{PACKAGE}\n".encode(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return files


# ---- PEP 517 hooks ----

def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[dict] = None) -> str:
    name = _dist_info_name()
    _write_dist_info(Path(metadata_directory) / name)
    return name


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None,
                metadata_directory: Optional[str] = None) -> str:
    p = _project()
    wheel_name = f"{p['name']}-{p['version']}-{_tag()}.whl"
    dist_info = _dist_info_name()
    with tempfile.TemporaryDirectory(prefix="smolvm-build-") as tmp:
        ext = _compile(Path(tmp))
        entries: List[Tuple[str, bytes]] = []
        for f in PACKAGE_FILES:
            entries.append((f"{PACKAGE}/{f}", (HERE / PACKAGE / f).read_bytes()))
        entries.append((f"{PACKAGE}/{ext.name}", ext.read_bytes()))
        build_py = f'"""Written by smolvm_build."""\nSOURCE_ID = "{source_id()}"\n'
        entries.append((f"{PACKAGE}/_build.py", build_py.encode()))
        for name, data in _write_dist_info(Path(tmp) / dist_info).items():
            entries.append((f"{dist_info}/{name}", data))
        record = [_record_line(a, d) for a, d in entries] + [f"{dist_info}/RECORD,,"]
        entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
        os.makedirs(wheel_directory, exist_ok=True)
        with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as z:
            for arcname, data in entries:
                info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if arcname.endswith(ext.suffix) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
    return wheel_name


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    p = _project()
    base = f"{p['name']}-{p['version']}"
    os.makedirs(sdist_directory, exist_ok=True)
    paths = _source_paths()
    with tempfile.TemporaryDirectory() as tmp:
        pkg_info = Path(tmp) / "PKG-INFO"
        pkg_info.write_text(_metadata())
        with tarfile.open(Path(sdist_directory) / f"{base}.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as t:
            for rel in paths:
                t.add(HERE / rel, arcname=f"{base}/{rel}", recursive=False)
            t.add(pkg_info, arcname=f"{base}/PKG-INFO")
    return f"{base}.tar.gz"


if __name__ == "__main__":
    # python3 build_backend/smolvm_build.py DIR: build a wheel into DIR (no pip);
    # --source-id: print what an install of the tree as it is now would carry.
    try:
        if sys.argv[1:2] == ["--source-id"]:
            print(source_id())
        else:
            print(build_wheel(sys.argv[1] if len(sys.argv) > 1 else "."))
    except BuildError as e:
        print(f"smolvm_build: {e}", file=sys.stderr)
        sys.exit(1)
