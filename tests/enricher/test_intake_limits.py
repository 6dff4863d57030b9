# SPDX-License-Identifier: Apache-2.0
"""Issue 10 at the enricher, as a real process: a 100k-event batch is capped and waits its turn instead of pushing
other streams' events out of the queue."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

from lanner.intake import MAX_BATCH_ITEMS
from lanner.v1 import event_pb2, services_pb2_grpc
from lanner.wire import event_batch_wire, raw_push_events
from tests.enricher.enricher_testlib import free_port
from tests.enricher.test_service import RuleEngineSink, enricher_process

pytestmark = pytest.mark.integration

PUSH = "/lanner.v1.EnricherService/PushEvents"


def event(seq: int, path: bytes = b"/tmp/f") -> bytes:
    ev = event_pb2.Event(type="openat", source="syscall")
    ev.id.seq = seq
    ev.proc.pid = os.getpid()
    ev.fd.path = path
    return ev.SerializeToString()


async def flood(target: str, batches: int, size: int) -> list[int]:
    """One stream that sends ``batches`` batches of ``size`` events; returns the accepted count of each ack."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = raw_push_events(PUSH)(channel)()
        accepted = []
        for b in range(batches):
            await call.write(event_batch_wire(b + 1, [event(1_000_000 + i) for i in range(size)], 0))
            accepted.append((await call.read()).accepted)
        await call.done_writing()
        return accepted


async def test_a_100k_batch_does_not_displace_another_streams_events(tmp_path: Path) -> None:
    sink = RuleEngineSink()
    sink_port = free_port()
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with enricher_process(port, f"127.0.0.1:{sink_port}", dead_redis, f"{tmp_path}/enricher.log"):
        target = f"127.0.0.1:{port}"
        # The rule engine is away: the attack's event waits in the enricher's queue, the oldest item there.
        async with grpc.aio.insecure_channel(target) as channel:
            call = raw_push_events(PUSH)(channel)()
            await call.write(event_batch_wire(1, [event(1, b"/etc/shadow"), event(2)], 0))
            ack = await call.read()
            assert ack.accepted == 2
            # Three 100k-event batches from another stream: more than the whole queue (16384).
            flooder = asyncio.create_task(flood(target, 3, 100_000))
            await asyncio.sleep(1.0)
            server = grpc.aio.server()
            services_pb2_grpc.add_RuleEngineServiceServicer_to_server(sink, server)
            server.add_insecure_port(f"127.0.0.1:{sink_port}")
            await server.start()
            try:
                accepted = await asyncio.wait_for(flooder, 120)
                events = await sink.wait_for(2 + 3 * MAX_BATCH_ITEMS, timeout=120)
            finally:
                await call.done_writing()
                await server.stop(0)
    assert accepted == [MAX_BATCH_ITEMS] * 3
    first = [e for e in events if e.id.seq in (1, 2)]
    assert [(e.id.seq, e.fd.path) for e in first] == [(1, b"/etc/shadow"), (2, b"/tmp/f")]
    log = Path(f"{tmp_path}/enricher.log").read_text()
    assert "Traceback" not in log


async def test_placement_cache_is_bounded_in_bytes() -> None:
    from enricher import enrich

    enricher = enrich.Enricher(None)
    for round_ in range(20):
        frame = event_pb2.EventBatchFrame()
        for i in range(50):
            proc = event_pb2.Process(pid=round_ * 100 + i, args=[b"x" * 60_000], cgroups=[b"0::/init.scope"])
            frame.processes.append(proc.SerializeToString())
        huge = event_pb2.Process(pid=1, args=[b"y" * 200_000], cgroups=[b"0::/init.scope"])
        frame.processes.append(huge.SerializeToString())
        await enricher.enrich_frame(frame)
        assert list(frame.process_containers) == [0] * 51  # all on the host
    assert enricher._by_wire_bytes <= enrich.WIRE_CACHE_BYTES
    assert all(len(k) <= enrich.WIRE_KEY_MAX_BYTES for k in enricher._by_wire)
