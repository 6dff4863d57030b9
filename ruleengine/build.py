# SPDX-License-Identifier: Apache-2.0
"""Turns collected lists/macros/rules into compiled rules, reporting Falco's compile errors and warnings.

Order and semantics follow Falco's rule compiler: lists, then macros (parsed after list substitution, resolved with
visibility), then rules (exceptions appended as text, lists substituted, parsed, macros resolved with every macro
visible, output validated, condition compiled, event types computed).
"""

from __future__ import annotations

from dataclasses import dataclass

from ruleengine.compiler import CompileError, RuleFn, compile_filter
from ruleengine.condition.ast import And, Check, Expr, FieldRef, ListValue, Not, Or, StrValue
from ruleengine.condition.parser import ConditionSyntaxError
from ruleengine.evttypes import TOO_MANY, EvtSet, event_types
from ruleengine.fields import FieldArgError, UnknownFieldError, resolve_field
from ruleengine.loader.messages import LoadMessage, Location
from ruleengine.loader.model import Collected, CondText, RuleInfo
from ruleengine.loader.reader import parse_semver
from ruleengine.output import OutputFormat, OutputFormatError, parse_output
from ruleengine.output_size import output_size_problem
from ruleengine.priority import Priority
from ruleengine.resolve import ListTable, MacroError, MappedText, build_exceptions, parse_mapped, resolve_macros

