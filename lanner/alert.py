# SPDX-License-Identifier: Apache-2.0
"""The one alert: its domain model and its codec to and from ``lanner.v1.Alert``.

The rule engine builds an ``Alert`` (``ruleengine.output.render_alert``) and encodes it with ``alert_to_pb``; the
dispatcher decodes it with ``alert_from_pb`` and delivers it, rendered by ``lanner.falco_json``. Both stages
speak this one model (``ruleengine.output.AlertRecord`` and ``dispatcher.model.Alert`` are its names there).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from google.protobuf import struct_pb2

from lanner.alert_limits import PRODUCER_LIMITS, bound_alert
from lanner.priority import Priority
from lanner.text import displayable
from lanner.v1 import alert_pb2, event_pb2

__all__ = [
    "EMPTY_FIELDS",
    "Alert",
    "AlertError",
    "JsonFields",
    "JsonValue",
    "alert_from_pb",
    "alert_head_from_pb",
    "alert_id",
    "alert_to_pb",
    "canonical_json",
    "priority_from_pb",
    "struct_from_pb",
    "value_from_pb",
]

# A value of Falco's JSON ``output_fields``: lists come back from the wire as tuples so the alert stays immutable.
JsonValue: TypeAlias = "bool | int | float | str | tuple[JsonValue, ...] | Mapping[str, JsonValue] | None"

EMPTY_FIELDS: Mapping[str, JsonValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, carrying everything Falco's JSON alert carries."""

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
    # Stable identity used for dedup; redelivery of the same alert keeps it (set on the wire, see alert_to_pb).
    alert_id: str = ""


# ---- encoding (rule engine) ------------------------------------------------------------------------------------


def alert_id(identity: event_pb2.EventIdentity, rule: str) -> str:
    """A stable id for (event, rule): redelivery keeps it, so every hop downstream can dedup."""
    key = f"{identity.node}\0{identity.boot_id}\0{identity.producer_id}\0{identity.seq}\0{rule}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def eventless_alert_id(alert: Alert) -> str:
    """The id of an alert no event raised (a rules-load or drop notice): its rule, time and text."""
    return hashlib.sha256(f"{alert.rule}\0{alert.time_ns}\0{alert.output}".encode()).hexdigest()[:32]


def alert_to_pb(alert: Alert, event: event_pb2.Event | event_pb2.EventView | None) -> alert_pb2.Alert:
    """Encode an alert for the wire, with the identity and timing of the event that raised it."""
    pb = alert_pb2.Alert(
        rule=alert.rule,
        priority=int(alert.priority),  # type: ignore[arg-type]
        source=alert.source,
        tags=sorted(alert.tags),
        output=alert.output,
        message=alert.message,
        hostname=alert.hostname,
        # Field values are rendered already; displayable() is the guard that no byte a process chose can make
        # this protobuf refuse the alert.
        output_fields_json=displayable(canonical_json(alert.output_fields)),
    )
    pb.time.FromNanoseconds(alert.time_ns)
    fields = struct_pb2.Struct()
    for key, value in alert.output_fields.items():
        fields.fields[key].CopyFrom(_to_value(value))
    pb.output_fields.CopyFrom(fields)
    if event is not None:
        pb.event_id.CopyFrom(event.id)
        pb.timing.CopyFrom(event.timing)
        pb.alert_id = alert_id(event.id, alert.rule)
    else:
        pb.alert_id = eventless_alert_id(alert)
    # A huge rendering (100,000 %fd.name tokens) must not make its whole batch unsendable (issue 10 item 4).
    bound_alert(pb, PRODUCER_LIMITS)
    return pb


def _to_value(value: Any) -> struct_pb2.Value:
    v = struct_pb2.Value()
    if value is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int | float):
        v.number_value = float(value)
    elif isinstance(value, list | tuple):
        v.list_value.values.extend(_to_value(x) for x in value)
    else:
        v.string_value = displayable(str(value))
    return v


# ---- decoding (dispatcher) -------------------------------------------------------------------------------------

_PRIORITIES = {int(p): p for p in Priority}


class AlertError(ValueError):
    """An alert that cannot be delivered as it is; the message names the offending field."""


