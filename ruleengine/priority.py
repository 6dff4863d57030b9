# SPDX-License-Identifier: Apache-2.0
"""Falco rule priorities: an IntEnum ordered from most severe (EMERGENCY=0) to least (DEBUG=7)."""

from __future__ import annotations

import enum


class Priority(enum.IntEnum):
    """A rule priority. Lower value = more severe, matching Falco's numbering."""

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
        """Parse Falco's spellings case-insensitively ("info" means INFORMATIONAL); ValueError otherwise."""
        key = text.strip().lower()
        found = _BY_NAME.get(key)
        if found is None:
            raise ValueError(f"Invalid priority '{text}'")
        return found

    @property
    def falco_name(self) -> str:
        """The long form Falco prints: "Emergency", ..., "Informational", "Debug"."""
        return self.name.capitalize()


_BY_NAME: dict[str, Priority] = {p.name.lower(): p for p in Priority}
_BY_NAME["info"] = Priority.INFORMATIONAL
