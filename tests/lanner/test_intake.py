# SPDX-License-Identifier: Apache-2.0
"""The intake parser: a bad event costs that event, never its batch; oversized batches are capped."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY

from lanner.intake import lenient_parser
from lanner.v1 import event_pb2
from lanner.wire import event_batch_wire, push_events_handler, raw_push_events, varint


def dropped(stage: str, reason: str) -> float:
    return REGISTRY.get_sample_value("lanner_events_dropped_total", {"stage": stage, "reason": reason}) or 0.0


def good(seq: int, path: bytes = b"/etc/shadow") -> bytes:
    ev = event_pb2.Event(type="openat")
    ev.id.seq = seq
    ev.fd.path = path
    return ev.SerializeToString()


def bad_utf8_type(seq: int) -> bytes:
    # Field 4 (type) is a proto3 string: bytes that are not UTF-8 make protobuf refuse the event.
    return good(seq) + b"\x22\x02\xff\xfe"


def parse(data: bytes, stage: str = "t-intake", max_items: int = 8192) -> event_pb2.EventBatch:
    return lenient_parser(event_pb2.EventBatch, event_pb2.Event, "events", stage, max_items)(data)


def test_a_clean_batch_parses_as_is() -> None:
    batch = parse(event_batch_wire(3, [good(1), good(2, b"/tmp/\xff\x00x")], 5))
    assert batch.batch_seq == 3 and batch.dropped_since_last == 5
    assert [e.fd.path for e in batch.events] == [b"/etc/shadow", b"/tmp/\xff\x00x"]


def test_one_bad_event_costs_only_itself() -> None:
    before = dropped("t-bad", "malformed_event")
    batch = parse(event_batch_wire(9, [good(1), bad_utf8_type(2), good(3), b"\xff\xff\xff", good(4)], 2), "t-bad")
    assert batch.batch_seq == 9 and batch.dropped_since_last == 2
    assert [e.id.seq for e in batch.events] == [1, 3, 4]
    assert dropped("t-bad", "malformed_event") - before == 2


def test_truncated_framing_keeps_what_came_before() -> None:
    before = dropped("t-trunc", "malformed_batch")
    data = event_batch_wire(4, [good(1), good(2)], 0)
    batch = parse(data + b"\x12" + varint(500) + b"short", "t-trunc")
    assert [e.id.seq for e in batch.events] == [1, 2] and batch.batch_seq == 4
    assert dropped("t-trunc", "malformed_batch") - before == 1


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\xff" * 64, b"\x08" + b"\xff" * 20, b"\x0a\x03abc", b"\x0f", bytes(range(256)) * 4],
)
def test_garbage_never_raises(data: bytes) -> None:
    batch = parse(data, "t-garbage")
    assert isinstance(batch, event_pb2.EventBatch)


def test_oversized_batch_is_capped_and_counted() -> None:
    before = dropped("t-cap", "batch_too_large")
    batch = parse(event_batch_wire(1, [good(i) for i in range(1000)], 0), "t-cap", max_items=100)
    assert [e.id.seq for e in batch.events] == list(range(100))
    assert dropped("t-cap", "batch_too_large") - before == 900


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
async def test_bad_frames_over_real_grpc_keep_the_stream() -> None:
    seen: list[int] = []

    async def handler(
        requests: AsyncIterator[event_pb2.EventBatchFrame], context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[event_pb2.BatchAck]:
        async for frame in requests:
            seen.extend(event_pb2.Event.FromString(e).id.seq for e in frame.events)
            yield event_pb2.BatchAck(batch_seq=frame.batch_seq, accepted=len(frame.events))

    port = free_port()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((push_events_handler("lanner.v1.EnricherService", handler, "t-grpc"),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    before = dropped("t-grpc", "malformed_batch")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = raw_push_events("/lanner.v1.EnricherService/PushEvents")(ch)()
            # A frame whose framing breaks off after two events, then one with an invalid tag (field 0).
            await call.write(event_batch_wire(1, [good(1), good(2)], 0) + b"\x12\x7fshort")
            first = await asyncio.wait_for(call.read(), 30)
            await call.write(event_batch_wire(2, [good(3)], 0) + b"\x00\x01")
            second = await asyncio.wait_for(call.read(), 30)
            await call.done_writing()
    finally:
        await server.stop(0)
    assert (first.batch_seq, first.accepted) == (1, 2) and (second.batch_seq, second.accepted) == (2, 1)
    assert seen == [1, 2, 3]
    assert dropped("t-grpc", "malformed_batch") - before == 2
