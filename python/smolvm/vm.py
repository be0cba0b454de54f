# SPDX-License-Identifier: Apache-2.0
"""The SmolVM class: one microVM, its lifecycle, commands, files and environment."""
from __future__ import annotations

import codecs
import errno
import json
import os
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Literal, Mapping, Optional, Sequence,
                    Tuple, Union, overload)

from . import _smolvm
from .exceptions import OperationTimeoutError, SmolVMError, _from_library
from .types import (_STATES, ArchiveResult, CommandResult, Mount, NetLogEntry, PortForward, SnapshotInfo, VMConfig,
                    VMInfo, VMState, _info_from_dict)

__all__ = ["SmolVM", "CommandStream"]

Command = Union[str, Sequence[str]]
_DEFAULT_OUTPUT_CAP = 64 * 1024 * 1024  # libsmolvm's SMOLVM_DEFAULT_OUTPUT_CAP
_STREAM_NAMES = {1: "stdout", 2: "stderr"}
# The supervisor keeps each part of a VM's egress log under ~1 MiB; a part
# larger than this is not read past it.
_NET_LOG_PART_MAX = 4 * 1024 * 1024
_NET_LOG_FIELDS = ("time", "kind", "name", "port", "verdict", "reason", "address", "bytes_out", "bytes_in")


def _argv(cmd: Command) -> List[str]:
    """A string runs through the guest's /bin/sh (pipes, redirections,
    variables); a sequence is the argv itself."""
    if isinstance(cmd, str):
        return ["/bin/sh", "-c", cmd]
    if isinstance(cmd, (bytes, bytearray)):
        raise TypeError("cmd must be a str or a sequence of str, not bytes")
    return [os.fspath(a) for a in cmd]


def _timeout_ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return 0
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    return max(1, int(timeout * 1000))


def _kv(env: Optional[Mapping[str, str]], what: str) -> Optional[List[str]]:
    if env is None:
        return None
    out = []
    for k, v in env.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{what}: keys and values must be str, got {k!r}: {type(v).__name__}")
        out.append(f"{k}={v}")
    return out


def _mount_tuples(mounts: Optional[Iterable[Mount]]) -> Optional[List[Tuple[str, str, bool]]]:
    if mounts is None:
        return None
    out = []
    for m in mounts:
        if not isinstance(m, (tuple, list)) or len(m) not in (2, 3):
            raise ValueError(f"mounts: each mount is (host_path, guest_path[, 'ro'|'rw']), got {m!r}")
        mode = m[2] if len(m) == 3 else "ro"
        if mode not in ("ro", "rw"):
            raise ValueError(f"mounts: the mode of {m!r} must be 'ro' or 'rw'")
        out.append((os.fspath(m[0]), str(m[1]), mode == "rw"))
    return out


def _hosts(add_hosts: Union[Mapping[str, str], Sequence[str], None]) -> Optional[List[str]]:
    if add_hosts is None:
        return None
    if isinstance(add_hosts, Mapping):
        return [f"{name}:{ip}" for name, ip in add_hosts.items()]
    if isinstance(add_hosts, str):
        raise TypeError("add_hosts: a mapping {name: ip} or a list of 'NAME:IP', not a str")
    return [str(h) for h in add_hosts]


def _patterns(allow_hosts: Optional[Sequence[str]]) -> Optional[List[str]]:
    if allow_hosts is None:
        return None
    if isinstance(allow_hosts, str):
        raise TypeError("allow_hosts: a list of patterns, not a str")
    return [str(h) for h in allow_hosts]


def _describe(cmd: Command) -> str:
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    return text if len(text) <= 80 else text[:77] + "..."


