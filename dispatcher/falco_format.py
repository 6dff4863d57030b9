# SPDX-License-Identifier: Apache-2.0
"""Falco's alert renderings for the dispatcher's outputs: ``lanner.falco_json`` (the one renderer) and
``safe_line``, one line for a terminal or a line-based reader."""

from __future__ import annotations

from lanner.alert import Alert
from lanner.falco_json import DEFAULT_JSON, JsonOptions, falco_dict, falco_json, json_default, rfc3339_ns, text_line
from lanner.text import terminal_safe

__all__ = [
    "DEFAULT_JSON",
    "JsonOptions",
    "falco_dict",
    "falco_json",
    "json_default",
    "rfc3339_ns",
    "safe_line",
    "text_line",
]


def safe_line(alert: Alert, json_output: bool, opts: JsonOptions = DEFAULT_JSON, hostname: str = "") -> str:
    """One line for a terminal or a line-based reader: the JSON alert, or the text line with controls escaped."""
    return falco_json(alert, opts, hostname) if json_output else terminal_safe(text_line(alert))
