# SPDX-License-Identifier: Apache-2.0
"""The rule engine: load Falco rules files, then match events against them.

API used by the service, the CLI and the harness::

    result = load_rules(["rules/lanner_rules.yaml"], EngineOptions(rule_matching="all"))
    for m in result.errors + result.warnings:
        print(m.format())                        # file:line:col: error|warning: CODE (Title): message [rule 'x']
    engine = result.engine                       # None when result.errors is non-empty
    if engine.has_rules_for("syscall", "openat"):    # cheap: skip decoding events no enabled rule cares about
        ctx = EventContext(event)
        for match in engine.process(ctx):        # [] / first match / all matches (rule_matching)
            alert = match.render(ctx, hostname, output_options)   # FIELDS' AlertRecord

``load_rules`` reads every file (all errors of every file are reported, each with ``file:line:col``), compiles each
rule once to Python code, and indexes enabled rules by event type (rules without an ``evt.type`` restriction run
for every type). For each indexed type the candidate rules are generated into one function: every field is
extracted at most once per event into a local, sub-conditions shared by several rules (macro bodies) are evaluated
once, ``evt.type`` checks are folded away, and conjuncts needing fewer new fields run first. ``load_texts`` does
the same from in-memory (name, text) pairs. A ``LoadResult`` is immutable; hot reload (``ruleengine.reload``)
swaps whole engines. ``EngineOptions`` carries Falco's knobs: ``min_priority`` (falco.yaml ``priority``),
``rule_matching`` (first|all), ``disabled_rules`` (``-D``: substring, or a ``*`` wildcard pattern),
``enabled_tags`` (``-t``: only rules with one of these tags), ``disabled_tags`` (``-T``), and the plugin versions
Lanner provides natively for ``required_plugin_versions``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lanner.convert import BatchTables
from lanner.lazy_event import LazyEvent, MalformedEvent
from lanner.v1 import event_pb2
from ruleengine.build import Builder, CompiledRule
from ruleengine.compiler import compile_dispatcher
from ruleengine.decision_memo import MISS, NO_MEMO, DecisionMemo
from ruleengine.fields import EventContext, known_sources
from ruleengine.loader.messages import LoadMessage, Location
from ruleengine.loader.reader import Reader
from ruleengine.priority import Priority

if TYPE_CHECKING:
    from prometheus_client import Counter

    from ruleengine.output import AlertRecord

log = logging.getLogger(__name__)


@functools.cache
def eval_errors() -> Counter:
    """The rule-evaluation error counter, registered on first use: ``lanner replay`` and ``rules test`` then never
    import prometheus_client, which costs them a tenth of their start-up."""
    from prometheus_client import Counter as PromCounter

    return PromCounter(
        "lanner_rules_eval_errors_total", "Rule evaluations that raised (the rule was skipped)", ["rule"]
    )


# Lanner implements these plugins' fields natively; rules files name them in required_plugin_versions.
BUILTIN_PLUGINS: Mapping[str, str] = MappingProxyType({"container": "0.6.0", "k8saudit": "0.18.0", "json": "0.7.0"})


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Falco's rule-selection and matching options."""

    min_priority: Priority = Priority.DEBUG
    rule_matching: str = "first"
    disabled_rules: tuple[str, ...] = ()
    enabled_tags: tuple[str, ...] = ()
    disabled_tags: tuple[str, ...] = ()
    plugins: Mapping[str, str] = field(default_factory=lambda: BUILTIN_PLUGINS)
    # Remember each dispatcher's answer by the wire bytes of the parts it read (ruleengine.decision_memo). Off
    # only to compare against, in tests and benches.
    decision_memo: bool = True

    def __post_init__(self) -> None:
        if self.rule_matching not in ("first", "all"):
            raise ValueError(f"rule_matching must be 'first' or 'all', not '{self.rule_matching}'")


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched an event."""

    rule: CompiledRule

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.rule.name

    @property
    def priority(self) -> Priority:
        """The rule's priority."""
        return self.rule.priority

    @property
    def tags(self) -> tuple[str, ...]:
        """The rule's tags, sorted."""
        return self.rule.tags

    @property
    def source(self) -> str:
        """The rule's event source."""
        return self.rule.source

    @property
    def output_format(self) -> Any:
        """The parsed output format (FIELDS' OutputFormat)."""
        return self.rule.output_format

    def render(self, ctx: EventContext, hostname: str, options: Any = None) -> AlertRecord:
        """Build the alert for this match with FIELDS' ``render_alert``."""
        from ruleengine.output import OutputOptions, render_alert

        return render_alert(
            self.rule.name,
            self.rule.priority,
            self.rule.tags,
            self.rule.source,
            self.rule.output_format,
            ctx,
            hostname,
            options or OutputOptions(),
        )


