# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by smolvm.

Every error is a :class:`SmolVMError` carrying libsmolvm's own words: ``message``
names the object and the step, ``hint`` says what to do about it (may be empty),
``console_tail`` has the guest console's last lines when a boot failed. Catch the
subclasses for the cases a program handles differently::

    from smolvm.exceptions import (SmolVMError, OperationTimeoutError,
                                   CommandExecutionUnavailableError, VMNotFoundError)
"""
from __future__ import annotations

import errno as _errno
from typing import Any, Optional

__all__ = [
    "SmolVMError",
    "VMNotFoundError",
    "OperationTimeoutError",
    "CommandExecutionUnavailableError",
    "FeatureUnavailableError",
]


class SmolVMError(Exception):
    """A smolvm operation failed.

    Attributes:
        message: what failed, naming the object and the step.
        hint: what the user can do about it, or "".
        code: libsmolvm's negative errno (0 when not from the library).
        errno: the positive errno (``-code``), as :class:`OSError` has it.
        console_tail: the last lines of the guest console (boot failures), or "".
        from_guest: the guest agent reported the error (e.g. no such file).
    """

    def __init__(self, message: str, *, hint: str = "", code: int = 0, console_tail: str = "",
                 from_guest: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.errno = -code if code < 0 else code
        self.console_tail = console_tail
        self.from_guest = from_guest

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class VMNotFoundError(SmolVMError):
    """No VM has that id or name (or it was deleted meanwhile).

    Attributes:
        vm_id: the id or name that was looked up, when known.
    """

    def __init__(self, message: str, *, vm_id: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.vm_id = vm_id


class OperationTimeoutError(SmolVMError):
    """An operation took longer than allowed: a command past its ``timeout=``
    (its process group was killed in the guest before this is raised), a boot, or
    a stop.

    Attributes:
        timeout: the limit in seconds, when one was given.
        result: for a command, the :class:`~smolvm.CommandResult` with the output
            it wrote before it was killed; else None.
    """

    def __init__(self, message: str, *, timeout: Optional[float] = None, result: Any = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.timeout = timeout
        self.result = result


class CommandExecutionUnavailableError(SmolVMError):
    """Commands cannot run in the VM now: it is not running, it is paused, or its
    guest agent does not answer.

    Attributes:
        reason: why, in libsmolvm's words (e.g. "VM 3f2a9c0d1e4b is paused").
    """

    def __init__(self, reason: str, **kw: Any) -> None:
        super().__init__(reason, **kw)
        self.reason = reason


class FeatureUnavailableError(SmolVMError, NotImplementedError):
    """A SmolVM feature this version of smolvm does not have yet (none of
    today's methods raises it). Also a :class:`NotImplementedError`.

    Attributes:
        feature: the feature's name as the API spells it.
    """

    def __init__(self, feature: str, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.feature = feature


# libsmolvm's codes (include/smolvm/smolvm.h), negative errnos.
_ENOTFOUND = -_errno.ENOENT
_ETIMEDOUT = -_errno.ETIMEDOUT
_UNAVAILABLE = (-_errno.ENOTCONN, -_errno.EL2HLT, -_errno.EHOSTUNREACH)


def _from_library(err: BaseException, *, vm_gone: bool = False, vm_id: Optional[str] = None,
                  timeout: Optional[float] = None) -> SmolVMError:
    """The exception for a smolvm._smolvm.LibraryError (args: code, message, hint,
    console_tail, from_guest). vm_gone: the caller found the VM missing (an
    ENOENT from the host may also name a missing host file)."""
    code, message, hint, console_tail, from_guest = err.args
    kw = dict(hint=hint, code=code, console_tail=console_tail, from_guest=from_guest)
    if code == _ENOTFOUND and vm_gone and not from_guest:
        return VMNotFoundError(message, vm_id=vm_id, **kw)
    if code == _ETIMEDOUT:
        return OperationTimeoutError(message, timeout=timeout, **kw)
    if code in _UNAVAILABLE and not from_guest:
        return CommandExecutionUnavailableError(message, **kw)
    return SmolVMError(message, **kw)
