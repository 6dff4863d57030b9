# SPDX-License-Identifier: Apache-2.0
"""CPU per event of one pipeline stage served over real gRPC: receive, parse, work, serialize, forward, ack.

The stage under test (the enricher or the rule engine) runs in this process on a real socket; a child process
streams it batches exactly as the stage upstream sends them (``bench.collector_batches``; for the rule engine,
passed through the real ``Enricher`` first) and receives what the stage forwards on a real gRPC sink. The figure
is this process's CPU time (every thread, gRPC's included) per event, from the first batch to the last ack. Both
processes run on uvloop, as the services do (``lanner.server.run``).

``run_rounds`` runs "before" and "after" variants interleaved in one run, so their ratio holds on a loaded host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import uvloop

from lanner.v1 import alert_pb2, event_pb2

HERE = Path(__file__).resolve().parent
BATCH = 256
WINDOW = 8  # batches in flight, as a collector's sender keeps them


async def _batches(stage: str, n_batches: int, batch: int) -> list[bytes]:
    sys.path.insert(0, str(HERE))
    from collector_batches import collector_batch, open_events

    from collector.encode import EventEncoder

    enc = EventEncoder()
    raw = [collector_batch(open_events(batch, seq0=1 + k * batch), k + 1, enc) for k in range(min(n_batches, 64))]
    if stage == "enricher":
        return raw

    from enricher.enrich import Enricher
    from lanner.wire import frame_batch_wire

    enricher = Enricher(None)
    out = []
    for data in raw:
        frame = event_pb2.EventBatchFrame.FromString(data)
        await enricher.enrich_frame(frame)
        frame.enriched_ns = time.time_ns()
        frame.ClearField("batch_seq")
        out.append(frame_batch_wire(1, [frame.SerializeToString()], 0))
    return out


async def _child(stage: str, n_batches: int, batch: int) -> None:
    """Sink for what the stage forwards, and the upstream that feeds it."""
    from lanner.wire import raw_push_events

    batches = await _batches(stage, n_batches, batch)
    received = 0

    async def sink_events(it: AsyncIterator[event_pb2.EventBatchFrame], ctx: object) -> AsyncIterator[Any]:
        nonlocal received
        async for frame in it:
            received += len(frame.events)
            yield event_pb2.BatchAck(batch_seq=frame.batch_seq, accepted=len(frame.events))

    async def sink_alerts(it: AsyncIterator[alert_pb2.AlertBatch], ctx: object) -> AsyncIterator[Any]:
        async for batch in it:
            yield alert_pb2.AlertAck(batch_seq=batch.batch_seq, accepted=len(batch.alerts))

    server = grpc.aio.server()
    if stage == "enricher":
        handler = grpc.stream_stream_rpc_method_handler(
            sink_events, event_pb2.EventBatchFrame.FromString, event_pb2.BatchAck.SerializeToString
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("lanner.v1.RuleEngineService", {"PushEvents": handler}),)
        )
    else:
        handler = grpc.stream_stream_rpc_method_handler(
            sink_alerts, alert_pb2.AlertBatch.FromString, alert_pb2.AlertAck.SerializeToString
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("lanner.v1.DispatcherService", {"PushAlerts": handler}),)
        )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"SINK {port}", flush=True)
    service_port = int((await asyncio.to_thread(sys.stdin.readline)).split()[1])
    service = "EnricherService" if stage == "enricher" else "RuleEngineService"
    sent = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service_port}") as ch:
        await ch.channel_ready()
        call = raw_push_events(f"/lanner.v1.{service}/PushEvents")(ch)()
        t0 = time.perf_counter()
        inflight = 0
        for i in range(n_batches):
            data = batches[i % len(batches)]
            # a fresh batch_seq at the front (field 1 is written first, and a later one wins anyway)
            await call.write(b"\x08" + bytes([1]) + data[2:] if data[:1] == b"\x08" else data)
            sent += batch
            inflight += 1
            if inflight >= WINDOW:
                await call.read()
                inflight -= 1
        for _ in range(inflight):
            await call.read()
        elapsed = time.perf_counter() - t0
        await call.done_writing()
    if stage == "enricher":
        deadline = time.monotonic() + 30
        while received < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    print(f"DONE {sent} {elapsed:.6f}", flush=True)
    # The stage's own sender is still connected: stop only when the parent has closed it (stdin closes).
    await asyncio.to_thread(sys.stdin.readline)
    await server.stop(1)


async def _serve_enricher(sink: str, variant: str) -> tuple[grpc.aio.Server, list[Callable[[], Any]]]:
    from enricher import service as svc
    from enricher.enrich import Enricher
    from lanner.streaming import BatchSender
    from lanner.wire import frame_size

    weigh = frame_size if variant == "before" else svc.weigh
    sender: BatchSender[bytes] = BatchSender(
        "enricher", sink, svc.open_ruleengine_stream, svc.make_batch, batch_size=1, linger_s=0.0, weigh=weigh
    )
    task = asyncio.create_task(sender.run())
    server = grpc.aio.server()
    svc.EnricherServicer(Enricher(None), sender).register(server)
    return server, [sender.close, lambda: task.cancel()]


async def _serve_engine(sink: str, variant: str, rules: list[str]) -> tuple[grpc.aio.Server, list[Callable[[], Any]]]:
    from lanner.convert import event_from_view
    from lanner.lazy_event import LazyEvent
    from lanner.streaming import BatchSender
    from lanner.v1 import services_pb2_grpc
    from ruleengine import service as svc
    from ruleengine.engine import EngineOptions, load_rules
    from ruleengine.server import make_alert_batch

    # "before": the whole model event is built for every candidate event, as before lanner.lazy_event.
    def eager(pb: event_pb2.EventView, tables: Any, source: str, evt_type: str | None = None) -> Any:
        return event_from_view(pb, tables)

    svc.LazyEvent = eager if variant == "before" else LazyEvent  # type: ignore[assignment,misc]
    res = load_rules(rules, EngineOptions())
    assert res.engine is not None, [e.format() for e in res.errors]
    engine = res.engine
    alerts: BatchSender[alert_pb2.Alert] = BatchSender(
        "ruleengine->dispatcher",
        sink,
        lambda ch: services_pb2_grpc.DispatcherServiceStub(ch).PushAlerts,
        make_alert_batch,
        batch_size=64,
        linger_s=0.002,
    )
    task = asyncio.create_task(alerts.run())
    server = grpc.aio.server()
    svc.RuleEngineService(lambda: engine, lambda m, ctx: m.render(ctx, "h"), alerts, None, "h").register(server)
    return server, [alerts.close, lambda: task.cancel()]


def _serve_floor(stage: str) -> grpc.aio.Server:
    """The gRPC floor: a service that receives each batch as the stage does and acks it, doing nothing else."""
    from lanner.wire import push_events_handler

    async def push(it: AsyncIterator[event_pb2.EventBatchFrame], ctx: object) -> AsyncIterator[Any]:
        async for frame in it:
            yield event_pb2.BatchAck(batch_seq=frame.batch_seq, accepted=len(frame.events))

    service = "lanner.v1.EnricherService" if stage == "enricher" else "lanner.v1.RuleEngineService"
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((push_events_handler(service, push, "bench"),))
    return server


async def measure(stage: str, variant: str, n_batches: int, rules: list[str], batch: int = BATCH) -> float:
    """CPU µs per event of ``stage`` in this process, for ``n_batches`` batches of ``batch`` events."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", stage, str(n_batches), str(batch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        sink_port = int((await asyncio.to_thread(child.stdout.readline)).split()[1])
        sink = f"127.0.0.1:{sink_port}"
        if variant == "floor":
            server, closers = _serve_floor(stage), []
        elif stage == "enricher":
            server, closers = await _serve_enricher(sink, variant)
        else:
            server, closers = await _serve_engine(sink, variant, rules)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        cpu0 = time.process_time()
        child.stdin.write(f"SERVICE {port}\n")
        child.stdin.flush()
        line = await asyncio.to_thread(child.stdout.readline)
        cpu = time.process_time() - cpu0
        sent = int(line.split()[1])
        for close in closers:
            with contextlib.suppress(Exception):
                result = close()
                if asyncio.iscoroutine(result):
                    await result
        await server.stop(1)
        child.stdin.close()
        await asyncio.to_thread(child.wait, 10)
        return cpu / sent * 1e6
    finally:
        child.kill()
        child.wait()


def run_rounds(stage: str, n_batches: int, rounds: int, rules: list[str], batch: int = BATCH) -> dict[str, float]:
    """Best (lowest) CPU µs/event of each variant, the variants interleaved round by round ("floor": receive and
    ack only, what gRPC costs before the stage does anything)."""
    best = {"before": float("inf"), "after": float("inf"), "floor": float("inf")}
    for _ in range(rounds):
        for variant in best:
            best[variant] = min(best[variant], uvloop.run(measure(stage, variant, n_batches, rules, batch)))
    return best


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    uvloop.run(_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
