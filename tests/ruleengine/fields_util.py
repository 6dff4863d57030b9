# SPDX-License-Identifier: Apache-2.0
"""Small helpers for the field tests: build events and extract fields through the public API."""

from __future__ import annotations

from lanner.model import Event
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext, resolve_field


def value(event: Event, name: str, arg: str | None = None, source: str = "syscall") -> object:
    """The extracted value of one field."""
    return EventContext(event).get(resolve_field(source, name, arg))


def text(event: Event, name: str, arg: str | None = None, source: str = "syscall") -> str:
    """The Falco text rendering of one field."""
    bound = resolve_field(source, name, arg)
    return bound.render(EventContext(event).get(bound))


def rec(**fields: object) -> Event:
    """An event from Falco-field keys written with '__' for '.' (proc__name=...)."""
    return event_from_fields({k.replace("__", "."): v for k, v in fields.items()})