def value_from_pb(v: struct_pb2.Value) -> JsonValue:
    """Convert one ``google.protobuf.Value`` into a JSON value (integral numbers become ints)."""
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        n = v.number_value
        # Struct only has doubles; Falco renders integer fields as integers, so give them back as ints.
        return int(n) if n.is_integer() else n
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return struct_from_pb(v.struct_value)
    if kind == "list_value":
        return tuple(value_from_pb(item) for item in v.list_value.values)
    return None


def struct_from_pb(s: struct_pb2.Struct) -> MappingProxyType[str, JsonValue]:
    """Convert a ``google.protobuf.Struct`` into a read-only mapping."""
    return MappingProxyType({k: value_from_pb(v) for k, v in s.fields.items()})


def priority_from_pb(value: int) -> Priority:
    """Map the wire priority to ``Priority``; an unknown number raises AlertError."""
    try:
        return _PRIORITIES[value]
    except KeyError:
        raise AlertError(f"priority: {value} is not a Falco priority (0=emergency .. 7=debug)") from None


def alert_head_from_pb(pb: alert_pb2.Alert) -> Alert:
    """The alert without its ``output_fields`` and texts: enough for routing, and much cheaper to build."""
    if not pb.rule:
        raise AlertError("rule: must not be empty")
    return Alert(
        rule=pb.rule, priority=priority_from_pb(pb.priority), source=pb.source or "syscall", tags=tuple(pb.tags)
    )


class JsonFields(Mapping[str, JsonValue]):
    """Read-only output fields decoded from ``output_fields_json``, keeping that JSON text.

    ``lanner.falco_json`` writes ``text`` as it came instead of encoding the fields again when ``as_sent``: a JSON
    object on one line (a line-based reader must not be able to split it), keys in sorted order, and no nested
    object (whose keys would need sorting too). Every Lanner producer writes the canonical form
    (``canonical_json``), so the line is then the same as re-encoding would give; another producer's spacing or
    escapes stay as it wrote them, with the same JSON value.
    """

    __slots__ = ("_fields", "as_sent", "text")

    def __init__(self, fields: dict[str, JsonValue], text: str, flat: bool) -> None:
        self._fields = fields
        self.text = text
        # json.loads accepts line breaks between tokens (never raw inside strings): such a text is re-encoded.
        self.as_sent = (
            flat
            and text.startswith("{")
            and text.endswith("}")
            and "\n" not in text
            and "\r" not in text
            and list(fields) == sorted(fields)
        )

    def __getitem__(self, key: str) -> JsonValue:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"JsonFields({self._fields!r})"


def canonical_json(fields: Mapping[str, Any]) -> str:
    """The one JSON encoding of output fields on the wire: sorted keys, no spaces, UTF-8 kept."""
    plain = fields if isinstance(fields, dict) else dict(fields)
    return json.dumps(plain, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _output_fields(pb: alert_pb2.Alert) -> Mapping[str, JsonValue]:
    """Prefer the exactly typed JSON object (Struct numbers are doubles: they cannot hold ns timestamps)."""
    if pb.output_fields_json:
        text = pb.output_fields_json
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            raise AlertError(f"output_fields_json: not valid JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise AlertError("output_fields_json: expected a JSON object")
        # Most values are scalars: only lists and objects need freezing. Without a bracket after the opening one
        # (the usual text) there is none to look for.
        flat = True
        if "[" in text or "{" in text[1:]:
            for k, v in decoded.items():
                if isinstance(v, list | dict):
                    flat = flat and isinstance(v, list) and not any(isinstance(x, list | dict) for x in v)
                    decoded[k] = _freeze(v)
        return JsonFields(decoded, text, flat)
    if pb.HasField("output_fields"):
        return struct_from_pb(pb.output_fields)
    return EMPTY_FIELDS


def _freeze(value: object) -> JsonValue:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    return value  # type: ignore[return-value]


def alert_from_pb(pb: alert_pb2.Alert) -> Alert:
    """Build the domain alert from its protobuf form. Raises AlertError for a field that cannot be used."""
    if not pb.rule:
        raise AlertError("rule: must not be empty")
    return Alert(
        rule=pb.rule,
        priority=priority_from_pb(pb.priority),
        source=pb.source or "syscall",
        tags=tuple(pb.tags),
        time_ns=pb.time.seconds * 1_000_000_000 + pb.time.nanos,
        output=pb.output,
        message=pb.message,
        output_fields=_output_fields(pb),
        hostname=pb.hostname,
        alert_id=pb.alert_id,
    )