def _selected(rule: CompiledRule, opts: EngineOptions) -> bool:
    if rule.priority > opts.min_priority:
        return False
    enabled = rule.enabled
    if opts.enabled_tags:
        enabled = any(t in rule.tags for t in opts.enabled_tags)
    if opts.disabled_tags and any(t in rule.tags for t in opts.disabled_tags):
        enabled = False
    for pattern in opts.disabled_rules:
        hit = fnmatch.fnmatchcase(rule.name, pattern) if "*" in pattern else pattern in rule.name
        if hit:
            enabled = False
    return enabled


class Engine:
    """Compiled, indexed rules. Immutable after construction; swap whole engines to reload.

    For each event type that some rule names, the candidate rules are compiled together into one dispatcher
    function (fields extracted once into locals, ``evt.type`` checks folded away); one more dispatcher serves the
    types no rule names (it holds only the rules without an ``evt.type`` restriction).
    """

    def __init__(self, rules: Sequence[CompiledRule], options: EngineOptions) -> None:
        self.options = options
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        self.enabled: tuple[CompiledRule, ...] = tuple(r for r in self.rules if _selected(r, options))
        self._first = options.rule_matching == "first"
        memo = options.decision_memo
        self._tables: dict[str, dict[str, _Slot]] = {}
        self._fallback: dict[str, _Slot] = {}
        by_source: dict[str, list[CompiledRule]] = {}
        for r in self.enabled:
            by_source.setdefault(r.source, []).append(r)
        for source, rules_ in by_source.items():
            if source != "syscall":
                self._tables[source] = {}
                self._fallback[source] = _Slot.build(tuple(rules_), source, None, self._first, memo)
                continue
            names: set[str] = set()
            for r in rules_:
                names |= r.evttypes.names
            self._tables[source] = {
                n: _Slot.build(tuple(r for r in rules_ if r.evttypes.contains(n)), source, n, self._first, memo)
                for n in sorted(names)
            }
            self._fallback[source] = _Slot.build(
                tuple(r for r in rules_ if r.evttypes.complement), source, None, self._first, memo
            )
        self.sources: frozenset[str] = frozenset(by_source)
        self.errors_total = 0

    def candidates(self, source: str, evt_type: str) -> tuple[CompiledRule, ...]:
        """The enabled rules that can match an event of this source and type, in rules-file order."""
        return self._slot(source, evt_type).rules

    def _slot(self, source: str, evt_type: str) -> _Slot:
        table = self._tables.get(source)
        if table is None:
            return _EMPTY
        found = table.get(evt_type)
        return self._fallback[source] if found is None else found

    def types_with_rules(self, source: str) -> frozenset[str] | None:
        """The event types some enabled rule of ``source`` could match; None when that is every type."""
        table = self._tables.get(source)
        if table is None:
            return frozenset()
        return None if self._fallback[source].rules else frozenset(table)

    def has_rules_for(self, source: str, evt_type: str) -> bool:
        """True when some enabled rule could match this source/type (so the event is worth decoding)."""
        table = self._tables.get(source)
        if table is None:
            return False
        return evt_type in table or bool(self._fallback[source].rules)

    def process_view(
        self, source: str, evt_type: str, view: event_pb2.EventView, tables: BatchTables | None
    ) -> tuple[list[Match], EventContext | None]:
        """The service's entry: ``has_rules_for`` and ``process`` in one, for an event read as ``view``. Returns the
        matches and the context to render them with; no context is built for an event the memo says no rule
        matches (most of them), and none for a type no rule reads."""
        slot = self._slot(source, evt_type)
        if not slot.rules:
            return _NO_MATCH
        hit = MISS if slot.memo is None else slot.memo.lookup_view(evt_type, view, tables)
        if hit is MISS or hit is NO_MEMO:
            ctx = EventContext(LazyEvent(view, tables, source, evt_type))
            return self._evaluate(slot, ctx, hit), ctx
        if self._first:
            if hit < 0:
                return _NO_MATCH
            return [slot.matches[hit]], EventContext(LazyEvent(view, tables, source, evt_type))
        if not hit:
            return _NO_MATCH
        return [slot.matches[i] for i in hit], EventContext(LazyEvent(view, tables, source, evt_type))

    def memo_of(self, source: str, evt_type: str) -> DecisionMemo | None:
        """The decision memo ``process_view`` asks for an event of this source and type (None: none, or no
        candidate rule at all)."""
        slot = self._slot(source, evt_type)
        return slot.memo if slot.rules else None

    def process(self, ctx: EventContext) -> list[Match]:
        """Evaluate the candidate rules; the first match only under ``rule_matching: first``."""
        ev = ctx.event
        slot = self._slot(ev.source, ev.type)
        if not slot.rules:
            return []
        return self._evaluate(slot, ctx, None)

    def _evaluate(self, slot: _Slot, ctx: EventContext, known: Any) -> list[Match]:
        """Run ``slot`` for ``ctx``; ``known`` is what the memo already said (MISS or NO_MEMO), or None."""
        ev = ctx.event
        try:
            if type(ev) is not LazyEvent:
                hit = slot.fn(ctx)
            elif (memo := slot.memo) is None or (hit := known or memo.lookup(ev)) is NO_MEMO:
                if slot.preload is not None:
                    ev.preload(slot.preload)
                hit = slot.fn(ctx)
            elif hit is MISS:
                hit = _traced(slot, memo, ctx, ev)
        except MalformedEvent:
            raise  # the event's own bytes are bad, not a rule: the caller drops the event
        except Exception:
            return self._slow(slot, ctx)
        if self._first:
            return [] if hit < 0 else [slot.matches[hit]]
        return [slot.matches[i] for i in hit]

    def _slow(self, slot: _Slot, ctx: EventContext) -> list[Match]:
        # a value of an unexpected type must not take the engine down: evaluate rule by rule, skip the broken one
        out: list[Match] = []
        for i, rule in enumerate(slot.rules):
            try:
                hit = rule.fn(ctx.get)
            except MalformedEvent:
                raise
            except Exception:
                self.errors_total += 1
                eval_errors().labels(rule.name).inc()
                log.warning("rule evaluation failed", extra={"rule": rule.name}, exc_info=True)
                continue
            if hit:
                out.append(slot.matches[i])
                if self._first:
                    break
        return out


