# SPDX-License-Identifier: Apache-2.0
"""Alert text made safe for terminals and line-based readers: no byte of an alert can forge a line or a command.

Alert text is attacker-controlled (file names, command lines, environment). Wherever it reaches a terminal or a
reader that splits on lines (stdout, files, a program's stdin, syslog), these characters are escaped:

- C0 controls except TAB (NUL, CR, LF, ESC, which starts ANSI sequences, ...) and DEL: ``\\xNN`` (``\\n``, ``\\r``);
- C1 controls U+0080..U+009F (U+0085 NEL is a line break to some readers; U+009B is a one-character CSI);
- U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR (line breaks to JavaScript and many log viewers);
- lone surrogates, which is how undecodable bytes travel in Python text (``\\udcff`` -> ``\\xff``, the original byte).

Backslashes are left alone, so ordinary text (Windows paths, regexes) reads as before; the escaping is meant to be
safe, not reversible. JSON lines keep their meaning: the same characters become ``\\uXXXX`` escapes, which any JSON
parser decodes back to the same value.
"""

from __future__ import annotations

import re

# Everything a terminal or a line splitter may act on. TAB stays: it moves the cursor, never to a new line.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# In JSON text, C0 controls are already escaped by the encoder; the rest are legal raw and must be escaped here.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        # surrogateescape form of an undecodable byte: show that byte.
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def escape_line(text: str) -> str:
    """The text with every line-breaking, terminal-controlling or unencodable character escaped."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_char, text)


def _json_escape_char(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def escape_json(text: str) -> str:
    """A JSON text (from ``json.dumps(ensure_ascii=False)``) with the raw characters above turned into escapes.

    Inside a JSON document these characters can only occur in strings, where ``\\uXXXX`` means the same thing.
    """
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(_json_escape_char, text)


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
