# SPDX-License-Identifier: Apache-2.0
"""Event batches from already-serialized events, and streams that send such bytes as they are.

Building an ``EventBatch`` message from event messages copies every event; serializing it walks them again.
A stage that holds each event's bytes instead (the collector encodes straight to bytes; the enricher serializes
each event once after enriching it) concatenates them into the batch's wire form: field 2 is repeated and
length-delimited, so the result is byte-for-byte a valid ``lanner.v1.EventBatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from lanner.v1 import event_pb2

_SMALL = [bytes([i]) for i in range(128)]


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; int64 negatives travel as ten-byte two's complement."""
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def event_batch_wire(seq: int, events: Sequence[bytes], dropped: int) -> bytes:
    """The serialized ``lanner.v1.EventBatch`` (batch_seq=1, events=2, dropped_since_last=3)."""
    parts = [b"\x08" + varint(seq)]
    for data in events:
        parts.append(b"\x12" + varint(len(data)) + data)
    if dropped:
        parts.append(b"\x18" + varint(dropped))
    return b"".join(parts)


def _identity(data: bytes) -> bytes:
    return data


def raw_push_events(method: str) -> Any:
    """A ``BatchSender`` stream factory for ``method`` (e.g. ``/lanner.v1.RuleEngineService/PushEvents``) whose
    requests are pre-serialized EventBatch bytes and whose responses are BatchAcks."""

    def open_stream(channel: grpc.aio.Channel) -> Any:
        return channel.stream_stream(
            method, request_serializer=_identity, response_deserializer=event_pb2.BatchAck.FromString
        )

    return open_stream
