# SPDX-License-Identifier: Apache-2.0
"""Batches that carry their processes by reference: the enricher places each process once, over real gRPC."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from enricher.enrich import Enricher
from enricher.service import EnricherServicer, make_batch, open_ruleengine_stream, weigh
from lanner.convert import BatchTables, event_from_pb, inline_events
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2, services_pb2_grpc
from lanner.wire import SharedEvent, shared_batch_wire
from tests.enricher.test_enrich import CID, POD_CID, SlowProvider


def process(pid: int, cgroups: list[str]) -> bytes:
    proc = event_pb2.Process(pid=pid, comm=f"p{pid}".encode(), cgroups=[c.encode() for c in cgroups])
    return proc.SerializeToString()


def shared(seq: int, procs: tuple[bytes, ...]) -> SharedEvent:
    body = event_pb2.Event(type="openat", source="syscall")
    body.id.seq = seq
    body.timing.event_ns = 1000 + seq
    return body.SerializeToString(), procs


HOST = (process(1, ["0::/init.scope"]),)
WEB = (process(200, [f"0::/docker/{CID}"]), process(1, ["0::/init.scope"]))
POD = (process(300, [f"0::/kubepods/besteffort/pod1/{POD_CID}"]),)


async def test_enrich_frame_places_each_process_once() -> None:
    enricher = Enricher(SlowProvider())
    events = [shared(i, (HOST, WEB, POD)[i % 3]) for i in range(1, 31)]
    frame = event_pb2.EventBatchFrame.FromString(shared_batch_wire(1, events, 0))
    await enricher.enrich_frame(frame)
    assert len(frame.processes) == 3 and len(frame.containers) == 2
    tables = BatchTables(frame)
    decoded = [event_from_pb(event_pb2.Event.FromString(d), tables) for d in frame.events]
    assert [e.container.id for e in decoded[:3]] == [CID[:12], POD_CID[:12], "host"]
    assert decoded[0].container.name == "web" and decoded[0].ancestors[0].comm == "p1"
    assert decoded[1].k8s.pod_name == "web-0" and decoded[1].k8s.ns_name == "prod"
    assert decoded[2].container.name == "host" and decoded[2].container.metadata_complete
    assert decoded[0].container is decoded[3].container  # decoded once per batch


async def test_frames_cross_a_real_enricher_whole() -> None:
    received: list[event_pb2.EventBatch] = []
    arrived = asyncio.Event()

    class Sink(services_pb2_grpc.RuleEngineServiceServicer):
        async def PushEvents(
            self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: object
        ) -> AsyncIterator[event_pb2.BatchAck]:
            async for batch in request_iterator:
                received.append(batch)
                arrived.set()
                yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))

    sink = grpc.aio.server()
    services_pb2_grpc.add_RuleEngineServiceServicer_to_server(Sink(), sink)
    sink_port = sink.add_insecure_port("127.0.0.1:0")
    await sink.start()
    sender: BatchSender[bytes] = BatchSender(
        "enricher-test", f"127.0.0.1:{sink_port}", open_ruleengine_stream, make_batch, batch_size=1, weigh=weigh
    )
    server = grpc.aio.server()
    EnricherServicer(Enricher(SlowProvider()), sender).register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    task = asyncio.create_task(sender.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = services_pb2_grpc.EnricherServiceStub(channel).PushEvents()
            for seq in (1, 2):
                batch = [shared(seq * 100 + i, (WEB, HOST)[i % 2]) for i in range(10)]
                await call.write(event_pb2.EventBatch.FromString(shared_batch_wire(seq, batch, 7)))
                ack = await call.read()
                assert (ack.batch_seq, ack.accepted) == (seq, 10)
            await call.done_writing()
        async with asyncio.timeout(10):
            while len(received) < 2 or sender.sent < 20:  # sent counts acked events
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.05)
    finally:
        task.cancel()
        await server.stop(0)
        await sink.stop(0)
    assert [b.batch_seq for b in received] == [1, 2]
    # The collector's losses were its own to report: this hop forwards only its own (none).
    assert all(b.dropped_since_last == 0 for b in received)
    events = [e for b in received for e in inline_events(b)]
    assert [e.id.seq for e in events] == [s * 100 + i for s in (1, 2) for i in range(10)]
    assert events[0].container.name == "web" and events[1].container.id == "host"
    assert all(e.timing.enriched_ns > 0 for e in events)
    assert sender.sent == 20
