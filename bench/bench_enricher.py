# SPDX-License-Identifier: Apache-2.0
"""Enricher cost and throughput.

1. ``enrich_frame()`` per event on 256-event collector batches (host events, container events with metadata held
   in memory, and a mix), the enricher's hot path.
2. With --service: the enricher stage as it runs, on a real gRPC socket fed collector batches (processes in the
   batch's table), forwarding to a real sink: CPU µs per event (receive, parse, enrich, serialize, forward, ack)
   before/after, measured interleaved in one run (``bench/service_cpu.py``).
3. With --runtimes: cold lookup latency against the real Docker engine and containerd CRI (needs
   scripts/container-stack.sh), and warm lookups through a Redis cache (needs redis-server).

    .venv/bin/python bench/bench_enricher.py [--seconds 3] [--runtimes] [--service [--rounds 3]]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import time

from enricher.enrich import Enricher
from enricher.meta import ContainerMeta
from lanner.model import Container, Mount
from lanner.v1 import event_pb2

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


class FixedProvider:
    name = "fixed"

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        return META if container_id == CID else None

    async def close(self) -> None:
        pass


async def bench_enrich(seconds: float) -> None:
    """``enrich_frame`` on collector batches of 256 openats (the processes in the batch's table), with the
    container metadata held in memory: parse, enrich, serialize, as the service does per batch."""
    from collector_batches import collector_batch, open_events

    enricher = Enricher(FixedProvider())
    for label, share in (("host", 0.0), ("container", 1.0), ("mix 1/4 container", 0.25)):
        data = collector_batch(open_events(256, container_share=share))
        await enricher.enrich_frame(event_pb2.EventBatchFrame.FromString(data))
        n = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        while time.perf_counter() - t0 < seconds / 3:
            frame = event_pb2.EventBatchFrame.FromString(data)
            await enricher.enrich_frame(frame)
            frame.SerializeToString()
            n += len(frame.events)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        # CPU time is the figure to compare: wall time swings with whatever else the machine runs.
        print(f"enrich_frame() {label:18s} {cpu / n * 1e6:6.2f} us CPU/event  ({n / dt:10,.0f} events/s wall)")


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
    if args.runtimes:
        await bench_runtimes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runtimes", action="store_true", help="also time real Docker/CRI/Redis lookups")
    ap.add_argument("--service", action="store_true", help="CPU per event of the gRPC service, before/after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    if args.service:
        from bench_engine import service_figures

        service_figures("enricher", args.batches, args.rounds, [], args.batch_size)
        return 0
    import uvloop

    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
