# SPDX-License-Identifier: Apache-2.0
"""What the loaded rules let the kernel drop: a conservative filter per open-family event type.

For every enabled syscall rule and every open type it can match, the condition is rewritten over what the probe sees
at the tracepoint (the path as passed, open flags, comm, the return value). Each check becomes an *atom* the kernel
evaluates in three values: true, false, or unknown. An exact atom is true or false whenever the path is one the
kernel can judge (absolute, already normalised, short enough) and unknown otherwise; an approximate atom
(``fd.directory = X`` as "the path starts with X/") is only ever false or unknown. Every other check is unknown.

With negations pushed to the atoms, a conjunction is false as soon as one member is false, a disjunction only when
all are: so an event for which the filter (the OR over rules) is false is one no rule can match, and dropping it
loses no alert. The filter is kept as clauses (conjunctions of literals over at most ``MAX_ATOMS`` atoms), the shape
the BPF maps store; whatever does not fit is widened (a literal or an atom dropped means "could be true"), never
narrowed. ``ruleengine.kfilter_eval`` evaluates a filter the way the probe does, for the differential tests.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ruleengine.build import CompiledRule
from ruleengine.condition.ast import And, Check, Expr, FieldRef, ListValue, MacroRef, Not, Or, StrValue
from ruleengine.evttypes import TYPE_FIELDS

# The event types whose records the probe can filter (it sees their path, flags and result).
OPEN_TYPES = ("open", "openat", "openat2", "creat")
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


NUM_OPS = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class Atom:
    """One test the kernel can evaluate; ``exact`` False means it can only ever be false or unknown."""

    kind: AtomKind
    strings: frozenset[str] = frozenset()
    op: str = ""
    number: int = 0
    exact: bool = True


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


# ---- the condition over one event type, negations pushed to the leaves --------------------------------------------
# A node is PASS (never false), FAIL (always false), a literal (atom, positive) or ("and"|"or", children).
PASS = "pass"
FAIL = "fail"
Lit = tuple[Atom, bool]
Node = str | Lit | tuple[str, tuple["Node", ...]]


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


def _atom(c: Check, evt_type: str) -> Atom | bool | None:
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
    if name == "proc.name" and op in ("=", "in"):
        return Atom(AtomKind.COMM, strings)
    if name in ("evt.is_open_write", "evt.is_open_read") and op == "=":
        want = vals[0].strip().lower()
        if want not in ("true", "false"):
            return None
        if evt_type == "creat":  # not an "open" event for these fields: always false
            return False
        kind = AtomKind.ACC_WRITE if name == "evt.is_open_write" else AtomKind.ACC_READ
        return Atom(kind, op="=", number=1 if want == "true" else 0)
    if name in ("fd.num", "evt.rawres") and op in NUM_OPS:
        n = _int(vals[0])
        if n is None:
            return None
        return Atom(AtomKind.FDNUM if name == "fd.num" else AtomKind.RES, op=op, number=n)
    return None


def _lower(e: Expr, evt_type: str, neg: bool) -> Node:
    if isinstance(e, Not):
        return _lower(e.child, evt_type, not neg)
    if isinstance(e, And | Or):
        conj = isinstance(e, And) != neg
        return _combine("and" if conj else "or", [_lower(c, evt_type, neg) for c in e.children])
    if isinstance(e, MacroRef):
        return PASS
    if e.op.strip() == "!=" and isinstance(e.lhs, FieldRef) and e.lhs.name in ("fd.name", "proc.name"):
        # Both fields are always present on an open event, so "!=" is exactly the negation of "=".
        return _lower(Check(e.lhs, "=", e.value, e.pos, e.modifier), evt_type, not neg)
    a = _atom(e, evt_type)
    if a is None:
        return PASS
    if isinstance(a, bool):
        return FAIL if a == neg else PASS
    if a.kind in (AtomKind.ACC_WRITE, AtomKind.ACC_READ) and a.number == 0:
        return (Atom(a.kind, op="=", number=1), neg)
    if not a.exact and neg:
        return PASS  # the negation of an approximation says nothing
    return (a, not neg)


def _combine(kind: str, kids: list[Node]) -> Node:
    absorb, neutral = (FAIL, PASS) if kind == "and" else (PASS, FAIL)
    out: list[Node] = []
    for k in kids:
        if k == absorb:
            return absorb
        if k != neutral:
            out.append(k)
    if not out:
        return neutral
    return out[0] if len(out) == 1 else (kind, tuple(out))


def _dnf(n: Node, cap: int) -> list[frozenset[Lit]]:
    """Clauses (sets of literals) whose OR is implied by ``n``; widened (literals dropped) to stay within cap."""
    if isinstance(n, str):
        return [frozenset()] if n == PASS else []
    if isinstance(n[0], Atom):
        return [frozenset({n})]
    kind, kids = n
    if kind == "or":
        out: list[frozenset[Lit]] = []
        for k in kids:
            out.extend(_dnf(k, cap))
            if len(out) > cap:
                return [frozenset()]
        return out
    acc: list[frozenset[Lit]] = [frozenset()]
    for k in kids:
        sub = _dnf(k, cap)
        if not sub:
            return []
        if len(acc) * len(sub) > cap:
            continue  # this conjunct is left out: the clause only gets weaker
        acc = [a | b for a in acc for b in sub]
    return acc


def _minimal(clauses: Iterable[frozenset[Lit]]) -> list[frozenset[Lit]]:
    uniq = sorted(set(clauses), key=len)
    out: list[frozenset[Lit]] = []
    for c in uniq:
        if not any(o <= c for o in out):
            out.append(c)
    return out


def rule_clauses(tree: Expr, evt_type: str) -> list[frozenset[Lit]]:
    """The clauses of one rule's condition on one event type ([] = never true, [{}] = could always be true)."""
    return _minimal(_dnf(_lower(tree, evt_type, False), MAX_CLAUSES))


