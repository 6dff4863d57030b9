# SPDX-License-Identifier: Apache-2.0
"""The atoms of the kernel filter: what the probe can test at a tracepoint, and which rule checks map to one.

``atom(check, event_type)`` says what a check on a field is in the probe's terms for one event type: an atom, a
constant, or None (unknown, "could be true"). See ``ruleengine.kfilter`` for how atoms make up the filter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ruleengine.condition.ast import Check, FieldRef, ListValue, StrValue
from ruleengine.evttypes import TYPE_FIELDS
from ruleengine.fields import _params as P
from ruleengine.fields._tables import ERRNO

# The event types whose records the probe can filter. Not here: the calls that keep state the collector cannot get
# back from /proc (chdir and fchdir move the cwd, set*id change ids, dup* copy fds), and open_by_handle_at (no path).
OPEN_TYPES = ("open", "openat", "openat2", "creat")
NET_TYPES = ("connect", "accept", "accept4", "socket", "sendto", "sendmsg")
# A file operation's path arguments as passed (1: the first path, 2: the second), by event type and argument name.
FILEOP_ARGS: dict[str, dict[str, int]] = {
    "unlink": {"path": 1},
    "unlinkat": {"name": 1},
    "rename": {"oldpath": 1, "newpath": 2},
    "renameat": {"oldpath": 1, "newpath": 2},
    "renameat2": {"oldpath": 1, "newpath": 2},
    "mkdir": {"path": 1},
    "mkdirat": {"path": 1},
    "rmdir": {"path": 1},
    "chmod": {"filename": 1},
    "fchmod": {},
    "fchmodat": {"filename": 1},
    "symlink": {"target": 1, "linkpath": 2},
    "symlinkat": {"target": 1, "linkpath": 2},
    "link": {"oldpath": 1, "newpath": 2},
    "linkat": {"oldpath": 1, "newpath": 2},
}
FILTER_TYPES = OPEN_TYPES + NET_TYPES + tuple(FILEOP_ARGS)
# fd.type / fd.typechar values -> the address families a socket call must name for the collector to report them.
_IP_FAMILIES = frozenset({"2", "10"})
FD_TYPE_FAMILIES = {"4": _IP_FAMILIES, "6": _IP_FAMILIES, "ipv4": _IP_FAMILIES, "ipv6": _IP_FAMILIES}
FD_TYPE_FAMILIES |= {"u": frozenset({"1"}), "unix": frozenset({"1"})}
PORT_TYPES = ("connect", "sendto", "sendmsg")  # fd.sport is the address the call names
MAX_ATOMS = 64
MAX_CLAUSES = 64  # per event type
PATH_KEY = 256  # exact and prefix keys: longer paths are unknown in the kernel
SUFFIX_KEY = 64  # suffix keys (reversed): longer suffixes make their atom unknown
COMM_LEN = 15


class AtomKind(enum.IntEnum):
    """What an atom tests; the numbers are shared with ``bpf/lanner.bpf.c`` (KF_*)."""

    PATH_EXACT = 1  # path in strings
    PATH_PREFIX = 2  # path starts with one of strings
    PATH_SUFFIX = 3  # path ends with one of strings
    COMM = 4  # comm in strings
    ACC_WRITE = 5  # (flags & O_ACCMODE) in (O_WRONLY, O_RDWR)
    ACC_READ = 6  # (flags & O_ACCMODE) in (O_RDONLY, O_RDWR)
    FDNUM = 7  # (res >= 0 ? res : -1) <op> number
    RES = 8  # res <op> number
    RAW_DOTDOT = 9  # the path as passed contains "../"
    FAMILY = 10  # the socket call's address family in strings (never true: only false or unknown)
    SPORT = 11  # the server port the call names in strings
    PATH_PMATCH = 12  # a file operation's path starts with one of strings, judged only when absolute without "//"


NUM_OPS = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class Atom:
    """One test the kernel can evaluate; ``exact`` False means it can only ever be false or unknown."""

    kind: AtomKind
    strings: frozenset[str] = frozenset()
    op: str = ""
    number: int = 0
    exact: bool = True
    arg: int = 0  # path atoms: 0 the open's path (resolved), 1 and 2 a file operation's paths as passed


@dataclass(frozen=True, slots=True)
class Clause:
    """A conjunction: false when an atom of ``true_atoms`` is false or one of ``false_atoms`` is true."""

    true_atoms: frozenset[int] = frozenset()
    false_atoms: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """The kernel filter: shared atoms, then per filtered event type the clauses of which one must hold.

    Types absent from ``clauses`` are not filtered; a type mapped to no clause at all is dropped entirely.
    """

    atoms: tuple[Atom, ...] = ()
    clauses: dict[str, tuple[Clause, ...]] = field(default_factory=dict)


def _values(c: Check) -> tuple[str, ...] | None:
    if isinstance(c.value, ListValue):
        return c.value.items
    if isinstance(c.value, StrValue):
        return (c.value.text,)
    return None


def _int(text: str) -> int | None:
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def atom(c: Check, evt_type: str) -> Atom | bool | None:
    """The atom for a check on ``evt_type`` (True/False when the check is constant there, None when unknown)."""
    if not isinstance(c.lhs, FieldRef) or c.modifier is not None or c.lhs.arg is not None:
        return None
    name, op = c.lhs.name, c.op.strip()
    vals = _values(c)
    if vals is None:
        return None
    if name in TYPE_FIELDS and op in ("=", "==", "in", "!="):
        hit = evt_type in vals
        return (not hit) if op == "!=" else hit
    if op == "==":
        op = "="
    if op not in ("=", "in", "startswith", "endswith", "pmatch", "contains", "glob", "<", "<=", ">", ">=", "!="):
        return None
    single = op != "in" and op != "pmatch"
    if single and len(vals) != 1:
        return None
    strings = frozenset(vals)
    if evt_type in OPEN_TYPES:
        a = _open_atom(name, op, vals, strings, evt_type)
        if a is not None:
            return a
    if evt_type in FILEOP_ARGS and name.startswith("evt.arg."):
        arg = FILEOP_ARGS[evt_type].get(name[len("evt.arg.") :])
        return None if arg is None else _raw_path_atom(op, vals, strings, arg)
    if evt_type in NET_TYPES and name in ("fd.type", "fd.typechar") and op in ("=", "in"):
        fams = [FD_TYPE_FAMILIES.get(v.strip()) for v in vals]
        if any(f is None for f in fams):
            return None
        return Atom(AtomKind.FAMILY, frozenset().union(*(f for f in fams if f is not None)), exact=False)
    if evt_type == "socket" and name == "evt.arg.domain" and op in ("=", "in", "contains"):
        return _domain_atom(op, vals)
    if evt_type in PORT_TYPES and name == "fd.sport" and op in ("=", "in"):
        ports = [_int(v) for v in vals]
        if any(p is None or not 0 <= p < 65536 for p in ports):
            return None
        return Atom(AtomKind.SPORT, frozenset(str(p) for p in ports))
    if name == "proc.name" and op in ("=", "in"):
        return Atom(AtomKind.COMM, strings)
    if name == "evt.rawres" and op in NUM_OPS:
        n = _int(vals[0])
        return None if n is None else Atom(AtomKind.RES, op=op, number=n)
    if name == "evt.res" and op in ("=", "!="):
        return _res_atom(vals[0].strip(), op)
    return None


def _domain_atom(op: str, vals: tuple[str, ...]) -> Atom:
    """``evt.arg.domain`` of a socket call, as shown (AF_INET...): the families (below 64) whose name matches."""
    kind = P.param_kind("socket", "domain")
    fams = set()
    for d in range(64):
        shown = P.render_param(kind, d)
        if (op == "contains" and vals[0] in shown) or (op != "contains" and shown in vals):
            fams.add(str(d))
    return Atom(AtomKind.FAMILY, frozenset(fams), exact=False)


def _res_atom(text: str, op: str) -> Atom | None:
    """``evt.res`` shows SUCCESS for a result >= 0, else the errno's name."""
    if text == "SUCCESS":
        return Atom(AtomKind.RES, op=">=" if op == "=" else "<", number=0)
    codes = [n for n, name in ERRNO.items() if name == text]
    if len(codes) != 1:
        return None
    return Atom(AtomKind.RES, op=op, number=-codes[0])


