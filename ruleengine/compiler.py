# SPDX-License-Identifier: Apache-2.0
"""Compiles a resolved condition tree to a Python function, once, at load time.

Each rule becomes ``def _f(_g): return <expr>`` where ``_g`` is the event's cached field getter
(``EventContext.get``). Every check reads its field once into a walrus temporary and is false when the field has
no value, whatever the operator (``!=`` included), as in libsinsp. Literals are parsed into the field's type up
front; ``in``/``intersects`` lists become frozensets, ``startswith``/``endswith`` lists become tuples, ``pmatch``
lists become component tries, and ``contains`` over many values becomes an Aho-Corasick automaton.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ruleengine import dnsnames
from ruleengine.compiler_gate import first_part, gate_code, live_gate, plan_gate
from ruleengine.compiler_ops import LEGACY_LIST_TEXT_OPS, RUNTIME, OpBuilder, Operand, OpError
from ruleengine.compiler_plan import cheap_first
from ruleengine.condition.ast import And, Check, Expr, FieldRef, ListValue, MacroRef, Not, Or, StrValue, Transformer
from ruleengine.evttypes import EVENT_TYPES, TYPE_FIELDS
from ruleengine.fields import BoundField, FieldArgError, FieldType, UnknownFieldError, resolve_field
from ruleengine.fields.fd import DNS_NAME_FIELDS

Getter = Callable[[BoundField], object]
RuleFn = Callable[[Getter], bool]

_STRINGY = (FieldType.STRING, FieldType.CHAR)
_UNSET = object()
_TRANSFORMER_OUT = {"tolower": "str", "toupper": "str", "basename": "str", "b64": "same", "len": "int"}


class CompileError(Exception):
    """A condition that parses but does not compile; ``pos`` is the offending check's offset."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """The compiled predicate, the generated source (for debugging) and the fields it reads."""

    fn: RuleFn
    source_code: str
    fields: tuple[BoundField, ...]


