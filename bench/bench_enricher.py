# SPDX-License-Identifier: Apache-2.0
"""Enricher cost and throughput.

1. ``enrich()`` per event on 256-event batches (host events, container events with metadata held in memory, and a
   mix), the enricher's hot path.
2. PushEvents over real gRPC: a client streams batches to an in-process EnricherService, which enriches them and
   forwards them through BatchSender to a real RuleEngineService sink; prints events/s end to end.
3. With --runtimes: cold lookup latency against the real Docker engine and containerd CRI (needs
   scripts/container-stack.sh), and warm lookups through a Redis cache (needs redis-server).

4. With --service: the enricher stage as it runs, on a real gRPC socket fed collector batches (processes in the
   batch's table), forwarding to a real sink: CPU µs per event before/after, measured interleaved in one run.

    .venv/bin/python bench/bench_enricher.py [--seconds 3] [--runtimes] [--service [--rounds 3]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import AsyncIterator

import grpc

from enricher.enrich import Enricher
from enricher.meta import ContainerMeta
from enricher.service import EnricherServicer, make_batch, open_ruleengine_stream
from lanner.model import Container, Mount
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2, services_pb2_grpc

CID = "ab" * 32
META = ContainerMeta(
    Container(
        id=CID[:12],
        full_id=CID,
        type="docker",
        name="web",
        image="nginx:1.25",
        image_repository="nginx",
        image_tag="1.25",
        privileged=False,
        labels={"com.docker.compose.project": "shop", "tier": "web"},
        mounts=(Mount("/etc/nginx", "/etc/nginx", "ro", False, "rprivate"),),
        metadata_complete=True,
    )
)
HOST_CG = ["9:name=systemd:/user.slice", "4:memory:/user.slice", "0::/user.slice"]
CTR_CG = [f"9:name=systemd:/docker/{CID}", f"4:memory:/docker/{CID}", f"0::/docker/{CID}"]


class FixedProvider:
    name = "fixed"

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        return META if container_id == CID else None

    async def close(self) -> None:
        pass


def make_events(n: int, container_share: float) -> event_pb2.EventBatch:
    batch = event_pb2.EventBatch()
    every = int(1 / container_share) if container_share else 0
    for i in range(n):
        ev = batch.events.add(type="openat", source="syscall")
        ev.timing.event_ns = time.time_ns()
        ev.proc.pid = 1000 + i
        ev.proc.comm = "cat"
        ev.proc.args.extend(["/etc/hostname"])
        ev.proc.cgroups.extend(CTR_CG if every and i % every == 0 else HOST_CG)
        ev.fd.path = "/etc/hostname"
    return batch


async def bench_enrich(seconds: float) -> None:
    enricher = Enricher(FixedProvider())
    for label, share in (("host", 0.0), ("container", 1.0), ("mix 1/4 container", 0.25)):
        batch = make_events(256, share)
        await enricher.enrich(batch.events)
        n = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        while time.perf_counter() - t0 < seconds / 3:
            await enricher.enrich(batch.events)
            n += len(batch.events)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        # CPU time is the figure to compare: wall time swings with whatever else the machine runs.
        print(f"enrich() {label:18s} {cpu / n * 1e6:6.2f} us CPU/event  ({n / dt:10,.0f} events/s wall)")


class Sink(services_pb2_grpc.RuleEngineServiceServicer):
    def __init__(self) -> None:
        self.count = 0

    async def PushEvents(
        self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: object
    ) -> AsyncIterator[event_pb2.BatchAck]:
        async for batch in request_iterator:
            self.count += len(batch.events)
            yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))


async def bench_service(seconds: float) -> None:
    sink = Sink()
    sink_server = grpc.aio.server()
    services_pb2_grpc.add_RuleEngineServiceServicer_to_server(sink, sink_server)
    sink_port = sink_server.add_insecure_port("127.0.0.1:0")
    await sink_server.start()
    sender: BatchSender[event_pb2.Event] = BatchSender(
        "enricher", f"127.0.0.1:{sink_port}", open_ruleengine_stream, make_batch
    )
    sender_task = asyncio.create_task(sender.run())
    server = grpc.aio.server()
    services_pb2_grpc.add_EnricherServiceServicer_to_server(EnricherServicer(Enricher(FixedProvider()), sender), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    payload = make_events(256, 0.25).SerializeToString()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = services_pb2_grpc.EnricherServiceStub(channel).PushEvents()
        sent = 0
        seq = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            seq += 1
            batch = event_pb2.EventBatch.FromString(payload)
            batch.batch_seq = seq
            await call.write(batch)
            await call.read()
            sent += len(batch.events)
        while sink.count < sent and time.perf_counter() - t0 < seconds + 10:
            await asyncio.sleep(0.01)
        dt = time.perf_counter() - t0
        await call.done_writing()
    print(
        f"PushEvents -> enrich -> RuleEngine sink: {sink.count:,} of {sent:,} events in {dt:.2f}s = "
        f"{sink.count / dt:,.0f} events/s (batches of 256, 1/4 container events, one stream)"
    )
    await sender.close()
    sender_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender_task
    await server.stop(0)
    await sink_server.stop(0)


async def bench_runtimes() -> None:
    from enricher.cache import RedisCachedProvider
    from enricher.cri import detect_cri
    from enricher.docker import DockerProvider

    cid = subprocess.run(
        ["docker", "run", "-d", "local/bookworm:latest", "sleep", "60"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        docker = DockerProvider()
        await docker.ping()
        times = []
        for _ in range(50):
            t = time.perf_counter()
            await docker.lookup(cid)
            times.append(time.perf_counter() - t)
        print(
            f"docker inspect+image lookup: median {statistics.median(times) * 1e3:.2f} ms, "
            f"max {max(times) * 1e3:.2f} ms"
        )
        cri = await detect_cri(["unix:///run/containerd/containerd.sock"])
        if cri:
            ids = await cri[0].list_running()
            if ids:
                times = []
                for _ in range(50):
                    t = time.perf_counter()
                    await cri[0].lookup(ids[0])
                    times.append(time.perf_counter() - t)
                print(f"CRI ContainerStatus+PodSandboxStatus lookup: median {statistics.median(times) * 1e3:.2f} ms")
            else:
                print("CRI: no running pod to time (tests/enricher create some while they run)")
            await cri[0].close()
        if shutil.which("redis-server"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", ""], stdout=subprocess.DEVNULL)
            try:
                await asyncio.sleep(0.3)
                cache = RedisCachedProvider(docker, f"redis://127.0.0.1:{port}/0")
                task = asyncio.create_task(cache.connect_loop())
                await cache.wait_healthy(5)
                await cache.lookup(cid)
                times = []
                for _ in range(200):
                    t = time.perf_counter()
                    await cache.lookup(cid)
                    times.append(time.perf_counter() - t)
                print(f"Redis cache hit: median {statistics.median(times) * 1e6:.0f} us")
                task.cancel()
                await cache.close()
            finally:
                proc.terminate()
                proc.wait()
        else:
            await docker.close()
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


async def main_async(args: argparse.Namespace) -> None:
    if args.service:
        return
    await bench_enrich(args.seconds)
    await bench_service(args.seconds)
    if args.runtimes:
        await bench_runtimes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runtimes", action="store_true", help="also time real Docker/CRI/Redis lookups")
    ap.add_argument("--service", action="store_true", help="CPU per event of the gRPC service, before/after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=400)
    args = ap.parse_args()
    if args.service:
        from bench_engine import service_figures

        service_figures("enricher", args.batches, args.rounds, [])
        return 0
    import uvloop

    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
