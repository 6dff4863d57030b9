# SPDX-License-Identifier: Apache-2.0
"""The routing tree: which outputs an alert reaches, decided the way Alertmanager's route tree decides.

The ``dispatcher.routes`` mapping is the root route; it matches every alert and its ``outputs`` are the default
route. Each route may have child ``routes``. An alert descends into the first child that matches it; with
``continue: true`` on that child it also tries the following siblings. Where no child matches, the route itself
takes the alert. A route without ``outputs`` inherits its parent's.

A route matches when all its conditions hold: ``min_priority``, ``rules`` (globs, any of them), ``tags`` (any of
them), ``sources`` (any of them) and ``match`` (a list of ``FIELD OP VALUE`` matchers, all of them; see
dispatcher/matchers.py). Without a ``routes`` mapping every output takes every alert its own filter lets through.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.matchers import Matcher, MatcherError, match_all, parse_matchers
from dispatcher.model import Alert, Priority
from lanner.config import ConfigError

_KEYS = frozenset({"outputs", "match", "rules", "tags", "sources", "min_priority", "continue", "routes", "name"})


@dataclass(frozen=True, slots=True)
class RouteNode:
    """One route of the tree."""

    path: str
    name: str
    outputs: tuple[str, ...]
    match: tuple[Matcher, ...] = ()
    rules: tuple[re.Pattern[str], ...] = ()
    tags: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    min_priority: Priority = Priority.DEBUG
    cont: bool = False
    routes: tuple[RouteNode, ...] = ()

    def matches(self, alert: Alert) -> bool:
        """True when every condition of this route holds for the alert."""
        if alert.priority > self.min_priority:
            return False
        if self.rules and not any(rx.match(alert.rule) for rx in self.rules):
            return False
        if self.sources and alert.source not in self.sources:
            return False
        if self.tags and self.tags.isdisjoint(alert.tags):
            return False
        return match_all(self.match, alert)

    @property
    def label(self) -> str:
        """How ``lanner routes test`` names this route."""
        return f"{self.path} ({self.name})" if self.name else self.path


def resolve(root: RouteNode, alert: Alert) -> list[RouteNode]:
    """The routes that take the alert, in tree order (never empty: the root takes what nobody else does)."""
    found: list[RouteNode] = []
    for child in root.routes:
        if child.matches(alert):
            found.extend(resolve(child, alert))
            if not child.cont:
                break
    return found or [root]


def outputs_for(root: RouteNode, alert: Alert) -> set[str]:
    """The names of the outputs the alert reaches through the tree."""
    return {name for node in resolve(root, alert) for name in node.outputs}


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(raw)


def _node(raw: Any, where: str, inherited: tuple[str, ...], known: Collection[str]) -> RouteNode:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(map(str, raw)) - _KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    outputs = _strings(raw["outputs"], f"{where}.outputs") if "outputs" in raw else inherited
    for i, name in enumerate(outputs):
        if name not in known:
            raise ConfigError(f"{where}.outputs[{i}]: {name!r} is not an enabled output ({', '.join(sorted(known))})")
    try:
        match = parse_matchers(_strings(raw.get("match", []), f"{where}.match"), f"{where}.match")
        prio = Priority.parse(str(raw.get("min_priority", "debug")))
    except (MatcherError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    cont = raw.get("continue", False)
    if not isinstance(cont, bool):
        raise ConfigError(f"{where}.continue: expected true or false")
    children = raw.get("routes", [])
    if not isinstance(children, list):
        raise ConfigError(f"{where}.routes: expected a list of routes")
    return RouteNode(
        path=where,
        name=str(raw.get("name", "")),
        outputs=outputs,
        match=match,
        rules=tuple(re.compile(fnmatch.translate(g), re.DOTALL) for g in _strings(raw.get("rules", []), where)),
        tags=frozenset(_strings(raw.get("tags", []), f"{where}.tags")),
        sources=frozenset(_strings(raw.get("sources", []), f"{where}.sources")),
        min_priority=prio,
        cont=cont,
        routes=tuple(_node(c, f"{where}.routes[{i}]", outputs, known) for i, c in enumerate(children)),
    )


def parse_tree(raw: Mapping[str, Any], outputs: Collection[str], origin: str = "<config>") -> RouteNode | None:
    """Build the tree from ``dispatcher.routes`` (None when it is empty); errors name the route's path."""
    if not raw:
        return None
    try:
        root = _node(raw, "dispatcher.routes", tuple(outputs), outputs)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    if root.match or root.rules or root.tags or root.sources or root.min_priority != Priority.DEBUG or root.cont:
        raise ConfigError(f"{origin}: dispatcher.routes: the root route matches everything; put conditions on children")
    return root
