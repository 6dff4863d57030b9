# SPDX-License-Identifier: Apache-2.0
"""The rule engine's encoder of ``lanner.v1.Alert``: an alert straight to its wire bytes, and a batch of them.

``lanner.alert.alert_to_pb`` builds the message through protobuf's API: a ``Struct`` value per output field, each
copied into the map, then serialized (and serialized once more to check its size). That was most of the rule
engine's cost per alert. This writes the same message in one pass, with every field key taken from the
descriptors (``lanner.codec``); parsed back, it equals ``alert_to_pb``'s message (``tests/lanner/test_alert_wire.py``).
An alert too large to be sure it needs no cutting, or text that is not valid UTF-8, takes ``alert_to_pb``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from lanner.alert import Alert, alert_id, alert_to_pb, canonical_json, eventless_alert_id
from lanner.alert_limits import PRODUCER_LIMITS, _small
from lanner.codec import field_key, keys, varint
from lanner.text import displayable
from lanner.v1 import alert_pb2, event_pb2

__all__ = ["alert_batch_wire", "alert_bytes"]

_A = keys(alert_pb2.Alert.DESCRIPTOR)
_TS = keys(timestamp_pb2.Timestamp.DESCRIPTOR)
_STRUCT_FIELD = field_key(struct_pb2.Struct.DESCRIPTOR, "fields")
_ENTRY = keys(struct_pb2.Struct.FieldsEntry.DESCRIPTOR)
_V = keys(struct_pb2.Value.DESCRIPTOR)
_LIST_ITEM = field_key(struct_pb2.ListValue.DESCRIPTOR, "values")
_BATCH_SEQ = field_key(alert_pb2.AlertBatch.DESCRIPTOR, "batch_seq")
_BATCH_ALERT = field_key(alert_pb2.AlertBatch.DESCRIPTOR, "alerts")
_NULL = _V["null_value"] + varint(struct_pb2.NULL_VALUE)
_TRUE = _V["bool_value"] + b"\x01"
_FALSE = _V["bool_value"] + b"\x00"
_NUMBER = _V["number_value"]
_STRING = _V["string_value"]
_DOUBLE = struct.Struct("<d").pack
_SMALL = _small(PRODUCER_LIMITS)
_NS = 1_000_000_000


_LEN = [bytes([n]) for n in range(128)]


def _len(key: bytes, data: bytes) -> bytes:
    n = len(data)
    return key + (_LEN[n] if n < 128 else varint(n)) + data


def _value(value: Any) -> bytes:
    """A ``google.protobuf.Value`` as ``alert_to_pb`` makes it (lanner.alert._to_value)."""
    if type(value) is str:
        return _len(_STRING, displayable(value).encode())
    if value is None:
        return _NULL
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if isinstance(value, int | float):
        return _NUMBER + _DOUBLE(float(value))
    if isinstance(value, list | tuple):
        return _len(_V["list_value"], b"".join(_len(_LIST_ITEM, _value(x)) for x in value))
    return _len(_STRING, displayable(str(value)).encode())


# Output field names repeat (each rule renders the same ones): the map entry's start is kept per name.
_HEADS: dict[str, bytes] = {}
_MAX_HEADS = 4096


def _entry(key: str, value: Any) -> bytes:
    """One map entry of the ``Struct``, with its field key and length."""
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) >= _MAX_HEADS:
            _HEADS.clear()
        head = _HEADS[key] = _len(_ENTRY["key"], key.encode()) + _ENTRY["value"]
    v = _value(value)
    n = len(v)
    entry = head + (_LEN[n] if n < 128 else varint(n)) + v
    n = len(entry)
    return _STRUCT_FIELD + (_LEN[n] if n < 128 else varint(n)) + entry


def _fields(fields: Mapping[str, Any]) -> bytes:
    """The ``Struct`` of the output fields: one map entry (name, value) each."""
    return b"".join([_entry(key, value) for key, value in fields.items()])


_encode_str = json.encoder.encode_basestring  # json.dumps's own, for ensure_ascii=False
# Field values repeat from alert to alert (every <NA>, the user, the container, the process name): a short string's
# or a missing value's map entry and JSON member are kept per (name, value).
_PAIRS: dict[tuple[str, str | None], tuple[bytes, str]] = {}
_MAX_PAIRS = 8192
_MAX_KEPT_CHARS = 64


def _member(key: str, value: Any) -> str | None:
    """``"key":value`` as ``canonical_json`` writes it, displayable; None for a value it should write itself."""
    kind = type(value)
    if kind is str:
        text = _encode_str(value)
    elif value is None:
        text = "null"
    elif value is True:
        text = "true"
    elif value is False:
        text = "false"
    elif kind is int:
        text = int.__repr__(value)
    else:
        return None
    return displayable(f"{_encode_str(key)}:{text}")


def _fields_and_json(fields: Mapping[str, Any]) -> tuple[bytes, str]:
    """The ``Struct`` of the output fields and ``displayable(canonical_json(fields))``, in one pass."""
    entries: list[bytes] = []
    members: list[tuple[str, str]] = []
    pairs = _PAIRS
    for key, value in fields.items():
        kept = (type(value) is str and len(value) <= _MAX_KEPT_CHARS) or value is None
        if kept:
            hit = pairs.get((key, value))
            if hit is not None:
                entries.append(hit[0])
                members.append((key, hit[1]))
                continue
        member = _member(key, value)
        if member is None:
            # A list or a float: json.dumps writes the whole object, as canonical_json always did.
            return b"".join([_entry(k, v) for k, v in fields.items()]), displayable(canonical_json(fields))
        entry = _entry(key, value)
        if kept:
            if len(pairs) >= _MAX_PAIRS:
                pairs.clear()
            pairs[key, value] = (entry, member)
        entries.append(entry)
        members.append((key, member))
    members.sort()
    return b"".join(entries), "{" + ",".join([m for _, m in members]) + "}"


# The fields before the time (rule, priority, source, tags) are the same for every alert of a rule.
_RULE_HEADS: dict[tuple[str, int, str, tuple[str, ...]], bytes] = {}


def _rule_head(alert: Alert) -> bytes:
    key = (alert.rule, int(alert.priority), alert.source, tuple(alert.tags))
    head = _RULE_HEADS.get(key)
    if head is not None:
        return head
    a = _A
    parts = [_len(a["rule"], alert.rule.encode())] if alert.rule else []
    if int(alert.priority):
        parts += (a["priority"], varint(int(alert.priority)))
    if alert.source:
        parts.append(_len(a["source"], alert.source.encode()))
    for tag in sorted(alert.tags):
        parts.append(_len(a["tags"], tag.encode()))
    if len(_RULE_HEADS) >= _MAX_HEADS:
        _RULE_HEADS.clear()
    head = _RULE_HEADS[key] = b"".join(parts)
    return head


def _encode(alert: Alert, event: event_pb2.Event | event_pb2.EventView | None) -> bytes:
    a = _A
    parts = [_rule_head(alert)]
    seconds, nanos = divmod(alert.time_ns, _NS)
    stamp = (_TS["seconds"] + varint(seconds) if seconds else b"") + (_TS["nanos"] + varint(nanos) if nanos else b"")
    parts.append(_len(a["time"], stamp))
    if alert.output:
        parts.append(_len(a["output"], alert.output.encode()))
    if alert.message:
        parts.append(_len(a["message"], alert.message.encode()))
    struct, fields_json = _fields_and_json(alert.output_fields)
    parts.append(_len(a["output_fields"], struct))
    if alert.hostname:
        parts.append(_len(a["hostname"], alert.hostname.encode()))
    if event is not None:
        parts.append(_len(a["event_id"], event.id.SerializeToString()))
        ident = alert_id(event.id, alert.rule)
        parts.append(_len(a["timing"], event.timing.SerializeToString()))
    else:
        ident = eventless_alert_id(alert)
    parts.append(_len(a["alert_id"], ident.encode()))
    parts.append(_len(a["output_fields_json"], fields_json.encode()))
    return b"".join(parts)


def alert_bytes(alert: Alert, event: event_pb2.Event | event_pb2.EventView | None) -> bytes:
    """The serialized ``lanner.v1.Alert`` that ``alert_to_pb(alert, event)`` would give, cut to the producer's
    limits (``lanner.alert_limits``)."""
    try:
        data = _encode(alert, event)
    except (UnicodeEncodeError, OverflowError):
        data = b""  # text protobuf refuses as it is, or a number no double holds: the general path decides
    if data and len(data) <= _SMALL:
        return data
    return alert_to_pb(alert, event).SerializeToString()


def alert_batch_wire(seq: int, payloads: Sequence[bytes]) -> bytes:
    """A serialized ``AlertBatch`` of already serialized alerts: their bytes are copied, never re-encoded."""
    parts = [_BATCH_SEQ, varint(seq)] if seq else []
    for payload in payloads:
        parts += (_BATCH_ALERT, varint(len(payload)), payload)
    return b"".join(parts)
