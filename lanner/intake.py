# SPDX-License-Identifier: Apache-2.0
"""The receiving side of a hop: batches that protobuf refuses are salvaged field by field, and batches are capped.

gRPC parses a request before the handler sees it, and protobuf refuses a whole message for one bad byte, so one
malformed field would cost the whole batch and fail the stream. The deserializer built here parses the batch at
once when it can (the usual case, at C speed) and otherwise walks its top-level fields, keeping each one that
parses on its own. An item that does not (``item_cls``, when given, checks items too) is dropped and counted as
``lanner_events_dropped_total{stage, reason="malformed_event"}``; any other bad field, or framing that breaks
off, as ``reason="malformed_batch"``. Events that travel serialized (``EventBatchFrame``) are checked later,
one by one, where they are parsed.

A batch with more than ``max_items`` items keeps its first ``max_items`` and counts the rest as
``reason="batch_too_large"``: one sender's oversized batch must not push everybody else's events out of the
receiver's bounded queue. Pipeline senders never come close (they send ``batch_size`` items, 1024 by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from lanner.metrics import EVENTS_DROPPED

# Items one batch may carry; the rest are dropped and counted.
MAX_BATCH_ITEMS = 8192
ITEMS_FIELD = 2  # EventBatch(Frame).events and AlertBatch.alerts

_B = TypeVar("_B", bound=Message)

_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5


class _Truncated(ValueError):
    """The framing of the batch breaks off in the middle of a field."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Truncated(pos)
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field; _Truncated when the framing breaks."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            _, pos = _varint(data, pos)
        elif wire == _WIRE_I64:
            pos += 8
        elif wire == _WIRE_I32:
            pos += 4
        elif wire == _WIRE_LEN:
            length, pos = _varint(data, pos)
            pos += length
        else:
            raise _Truncated(start)
        if pos > len(data) or number == 0:
            raise _Truncated(start)
        yield number, wire, start, pos


def salvage(data: bytes, batch_cls: type[_B], item_cls: type[Message] | None, stage: str) -> _B:
    """Parse a batch that protobuf refused as a whole, keeping every top-level field that parses on its own."""
    kept: list[bytes] = []
    bad_items = bad_fields = 0
    try:
        for number, wire, start, end in _fields(data):
            field = data[start:end]
            try:
                batch_cls.FromString(field)
                if number == ITEMS_FIELD and item_cls is not None and wire == _WIRE_LEN:
                    _, body = _varint(data, start)
                    _, body = _varint(data, body)
                    item_cls.FromString(data[body:end])
            except DecodeError:
                if number == ITEMS_FIELD:
                    bad_items += 1
                else:
                    bad_fields += 1
                continue
            kept.append(field)
    except _Truncated:
        bad_fields += 1
    if bad_items:
        EVENTS_DROPPED.labels(stage, "malformed_event").inc(bad_items)
    if bad_fields:
        EVENTS_DROPPED.labels(stage, "malformed_batch").inc(bad_fields)
    return batch_cls.FromString(b"".join(kept))


def item_count(data: bytes) -> int:
    """How many items (field 2) a serialized batch frames, up to where its framing breaks off."""
    n = 0
    try:
        for number, _, _, _ in _fields(data):
            n += number == ITEMS_FIELD
    except _Truncated:
        pass
    return n


def _cap(items: Any, stage: str, max_items: int) -> None:
    extra = len(items) - max_items
    if extra > 0:
        del items[max_items:]
        EVENTS_DROPPED.labels(stage, "batch_too_large").inc(extra)


def lenient_parser(
    batch_cls: type[_B],
    item_cls: type[Message] | None,
    items_name: str,
    stage: str,
    max_items: int = MAX_BATCH_ITEMS,
) -> Callable[[bytes], _B]:
    """A gRPC request deserializer for ``batch_cls`` that costs a bad item, never the batch, and caps its size."""

    def parse(data: bytes) -> _B:
        try:
            batch = batch_cls.FromString(data)
        except DecodeError:
            batch = salvage(data, batch_cls, item_cls, stage)
        _cap(getattr(batch, items_name), stage, max_items)
        return batch

    return parse
