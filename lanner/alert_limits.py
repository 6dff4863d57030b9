# SPDX-License-Identifier: Apache-2.0
"""Size limits on an alert: one shortened alert, never a stuck queue.

A rule whose output renders 100,000 ``%fd.name`` tokens must cost one shortened alert, not a blocked pipeline.
Two places apply these limits. The rule engine cuts every alert it raises to ``PRODUCER_LIMITS`` (generous, but
far under the 16 MiB gRPC message limit, so no single alert can make its batch unsendable). The dispatcher's
intake cuts each alert to its configured limits (``dispatcher.limits``, ``DEFAULT_LIMITS`` unless set) before it
is stored, so every output sees a bounded alert; there, what was cut is counted in
``lanner_dispatcher_alerts_truncated_total{part}``. What was cut is marked in the text itself:

- ``output`` and ``message`` are cut to ``max_output_chars`` characters, followed by ``…[truncated N chars]``;
- every string value in ``output_fields`` (nested ones too) is cut to ``max_field_chars`` characters, followed by
  the same marker; fields beyond ``max_fields`` (in name order) are dropped and ``lanner.truncated_fields`` says
  how many;
- tags beyond ``max_tags`` are dropped, and each tag is cut to ``max_tag_chars``;
- alerts no larger than the smallest of ``max_output_chars``, ``max_field_chars`` and ``max_alert_bytes``
  (serialized) are never cut: every limit exists to bound size, and such an alert is small already;
- if the serialized alert is still over ``max_alert_bytes`` (many large fields), its output fields are replaced
  by ``{"lanner.truncated_fields": N}``, and if even that is not enough, output and message are cut to an eighth
  of the byte budget each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from lanner.v1 import alert_pb2

MARKER = "…[truncated {n} chars]"
TRUNCATED_FIELDS = "lanner.truncated_fields"


@dataclass(frozen=True, slots=True)
class AlertLimits:
    """The ``dispatcher.limits`` config section (documented in docs/outputs/README.md)."""

    # The rendered output and the message, in characters.
    max_output_chars: int = 16384
    # Each string value in output_fields, in characters (a full PATH_MAX path fits).
    max_field_chars: int = 4096
    max_fields: int = 256
    max_tags: int = 64
    max_tag_chars: int = 256
    # The whole serialized alert after the cuts above.
    max_alert_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if min(self.max_output_chars, self.max_field_chars, self.max_tag_chars) < 64:
            raise ValueError("max_output_chars, max_field_chars and max_tag_chars: must be at least 64")
        if self.max_fields < 1 or self.max_tags < 1:
            raise ValueError("max_fields and max_tags: must be at least 1")
        if self.max_alert_bytes < 4096:
            raise ValueError("max_alert_bytes: must be at least 4096")


DEFAULT_LIMITS = AlertLimits()
# What a producer cuts before sending: well above the intake defaults (which stay the operator's choice), while
# even a batch of many such alerts stays far under the 16 MiB gRPC message limit.
PRODUCER_LIMITS = AlertLimits(
    max_output_chars=64 * 1024,
    max_field_chars=16 * 1024,
    max_fields=512,
    max_tags=64,
    max_tag_chars=256,
    # 64 alerts to a batch (the rule engine's) x 192 KiB = 12 MiB.
    max_alert_bytes=192 * 1024,
)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus the truncation marker, or unchanged if it fits."""
    if len(text) <= limit:
        return text
    return text[:limit] + MARKER.format(n=len(text) - limit)


def _small(limits: AlertLimits) -> int:
    """Alerts of at most this many serialized bytes are never cut.

    Such an alert cannot hold a text over the smallest text limit; the count limits (fields, tags) exist to bound
    size too, so they only apply above it.
    """
    return min(limits.max_output_chars, limits.max_field_chars, limits.max_alert_bytes)


