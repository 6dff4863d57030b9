# SPDX-License-Identifier: Apache-2.0
"""Alert text made safe for its destinations: header tokens, UTF-8 cuts, clipping, and JSON lines.

Terminals and line-based readers get ``lanner.text.terminal_safe``, the one escaper of control characters, line
breaks and undecodable bytes. JSON lines keep their meaning: ``escape_json`` writes the same characters as
``\\uXXXX`` escapes, which any JSON parser decodes back to the same value.
"""

from __future__ import annotations

import re

from lanner.falco_json import escape_json

__all__ = ["clip", "escape_json", "header_token", "utf8_prefix"]


def header_token(value: str, limit: int = 200) -> str | None:
    """``value`` if it is a short token safe in any header (letters, digits, ``._~:+=-``), else None."""
    if 0 < len(value) <= limit and _TOKEN.fullmatch(value):
        return value
    return None


_TOKEN = re.compile(r"[A-Za-z0-9._~:+=-]+")


def utf8_prefix(data: bytes, limit: int) -> bytes:
    """The longest prefix of UTF-8 ``data`` within ``limit`` bytes that does not split a character."""
    if len(data) <= limit:
        return data
    cut = limit
    # Step back over continuation bytes (10xxxxxx) to the start of the character that would be split.
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: cut with a trailing ``…`` when longer (a destination's hard limit)."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
