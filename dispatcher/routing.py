# SPDX-License-Identifier: Apache-2.0
"""Which alerts a destination wants: a minimum priority plus rule, tag and source allow-lists."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.model import Alert, Priority


@dataclass(frozen=True, slots=True)
class Route:
    """An alert filter. Empty allow-lists mean "everything"; all given conditions must hold.

    ``tags`` matches when the alert carries at least one of the listed tags.
    """

    min_priority: Priority = Priority.DEBUG
    rules: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()

    def matches(self, alert: Alert) -> bool:
        """True when the alert passes every condition of this route."""
        if alert.priority > self.min_priority:
            return False
        if self.rules and alert.rule not in self.rules:
            return False
        if self.sources and alert.source not in self.sources:
            return False
        return not self.tags or not self.tags.isdisjoint(alert.tags)

    @classmethod
    def build(
        cls,
        min_priority: str | Priority = Priority.DEBUG,
        rules: tuple[str, ...] | list[str] = (),
        tags: tuple[str, ...] | list[str] = (),
        sources: tuple[str, ...] | list[str] = (),
    ) -> Route:
        """Build a route from config-style values; an unknown priority name raises ValueError."""
        prio = min_priority if isinstance(min_priority, Priority) else Priority.parse(min_priority)
        return cls(prio, frozenset(rules), frozenset(tags), frozenset(sources))


MATCH_ALL = Route()
