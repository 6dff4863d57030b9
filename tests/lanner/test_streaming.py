# SPDX-License-Identifier: Apache-2.0
"""BatchSender against a real grpc.aio server on a real socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanner.server import run_service
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder(services_pb2_grpc.EnricherServiceServicer):
    def __init__(self, ack: bool = True) -> None:
        self.seqs: list[int] = []
        self.ack = ack

    async def PushEvents(
        self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[event_pb2.BatchAck]:
        async for batch in request_iterator:
            self.seqs.extend(e.id.seq for e in batch.events)
            if self.ack:
                yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))


async def start_server(port: int, recorder: Recorder) -> grpc.aio.Server:
    server = grpc.aio.server()
    services_pb2_grpc.add_EnricherServiceServicer_to_server(recorder, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


def make_batch(seq: int, items: Sequence[int], dropped: int) -> event_pb2.EventBatch:
    batch = event_pb2.EventBatch(batch_seq=seq, dropped_since_last=dropped)
    for n in items:
        batch.events.add(type="openat").id.seq = n
    return batch


def sender(port: int, **kw: object) -> BatchSender[int]:
    return BatchSender(
        "test",
        f"127.0.0.1:{port}",
        lambda ch: services_pb2_grpc.EnricherServiceStub(ch).PushEvents,
        make_batch,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        **kw,  # type: ignore[arg-type]
    )


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_delivers_in_order_after_downstream_appears() -> None:
    port = free_port()
    s = sender(port, batch_size=10)
    task = asyncio.create_task(s.run())
    for n in range(1, 101):
        s.submit(n)
    await asyncio.sleep(0.3)  # downstream absent: items wait in the queue
    rec = Recorder()
    server = await start_server(port, rec)
    try:
        await wait_for(lambda: len(rec.seqs) == 100)
        assert rec.seqs == list(range(1, 101))
        await wait_for(lambda: s.sent == 100)
    finally:
        task.cancel()
        await server.stop(0)


async def test_full_queue_drops_oldest_and_counts() -> None:
    s = sender(free_port(), max_queue=10)
    for n in range(25):
        s.submit(n)
    assert len(s) == 10 and s.dropped == 15
    s.submit_many(list(range(100, 120)))
    assert len(s) == 10 and s.dropped == 35


async def test_reliable_resends_unacked_after_restart() -> None:
    port = free_port()
    silent = Recorder(ack=False)
    server = await start_server(port, silent)
    s = sender(port, batch_size=5, reliable=True)
    task = asyncio.create_task(s.run())
    try:
        for n in range(1, 21):
            s.submit(n)
        await wait_for(lambda: len(silent.seqs) == 20)
        await server.stop(0)  # nothing was acked: all 20 must come again
        rec = Recorder()
        server = await start_server(port, rec)
        await wait_for(lambda: len(rec.seqs) >= 20)
        assert rec.seqs[:20] == list(range(1, 21))
        assert s.dropped == 0
    finally:
        task.cancel()
        await server.stop(0)


async def test_run_service_health_and_graceful_stop() -> None:
    port = free_port()
    stop = asyncio.Event()
    rec = Recorder()

    def register(server: grpc.aio.Server) -> list[str]:
        services_pb2_grpc.add_EnricherServiceServicer_to_server(rec, server)
        return ["lanner.v1.EnricherService"]

    task = asyncio.create_task(run_service("t", f"127.0.0.1:{port}", register, stop_event=stop, grace=0.5))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        await asyncio.wait_for(ch.channel_ready(), 10)
        stub = health_pb2_grpc.HealthStub(ch)
        resp = await stub.Check(health_pb2.HealthCheckRequest(service="lanner.v1.EnricherService"))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_downstream_that_never_answers_is_retried_and_nothing_is_lost() -> None:
    # A TCP listener that accepts and never speaks HTTP/2: the sender must not hang or lose queued items.
    accepted: list[object] = []
    silent = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    s = sender(port, reliable=True)
    task = asyncio.create_task(s.run())
    try:
        for n in range(10):
            s.submit(n)
        # Two connections: the sender gave up on the first and retried, so it went through a whole failure.
        await wait_for(lambda: len(accepted) >= 2, timeout=60)
        assert not s.connected and len(s) == 10 and s.dropped == 0
    finally:
        task.cancel()
        silent.close()
    # Once a real receiver appears on that port, everything is delivered.
    rec = Recorder()
    server = await start_server(port, rec)
    task = asyncio.create_task(s.run())
    try:
        await wait_for(lambda: len(rec.seqs) == 10)
    finally:
        task.cancel()
        await server.stop(0)


async def test_urgent_items_keep_a_byte_bounded_queue_consistent() -> None:
    """An urgent item (the drop report) counts toward the queue's bounds like any other: the queue length never goes
    negative, and the stream keeps going (a collector once looped on "__len__() should return >= 0")."""
    port = free_port()
    recorder = Recorder()
    server = await start_server(port, recorder)
    s = sender(port, max_bytes=1 << 20, sizeof=lambda item: 8, batch_size=4)
    task = asyncio.create_task(s.run())
    try:
        s.submit_many([1, 2, 3])
        s.submit_urgent(99)
        s.submit_many([4, 5])
        await wait_for(lambda: sorted(recorder.seqs) == [1, 2, 3, 4, 5, 99] and s.sent == 6)
        assert len(s) == 0
        s.submit_urgent(100)
        s.submit(6)
        await wait_for(lambda: {6, 100} <= set(recorder.seqs))
        assert len(s) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop(0)


async def test_idle_stream_sends_at_once_despite_a_long_linger() -> None:
    """Linger gathers a batch only while another is in flight: an event on a quiet stream goes out at once (an
    alert's latency), not after ``linger_s``, here far longer than the test's deadline."""
    port = free_port()
    rec = Recorder()
    server = await start_server(port, rec)
    s = sender(port, batch_size=100, linger_s=600.0)
    task = asyncio.create_task(s.run())
    try:
        s.submit(1)
        await wait_for(lambda: rec.seqs == [1] and s.sent == 1)
        s.submit_many([2, 3])
        await wait_for(lambda: rec.seqs == [1, 2, 3] and s.sent == 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop(0)


class ClosesAfterOne(Recorder):
    """Acks the first batch of each stream, then ends the stream (as a restarting downstream does)."""

    def __init__(self) -> None:
        super().__init__()
        self.streams = 0

    async def PushEvents(
        self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[event_pb2.BatchAck]:
        self.streams += 1
        async for batch in request_iterator:
            self.seqs.extend(e.id.seq for e in batch.events)
            yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))
            return


@pytest.mark.parametrize("waiting_on", ["an empty queue", "acks"])
async def test_a_stream_that_ends_wakes_the_waiting_writer_and_it_reconnects(waiting_on: str) -> None:
    """The writer waits on an event, not on the ack reader's task: the reader's end must still wake it, whether
    it waits for items (an idle stream) or for acks (max_inflight reached), and the next items go on a new
    stream."""
    port = free_port()
    rec = ClosesAfterOne()
    server = await start_server(port, rec)
    s = sender(port, batch_size=1, max_inflight=1 if waiting_on == "acks" else 8, reliable=True)
    task = asyncio.create_task(s.run())
    try:
        s.submit(1)
        await wait_for(lambda: rec.seqs == [1] and s.sent == 1)
        await wait_for(lambda: rec.streams >= 2 or not s.connected)
        for n in range(2, 6):
            s.submit(n)
        await wait_for(lambda: s.sent == 5)
        assert sorted(set(rec.seqs)) == [1, 2, 3, 4, 5] and rec.streams >= 5
    finally:
        task.cancel()
        await server.stop(0)
