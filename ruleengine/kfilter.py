# SPDX-License-Identifier: Apache-2.0
"""What the loaded rules let the kernel drop: a conservative filter per filterable event type.

For every enabled syscall rule and every filterable type it can match (the open family, the socket calls and the
file operations), the condition is rewritten over what the probe sees at the tracepoint: the path as passed, open
flags, comm, the return value, a socket call's address family and server port, a file operation's paths. Each
check becomes an *atom* the kernel evaluates in three values: true, false, or unknown. An exact atom is true or
false whenever the probe can judge it (for an open's path: absolute, already normalised, short enough; for a file
operation's path as passed: read whole; for a port: the address names one) and unknown otherwise; an approximate
atom (``fd.directory = X`` as "the path starts with X/", ``fd.typechar = 4`` as "the address family is AF_INET or
AF_INET6") is only ever false or unknown. Every other check is unknown.

With negations pushed to the atoms, a conjunction is false as soon as one member is false, a disjunction only when
all are: so an event for which the filter (the OR over rules) is false is one no rule can match, and dropping it
loses no alert. The filter is kept as clauses (conjunctions of literals over at most ``MAX_ATOMS`` atoms), the shape
the BPF maps store; whatever does not fit is widened (a literal or an atom dropped means "could be true"), never
narrowed. ``ruleengine.kfilter_eval`` evaluates a filter the way the probe does, for the differential tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ruleengine.build import CompiledRule
from ruleengine.condition.ast import And, Check, Expr, FieldRef, MacroRef, Not, Or
from ruleengine.kfilter_atoms import (
    COMM_LEN,
    FILEOP_ARGS,
    FILTER_TYPES,
    MAX_ATOMS,
    MAX_CLAUSES,
    NET_TYPES,
    OPEN_TYPES,
    PATH_KEY,
    SUFFIX_KEY,
    Atom,
    AtomKind,
    Clause,
    FilterSpec,
    always_present,
    atom,
)

# ---- the condition over one event type, negations pushed to the leaves --------------------------------------------
# A node is PASS (never false), FAIL (always false), a literal (atom, positive) or ("and"|"or", children).
PASS = "pass"
FAIL = "fail"
Lit = tuple[Atom, bool]
Node = str | Lit | tuple[str, tuple["Node", ...]]


def _lower(e: Expr, evt_type: str, neg: bool) -> Node:
    if isinstance(e, Not):
        return _lower(e.child, evt_type, not neg)
    if isinstance(e, And | Or):
        conj = isinstance(e, And) != neg
        return _combine("and" if conj else "or", [_lower(c, evt_type, neg) for c in e.children])
    if isinstance(e, MacroRef):
        return PASS
    if e.op.strip() == "!=" and isinstance(e.lhs, FieldRef) and always_present(e.lhs.name, evt_type):
        # The field always has a value here, so "!=" is exactly the negation of "=".
        return _lower(Check(e.lhs, "=", e.value, e.pos, e.modifier), evt_type, not neg)
    a = atom(e, evt_type)
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


# The calls whose events read what socket() left in the fd table (the socket's protocol and type).
SOCKET_USERS = ("connect", "accept", "accept4", "sendto", "sendmsg", "listen")


def derive(rules: Sequence[CompiledRule], types: Sequence[str] = FILTER_TYPES) -> FilterSpec:
    """The kernel filter for the enabled ``rules`` over the filterable ``types``."""
    per_type: dict[str, list[frozenset[Lit]]] = {}
    srules = syscall_rules(rules)
    if any(r.evttypes.contains(t) for r in srules for t in SOCKET_USERS):
        # connect, accept and the sends take the socket's protocol (and a raw socket's type) from the fd table,
        # which only socket() fills: its events must all reach userspace then.
        types = [t for t in types if t != "socket"]
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
    kept = sorted(uses, key=lambda a: (-uses[a], a.kind, a.arg, sorted(a.strings), a.op, a.number))[:MAX_ATOMS]
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


__all__ = [
    "COMM_LEN",
    "FILEOP_ARGS",
    "FILTER_TYPES",
    "MAX_ATOMS",
    "MAX_CLAUSES",
    "NET_TYPES",
    "OPEN_TYPES",
    "PATH_KEY",
    "SUFFIX_KEY",
    "Atom",
    "AtomKind",
    "Clause",
    "FilterSpec",
    "derive",
    "rule_clauses",
    "syscall_rules",
]