class _Gen:
    """Code generator state. With ``local_fields`` field values live in function locals (``_x`` = the context),
    extracted on first use; otherwise they are read through the context's cached getter ``_g``."""

    def __init__(self, source: str, local_fields: bool = False) -> None:
        self.source = source
        self.ns: dict[str, Any] = dict(RUNTIME)
        self.ns["_U"] = _UNSET
        self.n = 0
        self.fields: dict[str, tuple[str, BoundField]] = {}
        self.bound: dict[str, str] = {}
        self.local_fields = local_fields
        self.emitted: set[str] = set()
        # compound sub-conditions shared by several rules (macro bodies) are evaluated once per event
        self.shared: set[Expr] = set()
        self.memo: dict[Expr, str] = {}
        self.memo_code: dict[str, str] = {}

    def const(self, value: object, prefix: str = "K") -> str:
        self.n += 1
        name = f"_{prefix}{self.n}"
        self.ns[name] = value
        return name

    def bound_const(self, bf: BoundField) -> str:
        name = self.bound.get(bf.token)
        if name is None:
            name = self.bound[bf.token] = self.const(bf, "B")
        return name

    def tmp(self) -> str:
        self.n += 1
        return f"_v{self.n}"

    def bind(self, ref: FieldRef) -> BoundField:
        try:
            return resolve_field(self.source, ref.name, ref.arg)
        except UnknownFieldError:
            raise CompileError(f"filter_check called with nonexistent field {ref.name}", ref.pos) from None
        except FieldArgError as exc:
            raise CompileError(str(exc), ref.pos) from None

    def field_code(self, bf: BoundField) -> str:
        got = self.fields.get(bf.token)
        if got is None:
            got = (self.const(bf.extract if self.local_fields else bf, "F"), bf)
            self.fields[bf.token] = got
        if self.local_fields:
            var = "_l" + got[0]
            # a recorded event's given values (_x.given) win over extraction; live events have none
            tok = self.const(bf.token, "T")
            load = f"({got[0]}(_x) if _o is None else (_c[{tok}] if {tok} in _c else _x.get({self.bound_const(bf)})))"
            if bf.token not in self.emitted:
                # code is generated in evaluation order: nothing before the first occurrence can have loaded it
                self.emitted.add(bf.token)
                return f"({var} := {load})"
            return f"({var} if {var} is not _U else ({var} := {load}))"
        return f"_g({got[0]})"

    def operand(self, node: FieldRef | Transformer) -> Operand:
        if isinstance(node, FieldRef):
            bf = self.bind(node)
            multi = "list" if bf.info.is_list else ("any" if bf.any_of else "")
            return Operand(self.field_code(bf), bf.info.type, multi, bf.token, bf)
        if node.name == "val":
            raise CompileError("'val' can only be used on the right-hand side of a check", node.pos)
        if node.name not in _TRANSFORMER_OUT:
            raise CompileError(f"field transformer '{node.name}' is not supported", node.pos)
        if len(node.args) != 1 or isinstance(node.args[0], str):
            raise CompileError(f"transformer '{node.name}' takes exactly one field argument", node.pos)
        inner = self.operand(node.args[0])
        out = _TRANSFORMER_OUT[node.name]
        if node.name == "len":
            if inner.ftype not in (*_STRINGY, FieldType.BYTES) and not inner.multi:
                raise CompileError(f"transformer 'len' does not support field type {inner.ftype.value}", node.pos)
            return Operand(f"_t_len({inner.code})", FieldType.INT, "", node.token, None)
        if node.name == "b64":
            if inner.ftype not in (*_STRINGY, FieldType.BYTES):
                raise CompileError(f"transformer 'b64' does not support field type {inner.ftype.value}", node.pos)
        elif inner.ftype not in _STRINGY:
            raise CompileError(f"transformer '{node.name}' does not support field type {inner.ftype.value}", node.pos)
        ftype = inner.ftype if out == "same" else FieldType.STRING
        return Operand(f"_t_{node.name}({inner.code})", ftype, inner.multi, node.token, None)

    def _single_valued(self, ref: FieldRef) -> bool:
        try:
            bf = resolve_field(self.source, ref.name, ref.arg)
        except (UnknownFieldError, FieldArgError):
            return False  # leave it alone: compiling the check itself reports the error
        return not bf.info.is_list and not bf.any_of

    def expr(self, e: Expr) -> str:
        if e in self.shared:
            var = self.memo.get(e)
            if var is None:
                self.n += 1
                var = self.memo[e] = f"_m{self.n}"
                self.shared.discard(e)
                inner = self.expr(e)
                self.shared.add(e)
                self.memo[e] = var
                self.memo_code[var] = inner
            return f"({var} if {var} is not _U else ({var} := {self.memo_code[var]}))"
        if isinstance(e, And):
            return "(" + " and ".join(self.expr(c) for c in e.children) + ")"
        if isinstance(e, Or):
            return "(" + " or ".join(self.expr(c) for c in _merge_or(e.children, self._single_valued)) + ")"
        if isinstance(e, Not):
            return "(not " + self.expr(e.child) + ")"
        if isinstance(e, MacroRef):
            raise CompileError(f"Undefined macro '{e.name}' used in filter.", e.pos)
        return self.check(e)

    def check(self, c: Check) -> str:
        lhs = self.operand(c.lhs)
        if lhs.multi == "list" and c.op in LEGACY_LIST_TEXT_OPS and lhs.token.startswith("ka."):
            # Falco's engine before the k8saudit plugin read list-valued ka.* fields as their JSON text, so
            # older rules test them with `contains`: keep that meaning (`rules.verbs contains '"*"'`)
            lhs = replace(lhs, code=f"_t_jsonlist({lhs.code})", multi="", bound=None)
        v = self.tmp()
        if c.op == "exists":
            return f"(({v} := {lhs.code}) is not None{' and ' + v + ' != ()' if lhs.multi else ''})"
        if lhs.bound is not None and lhs.bound.info.name in TYPE_FIELDS:
            self._check_evt_types(c)
        if lhs.bound is not None and lhs.bound.info.name in DNS_NAME_FIELDS:
            # The names a rule compares an address with are resolved in the background from now on.
            if isinstance(c.value, ListValue):
                dnsnames.WATCHED.watch(c.value.items)
            elif isinstance(c.value, StrValue):
                dnsnames.WATCHED.watch((c.value.text,))
        try:
            ops = OpBuilder(self, lhs, c.op, c.modifier, c.pos)
            if isinstance(c.value, Transformer):
                if c.value.name != "val" and c.value.name not in _TRANSFORMER_OUT:
                    raise CompileError(f"field transformer '{c.value.name}' is not supported", c.value.pos)
                if c.op in ("pmatch", "regex") or lhs.ftype is FieldType.IPNET:
                    raise CompileError(
                        f"operator '{c.op}' does not support field values on the right-hand side", c.value.pos
                    )
                target = c.value.args[0] if c.value.name == "val" else c.value
                if isinstance(target, str):
                    raise CompileError("expected a field in 'val'", c.value.pos)
                rhs = self.operand(target)
                if rhs.bound is not None and rhs.bound.info.no_rhs:
                    raise CompileError(f"field '{rhs.token}' cannot be used as a right-hand side value", c.value.pos)
                w = self.tmp()
                test = ops.dynamic(v, w, rhs)
                return f"(({v} := {lhs.code}) is not None and ({w} := {rhs.code}) is not None and {test})"
            assert c.value is not None
            test = ops.static(v, c.value)
        except OpError as exc:
            raise CompileError(str(exc), c.pos) from None
        present = f"({v} := {lhs.code})" if lhs.multi else f"({v} := {lhs.code}) is not None"
        return f"({present} and {test})"

    def _check_evt_types(self, c: Check) -> None:
        vals: tuple[str, ...] = ()
        if isinstance(c.value, ListValue):
            vals = c.value.items
        elif isinstance(c.value, StrValue):
            vals = (c.value.text,)
        for name in vals:
            if name not in EVENT_TYPES:
                raise CompileError(f"unknown event type {name}", c.pos)


