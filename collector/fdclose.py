# SPDX-License-Identifier: Apache-2.0
"""Reads the close stamps the probes keep per (tgid, fd) (``fd_closed`` in bpf/lanner.bpf.c), so the fd table
never trusts an entry for a number that was closed, and perhaps reused by a syscall it does not see, before the
event it is judging."""

from __future__ import annotations

import ctypes
from typing import Any

SLOTS = 4


def closed_between(stamps: list[int], count: int, after: int, upto: int) -> bool:
    """Whether one of the closes (the last ``SLOTS`` of ``count`` are in ``stamps``) fell in ``(after, upto]``.

    When older closes were overwritten and every kept one is later than ``upto``, an overwritten one may be in the
    interval: that counts as closed (the table then asks /proc rather than risk an old name)."""
    kept = [t for t in stamps if t]
    if any(after < t <= upto for t in kept):
        return True
    return count > SLOTS and bool(kept) and min(kept) > upto


class CloseMarks:
    """The ``fd_closed`` map of a loaded probe (absent when the open family is not compiled in)."""

    def __init__(self, bpf: Any) -> None:
        try:
            self._table: Any = bpf[b"fd_closed"]
        except KeyError:
            self._table = None

    def closed_between(self, pid: int, fd: int, after: int, upto: int) -> bool:
        """Whether ``fd`` of process ``pid`` was closed after boot time ``after`` and no later than ``upto``."""
        if self._table is None:
            return False
        v = self._table.get(ctypes.c_uint64((pid << 32) | (fd & 0xFFFFFFFF)))
        if v is None:
            return False
        return closed_between(list(v.ts), int(v.n), after, upto)


__all__ = ["SLOTS", "CloseMarks", "closed_between"]