def _raw_path_atom(op: str, vals: tuple[str, ...], strings: frozenset[str], arg: int) -> Atom | None:
    """A check on a file operation's path argument, which the collector reports as passed."""
    if op in ("=", "in"):
        return Atom(AtomKind.PATH_EXACT, strings, arg=arg)
    if op == "startswith":
        return Atom(AtomKind.PATH_PREFIX, strings, arg=arg)
    if op == "endswith":
        if any(len(s.encode()) > SUFFIX_KEY for s in strings):
            return None
        return Atom(AtomKind.PATH_SUFFIX, strings, arg=arg)
    if op == "glob":
        head = vals[0][: min((i for i, ch in enumerate(vals[0]) if ch in "?*["), default=len(vals[0]))]
        if head == vals[0]:
            return Atom(AtomKind.PATH_EXACT, frozenset({head}), arg=arg)
        return Atom(AtomKind.PATH_PREFIX, frozenset({head}), exact=False, arg=arg) if head else None
    if op == "pmatch" and not any(ch in s for s in strings for ch in "?*["):
        # pmatch compares components, skipping empty ones: an absolute path without "//" that matches starts with
        # the pattern (minus trailing slashes); anything else says nothing.
        if any(not s.startswith("/") for s in strings):
            return None
        return Atom(AtomKind.PATH_PMATCH, frozenset(s.rstrip("/") for s in strings), exact=False, arg=arg)
    return None


