# SPDX-License-Identifier: Apache-2.0
"""The one Falco alert renderer: the text line and the one-line JSON object, for every stage and output.

The JSON form matches Falco's ``json_output: true``: keys sorted, no spaces, non-ASCII kept as UTF-8, ``time``
as UTC RFC 3339 with nanoseconds and ``Z``, priorities by their long names. ``JsonOptions`` are Falco's
``json_include_*_property`` switches. ``lanner replay --json``/``rules`` (``ruleengine.cli``) and every dispatcher
output render through here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lanner.alert import Alert, JsonFields

__all__ = [
    "DEFAULT_JSON",
    "JsonOptions",
    "escape_json",
    "falco_dict",
    "falco_json",
    "json_default",
    "rfc3339_ns",
    "text_line",
]


@dataclass(frozen=True, slots=True)
class JsonOptions:
    """Which optional keys the JSON alert carries (Falco's ``json_include_*_property``)."""

    include_output: bool = True
    include_tags: bool = True
    include_message: bool = False
    include_output_fields: bool = True


DEFAULT_JSON = JsonOptions()


# Alerts come in bursts within the same second: its formatted date is kept (one entry, (seconds, text)).
_last_second: tuple[int, str] = (-1 << 64, "")


def rfc3339_ns(time_ns: int) -> str:
    """Render nanoseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` in UTC."""
    global _last_second
    secs, nanos = divmod(time_ns, 1_000_000_000)
    last = _last_second
    if last[0] != secs:
        last = _last_second = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
    return f"{last[1]}.{nanos:09d}Z"


def falco_dict(alert: Alert, opts: JsonOptions = DEFAULT_JSON, hostname: str = "") -> dict[str, Any]:
    """The JSON alert as a dict, before serialisation."""
    out = _envelope(alert, opts, hostname)
    if opts.include_output_fields:
        fields = dict(alert.output_fields)
        # Struct carries numbers as doubles, which cannot hold a nanosecond timestamp exactly; the alert's own
        # time is exact, so ``evt.time`` is rendered from it.
        if isinstance(fields.get("evt.time"), int | float) and alert.time_ns:
            fields["evt.time"] = alert.time_ns
        out["output_fields"] = fields
    return out


def _envelope(alert: Alert, opts: JsonOptions, hostname: str) -> dict[str, Any]:
    """Everything of the JSON alert but its output fields."""
    out: dict[str, Any] = {
        "hostname": alert.hostname or hostname,
        "priority": alert.priority.falco_name,
        "rule": alert.rule,
        "source": alert.source,
        "time": rfc3339_ns(alert.time_ns),
    }
    if opts.include_output:
        out["output"] = alert.output or text_line(alert)
    if opts.include_tags:
        out["tags"] = sorted(set(alert.tags))
    if opts.include_message:
        out["message"] = alert.message
    return out


def falco_json(alert: Alert, opts: JsonOptions = DEFAULT_JSON, hostname: str = "") -> str:
    """Render the alert as Falco's JSON output does (one line, no trailing newline).

    Line separators, C1 controls and undecodable bytes, which JSON allows raw, are written as ``\\uXXXX`` escapes
    (the same JSON value), so no alert can break the line for a line-based reader.
    """
    fields = alert.output_fields
    if opts.include_output_fields and isinstance(fields, JsonFields) and _as_received(fields, alert.time_ns):
        # The fields' JSON text goes in as it came (the rule engine wrote it once): only the envelope is encoded,
        # member by member in json.dumps's sorted key order and with its string encoder (every value is a string).
        enc = _encode_str
        parts = ['{"hostname":', enc(alert.hostname or hostname)]
        if opts.include_message:
            parts += (',"message":', enc(alert.message))
        if opts.include_output:
            parts += (',"output":', enc(alert.output or text_line(alert)))
        parts += (
            ',"output_fields":',
            fields.text,
            ',"priority":',
            enc(alert.priority.falco_name),
            ',"rule":',
            enc(alert.rule),
            ',"source":',
            enc(alert.source),
        )
        if opts.include_tags:
            parts += (',"tags":[', ",".join([enc(t) for t in sorted(set(alert.tags))]), "]")
        parts += (',"time":"', rfc3339_ns(alert.time_ns), '"}')
        return escape_json("".join(parts))
    return escape_json(
        json.dumps(
            falco_dict(alert, opts, hostname),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=json_default,
        )
    )


_encode_str = json.encoder.encode_basestring  # json.dumps's own string encoder, for ensure_ascii=False
_EVT_TIME = '"evt.time":'


def _as_received(fields: JsonFields, time_ns: int) -> bool:
    """True when ``fields.text`` may stand for what ``falco_dict`` would encode (``JsonFields.as_sent``), and its
    ``evt.time`` (which the renderer takes from the alert's exact time) already is that time."""
    if not fields.as_sent:
        return False
    text = fields.text
    at = text.find(_EVT_TIME)
    if at < 0:
        return True
    want = f"{_EVT_TIME}{time_ns}"
    end = at + len(want)
    return bool(time_ns) and text.startswith(want, at) and text[end : end + 1] in (",", "}")


def json_default(value: object) -> object:
    """``json.dumps(default=...)`` for alert data: nested output_fields objects are read-only mappings."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def text_line(alert: Alert) -> str:
    """Falco's text line: the rule engine's pre-rendered ``output``, or one built from time/priority/message."""
    if alert.output:
        return alert.output
    secs, nanos = divmod(alert.time_ns, 1_000_000_000)
    stamp = time.strftime("%H:%M:%S", time.localtime(secs)) + f".{nanos:09d}"
    return f"{stamp}: {alert.priority.falco_name} {alert.message or alert.rule}"


# In JSON text, C0 controls are already escaped by the encoder; these are legal raw and are escaped here
# (``dispatcher.sanitize`` explains which characters a line-based reader acts on).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _json_escape_char(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def escape_json(text: str) -> str:
    """A JSON text (from ``json.dumps(ensure_ascii=False)``) with the raw characters above turned into escapes.

    Inside a JSON document these characters can only occur in strings, where ``\\uXXXX`` means the same thing.
    """
    # Every character escaped here but DEL is outside ASCII, and an all-ASCII str says so in O(1) (CPython's flag).
    if (text.isascii() and "\x7f" not in text) or _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(_json_escape_char, text)