def syscall_rules(rules: Iterable[CompiledRule]) -> list[CompiledRule]:
    """The rules that see syscall events."""
    return [r for r in rules if r.source == "syscall"]


def derive(rules: Sequence[CompiledRule], types: Sequence[str] = OPEN_TYPES) -> FilterSpec:
    """The kernel filter for the enabled ``rules`` over the open-family ``types``."""
    per_type: dict[str, list[frozenset[Lit]]] = {}
    for t in types:
        acc: list[frozenset[Lit]] = []
        for r in syscall_rules(rules):
            if r.evttypes.contains(t):
                acc.extend(rule_clauses(r.tree, t))
            if frozenset() in acc:
                break
        per_type[t] = _minimal(acc)
    # Number atoms by use, keep at most MAX_ATOMS; literals on the others are dropped (widening).
    uses: dict[Atom, int] = {}
    for cl in per_type.values():
        for c in cl:
            for a, _pos in c:
                uses[a] = uses.get(a, 0) + 1
    kept = sorted(uses, key=lambda a: (-uses[a], a.kind, sorted(a.strings), a.op, a.number))[:MAX_ATOMS]
    index = {a: i for i, a in enumerate(kept)}
    clauses: dict[str, tuple[Clause, ...]] = {}
    for t, cl in per_type.items():
        out: list[Clause] = []
        for c in cl:
            pos = frozenset(index[a] for a, p in c if p and a in index)
            neg = frozenset(index[a] for a, p in c if not p and a in index)
            out.append(Clause(pos, neg))
        if any(not c.true_atoms and not c.false_atoms for c in out):
            continue  # something could always be true: no filtering for this type
        if len(out) > MAX_CLAUSES:
            continue
        clauses[t] = tuple(dict.fromkeys(out))
    return FilterSpec(tuple(kept), clauses)
