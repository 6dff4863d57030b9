# SPDX-License-Identifier: Apache-2.0
"""The kernel filter's decision, in Python: what the ``kf_*`` programs in ``bpf/lanner.bpf.c`` compute for one event.

Used by the differential tests (no event this rejects may be one the engine alerts on) and by anyone who wants to
know why an event was dropped. It works on what the probe has: the path bytes as passed, comm, flags and result, a
socket call's address family and server port, a file operation's paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruleengine.kfilter import COMM_LEN, PATH_KEY, SUFFIX_KEY, Atom, AtomKind, FilterSpec

O_ACCMODE = 3


@dataclass(frozen=True, slots=True)
class ProbeView:
    """An event as the probe sees it at syscall exit (None: the probe does not know it)."""

    type: str
    path: bytes
    comm: bytes
    flags: int
    res: int
    family: int | None = None
    sport: int | None = None
    path1: bytes | None = None
    path2: bytes | None = None


def judgeable(path: bytes) -> bool:
    """True when the path as passed is the path the collector will report (absolute and already normalised) and
    short enough for the map keys; for any other path every path atom is unknown."""
    if not path.startswith(b"/") or len(path) >= PATH_KEY - 1:
        return False
    if b"//" in path or b"/./" in path or b"/../" in path:
        return False
    if path.endswith((b"/.", b"/..")):
        return False
    return path == b"/" or not path.endswith(b"/")


def _cmp(v: int, op: str, n: int) -> bool:
    if op == "=":
        return v == n
    if op == "!=":
        return v != n
    if op == "<":
        return v < n
    if op == "<=":
        return v <= n
    if op == ">":
        return v > n
    return v >= n


def _raw_ok(path: bytes | None) -> bool:
    """A file operation's path as passed can be judged when it is there whole (and not empty, shown as <NA>)."""
    return path is not None and 0 < len(path) < PATH_KEY - 1


def atom_value(a: Atom, ev: ProbeView, ok_path: bool) -> bool | None:
    """True, False or None (unknown) for one atom, as the kernel decides it."""
    val: bool | None
    if a.kind in (AtomKind.PATH_EXACT, AtomKind.PATH_PREFIX, AtomKind.PATH_SUFFIX, AtomKind.PATH_PMATCH):
        path = ev.path if a.arg == 0 else ev.path1 if a.arg == 1 else ev.path2
        if path is None or not (ok_path if a.arg == 0 else _raw_ok(path)):
            return None
        if a.kind == AtomKind.PATH_PMATCH and (not path.startswith(b"/") or b"//" in path):
            return None
        keys = [s.encode() for s in a.strings]
        if a.kind == AtomKind.PATH_EXACT:
            val = path in keys
        elif a.kind in (AtomKind.PATH_PREFIX, AtomKind.PATH_PMATCH):
            val = any(path.startswith(k) for k in keys if len(k) < PATH_KEY)
        else:
            val = any(path.endswith(k) for k in keys if len(k) <= SUFFIX_KEY)
    elif a.kind == AtomKind.COMM:
        if not ev.comm:  # shown as "<NA>" when the process is unknown too: undecidable here
            return None
        val = ev.comm[:COMM_LEN] in {s.encode() for s in a.strings}
    elif a.kind == AtomKind.ACC_WRITE:
        val = (ev.flags & O_ACCMODE) in (1, 2)
    elif a.kind == AtomKind.ACC_READ:
        val = (ev.flags & O_ACCMODE) in (0, 2)
    elif a.kind == AtomKind.RAW_DOTDOT:
        if b"../" in ev.path[: PATH_KEY - 1]:
            val = True
        elif len(ev.path) < PATH_KEY - 1:
            val = False
        else:  # the probe only scans the bytes its key holds
            return None
    elif a.kind == AtomKind.FAMILY:
        return False if ev.family is not None and 0 <= ev.family < 64 and str(ev.family) not in a.strings else None
    elif a.kind == AtomKind.SPORT:
        if ev.sport is None:
            return None
        val = str(ev.sport) in a.strings
    elif a.kind == AtomKind.FDNUM:
        val = _cmp(ev.res if ev.res >= 0 else -1, a.op, a.number)
    else:
        val = _cmp(ev.res, a.op, a.number)
    if not a.exact and val:
        return None
    return val


def passes(spec: FilterSpec, ev: ProbeView) -> bool:
    """True when the kernel lets the event through (some rule could still match it)."""
    clauses = spec.clauses.get(ev.type)
    if clauses is None:
        return True
    ok_path = judgeable(ev.path)
    values = [atom_value(a, ev, ok_path) for a in spec.atoms]
    for c in clauses:
        if any(values[i] is False for i in c.true_atoms):
            continue
        if any(values[i] is True for i in c.false_atoms):
            continue
        return True
    return False
