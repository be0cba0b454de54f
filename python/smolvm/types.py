# SPDX-License-Identifier: Apache-2.0
"""Plain data types of the smolvm API: results, states, configuration."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["VMState", "CommandResult", "VMInfo", "VMConfig", "Mount", "SnapshotInfo", "PortForward", "ArchiveResult"]

#: A host directory shown in the guest: ``(host_path, guest_path, "ro" | "rw")``;
#: ``(host_path, guest_path)`` is read-only.
Mount = Union[Tuple[str, str], Tuple[str, str, str]]


class VMState(str, enum.Enum):
    """A VM's lifecycle state (the value is libsmolvm's name for it)."""

    CREATED = "created"  #: made, never started
    RUNNING = "running"
    PAUSED = "paused"  #: vCPUs frozen: resume() it
    STOPPED = "stopped"
    ERROR = "error"  #: the last run did not end cleanly; start() works again

    def __str__(self) -> str:
        return self.value


# libsmolvm's smolvm_state, in its order.
_STATES = (VMState.CREATED, VMState.RUNNING, VMState.PAUSED, VMState.STOPPED, VMState.ERROR)


@dataclass(frozen=True)
class CommandResult:
    """What a command did: its exit code and output.

    ``stdout`` and ``stderr`` are decoded as UTF-8 (invalid bytes replaced);
    ``stdout_bytes``/``stderr_bytes`` keep the raw bytes. A command killed by a
    signal has ``exit_code`` 128 + ``signal``, as in a shell.
    """

    exit_code: int
    stdout: str
    stderr: str
    signal: int = 0  #: the signal that killed the command, or 0
    duration_ms: int = 0  #: host wall clock, request sent to exit received
    stdout_truncated: bool = False  #: output beyond max_output_bytes was dropped
    stderr_truncated: bool = False
    stdout_bytes: bytes = field(default=b"", repr=False, compare=False)
    stderr_bytes: bytes = field(default=b"", repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """``stdout`` without leading and trailing whitespace."""
        return self.stdout.strip()


@dataclass(frozen=True)
class VMInfo:
    """One VM as :meth:`SmolVM.list` and :meth:`SmolVM.info` report it."""

    vm_id: str  #: the 12-hex-digit id
    name: str  #: "" if none
    status: VMState
    vcpu_count: int
    mem_size_mib: int
    disk_size_mib: int  #: 0: the image's size
    image: str
    created_unix: int  #: seconds since the epoch
    supervisor_pid: int = 0  #: > 0 while running or paused
    error: str = ""  #: why the state is ERROR, when known (info() only)
    boot_ms: int = 0  #: the current run's boot time, 0 if not running (info() only)


def _info_from_dict(d: Mapping[str, object]) -> VMInfo:
    boot = d.get("boot") or {}
    return VMInfo(vm_id=str(d["id"]), name=str(d["name"]), status=_STATES[int(d["state"])],  # type: ignore[arg-type]
                  vcpu_count=int(d["vcpus"]), mem_size_mib=int(d["mem_mib"]),  # type: ignore[arg-type]
                  disk_size_mib=int(d["disk_mib"]), image=str(d["image"]),  # type: ignore[arg-type]
                  created_unix=int(d["created_unix"]), supervisor_pid=int(d["supervisor_pid"]),  # type: ignore[arg-type]
                  error=str(d.get("error", "")), boot_ms=int(boot.get("boot_ms", 0)))  # type: ignore[union-attr]


@dataclass
class VMConfig:
    """The configuration of a new VM, as :class:`SmolVM`'s keyword arguments.

    ``SmolVM(VMConfig(vcpu_count=2))`` and ``SmolVM(vcpu_count=2)`` are the same;
    keywords given to SmolVM override the config's fields.
    """

    vm_id: Optional[str] = None  #: a name for the VM (from_id() finds it by it)
    vcpu_count: int = 1
    mem_size_mib: int = 512
    disk_size_mib: Optional[int] = None  #: None: the image's size
    env_vars: Optional[Dict[str, str]] = None  #: set in the guest at the first start
    mounts: Optional[List[Mount]] = None  #: host directories, read-only unless "rw"
    allow_hosts: Optional[Sequence[str]] = None  #: egress allowlist; None: no network
    image: Optional[str] = None  #: an image name or directory; None: "default"


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot made by :meth:`SmolVM.snapshot`."""

    id: str  #: 12 hex digits; SmolVM.from_snapshot() takes it (or the name)
    name: str  #: "" if none
    created_unix: int
    vm_id: str  #: the id of the VM it was taken of
    vcpus: int
    mem_mib: int
    pause_ms: int  #: how long the VM was paused for it
    ram_bytes: int  #: guest RAM data kept
    disk_bytes: int  #: bytes on disk of the whole snapshot
    depth: int  #: disk layers, its own included
    dir: str  #: its directory on the host


@dataclass(frozen=True)
class NetLogEntry:
    """One egress attempt of a VM (:meth:`SmolVM.net_log`): a DNS question or a
    connection, allowed or denied. Names come from the guest: treat them as
    untrusted text."""

    time: str  #: UTC, ISO 8601 with milliseconds ("2026-01-02T03:04:05.678Z")
    kind: str  #: "dns" or "connect"
    name: str  #: the name asked for, or the address connected to without DNS
    port: int  #: 0 for DNS
    verdict: str  #: "allowed" or "denied"
    reason: Optional[str] = None  #: why it was denied
    address: Optional[str] = None  #: the address the host connected to
    bytes_out: Optional[int] = None  #: allowed connections, logged when they end
    bytes_in: Optional[int] = None


@dataclass(frozen=True)
class PortForward:
    """A host port forwarded to a guest port (:meth:`SmolVM.list_exposed`)."""

    guest_port: int
    host_port: int  #: 0: not chosen yet (the VM has not run since)
    bind_addr: str
    active: bool = False  #: the VM listens on host_port now (it is running)
    connections: int = 0  #: connections relayed now


@dataclass(frozen=True)
class ArchiveResult:
    """What :meth:`SmolVM.persist_workspace` or ``hydrate_workspace`` moved."""

    tar_bytes: int  #: the tar stream's size
    file_bytes: int  #: the archive's size
    duration_ms: int
    verified: bool  #: hydrate: smolvm's checksum trailer was there and matched
    sha256: str  #: persist, verified hydrate: the archive's SHA-256 (hex)
    io: str  #: how the host file was read or written ("io_uring", "pread", ...)
