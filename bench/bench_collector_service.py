# SPDX-License-Identifier: Apache-2.0
"""The collector's whole loop under an open storm: CPU per event of the general path against the direct path.

Used by ``bench/bench_collector.py --service``. The collector part runs in this process exactly as the service
wires it (KernelSource, CollectorService, a byte-bounded BatchSender with the service's batch settings); its
batches go over gRPC to a sink process that acknowledges each one and counts the events. The storm runs for the
whole measurement while the rounds alternate between the two paths, so both see the same load. The figure is this
process's CPU time (user + system, from ``os.times``) over the events the service moved in the round.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

SINK = r"""
import asyncio, sys
import grpc
from lanner import codec
from lanner.v1 import event_pb2

async def main(port):
    async def push(requests, context):
        async for data in requests:
            key = codec.BATCH["batch_seq"]
            seq = codec.read_varint(data, len(key))[0] if data.startswith(key) else 0
            yield event_pb2.BatchAck(batch_seq=seq, accepted=0)
    handler = grpc.stream_stream_rpc_method_handler(
        push, request_deserializer=lambda b: b, response_serializer=event_pb2.BatchAck.SerializeToString)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("lanner.v1.EnricherService", {"PushEvents": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

asyncio.run(main(int(sys.argv[1])))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _sys() -> float:
    return os.times().system


async def _measure(args: Any, load_src: str) -> int:
    from collector.config import CollectorConfig
    from collector.service import CollectorService, event_size, make_batch, open_enricher_stream
    from collector.source import BpfProbe, KernelSource
    from lanner.streaming import BatchSender

    port = _free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    sink.stdout.readline()
    src = KernelSource(BpfProbe(ring_buffer_pages=args.pages, exclude_self=False))
    src.start()
    cfg = CollectorConfig()  # the service's own queue and batch settings
    sender: BatchSender[Any] = BatchSender(
        "collector",
        f"127.0.0.1:{port}",
        open_enricher_stream,
        make_batch,
        max_queue=cfg.max_queue,
        max_bytes=cfg.max_queue_bytes,
        sizeof=event_size,
        batch_size=args.batch_size or cfg.batch_size,
        linger_s=cfg.linger_ms / 1000.0,
    )
    service = CollectorService([src], sender, drop_alert_interval_s=0)
    tracked = service.sources[0]
    if args.per_poll:  # the service sets one sender batch; this overrides it, to compare
        src.max_per_poll = args.per_poll
    pump_cpu = [0.0]
    pump = service.pump

    def timed_pump() -> int:
        t = time.thread_time()
        try:
            return pump()
        finally:
            pump_cpu[0] += time.thread_time() - t

    service.pump = timed_pump  # type: ignore[method-assign]
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(service.run())]
    total = args.rounds * 2 * args.round_seconds + 2
    load = subprocess.Popen([sys.executable, "-c", load_src, str(args.rate), str(total)], stdout=subprocess.PIPE)
    results: dict[str, list[tuple[float, int]]] = {"general": [], "direct": []}
    system = {"general": 0.0, "direct": 0.0}
    pumped = {"general": 0.0, "direct": 0.0}
    profile = cProfile.Profile() if args.profile else None
    try:
        await asyncio.sleep(1.0)  # warm up: the first records, the process table's first look at the load
        for _ in range(args.rounds):
            for mode in ("general", "direct"):
                tracked.wire = src if mode == "direct" else None
                await asyncio.sleep(0.2)  # let the previous round's queue move
                cpu0, ev0, sys0, pump0 = _cpu(), service.events, _sys(), pump_cpu[0]
                if profile is not None and mode == "direct":
                    profile.enable()
                await asyncio.sleep(args.round_seconds)
                if profile is not None:
                    profile.disable()
                results[mode].append((_cpu() - cpu0, service.events - ev0))
                system[mode] += _sys() - sys0
                pumped[mode] += pump_cpu[0] - pump0
    finally:
        load.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        dropped = src.dropped()
        src.close()
        sink.terminate()
        sink.wait()
    print(f"load: python open/close storm, rounds of {args.round_seconds:.1f}s, load average {os.getloadavg()[0]:.1f}")
    figures = {}
    for mode, rows in results.items():
        cpu = sum(r[0] for r in rows)
        events = sum(r[1] for r in rows)
        per = [r[0] / r[1] * 1e6 for r in rows if r[1]]
        figures[mode] = cpu / max(events, 1) * 1e6
        print(
            f"{mode:8s} path: {figures[mode]:6.2f} us CPU/event (median round {statistics.median(per or [0]):.2f}) "
            f"({system[mode] / max(cpu, 1e-9):.0%} of it in the kernel) over {events:,} events "
            f"({events / (args.rounds * args.round_seconds):,.0f} events/s; per round "
            f"{', '.join(f'{p:.2f}' for p in per)})"
        )
    for mode in results:
        events = sum(r[1] for r in results[mode])
        rest = sum(r[0] for r in results[mode]) - pumped[mode]
        print(
            f"{mode:8s} path: poll (ring read, records to wire, queue) {pumped[mode] / max(events, 1) * 1e6:.2f} "
            f"us/event; the rest (sender, gRPC, event loop) {rest / max(events, 1) * 1e6:.2f} us/event"
        )
    if profile is not None:
        print("profile of the direct rounds (figures above include the profiler's overhead):")
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    if figures["direct"]:
        print(f"direct path uses {figures['general'] / figures['direct']:.2f}x less CPU per event")
    print(f"kernel ring buffer drops: {dropped:,}; sender queue drops: {sender.dropped:,}")
    return 0


def run_service_bench(args: Any, load_src: str) -> int:
    """Entry point for ``bench_collector.py --service``."""
    t0 = time.monotonic()
    rc = asyncio.run(_measure(args, load_src))
    print(f"(bench took {time.monotonic() - t0:.0f}s)")
    return rc