def _traced(slot: _Slot, memo: DecisionMemo, ctx: EventContext, ev: LazyEvent) -> Any:
    """Evaluate while the event traces the parts it decodes, then remember the answer along that path."""
    trace: list[str] = []
    ev._trace = trace
    try:
        if slot.preload is not None:
            ev.preload(slot.preload)
        hit = slot.fn(ctx)
    finally:
        ev._trace = None
    memo.store(ev, trace, hit)
    return hit


@dataclass(frozen=True, slots=True)
class _Slot:
    """The candidate rules of one (source, type) with their dispatcher and prebuilt matches."""

    rules: tuple[CompiledRule, ...]
    matches: tuple[Match, ...]
    fn: Callable[[EventContext], Any]
    preload: str | None = None
    memo: DecisionMemo | None = None

    @classmethod
    def build(
        cls, rules: tuple[CompiledRule, ...], source: str, evt_type: str | None, first: bool, memo: bool = True
    ) -> _Slot:
        disp = compile_dispatcher([r.tree for r in rules], source, evt_type, first)
        return cls(rules, tuple(Match(r) for r in rules), disp.fn, disp.preload, DecisionMemo() if memo else None)


_EMPTY = _Slot((), (), lambda _ctx: -1)
_NO_MATCH: tuple[list[Match], None] = ([], None)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Outcome of :func:`load_rules`: the engine (None if any error) and every located message."""

    engine: Engine | None
    errors: tuple[LoadMessage, ...]
    warnings: tuple[LoadMessage, ...]

    @property
    def ok(self) -> bool:
        """True when there were no errors."""
        return not self.errors


def load_texts(files: Sequence[tuple[str, str]], options: EngineOptions | None = None) -> LoadResult:
    """Load rules from (name, content) pairs, in order, as one rule set."""
    opts = options or EngineOptions()
    reader = Reader(known_sources())
    for name, text in files:
        reader.read_file(name, text)
    builder = Builder(reader.col)
    builder.build_macros()
    rules = builder.build_rules()
    builder.check_plugins(dict(opts.plugins))
    messages = reader.messages + builder.messages
    if not any(m.is_error for m in messages):
        builder.unused_warnings()
        messages = reader.messages + builder.messages
    texts = dict(files)
    messages = [_with_snippet(m, texts) for m in messages]
    errors = tuple(m for m in messages if m.is_error)
    warnings = tuple(m for m in messages if not m.is_error)
    engine = None if errors else Engine(rules, opts)
    return LoadResult(engine, errors, warnings)


def _with_snippet(msg: LoadMessage, texts: Mapping[str, str]) -> LoadMessage:
    """Attach the offending source line and a caret under the column, as Falco prints them."""
    text = texts.get(msg.location.file)
    if text is None or msg.location.line <= 0 or msg.snippet:
        return msg
    lines = text.splitlines()
    if msg.location.line > len(lines):
        return msg
    line = lines[msg.location.line - 1]
    caret = " " * max(0, msg.location.col - 1) + "^"
    return dataclasses.replace(msg, snippet=f"    {line}\n    {caret}")


def load_rules(paths: Sequence[str], options: EngineOptions | None = None) -> LoadResult:
    """Load rules files in order; unreadable files are reported as LOAD_ERR_FILE_READ."""
    files: list[tuple[str, str]] = []
    read_errors: list[LoadMessage] = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as fh:
                files.append((p, fh.read()))
        except (OSError, UnicodeDecodeError) as exc:
            read_errors.append(LoadMessage("LOAD_ERR_FILE_READ", f"Could not read file: {exc}", Location(p), True))
    res = load_texts(files, options)
    if read_errors:
        return LoadResult(None, tuple(read_errors) + res.errors, res.warnings)
    return res


__all__ = [
    "BUILTIN_PLUGINS",
    "CompiledRule",
    "Engine",
    "EngineOptions",
    "LoadResult",
    "Match",
    "load_rules",
    "load_texts",
]
