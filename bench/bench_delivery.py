# SPDX-License-Identifier: Apache-2.0
"""Delivery throughput: alerts/s from PushAlerts to an HTTP receiver, persisted (Redis AOF) and acknowledged.

Starts a private redis-server with ``appendonly yes`` (fsync every second), an HTTP receiver process and a
dispatcher process whose ``http`` output posts every alert to the receiver. Pushes N realistic alerts as the rule
engine does, then reports, for grouping off and on:
- intake: alerts persisted and acked per second;
- delivered: alerts per second until the http output's consumer group has acknowledged every alert (each one
  answered 200 by the receiver, or, with grouping, counted into its window) - the end-to-end delivery rate.
`python bench/bench_delivery.py [-n 20000] [--concurrency 64] [--groups 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dispatcher import cpu_seconds, free_port, make_alert, pusher, wait_port

from dispatcher.config import DispatcherConfig
from dispatcher.driver import group_name


def output_line(mode: str, url: str, concurrency: int) -> str:
    """The outputs section of the dispatcher's config for one mode."""
    if mode == "http_batch":
        return f"    http_batch: {{url: '{url}', timeout_s: 30}}\n"
    grouping = ", group_window_s: 60, group_by: [container.id]" if mode == "grouped" else ""
    return f"    http: {{url: '{url}', concurrency: {concurrency}, timeout_s: 30{grouping}}}\n"


def receiver_child(port: int) -> None:
    """The HTTP receiver, in its own process as a real webhook would be: counts requests, answers 200."""
    from aiohttp import web

    count = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal count
        body = await request.read()
        count += body.count(b"\n") if request.content_type == "application/x-ndjson" else 1
        return web.Response(text="ok")

    async def report(_request: web.Request) -> web.Response:
        return web.Response(text=str(count))

    app = web.Application()
    app.router.add_post("/", handle)
    app.router.add_get("/count", report)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def received(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /count HTTP/1.0\r\nHost: x\r\n\r\n")
    data = await reader.read()
    writer.close()
    return int(data.rsplit(b"\r\n\r\n", 1)[1])


async def drained(r: aioredis.Redis, stream: str, group: str, n: int, timeout: float) -> float:
    """Wait until the group has read and acknowledged all n entries; return the time it happened."""
    deadline = time.monotonic() + timeout
    while True:
        groups = {g["name"].decode(): g for g in await r.xinfo_groups(stream)}
        g = groups.get(group)
        if g and g["pending"] == 0 and g.get("lag") == 0 and g["entries-read"] and g["entries-read"] >= n:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group}: not drained: {g}")
        await asyncio.sleep(0.02)


MODES = {
    "http": "http output, one POST per alert (Falco http_output / Falcosidekick style)",
    "http_batch": "http_batch output, NDJSON, up to 256 alerts per POST",
    "grouped": "http output with grouping on ({groups} groups, 60 s window)",
}


async def one_run(args: argparse.Namespace, tmp: Path, mode: str) -> None:
    redis_port, grpc_port, http_port = free_port(), free_port(), free_port()
    data = tmp / mode
    data.mkdir()
    redis_srv = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    recv = subprocess.Popen([sys.executable, __file__, "--child-receiver", str(http_port)])
    cfg = data / "lanner.yaml"
    cfg.write_text(
        "dispatcher:\n"
        f"  bind: 127.0.0.1:{grpc_port}\n  metrics_bind: ''\n  log_level: warning\n"
        f"  redis_url: redis://127.0.0.1:{redis_port}/0\n"
        f"  dedup_secret: bench-secret-0123456789abcdef\n  replay_retention_s: 0\n  read_batch: {args.read_batch}\n"
        "  outputs:\n    stdout: {enabled: false}\n"
        + output_line(mode, f"http://127.0.0.1:{http_port}/", args.concurrency)
    )
    prof = ["-m", "cProfile", "-o", f"{args.profile}.{mode}"] if args.profile else []
    disp = subprocess.Popen([sys.executable, *prof, "-m", "dispatcher", "--config", str(cfg)])
    r = aioredis.Redis(port=redis_port)
    try:
        await wait_port(grpc_port)
        await wait_port(http_port)
        alerts = [make_alert(i) for i in range(args.n)]
        for i, a in enumerate(alerts):
            a.output_fields_json = a.output_fields_json.replace('"3ad7b26ded6d"', f'"c{i % args.groups:05d}"')
        t0, c0 = time.monotonic(), cpu_seconds(disp.pid)
        acked = await pusher(f"127.0.0.1:{grpc_port}", alerts, args.batch, args.window)
        output = "http_batch" if mode == "http_batch" else "http"
        done = await drained(r, DispatcherConfig().stream, group_name(output), args.n, 600)
        got = await received(http_port)
        cpu = cpu_seconds(disp.pid) - c0
        print(f"--- {MODES[mode].format(groups=args.groups)}")
        print(f"intake (persisted + acked):        {args.n / (acked - t0):10.0f} alerts/s")
        print(f"delivered + acked (HTTP 200):      {args.n / (done - t0):10.0f} alerts/s")
        print(f"alerts the receiver got:           {got:10d}")
        print(f"dispatcher CPU per alert:          {cpu / args.n * 1e6:10.1f} us")
    finally:
        await r.aclose()
        for p in (disp, recv):
            p.send_signal(signal.SIGTERM)
        for p in (disp, recv):
            p.wait(20)
        redis_srv.terminate()
        redis_srv.wait(10)


async def run(args: argparse.Namespace, tmp: Path) -> None:
    print(
        f"alerts: {args.n}, batch {args.batch}, window {args.window}, http concurrency {args.concurrency}, "
        f"read_batch {args.read_batch}, redis appendonly yes (fsync everysec); {os.cpu_count()} CPUs"
    )
    for mode in args.modes.split(","):
        await one_run(args, tmp, mode)
    print(f"machine load average (1 min): {os.getloadavg()[0]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=20000, help="alerts to push")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--window", type=int, default=16, help="batches in flight (unacked)")
    p.add_argument("--concurrency", type=int, default=64, help="http output deliveries in flight")
    p.add_argument("--read-batch", type=int, default=512, help="dispatcher read_batch")
    p.add_argument("--groups", type=int, default=50, help="distinct grouping keys among the alerts")
    p.add_argument("--modes", default="http,http_batch,grouped", help="which runs, comma-separated")
    p.add_argument("--profile", default="", help="write cProfiles of the dispatcher to PATH.plain/.grouped")
    p.add_argument("--child-receiver", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_receiver:
        receiver_child(args.child_receiver)
        return
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(args, Path(d)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