class SmolVM:
    """A microVM: boot it, run commands in it, move files, throw it away.

    ``SmolVM()`` creates a VM (nothing runs yet; the id is known at once). Used as
    a context manager it is started on entry and, when this object created it,
    deleted on exit, also after an exception or Ctrl-C::

        with SmolVM() as vm:
            print(vm.run("echo hello").output)

    Without ``with``, the VM lives on after this process (``close()`` releases
    the handle only), and any process can reconnect::

        vm = SmolVM(vm_id="agent-workspace")
        vm.start()
        vm.close()
        ...
        vm = SmolVM.from_id("agent-workspace")

    Every method may be called from many threads at once (commands on one VM run
    concurrently). Blocking calls release the GIL; Ctrl-C during ``run()``,
    ``start()`` or a download kills what runs and raises KeyboardInterrupt.

    Errors are :class:`~smolvm.exceptions.SmolVMError` and its subclasses, each
    with libsmolvm's ``message`` and ``hint``.
    """

    def __init__(self, config: Optional[VMConfig] = None, *, vm_id: Optional[str] = None,
                 vcpu_count: int = 1, mem_size_mib: int = 512, disk_size_mib: Optional[int] = None,
                 env_vars: Optional[Mapping[str, str]] = None, mounts: Optional[Sequence[Mount]] = None,
                 allow_hosts: Optional[Sequence[str]] = None, image: Optional[str] = None,
                 host_mounts: Optional[Sequence[Mount]] = None,
                 add_hosts: Union[Mapping[str, str], Sequence[str], None] = None, cold: bool = False) -> None:
        """Create a VM (it is not started: ``start()`` or ``with`` does that).

        Args:
            config: a :class:`VMConfig`; then leave the other arguments out.
            vm_id: a name for the VM, unique on this host (1-63 letters, digits,
                ``_ . -``); :meth:`from_id` finds the VM by it. None: the VM is
                known by its generated 12-hex-digit id only.
            vcpu_count: virtual CPUs (1-64).
            mem_size_mib: guest memory in MiB (64-262144).
            disk_size_mib: the root disk's size in MiB; None: the image's.
            env_vars: variables every command in the guest sees, set at the first
                start. Values never appear on a command line (host or guest).
            mounts: host directories shown in the guest, each
                ``(host_path, guest_path, "ro" | "rw")``; read-only ones are
                enforced by the host. ``host_mounts`` is another name for it.
            allow_hosts: the egress allowlist: host patterns the guest may
                connect to by name (``NAME``, ``*.SUFFIX`` or an IP, each with an
                optional ``:PORT``); the host resolves and connects for it.
                None (and no ``add_hosts``): the VM has no network at all.
            add_hosts: names the host connects to a fixed IP instead of
                resolving them (``{"name": "ip"}`` or ``["NAME:IP"]``); the IP may be
                loopback or private. A pinned name must still be allowed.
            image: the image: a name under ``$SMOLVM_HOME/images`` or a directory;
                None: "default".
            cold: boot from scratch; False (default): the first start restores
                the image's boot template where the configuration allows it (a
                warm start; docs/cli.md, "Warm start").

        Raises:
            SmolVMError: the configuration is invalid, the image is missing, the
                name is taken, a mount's host directory does not exist, a host
                pattern is malformed, ...
        """
        if host_mounts is not None:
            if mounts is not None:
                raise TypeError("give mounts or host_mounts, not both")
            mounts = host_mounts
        if config is not None:
            given = (vm_id, disk_size_mib, env_vars, mounts, allow_hosts, image, add_hosts)
            if any(v is not None for v in given) or vcpu_count != 1 or mem_size_mib != 512:
                raise TypeError("give either config or keyword arguments, not both")
            vm_id, vcpu_count, mem_size_mib = config.vm_id, config.vcpu_count, config.mem_size_mib
            disk_size_mib, env_vars, mounts = config.disk_size_mib, config.env_vars, config.mounts
            allow_hosts, image = config.allow_hosts, config.image
        self._owned = True
        try:
            self._h = _smolvm.create(image=image, vcpus=vcpu_count, mem_mib=mem_size_mib,
                                     disk_mib=disk_size_mib or 0, name=vm_id,
                                     env=_kv(env_vars, "env_vars"), mounts=_mount_tuples(mounts),
                                     allow=_patterns(allow_hosts), hosts=_hosts(add_hosts), cold=cold)
        except _smolvm.LibraryError as e:
            raise _from_library(e, vm_id=vm_id) from None

    @classmethod
    def from_snapshot(cls, name: str, *, vm_id: Optional[str] = None,
                      env_vars: Optional[Mapping[str, str]] = None, allow_hosts: Optional[Sequence[str]] = None,
                      add_hosts: Union[Mapping[str, str], Sequence[str], None] = None) -> SmolVM:
        """A new VM that continues from a snapshot (see :meth:`snapshot`): its
        first start restores the snapshot's memory, devices and disk, so
        processes, files and the page cache are as they were. Not started yet
        (``start()`` or ``with``); image, CPUs and memory are the snapshot's.
        Like ``SmolVM()``, ``with`` deletes it on exit.

        Args:
            name: the snapshot's name, id or unique id prefix (4+ digits).
            vm_id, env_vars, allow_hosts, add_hosts: as for ``SmolVM()``.

        Raises:
            SmolVMError: no such snapshot (``code`` -ENOENT), the name is taken, ...
        """
        self = cls.__new__(cls)
        self._owned = True
        try:
            self._h = _smolvm.create(name=vm_id, env=_kv(env_vars, "env_vars"), from_snapshot=name,
                                     allow=_patterns(allow_hosts), hosts=_hosts(add_hosts))
        except _smolvm.LibraryError as e:
            raise _from_library(e, vm_id=vm_id) from None
        return self

    @staticmethod
    def delete_snapshot(name: str) -> None:
        """Remove a snapshot by name, id or unique id prefix. VMs made from it
        keep running and keep their disks.

        Raises:
            SmolVMError: no such snapshot (``code`` -ENOENT).
        """
        try:
            _smolvm.snapshot_rm(name)
        except _smolvm.LibraryError as e:
            raise _from_library(e) from None

    @staticmethod
    def list_snapshots() -> List[SnapshotInfo]:
        """Every snapshot of this host (``$SMOLVM_HOME``), oldest first, as
        ``smolvm snapshot ls`` shows them (the ones :meth:`fork` makes for
        itself are not listed)."""
        try:
            return [SnapshotInfo(**d) for d in _smolvm.snapshot_list()]
        except _smolvm.LibraryError as e:
            raise _from_library(e) from None

    @classmethod
    def from_id(cls, vm_id: str) -> SmolVM:
        """Reconnect to an existing VM by id, unique id prefix (4+ digits) or name,
        from any process. The VM is left as it is (running or not); ``with`` on
        it starts it if needed and only releases it on exit.

        Raises:
            VMNotFoundError: no such VM.
        """
        self = cls.__new__(cls)
        self._owned = False
        try:
            self._h = _smolvm.open(vm_id)
        except _smolvm.LibraryError as e:
            raise _from_library(e, vm_gone=True, vm_id=vm_id) from None
        return self

    @staticmethod
    def list() -> List[VMInfo]:
        """Every VM of this host (``$SMOLVM_HOME``), oldest first."""
        try:
            return [_info_from_dict(d) for d in _smolvm.list()]
        except _smolvm.LibraryError as e:
            raise _from_library(e) from None

    # ---- identity and state ----

    @property
    def vm_id(self) -> str:
        """The VM's name if it has one, else its 12-hex-digit id: what
        :meth:`from_id` takes."""
        return self._h.name or self._h.id

    @property
    def id(self) -> str:
        """The VM's 12-hex-digit id."""
        return self._h.id

    @property
    def name(self) -> str:
        """The VM's name, or "" if it has none."""
        return self._h.name

    @property
    def status(self) -> VMState:
        """The VM's current state (asked each time: another process may have
        changed it)."""
        return _STATES[self._call(self._h.status)["state"]]

    def info(self) -> VMInfo:
        """The VM's state and configuration; ``error`` says why it is in ERROR."""
        return _info_from_dict(self._call(self._h.status))

    def __repr__(self) -> str:
        return f"<SmolVM {self.vm_id}{' (closed)' if self._h.closed else ''}>"

    # ---- lifecycle ----

    def start(self) -> SmolVM:
        """Boot the VM and wait until commands can run. A running VM is left
        alone. Returns self.

        Raises:
            OperationTimeoutError: the guest did not come up in time.
            SmolVMError: the boot failed (``console_tail`` has the guest console).
        """
        self._call(self._h.start, already_ok=True)
        return self

    def stop(self) -> SmolVM:
        """Power the VM off gracefully (disks synced); its disk stays. A stopped
        VM is left alone. Returns self."""
        self._call(self._h.stop)
        return self

    def pause(self) -> SmolVM:
        """Freeze the VM's vCPUs; commands fail at once until :meth:`resume`."""
        self._call(self._h.pause, already_ok=True)
        return self

    def resume(self) -> SmolVM:
        """Thaw a paused VM."""
        self._call(self._h.resume, already_ok=True)
        return self

    def delete(self) -> None:
        """Remove the VM: every process and file of it, running or not. The
        object stays usable for ``vm_id`` only."""
        self._call(self._h.delete, force=True)

    def close(self) -> None:
        """Release this handle; the VM itself is left as it is (running or not).
        Calls still in flight on other threads finish first. Idempotent."""
        self._h.close()

    def __enter__(self) -> SmolVM:
        """Start the VM (if it is not running) and return it."""
        try:
            self.start()
        except BaseException:
            # Ctrl-C or a failed boot: __exit__ will not run, so clean up here.
            self._dispose()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        """Delete the VM if this object created it, else just close the handle."""
        self._dispose()

    def _dispose(self) -> None:
        try:
            if self._owned and not self._h.closed:
                try:
                    self.delete()
                except SmolVMError as e:
                    if e.code != -errno.ENOENT:
                        raise
        finally:
            self.close()

    # ---- commands ----

    def run(self, cmd: Command, timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None, *, input: Union[str, bytes, None] = None,
            on_stdout: Optional[Callable[[str], Any]] = None, on_stderr: Optional[Callable[[str], Any]] = None,
            max_output_bytes: Optional[int] = None) -> CommandResult:
        """Run a command in the guest and wait for it.

        Args:
            cmd: a shell command line (run by the guest's ``/bin/sh -c``) or an
                argv list (run as is).
            timeout: seconds; past it the command's whole process group is
                killed in the guest and OperationTimeoutError is raised. None: no
                limit.
            env: variables added for this command only (never on a command line).
            cwd: absolute guest directory to run in (default /root).
            input: bytes (or str, sent as UTF-8) for the command's stdin; None:
                stdin is /dev/null.
            on_stdout, on_stderr: called with each piece of output (str) as it
                comes; the result still holds all of it.
            max_output_bytes: cap on each of stdout and stderr kept in the result
                (default 64 MiB); the rest is dropped and ``*_truncated`` set.

        Returns:
            CommandResult: ``exit_code``, ``stdout``, ``stderr``, ``ok``,
            ``output``. A non-zero exit is not an error.

        Raises:
            OperationTimeoutError: the command ran past ``timeout`` (it was
                killed; ``e.result`` has its output until then).
            CommandExecutionUnavailableError: the VM is not running, paused, or
                its agent does not answer.
            SmolVMError: anything else (e.g. no such command, for an argv).
        """
        if on_stdout is not None or on_stderr is not None:
            return self._run_streaming(cmd, timeout, env, cwd, input, on_stdout, on_stderr, max_output_bytes)
        data = input.encode() if isinstance(input, str) else input
        code, sig, timed_out, duration_ms, out, err, out_trunc, err_trunc = self._call(
            self._h.run, _argv(cmd), _kv(env, "env"), cwd, _timeout_ms(timeout), data, max_output_bytes or 0,
            timeout=timeout)
        result = CommandResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), sig,
                               duration_ms, out_trunc, err_trunc, out, err)
        if timed_out:
            raise self._timed_out(cmd, timeout, result)
        return result

    def stream(self, cmd: Command, timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None,
               cwd: Optional[str] = None, *, input: Union[str, bytes, None] = None) -> CommandStream:
        """Start a command and iterate over its output as it comes::

            with vm.stream("make -j2") as s:
                for name, text in s:          # name: "stdout" or "stderr"
                    print(name, text, end="")
            print(s.exit_code)

        Arguments as :meth:`run`. Memory stays bounded (the guest waits while
        the consumer is slow). Leaving the loop early, closing the stream or
        Ctrl-C kills the command.
        """
        data = input.encode() if isinstance(input, str) else input
        x = self._call(self._h.exec, _argv(cmd), _kv(env, "env"), cwd, _timeout_ms(timeout), data)
        return CommandStream(self, x, cmd, timeout)

    def _run_streaming(self, cmd: Command, timeout: Optional[float], env: Optional[Mapping[str, str]],
                       cwd: Optional[str], input: Union[str, bytes, None],
                       on_stdout: Optional[Callable[[str], Any]], on_stderr: Optional[Callable[[str], Any]],
                       max_output_bytes: Optional[int]) -> CommandResult:
        cap = max_output_bytes or _DEFAULT_OUTPUT_CAP
        kept: Dict[str, List[str]] = {"stdout": [], "stderr": []}
        size = {"stdout": 0, "stderr": 0}
        truncated = {"stdout": False, "stderr": False}
        callbacks = {"stdout": on_stdout, "stderr": on_stderr}
        with self.stream(cmd, timeout, env, cwd, input=input) as s:
            try:
                for name, text in s:
                    cb = callbacks[name]
                    if cb is not None:
                        cb(text)
                    if size[name] + len(text) > cap:
                        text = text[:max(0, cap - size[name])]
                        truncated[name] = True
                    kept[name].append(text)
                    size[name] += len(text)
            except OperationTimeoutError as e:
                e.result = CommandResult(e.result.exit_code, "".join(kept["stdout"]), "".join(kept["stderr"]),
                                         e.result.signal, e.result.duration_ms, truncated["stdout"],
                                         truncated["stderr"])
                raise
        out, err = "".join(kept["stdout"]), "".join(kept["stderr"])
        return CommandResult(s.exit_code, out, err, s.signal, s.duration_ms, truncated["stdout"],
                             truncated["stderr"], out.encode(), err.encode())

    def _timed_out(self, cmd: Command, timeout: Optional[float], result: CommandResult) -> OperationTimeoutError:
        return OperationTimeoutError(
            f"command timed out after {timeout:g} s and was killed (its whole process group): {_describe(cmd)}",
            timeout=timeout, result=result, code=-errno.ETIMEDOUT,
            hint="give it a longer timeout=, or split the work into shorter commands")

    # ---- environment ----

    def set_env_vars(self, env_vars: Mapping[str, str]) -> None:
        """Set variables that every later command sees (kept in the guest under
        /etc/profile.d; login shells see them too). Keys are
        ``[A-Za-z_][A-Za-z0-9_]*``. Values never appear on a command line."""
        kv = _kv(env_vars, "env_vars")
        if kv:
            self._call(self._h.set_env, kv)

    def unset_env_vars(self, keys: Iterable[str]) -> None:
        """Remove variables set by :meth:`set_env_vars` (absent ones are fine)."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        if keys:
            self._call(self._h.unset_env, keys)

    def list_env_vars(self) -> Dict[str, str]:
        """The variables set by :meth:`set_env_vars` and ``env_vars=``."""
        return dict(kv.split("=", 1) for kv in self._call(self._h.list_env))

    # ---- files ----

    def upload_file(self, local_path: Union[str, os.PathLike], remote_path: str) -> None:
        """Copy a host file or directory (recursively) to ``remote_path`` in the
        guest, which names the copy itself. Permission bits are kept; missing
        guest parents are created."""
        self._call(self._h.upload, local_path, remote_path)

    def download_file(self, remote_path: str, local_path: Union[str, os.PathLike], *,
                      max_bytes: Optional[int] = None) -> str:
        """Copy a guest file or directory to the host, like ``cp``: into
        ``local_path`` if it is an existing directory, else as ``local_path``.
        Never writes outside that path (the guest is not trusted).

        Args:
            max_bytes: refuse a download of more bytes in total (None: no cap).

        Returns:
            The host path of the copy.
        """
        return self._call(self._h.download, remote_path, local_path, 2, max_bytes or 0)  # SMOLVM_DOWNLOAD_AUTO

    @overload
    def read_file(self, path: str, *, binary: Literal[False] = ..., max_bytes: Optional[int] = ...) -> str: ...

    @overload
    def read_file(self, path: str, *, binary: Literal[True], max_bytes: Optional[int] = ...) -> bytes: ...

    def read_file(self, path: str, *, binary: bool = False, max_bytes: Optional[int] = None) -> Union[str, bytes]:
        """The content of a guest file: str (UTF-8, invalid bytes replaced), or
        bytes with ``binary=True``. Files over ``max_bytes`` (default 64 MiB)
        are refused before any byte is sent."""
        data = self._call(self._h.read_file, path, max_bytes or 0)
        return data if binary else data.decode("utf-8", "replace")

    def write_file(self, path: str, content: Union[str, bytes], *, mode: int = 0o644) -> None:
        """Write a guest file (created or replaced, parent directories created).
        str content is written as UTF-8."""
        data = content.encode() if isinstance(content, str) else bytes(content)
        self._call(self._h.write_file, path, data, mode)

    # ---- snapshots and forks ----

    def snapshot(self, name: Optional[str] = None, *, stop: bool = False) -> SnapshotInfo:
        """Snapshot the running (or paused) VM: memory, devices and disk at one
        instant. The VM is paused meanwhile and then carries on (``stop=True``:
        it is stopped instead). :meth:`from_snapshot` makes new VMs from it.

        Args:
            name: a unique snapshot name (the ``vm_id`` rule); None: the
                snapshot is known by its id only.

        Returns:
            SnapshotInfo: ``id``, ``name``, ``pause_ms``, sizes, ``dir``.

        Raises:
            CommandExecutionUnavailableError: the VM is not running.
            SmolVMError: the name is taken, the VM has mounts (not snapshottable),
                the disk is full, ...
        """
        return SnapshotInfo(**self._call(self._h.snapshot, name, stop))

    def fork(self, n: int = 1) -> List[SmolVM]:
        """``n`` new running VMs continuing from this VM's present instant, each
        with its own copy-on-write disk and memory, a reseeded RNG, its own
        hostname and machine-id. This VM carries on. The children are persistent
        VMs owned by the returned objects: ``with child:`` (or ``delete()``)
        removes each.

        Raises:
            ValueError: ``n`` is not 1..64.
            SmolVMError: as :meth:`snapshot` and :meth:`start`; on failure no
                child is left.
        """
        ids = self._call(self._h.fork, n)
        children = []
        for child_id in ids:
            child = SmolVM.from_id(child_id)
            child._owned = True
            children.append(child)
        return children

    # ---- network ----

    def allow_host(self, pattern: str) -> None:
        """Let the guest reach ``pattern`` from now on: ``NAME``, ``*.SUFFIX`` or
        an IP address, each optionally ``:PORT`` (as ``allow_hosts=``). Kept in
        the VM's record; a running VM applies it at once to new DNS questions
        and connections. Deny patterns for the same host are removed.

        Raises:
            SmolVMError: a bad pattern, or the VM was created without a
                network (no ``allow_hosts``/``add_hosts``) (``code`` -EINVAL).
        """
        self._call(self._h.net_change, True, pattern)

    def deny_host(self, pattern: str) -> None:
        """Refuse ``pattern`` from now on, even if an allow pattern matches (as
        :meth:`allow_host`; allow patterns for the same host are removed).
        Connections already open go on.

        Raises:
            SmolVMError: as :meth:`allow_host`.
        """
        self._call(self._h.net_change, False, pattern)

    def net_log(self) -> List[NetLogEntry]:
        """The VM's egress attempts, oldest first: every DNS question and
        connection with its verdict (as ``smolvm net log``). The log holds the
        last ~2 MiB of entries; a VM without a network has none."""
        path = self._call(self._h.net_log_path)
        entries: List[NetLogEntry] = []
        for part in (path + ".1", path):
            try:
                fd = os.open(part, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue
            with os.fdopen(fd, "rb") as f:
                data = f.read(_NET_LOG_PART_MAX)
            for line in data.splitlines():
                entry = _net_log_entry(line)
                if entry is not None:
                    entries.append(entry)
        return entries

    # ---- port forwarding ----

    def expose_local(self, guest_port: int, host_port: Optional[int] = None, *,
                     bind_addr: Optional[str] = None) -> int:
        """Forward a host TCP port to the guest's ``guest_port`` (on its
        127.0.0.1, or ::1). The forward lives as long as the VM (not this
        object), and is set up again on the same host port at every start.

        Args:
            guest_port: the guest's port (1-65535).
            host_port: the host port; None: a free one is chosen.
            bind_addr: the host address to listen on (numeric); None: 127.0.0.1.

        Returns:
            The host port (0 if the VM is not running and host_port was None:
            it is chosen at start).

        Raises:
            SmolVMError: the host port is taken (``errno`` EADDRINUSE), the guest
                port is forwarded already (EEXIST), ...
        """
        return self._call(self._h.port_expose, guest_port, host_port or 0, bind_addr)

    def unexpose_local(self, guest_port: int) -> None:
        """Stop forwarding ``guest_port``: the host listener closes at once
        (relayed connections go on until they end).

        Raises:
            SmolVMError: ``guest_port`` is not forwarded (``code`` -ENOENT).
        """
        self._call(self._h.port_close, guest_port)

    def list_exposed(self) -> List[PortForward]:
        """The VM's port forwards, in the order they were added."""
        return [PortForward(*t) for t in self._call(self._h.port_list)]

    # ---- workspace archives ----

    def persist_workspace(self, path_or_file: Union[str, os.PathLike, Any], guest_path: str = "/workspace", *,
                          level: int = 0, max_bytes: Optional[int] = None) -> ArchiveResult:
        """Save a guest directory (default ``/workspace``) as a .tar.zst archive
        on the host: modes, owners, links and empty directories included; the
        file is complete or absent (written under a temporary name).

        Args:
            path_or_file: a host file path (created or replaced), or an open
                binary file (anything with ``fileno()``), written at its offset.
            guest_path: the guest directory to archive.
            level: zstd level 1-19; 0: the default (3).
            max_bytes: stop with an error once the guest has sent this many bytes
                (None: no cap).

        Returns:
            ArchiveResult: sizes, duration and the archive's ``sha256``.

        Raises:
            SmolVMError: no such guest directory (``code`` -ENOENT), the guest's
                tar failed (its stderr in the message), the disk is full, ...
        """
        return self._workspace(True, path_or_file, guest_path, level, max_bytes)

    def hydrate_workspace(self, path_or_file: Union[str, os.PathLike, Any], guest_path: str = "/workspace"
                          ) -> ArchiveResult:
        """Unpack an archive from :meth:`persist_workspace` (or any .tar.zst)
        into a guest directory (default ``/workspace``, created if missing).
        Entries of the archive replace those of the same name, others stay. The
        whole archive is checked before anything is moved into place, so a
        damaged file leaves the directory as it was.

        Args:
            path_or_file: a host file path, or an open binary file (anything
                with ``fileno()``), read from its offset.
            guest_path: the guest directory to unpack into.

        Returns:
            ArchiveResult: sizes, duration, ``verified`` (smolvm's checksum
            trailer was there and matched) and ``sha256``.

        Raises:
            SmolVMError: the archive is damaged or truncated (``code``
                SMOLVM_ECORRUPT), the guest's tar failed, ...
        """
        return self._workspace(False, path_or_file, guest_path, 0, None)

    def _workspace(self, persist: bool, target: Any, guest_path: str, level: int,
                   max_bytes: Optional[int]) -> ArchiveResult:
        if not isinstance(target, (str, bytes, os.PathLike)) and hasattr(target, "fileno"):
            if hasattr(target, "flush"):
                target.flush()
            fd = target.fileno()
        else:
            fd = os.fspath(target)
        return ArchiveResult(**self._call(self._h.workspace, persist, fd, guest_path, level, max_bytes or 0))

    # ---- the library ----

    def _call(self, fn: Callable[..., Any], *args: Any, already_ok: bool = False,
              timeout: Optional[float] = None, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except _smolvm.LibraryError as e:
            if already_ok and e.args[0] == _smolvm.EALREADY:
                return None
            raise self._error(e, timeout) from None

    def _error(self, e: BaseException, timeout: Optional[float] = None) -> SmolVMError:
        code, from_guest = e.args[0], e.args[4]
        gone = code == _smolvm.ENOTFOUND and not from_guest and not self._exists()
        return _from_library(e, vm_gone=gone, vm_id=self.vm_id, timeout=timeout)

    def _exists(self) -> bool:
        try:
            self._h.status()
        except _smolvm.LibraryError as e:
            return e.args[0] != _smolvm.ENOTFOUND
        return True


def _net_log_entry(line: bytes) -> Optional[NetLogEntry]:
    """One line of a VM's egress log, or None for a line that is not an entry
    (the log's last line may be cut by the size cap)."""
    try:
        d = json.loads(line)
    except ValueError:
        return None
    if not isinstance(d, dict) or not all(k in d for k in ("time", "kind", "name", "port", "verdict")):
        return None
    return NetLogEntry(**{k: d[k] for k in _NET_LOG_FIELDS if k in d})


class CommandStream:
    """A running command's output, from :meth:`SmolVM.stream`.

    Iterating yields ``(name, text)`` with name ``"stdout"`` or ``"stderr"``.
    Once the iteration ends, ``exit_code``, ``ok``, ``signal`` and
    ``duration_ms`` are set; a command past its timeout raises
    OperationTimeoutError at the end instead.
    """

    exit_code: Optional[int]
    signal: int
    duration_ms: int

    def __init__(self, vm: SmolVM, x: Any, cmd: Command, timeout: Optional[float]) -> None:
        self._vm, self._x, self._cmd, self._timeout = vm, x, cmd, timeout
        self.exit_code, self.signal, self.duration_ms = None, 0, 0
        self._it = self._chunks()

    @property
    def ok(self) -> bool:
        """True once the command exited with status 0."""
        return self.exit_code == 0

    @property
    def pid(self) -> int:
        """The command's pid in the guest (0 until it started)."""
        return self._x.pid

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return self._it

    def __next__(self) -> Tuple[str, str]:
        return next(self._it)

    def _chunks(self) -> Iterator[Tuple[str, str]]:
        decoders = {n: codecs.getincrementaldecoder("utf-8")("replace") for n in _STREAM_NAMES}
        try:
            for stream, data in self._x:
                text = decoders[stream].decode(data)
                if text:
                    yield _STREAM_NAMES[stream], text
        except _smolvm.LibraryError as e:
            raise self._vm._error(e, self._timeout) from None
        finally:
            self._x.close()
        for stream, d in decoders.items():
            tail = d.decode(b"", final=True)
            if tail:
                yield _STREAM_NAMES[stream], tail
        status = self._x.status
        if status is None:  # closed before its end
            return
        self.exit_code, self.signal, timed_out, self.duration_ms = status
        if timed_out:
            raise self._vm._timed_out(self._cmd, self._timeout,
                                      CommandResult(self.exit_code, "", "", self.signal, self.duration_ms))

    def close(self) -> None:
        """Kill the command if it still runs, and wait for it."""
        self._x.close()
        self._it.close()

    def __enter__(self) -> CommandStream:
        """The stream itself; on exit the command is killed if it still runs."""
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