def compile_filter(expr: Expr, source: str) -> CompiledFilter:
    """Compile a macro-free condition tree for ``source``; raises :class:`CompileError`."""
    gen = _Gen(source)
    body = gen.expr(expr)
    code = f"def _f(_g):\n    return bool({body})\n"
    try:
        compiled = compile(code, "<rule>", "exec")
    except (SyntaxError, RecursionError, MemoryError):
        raise CompileError("condition is too deeply nested to compile", 0) from None
    exec(compiled, gen.ns)
    fn: RuleFn = gen.ns["_f"]
    return CompiledFilter(fn, code, tuple(bf for _, bf in gen.fields.values()))


_MERGE_AS = {
    "=": ("in", None),
    "==": ("in", None),
    "in": ("in", None),
    "startswith": ("startswith", "anyof"),
    "endswith": ("endswith", "anyof"),
    "contains": ("contains", "anyof"),
    "icontains": ("icontains", "anyof"),
}


def _merge_or(children: tuple[Expr, ...], single_valued: Callable[[FieldRef], bool]) -> list[Expr]:
    """Fold ``f = a or f = b or f in (c)`` (and startswith/endswith/contains chains) into one check each.

    ``x op anyof (a, b)`` means "some value satisfies op", which is exactly the disjunction, missing values
    included (false either way); set membership, prefix tuples and Aho-Corasick then test all values at once.
    """
    groups: dict[tuple[str, str], list[Check]] = {}
    order: list[Expr | tuple[str, str]] = []
    for c in children:
        if (
            isinstance(c, Check)
            and isinstance(c.lhs, FieldRef)
            and c.modifier is None
            and c.op in _MERGE_AS
            and isinstance(c.value, StrValue | ListValue)
            and c.lhs.name not in TYPE_FIELDS
            and (c.op in ("in",) or isinstance(c.value, StrValue))
            and single_valued(c.lhs)
        ):
            key = (c.lhs.token, _MERGE_AS[c.op][0])
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(c)
        else:
            order.append(c)
    out: list[Expr] = []
    for item in order:
        if not isinstance(item, tuple):
            out.append(item)
            continue
        checks = groups[item]
        if len(checks) == 1:
            out.append(checks[0])
            continue
        texts: list[str] = []
        for c in checks:
            texts.extend(c.value.items if isinstance(c.value, ListValue) else (c.value.text,))  # type: ignore[union-attr]
        op, modifier = _MERGE_AS[item[1]]
        first = checks[0]
        out.append(Check(first.lhs, op, ListValue(tuple(texts), first.pos), first.pos, modifier))
    return out


