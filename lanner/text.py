# SPDX-License-Identifier: Apache-2.0
"""Bytes a process controls, as text: lossless inside Lanner, safe wherever text leaves it.

The kernel hands over argv, env, paths and names as arbitrary bytes. Inside Lanner they are ``str`` decoded with
``surrogateescape``: valid UTF-8 reads as itself, and each byte that is not becomes one lone surrogate
(U+DC80..U+DCFF), so ``to_bytes(from_bytes(b)) == b`` for every ``b``. Rules compare them as text, and a literal
in a rule can never equal a lone surrogate, so such bytes never match by accident.

A lone surrogate cannot be encoded as UTF-8, so nothing that holds one may reach a protobuf ``string``, a JSON
document meant for another program, or a terminal. ``displayable`` renders it the way Falco does when it prints
its JSON: each undecodable byte becomes U+FFFD.
"""

from __future__ import annotations

import codecs
import re

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def from_bytes(data: bytes) -> str:
    """Kernel bytes as text that keeps every byte."""
    return data.decode("utf-8", "surrogateescape")


def _escape_or_replace(exc: UnicodeError) -> tuple[bytes, int]:
    # surrogateescape, except that a surrogate it cannot map back to a byte (one that came from JSON's "\\ud800"
    # rather than from the kernel) becomes U+FFFD instead of an exception.
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    out = bytearray()
    for ch in chunk:
        code = ord(ch)
        out += bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else REPLACEMENT.encode()
    return bytes(out), exc.end


codecs.register_error("lanner.bytes", _escape_or_replace)


def to_bytes(text: str) -> bytes:
    """The original bytes of ``from_bytes`` text (any other str encodes as UTF-8); never raises."""
    return text.encode("utf-8", "lanner.bytes")


def displayable(text: str) -> str:
    """``text`` with every undecodable byte as U+FFFD: valid UTF-8, fit for protobuf strings, JSON and logs."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def escape_surrogates(json_text: str) -> str:
    """A JSON document with each lone surrogate written as its ``\\uXXXX`` escape: encodable as UTF-8, and a
    JSON reader gets the same string back."""
    if json_text.isascii():
        return json_text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json_text)


# The one escaper for text that reaches a terminal or a line-based reader (stdout, files, a program's stdin,
# syslog, mail headers, `lanner replay`, `lanner collector --print`): alert and event text is attacker-controlled
# (file names, command lines, environment), and no byte of it may forge a line or a terminal command. Escaped:
# - C0 controls except TAB (NUL, CR, LF, ESC, which starts ANSI sequences, ...) and DEL: ``\xNN`` (``\n``, ``\r``);
# - C1 controls U+0080..U+009F (U+0085 NEL is a line break to some readers; U+009B is a one-character CSI);
# - U+2028/U+2029, the line and paragraph separators (line breaks to JavaScript and many log viewers);
# - lone surrogates, how undecodable bytes travel in Python text (``\udcff`` -> ``\xff``, the original byte).
# TAB stays: it moves the cursor, never to a new line. Backslashes stay, so ordinary text (Windows paths, regexes)
# reads as before: the escaping is meant to be safe, not reversible.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape_one(m: re.Match[str]) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the surrogateescape form of an undecodable byte: show that byte
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` for a terminal or a line-based reader: every line-breaking, terminal-controlling or undecodable
    character escaped (``\\n``, ``\\r``, ``\\xNN``, ``\\uXXXX``); TAB and backslashes are kept."""
    if text.isascii() and text.isprintable():
        return text
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_one, text)