def _open_atom(name: str, op: str, vals: tuple[str, ...], strings: frozenset[str], evt_type: str) -> Atom | bool | None:
    """The atoms of the open family's fields (its path, flags and fd)."""
    if name == "fd.name":
        if op in ("=", "in"):
            return Atom(AtomKind.PATH_EXACT, strings)
        if op == "startswith":
            return Atom(AtomKind.PATH_PREFIX, strings)
        if op == "endswith":
            if any(len(s.encode()) > SUFFIX_KEY for s in strings):
                return None
            return Atom(AtomKind.PATH_SUFFIX, strings)
        if op == "glob":
            # Whatever matches the pattern starts with its literal head (up to the first wildcard).
            head = vals[0][: min((i for i, ch in enumerate(vals[0]) if ch in "?*["), default=len(vals[0]))]
            if not head.startswith("/"):
                return None
            if head == vals[0]:
                return Atom(AtomKind.PATH_EXACT, frozenset({head}))
            return Atom(AtomKind.PATH_PREFIX, frozenset({head}), exact=False)
        if op == "pmatch" and not any(ch in s for s in strings for ch in "?*["):
            # A component-wise prefix: the path starts with the pattern (minus trailing slashes).
            return Atom(AtomKind.PATH_PREFIX, frozenset(s.rstrip("/") for s in strings), exact=False)
        return None
    if name == "fd.nameraw" and op == "contains" and vals[0] == "../":
        return Atom(AtomKind.RAW_DOTDOT)
    if name == "fd.directory" and op in ("=", "in"):
        if any(not s.startswith("/") for s in strings):
            return None
        return Atom(AtomKind.PATH_PREFIX, frozenset(s.rstrip("/") + "/" for s in strings), exact=False)
    if name == "fd.filename" and op in ("=", "in"):
        if any(not s or "/" in s or len(s.encode()) >= SUFFIX_KEY for s in strings):
            return None
        return Atom(AtomKind.PATH_SUFFIX, frozenset("/" + s for s in strings), exact=False)
    if name in ("evt.is_open_write", "evt.is_open_read") and op == "=":
        want = vals[0].strip().lower()
        if want not in ("true", "false"):
            return None
        if evt_type == "creat":  # not an "open" event for these fields: always false
            return False
        kind = AtomKind.ACC_WRITE if name == "evt.is_open_write" else AtomKind.ACC_READ
        return Atom(kind, op="=", number=1 if want == "true" else 0)
    if name == "fd.num" and op in NUM_OPS:
        n = _int(vals[0])
        return None if n is None else Atom(AtomKind.FDNUM, op=op, number=n)
    return None


def always_present(name: str, evt_type: str) -> bool:
    if name == "proc.name" or (name == "fd.name" and evt_type in OPEN_TYPES):
        return True
    if name == "fd.sport" and evt_type in PORT_TYPES:
        return False  # absent when the address has no port: "!=" is not the negation of "=" there
    return evt_type in FILEOP_ARGS and name.startswith("evt.arg.") and name[8:] in FILEOP_ARGS[evt_type]