def fold_evt_type(e: Expr, evt_type: str) -> Expr | bool:
    """Evaluate ``evt.type`` checks for a known event type and simplify; True/False when the whole tree folds."""
    if isinstance(e, And | Or):
        is_and = isinstance(e, And)
        kept: list[Expr] = []
        for c in e.children:
            f = fold_evt_type(c, evt_type)
            if f is (not is_and):
                return not is_and
            if f is not is_and:
                assert not isinstance(f, bool)
                kept.append(f)
        if not kept:
            return is_and
        if len(kept) == 1:
            return kept[0]
        return And(tuple(kept), e.pos) if is_and else Or(tuple(kept), e.pos)
    if isinstance(e, Not):
        f = fold_evt_type(e.child, evt_type)
        return (not f) if isinstance(f, bool) else Not(f, e.pos)
    if (
        isinstance(e, Check)
        and isinstance(e.lhs, FieldRef)
        and e.lhs.name in TYPE_FIELDS
        and e.lhs.arg is None
        and e.modifier is None
        and e.op in ("=", "==", "!=", "in", "intersects")
    ):
        if isinstance(e.value, ListValue):
            hit = evt_type in e.value.items
        elif isinstance(e.value, StrValue):
            hit = evt_type == e.value.text
        else:
            return e
        return (not hit) if e.op == "!=" else hit
    return e


def _count_compound(e: Expr, counts: Counter[Expr]) -> None:
    if isinstance(e, And | Or):
        counts[e] += 1
        for c in e.children:
            _count_compound(c, counts)
    elif isinstance(e, Not):
        _count_compound(e.child, counts)


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """Every candidate rule of one event type in one generated function.

    ``fn(ctx)`` returns the index (into the candidate list) of the first matching rule or -1 under
    ``rule_matching: first``, or the list of matching indexes under ``all``. Field values are extracted once into
    locals, and ``evt.type`` checks are already folded for the type.
    """

    fn: Callable[[Any], Any]
    source_code: str
    # the part of a lazily decoded event (lanner.lazy_event) that the first test reads for every event
    preload: str | None = None


def compile_dispatcher(
    trees: list[Expr], source: str, evt_type: str | None, first: bool, optimize: bool = True
) -> Dispatcher:
    """Compile the resolved trees of the candidate rules (in order) into one :class:`Dispatcher`.

    ``optimize`` reorders conjuncts (``compiler_plan``) and rules out gated rules with one merged test
    (``compiler_gate``); without it each rule is evaluated as written, which the differential tests compare with.
    """
    gen = _Gen(source, local_fields=True)
    lines: list[str] = []
    folded_trees = [tree if evt_type is None else fold_evt_type(tree, evt_type) for tree in trees]
    counts: Counter[Expr] = Counter()
    for f in folded_trees:
        if not isinstance(f, bool):
            _count_compound(f, counts)
    gen.shared = {e for e, n in counts.items() if n > 1}
    plan = None
    if optimize:
        folded_trees = cheap_first(folded_trees, gen.shared)
        plan = plan_gate(folded_trees, source)
    # the gate is generated first: it reads its fields before any rule does, and the rules find them in locals
    gate = None
    if plan is not None:
        live = live_gate(plan[0], source)
        gate = gate_code(gen, plan[0])
        if live is not None:
            gate = f"({gate_code(gen, live)}) if _o is None else ({gate})"
    gated = frozenset() if plan is None else plan[1]
    ungated: list[str] = []
    for i, folded in enumerate(folded_trees):
        if folded is False:
            continue
        cond = "True" if folded is True else gen.expr(folded)
        lines.append(f"    if {cond}:\n        {'return ' + str(i) if first else '_r.append(' + str(i) + ')'}")
        if i not in gated:
            ungated.append(lines[-1])
    head = ["def _run(_x, _U=_U):", "    _o = _x.given", "    _c = _x._cache"]
    local_vars = ["_l" + name for name, _ in gen.fields.values()] + list(gen.memo_code)
    if local_vars:
        head.append("    " + " = ".join(local_vars) + " = _U")
    if not first:
        head.append("    _r = []")
    tail = ["    return -1" if first else "    return _r"]
    if gate is not None:
        # no gated rule can match: only the others run, in their order
        head += [f"    if not ({gate}):"] + [_indent(line) for line in ungated] + [_indent(line) for line in tail]
    code = "\n".join(head + lines + tail) + "\n"
    try:
        compiled = compile(code, f"<rules:{evt_type}>", "exec")
    except (SyntaxError, RecursionError, MemoryError):
        raise CompileError("condition is too deeply nested to compile", 0) from None
    exec(compiled, gen.ns)
    return Dispatcher(gen.ns["_run"], code, None if plan is None else first_part(plan[0]))


def _indent(line: str) -> str:
    return "\n".join("    " + part for part in line.split("\n"))


__all__ = [
    "CompileError",
    "CompiledFilter",
    "Dispatcher",
    "Getter",
    "RuleFn",
    "compile_dispatcher",
    "compile_filter",
    "fold_evt_type",
]
