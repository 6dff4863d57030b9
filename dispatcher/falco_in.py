# SPDX-License-Identifier: Apache-2.0
"""Falco's JSON alert, read back into a ``lanner.v1.Alert``: what Falco's ``http_output`` posts, what the file
output writes, and what ``lanner routes test ALERT.json`` reads.

The key set is Falco's (``hostname, output, output_fields, priority, rule, source, tags, time``, optional
``message``; ../shared/reference/falco-apis.md section 2). Unknown keys (Falcosidekick's ``uuid``) are ignored.
Errors name the key.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from dispatcher.convert import AlertError
from lanner.priority import Priority
from lanner.v1 import alert_pb2

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
# "13:53:31.726060287: Warning " or "2024-06-10T06:13:31.726060287+0000: Warning ": the prefix of Falco's text line.
_PREFIX = re.compile(r"^\S+: (Emergency|Alert|Critical|Error|Warning|Notice|Informational|Debug) ")


def parse_time(text: str) -> int:
    """RFC 3339 with up to nanoseconds (Falco: ``2024-06-10T06:13:31.726060287Z``) to ns since the epoch."""
    m = _TIME.match(text)
    if m is None:
        raise AlertError(f"time: {text!r} is not an RFC 3339 time like 2024-06-10T06:13:31.726060287Z")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        base = dt.datetime.fromisoformat(m.group(1) + zone)
    except ValueError as exc:
        raise AlertError(f"time: {text!r}: {exc}") from None
    nanos = int((m.group(2) or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + nanos


def _str(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise AlertError(f"{key}: expected a string, got {type(value).__name__}")
    return value


def alert_from_falco(obj: Any, now_ns: int = 0) -> alert_pb2.Alert:
    """Build the alert from a decoded Falco JSON object; raise AlertError naming the key."""
    if not isinstance(obj, Mapping):
        raise AlertError(f"alert: expected a JSON object, got {type(obj).__name__}")
    rule = _str(obj, "rule")
    if not rule:
        raise AlertError("rule: missing or empty")
    try:
        priority = Priority.parse(_str(obj, "priority", "debug"))
    except ValueError as exc:
        raise AlertError(f"priority: {exc}") from None
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AlertError("tags: expected a list of strings")
    fields = obj.get("output_fields") or {}
    if not isinstance(fields, Mapping):
        raise AlertError("output_fields: expected a JSON object")
    output = _str(obj, "output")
    message = _str(obj, "message") or _PREFIX.sub("", output, count=1)
    time_text = _str(obj, "time")
    pb = alert_pb2.Alert(
        rule=rule,
        priority=int(priority),  # type: ignore[arg-type]
        source=_str(obj, "source", "syscall") or "syscall",
        tags=sorted(set(tags)),
        output=output,
        message=message,
        hostname=_str(obj, "hostname"),
        output_fields_json=json.dumps(fields, separators=(",", ":"), sort_keys=True, ensure_ascii=False),
    )
    pb.time.FromNanoseconds(parse_time(time_text) if time_text else now_ns)
    return pb


def alert_from_falco_text(text: str | bytes, now_ns: int = 0) -> alert_pb2.Alert:
    """Parse one Falco JSON alert document."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise AlertError(f"body: not a JSON alert: {exc}") from None
    return alert_from_falco(obj, now_ns)
