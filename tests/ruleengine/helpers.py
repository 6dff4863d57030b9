# SPDX-License-Identifier: Apache-2.0
"""Small builders shared by the rule engine tests."""

from __future__ import annotations

import textwrap

from ruleengine.engine import EngineOptions, LoadResult, load_texts
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext

HEADER = "- required_engine_version: 0.57.0\n"


def load(text: str, options: EngineOptions | None = None, name: str = "rules.yaml") -> LoadResult:
    """Load one rules text (dedented)."""
    return load_texts([(name, textwrap.dedent(text))], options)


def ctx(**fields: object) -> EventContext:
    """An EventContext from Falco-field keyword arguments (dots written as __)."""
    record = {k.replace("__", "."): v for k, v in fields.items()}
    return EventContext(event_from_fields(record))


def rule_with(cond: str, name: str = "r") -> str:
    """A one-rule rules file with ``cond`` as its condition."""
    return f"- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o %proc.name\n  priority: WARNING\n"


def matches(cond: str, **fields: object) -> bool:
    """Does a rule with condition ``cond`` match the event described by ``fields``?"""
    res = load(rule_with(cond))
    assert res.engine is not None, [e.format() for e in res.errors]
    c = ctx(**fields)
    return any(m.name == "r" for m in res.engine.process(c))


def errors(text: str) -> list[str]:
    """Formatted error messages of loading ``text``."""
    return [e.message for e in load(text).errors]


def warnings(text: str) -> list[tuple[str, str]]:
    """(code, message) of every warning of loading ``text``."""
    return [(w.code, w.message) for w in load(text).warnings]
