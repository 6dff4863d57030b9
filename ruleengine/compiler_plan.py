# SPDX-License-Identifier: Apache-2.0
"""The order in which one event type's dispatcher evaluates its rules' conjuncts.

Most events match no rule, so what an event costs is how quickly each candidate rule reaches a false conjunct.
Checks are pure, so the order of ``and`` operands does not change a rule's result. An exception is no
different either: the dispatcher that raises falls back to evaluating rule by rule with each rule's own
compiled function (``Engine._slow``), in the author's order.
"""

from __future__ import annotations

from ruleengine.condition.ast import And, Check, Expr, FieldRef, Not, Or, Transformer

# What extracting a field costs, relative to the others, for the lazy wire event: fd.* and evt.* read the fd and
# the event's own args; proc.* decodes the process; ancestors, command lines and container data cost more.
_EXPENSIVE = (
    "proc.a",
    "proc.p",
    "proc.cmd",
    "proc.args",
    "proc.env",
    "proc.exeline",
    "container.",
    "k8s.",
    "proc.sname",
    "proc.vpgid.",
    "proc.sid.",
)
_CHEAP = ("evt.", "fd.")
_SLOW_OPS = frozenset({"regex", "glob", "iglob", "pmatch", "icontains"})
_ADDRESS_FIELDS = frozenset(
    {"fd.ip", "fd.cip", "fd.sip", "fd.lip", "fd.rip", "fd.net", "fd.cnet", "fd.snet", "fd.lnet", "fd.rnet"}
)
# Fields whose checks hold for most events of the types that read them (an open is mostly a successful read of
# a file): a conjunct only over these rarely ends a rule, so a check on a name or path goes before it.
_WEAK = frozenset(
    {
        "evt.is_open_read",
        "evt.is_open_write",
        "evt.is_open_exec",
        "evt.is_open_create",
        "fd.typechar",
        "fd.type",
        "evt.rawres",
        "evt.res",
        "evt.failed",
        "fd.num",
        "evt.dir",
        "evt.arg.flags",
        "evt.arg.fd",
        "evt.arg.res",
        "evt.arg.dirfd",
        "fd.l4proto",
        "fd.sockfamily",
    }
)


def fields_of(e: Expr | FieldRef | Transformer | str, out: set[str]) -> set[str]:
    """Add the tokens of every field ``e`` reads to ``out``."""
    if isinstance(e, And | Or):
        for c in e.children:
            fields_of(c, out)
    elif isinstance(e, Not):
        fields_of(e.child, out)
    elif isinstance(e, Check):
        fields_of(e.lhs, out)
        if isinstance(e.value, Transformer):
            fields_of(e.value, out)
    elif isinstance(e, FieldRef):
        out.add(e.token)
    elif isinstance(e, Transformer):
        for a in e.args:
            fields_of(a, out)
    return out


def field_cost(token: str) -> int:
    """A rough relative cost of extracting one field the first time."""
    if token.startswith(_CHEAP):
        return 1
    if token.startswith(_EXPENSIVE):
        return 4
    return 2


def _slow_ops(e: Expr) -> int:
    if isinstance(e, And | Or):
        return sum(_slow_ops(c) for c in e.children)
    if isinstance(e, Not):
        return _slow_ops(e.child)
    if not isinstance(e, Check):
        return 0
    if isinstance(e.lhs, FieldRef) and e.lhs.name in _ADDRESS_FIELDS:
        return 3  # network ranges are tested one by one, in Python
    return 1 if e.op in _SLOW_OPS else 0


def flatten(e: Expr, shared: set[Expr]) -> Expr:
    """``a and (b and c)`` as ``a and b and c``, so every conjunct can be ordered; a shared sub-condition (a
    macro body several rules use) stays whole, since it is evaluated once per event and remembered."""
    if not isinstance(e, And):
        return e
    kids: list[Expr] = []
    for c in e.children:
        c = flatten(c, shared) if c not in shared else c
        if isinstance(c, And) and c not in shared:
            kids.extend(c.children)
        else:
            kids.append(c)
    return And(tuple(kids), e.pos)


def cheap_first(trees: list[Expr | bool], shared: set[Expr]) -> list[Expr | bool]:
    """Reorder each rule's top-level conjuncts so that the ones likely to fail cheaply run first.

    - A positive conjunct comes before a negated one. For an event that matches no rule, a positive check
      (``fd.name in (...)``, ``proc.name = x``) is usually false and ends the rule, while ``not ...`` (the
      exceptions and the "not a known program" clauses) is usually true and ends nothing.
    - Then a conjunct that reads a name, a path or an identity before one that reads only fields whose checks
      usually hold (``evt.is_open_read``, ``fd.typechar``, ``evt.rawres``...).
    - Among those, the one whose new fields cost least runs first. The first conjunct of every earlier rule is
      always evaluated before a later rule runs, so its fields are already in locals and cost nothing.
    - Regex, glob and path-match checks cost one more than a set or prefix test.
    - Ties keep the author's order.
    """
    known: set[str] = set()
    out: list[Expr | bool] = []

    def key(c: Expr) -> tuple[bool, bool, int]:
        fields = fields_of(c, set())
        cost = sum(field_cost(f) for f in fields - known)
        return isinstance(c, Not), fields <= _WEAK, cost + _slow_ops(c)

    for t in trees:
        if isinstance(t, And):
            t = flatten(t, shared)
            assert isinstance(t, And)
            kids = sorted(t.children, key=key)
            t = And(tuple(kids), t.pos)
            known |= fields_of(kids[0], set())
        elif not isinstance(t, bool):
            known |= fields_of(t, set())
        out.append(t)
    return out


__all__ = ["cheap_first", "field_cost", "fields_of", "flatten"]
