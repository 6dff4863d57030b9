# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's domain model: an alert as delivery sees it, and Falco's priorities."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

# A value of Falco's JSON ``output_fields``: lists come back as tuples so the alert stays immutable.
JsonValue: TypeAlias = "bool | int | float | str | tuple[JsonValue, ...] | Mapping[str, JsonValue] | None"

EMPTY_FIELDS: Mapping[str, JsonValue] = MappingProxyType({})


class Priority(enum.IntEnum):
    """Falco's priorities with Falco's numbering: lower is more severe."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @property
    def long_name(self) -> str:
        """The name Falco prints in alerts (``Informational``, ``Warning``...)."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> Priority:
        """Parse a priority name as Falco accepts it (any case; ``info`` for informational).

        Raises ValueError naming the accepted values.
        """
        key = text.strip().upper()
        if key == "INFO":
            key = "INFORMATIONAL"
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {text!r} (expected one of: {names}, info)") from None


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
