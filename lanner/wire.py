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

from lanner.intake import lenient_parser
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


# An event whose processes travel in its batch's table: the event's own fields without ``proc``/``ancestors``, and
# the serialized Process messages of its thread and then its ancestors, nearest first (empty: no process).
SharedEvent = tuple[bytes, tuple[bytes, ...]]

_PROC_REF = b"\x78"  # Event.proc_ref = 15, varint
_ANCESTOR_REFS = b"\x82\x01"  # Event.ancestor_refs = 16, packed
_BATCH_PROCESS = b"\x22"  # EventBatch.processes = 4
_PROC = b"\x3a"  # Event.proc = 7
_ANCESTOR = b"\x42"  # Event.ancestors = 8


def shared_batch_wire(seq: int, events: Sequence[SharedEvent], dropped: int) -> bytes:
    """The serialized ``lanner.v1.EventBatch`` whose events refer to one table of the batch's processes.

    Events of one process come in runs (a process opening file after file), so the references of an event are
    remembered by the identity of its process tuple for the length of the batch."""
    index: dict[bytes, int] = {}
    suffixes: dict[int, bytes] = {}
    parts = [b"\x08" + varint(seq)]
    append = parts.append
    for body, procs in events:
        if not procs:
            append(b"\x12" + varint(len(body)) + body)
            continue
        suffix = suffixes.get(id(procs))
        if suffix is None:
            refs = []
            for proc in procs:
                ref = index.get(proc)
                if ref is None:
                    ref = index[proc] = len(index) + 1
                refs.append(ref)
            suffix = _PROC_REF + varint(refs[0])
            if len(refs) > 1:
                packed = b"".join(varint(r) for r in refs[1:])
                suffix += _ANCESTOR_REFS + varint(len(packed)) + packed
            suffixes[id(procs)] = suffix
        append(b"\x12" + varint(len(body) + len(suffix)) + body + suffix)
    if dropped:
        append(b"\x18" + varint(dropped))
    for proc in index:
        append(_BATCH_PROCESS + varint(len(proc)) + proc)
    return b"".join(parts)


def inline_event_wire(event: SharedEvent) -> bytes:
    """A shared-table event as a self-contained ``lanner.v1.Event``: its processes written into it as ``proc``
    and ``ancestors`` (for a spill journal, which outlives any batch)."""
    body, procs = event
    if not procs:
        return body
    parts = [body, _PROC + varint(len(procs[0])) + procs[0]]
    parts.extend(_ANCESTOR + varint(len(p)) + p for p in procs[1:])
    return b"".join(parts)


def frame_batch_wire(seq: int, frames: Sequence[bytes], dropped: int) -> bytes:
    """The serialized ``lanner.v1.EventBatch`` of one forwarded frame (an ``EventBatchFrame`` without
    ``batch_seq`` and ``dropped_since_last``). Two frames are never merged: their process tables would clash."""
    if len(frames) != 1:
        raise ValueError(f"a forwarded batch is one frame, got {len(frames)}")
    out = b"\x08" + varint(seq) + frames[0]
    return out + b"\x18" + varint(dropped) if dropped else out


def frame_size(frame: bytes) -> int:
    """How many events a serialized frame holds, for queue bounds and counters (one pass over its top-level
    fields, without decoding them)."""
    n = i = 0
    end = len(frame)
    while i < end:
        key, i = _read_varint(frame, i)
        wire = key & 7
        if wire == 0:
            _, i = _read_varint(frame, i)
        elif wire == 2:
            length, i = _read_varint(frame, i)
            i += length
            n += (key >> 3) == 2
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected wire type {wire} at byte {i}")
    return n


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def push_events_handler(service: str, behavior: Any, stage: str) -> grpc.GenericRpcHandler:
    """A ``PushEvents`` handler for ``service`` whose requests are read as ``EventBatchFrame``: the same wire as
    ``EventBatch``, with events left serialized until someone needs them. A frame protobuf refuses is salvaged
    field by field and frames are capped in events (``lanner.intake``), so bad bytes never fail the stream.
    Under mutual TLS only the pipeline's own certificate may push (``lanner.pki.pipeline_only``)."""
    from lanner.pki import pipeline_only  # here, not at the top: lanner.pki loads grpc's TLS parts for everyone

    handler = grpc.stream_stream_rpc_method_handler(
        pipeline_only(behavior, stage),
        request_deserializer=lenient_parser(event_pb2.EventBatchFrame, None, "events", stage),
        response_serializer=event_pb2.BatchAck.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(service, {"PushEvents": handler})


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
