# SPDX-License-Identifier: Apache-2.0
"""Field matchers: ``k8s.ns.name=shop``, ``container.image.repository~*/nginx``, ``rule!~Falco internal*``.

One matcher language for the routing tree, Subscribe's server-side filters and ``lanner subscribe --filter``, so a
filter that works in one place works in the others. Operators: ``=`` equal, ``!=`` not equal, ``~`` glob (``*``,
``?``, ``[abc]``, case-sensitive), ``!~`` glob does not match. Globs, not regular expressions, so a filter from a
client can never backtrack for long.

Fields: ``rule``, ``priority`` (Falco's name, any case), ``source``, ``hostname`` (also ``evt.hostname``), ``tags``
(true when any tag matches; ``!=``/``!~`` when none does), and any output field as the rule wrote it
(``k8s.ns.name``, ``k8s.pod.label[app]``, which also finds ``k8s.pod.label.app``). A field the alert does not carry
matches only the negative operators.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dispatcher.model import Alert, JsonValue

OPERATORS = ("!=", "!~", "=", "~")
_SYNTAX = re.compile(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)\s*(!=|!~|=|~)\s*(.*?)\s*$", re.DOTALL)
_BRACKET = re.compile(r"^(.*)\[([^\]]*)\]$")


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message quotes it."""


def _text(value: JsonValue) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_values(alert: Alert, name: str) -> tuple[str, ...]:
    """The alert's values for a field name (several for ``tags``, none when it is absent)."""
    if name == "rule":
        return (alert.rule,)
    if name == "priority":
        return (alert.priority.falco_name.lower(),)
    if name == "source":
        return (alert.source,)
    if name == "tags":
        return alert.tags
    fields = alert.output_fields
    if name in ("hostname", "evt.hostname"):
        host = _text(fields.get("evt.hostname")) if name == "evt.hostname" else None
        return (host or alert.hostname,)
    value = _text(fields.get(name))
    if value is None:
        # ``k8s.pod.label[app]`` and ``k8s.pod.label.app`` are the same field in Falco; accept either spelling.
        m = _BRACKET.match(name)
        other = f"{m.group(1)}.{m.group(2)}" if m else None
        value = _text(fields.get(other)) if other else None
    return () if value is None else (value,)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One ``FIELD OP VALUE`` condition."""

    field: str
    op: str
    value: str
    _glob: re.Pattern[str] | None = dataclasses.field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise MatcherError(f"{self.field}{self.op}{self.value}: unknown operator (use one of {OPERATORS})")
        if self.field == "priority":
            object.__setattr__(self, "value", self.value.lower())
        if self.op in ("~", "!~"):
            object.__setattr__(self, "_glob", re.compile(fnmatch.translate(self.value), re.DOTALL))

    def _test(self, value: str) -> bool:
        return value == self.value if self._glob is None else self._glob.match(value) is not None

    def matches(self, alert: Alert) -> bool:
        """True when the alert satisfies the condition."""
        hit = any(self._test(v) for v in field_values(alert, self.field))
        return not hit if self.op.startswith("!") else hit

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parse ``FIELD OP VALUE``; raise MatcherError quoting the text."""
    m = _SYNTAX.match(text)
    if m is None:
        raise MatcherError(f"{text!r}: expected FIELD OP VALUE with OP one of = != ~ !~ (e.g. k8s.ns.name=shop)")
    return Matcher(m.group(1), m.group(2), m.group(3))


def parse_matchers(texts: Iterable[str], where: str = "filter") -> tuple[Matcher, ...]:
    """Parse several matchers; the error names ``where[i]``."""
    out: list[Matcher] = []
    for i, text in enumerate(texts):
        try:
            out.append(parse_matcher(text))
        except MatcherError as exc:
            raise MatcherError(f"{where}[{i}]: {exc}") from None
    return tuple(out)


def match_all(matchers: Sequence[Matcher], alert: Alert) -> bool:
    """True when every matcher holds (an empty list matches everything)."""
    return all(m.matches(alert) for m in matchers)
