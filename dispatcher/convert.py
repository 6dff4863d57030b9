# SPDX-License-Identifier: Apache-2.0
"""The one place where protobuf alerts become domain alerts (``lanner.v1.Alert`` -> ``dispatcher.model.Alert``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType

from google.protobuf import struct_pb2

from dispatcher.model import EMPTY_FIELDS, Alert, JsonValue, Priority
from lanner.v1 import alert_pb2

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


def _output_fields(pb: alert_pb2.Alert) -> Mapping[str, JsonValue]:
    """Prefer the exactly typed JSON object (Struct numbers are doubles: they cannot hold ns timestamps)."""
    if pb.output_fields_json:
        try:
            decoded = json.loads(pb.output_fields_json)
        except ValueError as exc:
            raise AlertError(f"output_fields_json: not valid JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise AlertError("output_fields_json: expected a JSON object")
        # Most values are scalars: only lists and objects need freezing.
        return MappingProxyType({k: _freeze(v) if isinstance(v, list | dict) else v for k, v in decoded.items()})
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
