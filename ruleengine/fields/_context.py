# SPDX-License-Identifier: Apache-2.0
"""The per-event evaluation context: one event plus a cache of the fields already extracted from it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from lanner.model import Event

if TYPE_CHECKING:
    from ruleengine.fields._types import BoundField

_UNSET = object()


class EventContext:
    """One event plus a per-event cache so each field is extracted at most once.

    For ``k8s_audit`` events the audit JSON is parsed lazily, once, by ``audit``.
    """

    __slots__ = ("_audit", "_cache", "event", "given")

    def __init__(self, event: Event) -> None:
        self.event = event
        # Values a recording gave pre-rendered are the cache's first entries, so every reader sees them as given.
        # The event owns its given mapping (built for it by the record reader), and the cache grows into it: what
        # is extracted is what any later context would extract again, and replay saves a copy per event.
        self.given = given = event.given
        if given is None:
            self._cache: dict[str, object] = {}
        else:
            self._cache = given if type(given) is dict else dict(given)
        self._audit: object = _UNSET

    def get(self, field: BoundField) -> object | None:
        """The field's value for this event (None = no value), extracted once and cached."""
        token = field.token
        value = self._cache.get(token, _UNSET)
        if value is _UNSET:
            value = self._cache[token] = field.extract(self)
        return value

    @property
    def audit(self) -> object:
        """The parsed audit.k8s.io Event (a dict), or None when the event carries no valid audit JSON."""
        if self._audit is _UNSET:
            parsed: object = None
            text = self.event.audit_json
            if text:
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            self._audit = parsed
        return self._audit
