# SPDX-License-Identifier: Apache-2.0
"""Privilege and namespace records: setuid/setgid families, ptrace, unshare, setns, bpf, prctl.

Arguments are kept as the kernel got them (``request`` in the kernel's PTRACE_* numbering, ``flags`` and
``nstype`` as CLONE_* bits); an id of -1 ("leave unchanged") is passed on as -1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector import layout
from collector.decode import Header
from collector.decode_fd import decode_fd_generic
from collector.decode_file import decode_dup
from collector.decode_net import decode_listen
from lanner.model import Arg, Event

if TYPE_CHECKING:
    from collector.decode import Decoder, FamilyDecoder

_U32_UNCHANGED = 0xFFFFFFFF
_FD_CALLS = frozenset({layout.SC_CLOSE, layout.SC_EVENTFD, layout.SC_EVENTFD2, layout.SC_USERFAULTFD, layout.SC_FCNTL})

# sc -> (event type, parameter names after res)
_SPECS: dict[int, tuple[str, tuple[str, ...]]] = {
    layout.SC_SETUID: ("setuid", ("uid",)),
    layout.SC_SETGID: ("setgid", ("gid",)),
    layout.SC_SETREUID: ("setreuid", ("ruid", "euid")),
    layout.SC_SETREGID: ("setregid", ("rgid", "egid")),
    layout.SC_SETRESUID: ("setresuid", ("ruid", "euid", "suid")),
    layout.SC_SETRESGID: ("setresgid", ("rgid", "egid", "sgid")),
    layout.SC_PTRACE: ("ptrace", ("request", "pid", "addr", "data")),
    layout.SC_UNSHARE: ("unshare", ("flags",)),
    layout.SC_SETNS: ("setns", ("fd", "nstype")),
    layout.SC_BPF: ("bpf", ("cmd",)),
    layout.SC_PRCTL: ("prctl", ("option", "arg2_int")),
}
_ID_CALLS = frozenset(
    {
        layout.SC_SETUID,
        layout.SC_SETGID,
        layout.SC_SETREUID,
        layout.SC_SETREGID,
        layout.SC_SETRESUID,
        layout.SC_SETRESGID,
    }
)


def _id(raw: int) -> int:
    v = raw & 0xFFFFFFFF
    return -1 if v == _U32_UNCHANGED else v


def _signed(raw: int) -> int:
    """A ``long`` argument."""
    return raw - (1 << 64) if raw >= 1 << 63 else raw


def _s32(raw: int) -> int:
    """An ``int`` argument: only the low 32 bits of the register are meaningful."""
    v = raw & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def decode_generic(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """One of the numeric-argument syscalls; successful set*id calls also update the process's ids."""
    d.body(layout.GENERIC.size, raw)
    res, sc, _pad, a0, a1, a2, a3 = layout.GENERIC.unpack_from(raw, layout.HDR.size)
    if sc in (layout.SC_DUP, layout.SC_DUP2, layout.SC_DUP3):
        return decode_dup(d, h, res, sc, (a0, a1, a2, a3))
    if sc == layout.SC_LISTEN:
        return decode_listen(d, h, res, a0, a1)
    if sc in _FD_CALLS:
        return decode_fd_generic(d, h, res, sc, (a0, a1, a2, a3))
    spec = _SPECS.get(sc)
    if spec is None:
        return None
    type_, names = spec
    raw_args = (a0, a1, a2, a3)
    if sc in _ID_CALLS:
        values = [_id(v) for v in raw_args[: len(names)]]
    elif sc == layout.SC_PTRACE:
        values = [_signed(a0), _signed(a1), a2, a3]
    elif sc == layout.SC_SETNS:
        values = [_s32(a0), a1 & 0xFFFFFFFF]
    elif sc == layout.SC_BPF:
        values = [_s32(a0)]
    elif sc == layout.SC_PRCTL:
        values = [_s32(a0), a1]
    else:
        values = list(raw_args[: len(names)])
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    if res == 0 and sc in _ID_CALLS:
        table.set_ids(entry, sc, values)
    elif res == 0 and sc == layout.SC_UNSHARE:
        table.unshared(entry, values[0])
    args = (Arg("res", res), *(Arg(n, v) for n, v in zip(names, values, strict=True)))
    proc = table.view(entry, h.tid, h.comm, h.vtid)
    return d.event(h, type_, proc, table.ancestors(entry), res=res, args=args, incomplete=not entry.complete)


FAMILY: dict[int, FamilyDecoder] = {layout.MSG_GENERIC: decode_generic}
