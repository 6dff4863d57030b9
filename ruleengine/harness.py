# SPDX-License-Identifier: Apache-2.0
"""Rule test harness (``lanner rules test``): YAML test cases of events and the alerts they must raise.

A test file is one YAML sequence of tests::

    - test: cat reads /etc/shadow           # unique in the file
      rules: [../../rules/lanner_rules.yaml] # optional, relative to this file; else --rules / the default rules;
                                             # $VAR / ${VAR} expand from the environment ($LANNER_FALCO_RULES)
      rule_matching: all                     # optional, first (default) | all
      source: syscall                        # optional, syscall (default) | k8s_audit
      events: [{evt.type: openat, ...}]      # or events_file: x.jsonl (relative to this file)
      expect:
        alerts: {"Rule name": 1}             # exact counts per rule; {} = no alert at all

Under ``rule_matching: first`` a failing test names the rule that shadowed an expected one.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from ruleengine.engine import Engine, EngineOptions, LoadResult, load_rules
from ruleengine.fields import EventContext
from ruleengine.loader.yamlnodes import SourceFile, is_null, loc, mapping

TEST_KEYS = frozenset({"test", "rules", "rule_matching", "source", "events", "events_file", "expect"})


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """The result of one test case."""

    file: str
    name: str
    line: int
    passed: bool
    details: tuple[str, ...] = ()


@dataclass
class HarnessReport:
    """All outcomes of a run."""

    outcomes: list[TestOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        """Number of passing tests."""
        return sum(1 for o in self.outcomes if o.passed)

    @property
    def failed(self) -> int:
        """Number of failing tests (including tests that could not run)."""
        return sum(1 for o in self.outcomes if not o.passed)

    def summary(self) -> str:
        """``N passed, M failed in S.SSs``."""
        return f"{self.passed} passed, {self.failed} failed in {self.seconds:.2f}s"


class _Fail(Exception):
    pass


def _expand(path: str, where: str) -> str:
    """``$VAR`` / ``${VAR}`` from the environment; an unset one is an error naming it (not a missing file)."""
    expanded = os.path.expandvars(path)
    if "$" in expanded:
        raise _Fail(f"{where}: rules: {path}: environment variable not set ({expanded})")
    return expanded


class Harness:
    """Runs test files; rule sets are loaded once per (files, rule_matching) and reused."""

    def __init__(self, default_rules: Sequence[str]) -> None:
        self.default_rules = list(default_rules)
        self._engines: dict[tuple[tuple[str, ...], str], LoadResult] = {}

    def _engine(self, paths: Sequence[str], matching: str) -> Engine:
        key = (tuple(os.path.abspath(p) for p in paths), matching)
        res = self._engines.get(key)
        if res is None:
            res = self._engines[key] = load_rules(list(paths), EngineOptions(rule_matching=matching))
        if res.engine is None:
            raise _Fail("\n".join(["rules failed to load:"] + [e.format() for e in res.errors]))
        return res.engine

    def run_files(self, files: Sequence[str]) -> HarnessReport:
        """Run every test of every file."""
        report = HarnessReport()
        start = time.perf_counter()
        for f in files:
            report.outcomes.extend(self.run_file(f))
        report.seconds = time.perf_counter() - start
        return report

    def run_file(self, path: str) -> list[TestOutcome]:
        """Run one test file."""
        try:
            with open(path, encoding="utf-8") as fh:
                src = SourceFile(path, fh.read())
            doc = yaml.compose(src.text, Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            return [TestOutcome(path, "<file>", 0, False, (f"{at}: cannot read test file: {exc}",))]
        if is_null(doc):
            return []
        if not isinstance(doc, yaml.SequenceNode):
            return [TestOutcome(path, "<file>", 1, False, (f"{path}:1:1: a test file is a YAML sequence of tests",))]
        out = []
        seen: set[str] = set()
        for node in doc.value:
            where = loc(src, node)
            name = f"<test at line {where.line}>"
            try:
                if not isinstance(node, yaml.MappingNode):
                    raise _Fail(f"{where}: each test must be a mapping")
                spec = _plain(node)
                if not isinstance(spec, dict):
                    raise _Fail(f"{where}: each test must be a mapping")
                name = str(spec.get("test") or name)
                if name in seen:
                    raise _Fail(f"{where}: duplicate test name '{name}'")
                seen.add(name)
                unknown = sorted(set(mapping(node)) - TEST_KEYS)
                if unknown:
                    raise _Fail(f"{where}: unknown key(s) {', '.join(unknown)}")
                details = self._run_one(path, spec, where.line)
                out.append(TestOutcome(path, name, where.line, not details, tuple(details)))
            except _Fail as exc:
                out.append(TestOutcome(path, name, where.line, False, (str(exc),)))
        return out

    def _run_one(self, path: str, spec: dict[str, object], line: int) -> list[str]:
        from ruleengine.events_json import EventFormatError, event_from_fields, read_events

        base = os.path.dirname(os.path.abspath(path))
        where = f"{path}:{line}"
        matching = str(spec.get("rule_matching", "first"))
        if matching not in ("first", "all"):
            raise _Fail(f"{where}: rule_matching must be 'first' or 'all'")
        source = str(spec.get("source", "syscall"))
        rules = spec.get("rules")
        if rules is None:
            paths = self.default_rules
        elif isinstance(rules, list):
            paths = [os.path.join(base, _expand(str(r), where)) for r in rules]
        else:
            raise _Fail(f"{where}: 'rules' must be a list of files")
        engine = self._engine(paths, matching)
        expect = spec.get("expect")
        if not isinstance(expect, dict) or not isinstance(expect.get("alerts"), dict):
            raise _Fail(f"{where}: 'expect: {{alerts: {{rule: count}}}}' is required")
        expected = {str(k): int(v) for k, v in expect["alerts"].items()}
        events = []
        try:
            if "events_file" in spec:
                events = list(read_events(os.path.join(base, str(spec["events_file"])), source))
            else:
                raw = spec.get("events")
                if not isinstance(raw, list):
                    raise _Fail(f"{where}: 'events' (a list) or 'events_file' is required")
                for i, rec in enumerate(raw):
                    if not isinstance(rec, dict):
                        raise _Fail(f"{where}: event #{i + 1} must be a mapping")
                    try:
                        # live events are numbered from 1; evt.num=0 is upstream's never_true placeholder
                        events.append(event_from_fields(rec, source, num=i + 1))
                    except EventFormatError as exc:
                        raise _Fail(f"{where}: event #{i + 1}: {exc}") from None
        except (OSError, EventFormatError) as exc:
            raise _Fail(f"{where}: {exc}") from None
        got: Counter[str] = Counter()
        shadows: list[str] = []
        for i, ev in enumerate(events):
            ctx = EventContext(ev)
            matches = engine.process(ctx)
            got.update(m.name for m in matches)
            if matching == "first" and matches:
                winner = matches[0].name
                for rule in engine.candidates(ev.source, ev.type):
                    if rule.name != winner and rule.name in expected and rule.fn(ctx.get):
                        shadows.append(
                            f"event #{i + 1}: '{rule.name}' was shadowed by '{winner}' (rule_matching: first)"
                        )
        actual = {k: v for k, v in got.items() if v}
        want = {k: v for k, v in expected.items() if v}
        # A count names a rule, zero included: {"Some rule": 0} proves nothing if no such rule is loaded.
        loaded = {r.name for r in engine.rules}
        unknown = [f"  no rule named {n!r} is loaded" for n in expected if n not in loaded]
        if actual == want and not unknown:
            return []
        details = [f"expected alerts {want or '{}'}, got {actual or '{}'}"]
        for name in sorted(set(want) | set(actual)):
            if want.get(name, 0) != actual.get(name, 0):
                details.append(f"  {name!r}: expected {want.get(name, 0)}, got {actual.get(name, 0)}")
        return details + unknown + shadows


def _plain(node: yaml.Node) -> object:
    """A test node as plain data: events are typed records (numbers, booleans), so YAML's usual typing applies."""
    return yaml.load(yaml.serialize(node), Loader=yaml.SafeLoader)
