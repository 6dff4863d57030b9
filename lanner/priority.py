# SPDX-License-Identifier: Apache-2.0
"""Falco's priorities, shared by the rule engine (rules' ``priority:``) and the dispatcher (routing, payloads)."""

from __future__ import annotations

import enum


class Priority(enum.IntEnum):
    """A rule priority with Falco's numbering: lower is more severe (EMERGENCY=0 .. DEBUG=7)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @classmethod
    def parse(cls, text: str) -> Priority:
        """Parse Falco's spellings, any case ("info" means INFORMATIONAL); ValueError naming the accepted values."""
        found = _BY_NAME.get(text.strip().lower())
        if found is None:
            names = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {text!r} (expected one of: {names}, info)")
        return found

    @property
    def falco_name(self) -> str:
        """The long form Falco prints in alerts: "Emergency", ..., "Informational", "Debug"."""
        # A tuple indexed by the number: every alert renders this, and Enum's ``name`` is a slow descriptor.
        return _FALCO_NAMES[self]


_FALCO_NAMES: tuple[str, ...] = tuple(p.name.capitalize() for p in sorted(Priority))
_BY_NAME: dict[str, Priority] = {p.name.lower(): p for p in Priority}
_BY_NAME["info"] = Priority.INFORMATIONAL
