# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's domain model: an alert as delivery sees it, and Falco's priorities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from lanner.priority import Priority

__all__ = ["EMPTY_FIELDS", "Alert", "JsonValue", "Priority"]

# A value of Falco's JSON ``output_fields``: lists come back as tuples so the alert stays immutable.
JsonValue: TypeAlias = "bool | int | float | str | tuple[JsonValue, ...] | Mapping[str, JsonValue] | None"

EMPTY_FIELDS: Mapping[str, JsonValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert raised by the rule engine, carrying everything Falco's JSON alert carries."""

    rule: str
    priority: Priority
    source: str = "syscall"
    tags: tuple[str, ...] = ()
    # Event time in nanoseconds since the Unix epoch (Falco's ``time``).
    time_ns: int = 0
    # The full text line "<evt.time>: <Priority> <rendered output>".
    output: str = ""
    # The rendered output without the time/priority prefix.
    message: str = ""
    output_fields: Mapping[str, JsonValue] = field(default_factory=lambda: EMPTY_FIELDS)
    hostname: str = ""
    # Stable identity used for dedup; redelivery of the same alert keeps it.
    alert_id: str = ""
