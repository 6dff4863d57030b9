# SPDX-License-Identifier: Apache-2.0
"""One test per event that rules out, at once, every candidate rule that needs a name or path it does not have.

Most candidate rules of a type need some string field to hold one of their literals: ``fd.name in (...)``,
``fd.directory in (...)``, ``fd.name startswith (...)``, ``proc.name in (...)`` and the like. Such a check (or
an ``or`` of them) that the rule's condition ``and``s with everything else is the rule's *gate*: when it is
false, so is the rule. The gates of all the rules of a type are merged per field into one set, one prefix
tuple, one suffix tuple, one substring search and one regular expression, so an event that opens an ordinary
file reads each field once and runs a handful of tests instead of one chain per rule.

The gate is only ever a necessary condition, derived from the same parsed literals and with the same
operators as the rules' own checks, so skipping the gated rules when it is false changes no result
(``tests/ruleengine/test_gate.py`` checks this against the plain dispatcher over generated events).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ruleengine.compiler_ops import ContainsAny
from ruleengine.condition.ast import And, Check, Expr, FieldRef, ListValue, Or, StrValue
from ruleengine.evttypes import TYPE_FIELDS
from ruleengine.fields import BoundField, FieldArgError, FieldType, UnknownFieldError, resolve_field
from ruleengine.fields.fd import DNS_NAME_FIELDS

if TYPE_CHECKING:
    from ruleengine.compiler import _Gen

_KIND = {
    "=": "exact",
    "==": "exact",
    "in": "exact",
    "startswith": "prefix",
    "endswith": "suffix",
    "contains": "contains",
    "glob": "glob",
}
_AC_THRESHOLD = 3


@dataclass(slots=True)
class _Atoms:
    """What one string field must satisfy for some gated rule: equal one of, start with one of, ..."""

    bound: BoundField
    exact: set[str] = field(default_factory=set)
    prefix: set[str] = field(default_factory=set)
    suffix: set[str] = field(default_factory=set)
    contains: set[str] = field(default_factory=set)
    glob: set[str] = field(default_factory=set)

    def merge(self, other: _Atoms) -> None:
        self.exact |= other.exact
        self.prefix |= other.prefix
        self.suffix |= other.suffix
        self.contains |= other.contains
        self.glob |= other.glob


Gate = dict[str, _Atoms]


def _check_gate(c: Check, source: str) -> Gate | None:
    if not isinstance(c.lhs, FieldRef) or c.lhs.name in TYPE_FIELDS or c.lhs.name in DNS_NAME_FIELDS:
        return None
    kind = _KIND.get(c.op)
    if kind is None or not isinstance(c.value, StrValue | ListValue):
        return None
    if c.modifier is not None and (c.modifier != "anyof" or kind == "exact"):
        return None
    if isinstance(c.value, ListValue) and kind != "exact" and c.modifier is None:
        return None
    try:
        bf = resolve_field(source, c.lhs.name, c.lhs.arg)
    except (UnknownFieldError, FieldArgError):
        return None
    if bf.info.type is not FieldType.STRING or bf.info.is_list or bf.any_of:
        return None
    texts = c.value.items if isinstance(c.value, ListValue) else (c.value.text,)
    atoms = _Atoms(bf)
    getattr(atoms, kind).update(str(bf.parse_literal(t)) for t in texts)
    return {bf.token: atoms}


def gate_of(e: Expr | bool, source: str) -> Gate | None:
    """A necessary condition of ``e`` as literal tests on string fields, or None when there is none."""
    if isinstance(e, bool):
        return None
    if isinstance(e, Check):
        return _check_gate(e, source)
    if isinstance(e, And):
        # any conjunct's gate will do; take the first, the one the rule tests first anyway
        for c in e.children:
            g = gate_of(c, source)
            if g is not None:
                return g
        return None
    if isinstance(e, Or):
        out: Gate = {}
        for c in e.children:
            g = gate_of(c, source)
            if g is None:
                return None
            for tok, atoms in g.items():
                if tok in out:
                    out[tok].merge(atoms)
                else:
                    out[tok] = _Atoms(atoms.bound)
                    out[tok].merge(atoms)
        return out
    return None


def gate_code(gen: _Gen, gate: Gate) -> str:
    """The expression that is true when some atom holds (generated before any rule, so each field is read once
    and later rules find it in its local)."""
    tests: list[str] = []
    for atoms in gate.values():
        v = gen.tmp()
        one: list[str] = []
        if atoms.exact:
            one.append(f"{v} in {gen.const(frozenset(atoms.exact), 'S')}")
        if atoms.prefix:
            one.append(f"{v}.startswith({gen.const(tuple(sorted(atoms.prefix)), 'T')})")
        if atoms.suffix:
            one.append(f"{v}.endswith({gen.const(tuple(sorted(atoms.suffix)), 'T')})")
        if len(atoms.contains) >= _AC_THRESHOLD:
            one.append(f"{gen.const(ContainsAny(sorted(atoms.contains)), 'A')}({v})")
        else:
            one.extend(f"{gen.const(n)} in {v}" for n in sorted(atoms.contains))
        if atoms.glob:
            # the same translation as a glob check's, one alternative per pattern
            rx = re.compile("|".join(fnmatch.translate(p) for p in sorted(atoms.glob)), re.DOTALL)
            one.append(f"{gen.const(rx.match)}({v}) is not None")
        tests.append(f"(({v} := {gen.field_code(atoms.bound)}) is not None and ({' or '.join(one)}))")
    return " or ".join(tests)


def _dir_to_name(atoms: _Atoms) -> _Atoms | None:
    # fd.directory is fd.path up to its last "/" (or "/"), for a file or directory fd with a path, and then
    # fd.name is fd.path (ruleengine.fields.fd._directory, fd_name): directory d means a name under d + "/"
    if atoms.suffix or atoms.glob or "/" in atoms.exact or "/" in atoms.prefix:
        return None
    return _Atoms(atoms.bound, prefix={d + "/" for d in atoms.exact if d} | atoms.prefix, contains=atoms.contains)


def _file_to_name(atoms: _Atoms) -> _Atoms | None:
    # fd.filename is fd.path after its last "/" (or all of it), for a file fd with a path (fields.fd._filename)
    if atoms.prefix or atoms.glob:
        return None
    return _Atoms(
        atoms.bound,
        exact=set(atoms.exact),
        suffix={"/" + f for f in atoms.exact} | atoms.suffix,
        contains=atoms.contains,
    )


_VIA_NAME = {"fd.directory": _dir_to_name, "fd.filename": _file_to_name}


def live_gate(gate: Gate, source: str) -> Gate | None:
    """The gate for a live event (no recorded values given), with fd.directory and fd.filename tests made on
    fd.name, which is extracted anyway: one field read instead of three. None when nothing changes."""
    if source != "syscall" or not any(tok in gate for tok in _VIA_NAME):
        return None
    name = resolve_field(source, "fd.name", None)
    out: Gate = {}
    for tok, atoms in gate.items():
        via = _VIA_NAME.get(tok)
        moved = via(atoms) if via is not None else None
        if moved is None:
            target = out.setdefault(tok, _Atoms(atoms.bound))
            target.merge(atoms)
            continue
        out.setdefault(name.token, _Atoms(name)).merge(moved)
    # keep fd.name where the merged gate had it, first when it was first
    return out


def plan_gate(trees: list[Expr | bool], source: str) -> tuple[Gate, frozenset[int]] | None:
    """The merged gate of the rules that have one, and their indexes; None when fewer than two have one."""
    merged: Gate = {}
    gated: set[int] = set()
    for i, t in enumerate(trees):
        g = gate_of(t, source)
        if g is None:
            continue
        gated.add(i)
        for tok, atoms in g.items():
            if tok not in merged:
                merged[tok] = _Atoms(atoms.bound)
            merged[tok].merge(atoms)
    if len(gated) < 2:
        return None
    return merged, frozenset(gated)


# The part of a lazily decoded event (lanner.lazy_event) that a field is read from.
_PARTS = (("fd.", "fd"), ("proc.", "proc"))


def first_part(gate: Gate) -> str | None:
    """The event part that the gate's first field reads: every event of the type reads it, so decoding it up
    front changes nothing but the cost."""
    token = next(iter(gate), "")
    return next((part for prefix, part in _PARTS if token.startswith(prefix)), None)


__all__ = ["Gate", "first_part", "gate_code", "gate_of", "live_gate", "plan_gate"]