def bounded_payload(pb: alert_pb2.Alert, limits: AlertLimits = DEFAULT_LIMITS) -> tuple[bytes, list[str]]:
    """The serialized alert, cut to the limits first if it is large; and the parts that were cut.

    Serializing is the cheap size check (protobuf's ByteSize costs more than serializing a small alert).
    """
    payload = pb.SerializeToString()
    if len(payload) <= _small(limits):
        return payload, []
    parts = bound_alert(pb, limits)
    return (pb.SerializeToString() if parts else payload), parts


def bound_alert(pb: alert_pb2.Alert, limits: AlertLimits = DEFAULT_LIMITS) -> list[str]:
    """Cut the alert in place to the limits; return the parts that were cut (empty for almost every alert).

    Both forms of the output fields (the exact JSON text and the Struct) are bounded alike when present.
    """
    if len(pb.SerializeToString()) <= _small(limits):
        return []
    parts: list[str] = []
    for name in ("output", "message"):
        text = getattr(pb, name)
        if len(text) > limits.max_output_chars:
            setattr(pb, name, cut(text, limits.max_output_chars))
            parts.append(name)
    tags = [cut(t, limits.max_tag_chars) for t in pb.tags[: limits.max_tags]]
    if tags != list(pb.tags):
        del pb.tags[:]
        pb.tags.extend(tags)
        parts.append("tags")
    try:
        changed = [_bound_fields(pb, limits, as_struct) for as_struct in (False, True)]
        if any(changed):
            parts.append("output_fields")
    except RecursionError:
        pass  # nested too deep to walk: the byte limit below still applies, and delivery reports the nesting
    if pb.ByteSize() > limits.max_alert_bytes:
        dropped = {TRUNCATED_FIELDS: _field_count(pb)}
        if pb.output_fields_json:
            _set_fields(pb, dropped, as_struct=False)
        if pb.HasField("output_fields"):
            _set_fields(pb, dropped, as_struct=True)
        parts.append("alert_bytes")
    if pb.ByteSize() > limits.max_alert_bytes:
        # Long multi-byte texts: at most 4 bytes a character, so an eighth of the budget each always fits.
        for name in ("output", "message"):
            setattr(pb, name, cut(getattr(pb, name), limits.max_alert_bytes // 8))
    return parts


def _field_count(pb: alert_pb2.Alert) -> int:
    if pb.output_fields_json:
        try:
            decoded = json.loads(pb.output_fields_json)
        except (ValueError, RecursionError):
            return 0
        return len(decoded) if isinstance(decoded, dict) else 0
    return len(pb.output_fields.fields)


def _bound_fields(pb: alert_pb2.Alert, limits: AlertLimits, as_struct: bool) -> bool:
    if as_struct:
        if not pb.HasField("output_fields"):
            return False
        fields: Any = json_format.MessageToDict(pb.output_fields)
    else:
        if not pb.output_fields_json:
            return False
        try:
            fields = json.loads(pb.output_fields_json)
        except ValueError:
            return False  # the driver reports undecodable fields with their reason
        if not isinstance(fields, dict):
            return False
    changed = False
    if len(fields) > limits.max_fields:
        kept = sorted(fields)[: limits.max_fields]
        fields = {k: fields[k] for k in kept} | {TRUNCATED_FIELDS: len(fields) - len(kept)}
        changed = True
    bounded = {k: _cut_value(v, limits.max_field_chars) for k, v in fields.items()}
    if bounded != fields or changed:
        _set_fields(pb, bounded, as_struct)
        return True
    return False


def _cut_value(value: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return cut(value, limit)
    if depth > 32:
        return value
    if isinstance(value, list):
        return [_cut_value(v, limit, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _cut_value(v, limit, depth + 1) for k, v in value.items()}
    return value


def _set_fields(pb: alert_pb2.Alert, fields: dict[str, Any], as_struct: bool) -> None:
    if as_struct:
        pb.output_fields.Clear()
        pb.output_fields.update(fields)
    else:
        pb.output_fields_json = json.dumps(fields, separators=(",", ":"), sort_keys=True)