DEPRECATED_FIELDS = (
    "evt.dir",
    "evt.latency",
    "evt.latency.s",
    "evt.latency.ns",
    "evt.latency.human",
    "evt.wait_latency",
)
CONTAINER_INFO = "%container.info"
_NA_OPS = ("=", "==", "!=", "in", "intersects", "pmatch")
UNKNOWN_FILTER_MARKERS = ("nonexistent field", "invalid formatting token", "unknown event type", "unknown filter:")
# Falco adds LOAD_UNSAFE_NA_CHECK with an empty message (its code description says the rest)
NA_WARNING = ""
# What Falco says about a deprecated field in a condition (falco_load_result.cpp, deprecated_field_descs)
_NO_ENTER = "field is not available due to the drop of enter events."
DEPRECATED_FIELD_TEXT = {
    "evt.dir": "due to the drop of enter events, 'evt.dir = <' always evaluates to true, and 'evt.dir = >' always "
    "evaluates to false. The rule expression can be simplified by removing the condition on 'evt.dir'",
    **dict.fromkeys(DEPRECATED_FIELDS[1:], _NO_ENTER),
}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One loaded rule, ready to run."""

    name: str
    description: str
    priority: Priority
    tags: tuple[str, ...]
    source: str
    output: str
    output_format: OutputFormat
    condition: str
    fn: RuleFn
    code: str
    evttypes: EvtSet
    enabled: bool
    order: int
    exception_fields: tuple[str, ...]
    tree: Expr
    capture: bool = False
    capture_duration: int = 0


class Builder:
    """Compiles a :class:`Collected` into rules; messages accumulate in ``messages``."""

    def __init__(self, col: Collected) -> None:
        self.col = col
        self.messages: list[LoadMessage] = []
        self.lists = ListTable.build(col.lists)
        self.used_macros: set[str] = set()
        self.macros: dict[str, Expr | None] = {}

    def _add(self, code: str, text: str, where: Location, error: bool, kind: str, name: str) -> None:
        self.messages.append(LoadMessage(code, text, where, error, kind, name))

    def _where(self, cond: CondText, mt: MappedText | None, pos: int, fallback: Location) -> Location:
        orig = mt.orig(pos) if mt is not None else pos
        if orig < 0:
            return fallback
        return cond.locate(orig) or fallback

    # --- macros -----------------------------------------------------------------------------------------------
    def build_macros(self) -> None:
        parsed: dict[str, Expr | None] = {}
        maps: dict[str, MappedText] = {}
        for name, m in self.col.macros.items():
            mt = MappedText.of(m.cond.text)
            self.lists.substitute(mt)
            maps[name] = mt
            try:
                parsed[name] = parse_mapped(mt)
            except ConditionSyntaxError as exc:
                parsed[name] = None
                self._add(
                    "LOAD_ERR_COMPILE_CONDITION",
                    exc.message,
                    self._where(m.cond, None, exc.pos, m.loc),
                    True,
                    "macro",
                    name,
                )
        for name, m in self.col.macros.items():
            tree = parsed[name]
            if tree is None:
                self.macros[name] = None
                continue
            visible = {n: self.macros.get(n, parsed[n]) for n, o in self.col.macros.items() if o.index < m.visibility}
            broken = {n for n, t in parsed.items() if t is None}
            try:
                self.macros[name] = resolve_macros(tree, visible, self.used_macros, broken)
            except MacroError as exc:
                self.macros[name] = None
                self._add(
                    "LOAD_ERR_COMPILE_CONDITION",
                    exc.message,
                    self._where(m.cond, maps[name], exc.pos, m.loc),
                    True,
                    "macro",
                    name,
                )

    # --- rules ------------------------------------------------------------------------------------------------
    def build_rules(self) -> list[CompiledRule]:
        out: list[CompiledRule] = []
        for order, r in enumerate(self.col.rules.values()):
            if r.unknown_source:
                continue
            rule = self._build_rule(r, order)
            if rule is not None:
                out.append(rule)
        return out

    def _build_rule(self, r: RuleInfo, order: int) -> CompiledRule | None:
        def err(code: str, text: str, where: Location) -> None:
            self._add(code, text, where, True, "rule", r.name)

        def warn(code: str, text: str, where: Location) -> None:
            self._add(code, text, where, False, "rule", r.name)

        try:
            mt, ex_fields = build_exceptions(r.cond.text, r.exceptions)
        except ValueError as exc:
            err("LOAD_ERR_VALIDATE", str(exc), r.loc)
            return None
        for f in sorted(ex_fields):
            name, _, arg = f.partition("[")
            try:
                resolve_field(r.source, name, arg[:-1] if arg.endswith("]") else None)
            except (UnknownFieldError, FieldArgError):
                err("LOAD_ERR_VALIDATE", f"'{f}' is not a supported filter field", r.loc)
                return None
        output = r.output
        if CONTAINER_INFO in output:
            warn(
                "LOAD_DEPRECATED_ITEM",
                "%container.info is deprecated and no more useful, and will be dropped by "
                "Falco 1.0.0. The container plugin will automatically add required fields to the output message.",
                r.loc,
            )
            output = output.replace(CONTAINER_INFO, "")
        fmt = self._output(r, output, err, warn)
        if fmt is None:
            return None
        too_large = output_size_problem(fmt)
        if too_large is not None:
            warn("LOAD_OUTPUT_TOO_LARGE", too_large, r.output_loc)
        for df in DEPRECATED_FIELDS:
            if df in output:
                warn(
                    "LOAD_DEPRECATED_ITEM",
                    f"usage of deprecated field '{df}' has been detected in the rule output",
                    r.output_loc,
                )
        self.lists.substitute(mt)
        try:
            tree = parse_mapped(mt)
        except ConditionSyntaxError as exc:
            err("LOAD_ERR_COMPILE_CONDITION", exc.message, self._where(r.cond, None, exc.pos, r.loc))
            return None
        try:
            resolved = resolve_macros(tree, self.macros, self.used_macros, set())
        except MacroError as exc:
            err("LOAD_ERR_COMPILE_CONDITION", exc.message, self._where(r.cond, mt, exc.pos, r.loc))
            return None
        if resolved is None:
            return None
        self._na_warnings(resolved, r, warn)
        try:
            compiled = compile_filter(resolved, r.source)
        except CompileError as exc:
            where = self._where(r.cond, mt, exc.pos, r.loc)
            if r.skip_if_unknown_filter and any(m in exc.message for m in UNKNOWN_FILTER_MARKERS):
                warn("LOAD_UNKNOWN_FILTER", exc.message, where)
            else:
                err("LOAD_ERR_COMPILE_CONDITION", exc.message, where)
            return None
        for df in DEPRECATED_FIELDS:
            if any(f.info.name == df for f in compiled.fields):
                warn("LOAD_DEPRECATED_ITEM", DEPRECATED_FIELD_TEXT[df], r.loc)
        types = event_types(resolved)
        if r.source == "syscall" and r.warn_evttypes and (types.size() == 0 or types.code_count() > TOO_MANY):
            warn(
                "LOAD_NO_EVTTYPE",
                "Rule matches too many evt.type values. This has a significant performance penalty.",
                r.loc,
            )
        return CompiledRule(
            r.name,
            r.desc,
            r.priority,
            tuple(sorted(r.tags)),
            r.source,
            output,
            fmt,
            mt.text,
            compiled.fn,
            compiled.source_code,
            types,
            r.enabled,
            order,
            tuple(sorted(ex_fields)),
            resolved,
            r.capture,
            r.capture_duration,
        )

    def _output(self, r: RuleInfo, output: str, err: object, warn: object) -> OutputFormat | None:
        try:
            return parse_output(output, r.source)
        except OutputFormatError as exc:
            text = exc.message  # Falco's text; the location says where
            where = r.output_loc
            if r.output_src is not None and exc.column > 0 and output == r.output:
                where = r.output_src.locate(exc.column - 1) or where
            if r.skip_if_unknown_filter and any(m in text for m in UNKNOWN_FILTER_MARKERS):
                self._add("LOAD_UNKNOWN_FILTER", text, where, False, "rule", r.name)
            else:
                self._add("LOAD_ERR_COMPILE_OUTPUT", text, where, True, "rule", r.name)
            return None

    def _na_warnings(self, tree: Expr, r: RuleInfo, warn: object) -> None:
        stack: list[Expr] = [tree]
        while stack:
            e = stack.pop()
            if isinstance(e, And | Or):
                stack.extend(e.children)
            elif isinstance(e, Not):
                stack.append(e.child)
            elif (
                isinstance(e, Check)
                and isinstance(e.lhs, FieldRef)
                and e.lhs.name.startswith(("ka.", "jevt."))
                and e.op in _NA_OPS
            ):
                vals = (
                    e.value.items
                    if isinstance(e.value, ListValue)
                    else ((e.value.text,) if isinstance(e.value, StrValue) else ())
                )
                if "<NA>" in vals:
                    self._add("LOAD_UNSAFE_NA_CHECK", NA_WARNING, r.cond.locate(0) or r.loc, False, "rule", r.name)

    # --- final checks -----------------------------------------------------------------------------------------
    def unused_warnings(self) -> None:
        for name, m in self.col.macros.items():
            if name not in self.used_macros:
                self._add(
                    "LOAD_UNUSED_MACRO", "Macro not referred to by any other rule/macro", m.loc, False, "macro", name
                )
        for name, lst in self.col.lists.items():
            if name not in self.lists.used:
                self._add(
                    "LOAD_UNUSED_LIST", "List not referred to by any other rule/macro", lst.loc, False, "list", name
                )

    def check_plugins(self, available: dict[str, str]) -> None:
        for req in self.col.plugin_requirements:
            ok = False
            problem = ""
            for name, version in req.alternatives:
                have = available.get(name)
                want = parse_semver(version)
                got = parse_semver(have) if have else None
                if got is None or want is None:
                    problem = problem or f"Plugin '{name}' is required but not loaded"
                    continue
                if got[0] == want[0] and got >= want:
                    ok = True
                    break
                problem = problem or (
                    f"Plugin '{name}' version '{have}' is not compatible with required plugin version '{version}'"
                )
            if not ok:
                self._add(
                    "LOAD_ERR_VALIDATE", problem, req.loc, True, "required plugin versions", req.alternatives[0][0]
                )
