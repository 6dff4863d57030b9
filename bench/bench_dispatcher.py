# SPDX-License-Identifier: Apache-2.0
"""Dispatcher throughput: alerts/s through PushAlerts -> Redis Stream -> a Subscribe client and the file output.

Starts a private redis-server and a dispatcher process (file output enabled), opens a Subscribe stream, then
pushes N realistic alerts over one PushAlerts stream with a window of batches in flight, as the rule engine does.
Prints: intake rate (alerts acked per second, i.e. persisted), the rate at which the subscriber received them,
and the rate at which the file output wrote them. `python bench/bench_dispatcher.py [-n 50000] [--keep-alive]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_alert(i: int) -> alert_pb2.Alert:
    """An alert as the rule engine sends it: output fields both as a Struct and as exact JSON."""
    values = {
        "evt.time": 1718000011726060287 + i,
        "proc.name": "bash",
        "proc.cmdline": "bash -i",
        "proc.pid": 1000 + i,
        "proc.aname[2]": "containerd-shim",
        "user.name": "root",
        "user.loginuid": -1,
        "container.id": "3ad7b26ded6d",
        "container.name": "web",
        "container.image.repository": "nginx",
        "k8s.ns.name": None,
    }
    fields = struct_pb2.Struct()
    fields.update(values)
    return alert_pb2.Alert(
        rule="Terminal shell in container",
        priority=alert_pb2.PRIORITY_NOTICE,
        source="syscall",
        tags=["container", "maturity_stable", "mitre_execution", "shell", "T1059"],
        time=timestamp_pb2.Timestamp(seconds=1718000011, nanos=726060287),
        output="13:53:31.726060287: Notice A shell was spawned in a container with an attached terminal "
        f"(evt_type=execve user=root user_uid=0 process=bash proc_exepath=/bin/bash parent=runc n={i} "
        "command=bash -i terminal=34816 container_id=3ad7b26ded6d container_name=web)",
        output_fields=fields,
        output_fields_json=json.dumps(values, separators=(",", ":"), sort_keys=True),
        hostname="bench-host",
        alert_id=f"bench-{i}",
    )


async def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def pusher(target: str, alerts: list[alert_pb2.Alert], batch: int, window: int) -> float:
    """Push all alerts; return the time the last ack arrived."""
    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.stream_stream(
            "/lanner.v1.DispatcherService/PushAlerts",
            request_serializer=alert_pb2.AlertBatch.SerializeToString,
            response_deserializer=alert_pb2.AlertAck.FromString,
        )()
        batches = [alerts[i : i + batch] for i in range(0, len(alerts), batch)]
        credits = asyncio.Semaphore(window)

        async def reader() -> None:
            for _ in batches:
                await call.read()
                credits.release()

        rt = asyncio.create_task(reader())
        for seq, b in enumerate(batches):
            await credits.acquire()
            await call.write(alert_pb2.AlertBatch(batch_seq=seq, alerts=b))
        await rt
        await call.done_writing()
        return time.monotonic()


def subscriber_child(target: str, n: int) -> None:
    """Runs in its own process (as a real subscriber would): prints the monotonic time the n-th alert arrived."""
    with grpc.insecure_channel(target) as ch:
        grpc.channel_ready_future(ch).result(10)
        stub = services_pb2_grpc.SubscriberServiceStub(ch)
        call = stub.Subscribe(services_pb2.SubscribeRequest(subscriber_name="bench"))
        print("ready", flush=True)
        for got, alert in enumerate(call, start=1):
            if got == n:
                print(f"done {time.monotonic()} {alert.alert_id}", flush=True)
                call.cancel()
                return


async def subscriber(target: str, n: int, ready: asyncio.Event) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child-subscriber", target, "-n", str(n), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    ready.set()
    line = (await proc.stdout.readline()).split()
    await proc.wait()
    return float(line[1])


async def file_done(path: Path, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    count, offset = 0, 0
    while count < n:
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            count += chunk.count(b"\n")
        if time.monotonic() > deadline:
            raise TimeoutError(f"file output wrote {count}/{n} lines")
        await asyncio.sleep(0.01)
    return time.monotonic()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: a figure that stays meaningful on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, tmp: Path) -> None:
    redis_port, grpc_port = free_port(), free_port()
    redis = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "yes" if args.aof else "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    out = tmp / "alerts.jsonl"
    cfg = tmp / "lanner.yaml"
    cfg.write_text(
        "dispatcher:\n"
        f"  bind: 127.0.0.1:{grpc_port}\n  metrics_bind: ''\n  log_level: warning\n"
        f"  redis_url: redis://127.0.0.1:{redis_port}/0\n"
        f"  subscriber_queue: {args.n}\n"
        "  outputs:\n"
        f"    file: {{enabled: {'false' if args.intake_only or args.no_file else 'true'}, path: {out}, "
        f"keep_alive: {'true' if args.keep_alive else 'false'}}}\n"
    )
    prof = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    disp = subprocess.Popen([sys.executable, *prof, "-m", "dispatcher", "--config", str(cfg)])
    try:
        await wait_port(grpc_port)
        target = f"127.0.0.1:{grpc_port}"
        alerts = [make_alert(i) for i in range(args.n)]
        size = sum(a.ByteSize() for a in alerts) / len(alerts)
        print(
            f"alerts: {args.n} (avg {size:.0f} bytes protobuf), batch {args.batch}, window {args.window}, "
            f"file keep_alive={args.keep_alive}, redis aof={args.aof}, intake only={args.intake_only}"
        )
        if args.intake_only:
            t0, c0 = time.monotonic(), cpu_seconds(disp.pid)
            acked = await pusher(target, alerts, args.batch, args.window)
            print(f"PushAlerts intake (persisted + acked): {args.n / (acked - t0):10.0f} alerts/s")
            cpu = cpu_seconds(disp.pid) - c0
            print(f"dispatcher CPU per alert:             {cpu / args.n * 1e6:10.1f} us")
            return
        ready = asyncio.Event()
        sub = asyncio.create_task(subscriber(target, args.n, ready))
        await ready.wait()
        await asyncio.sleep(0.3)
        t0, c0 = time.monotonic(), cpu_seconds(disp.pid)
        filed = asyncio.create_task(file_done(out, 0 if args.no_file else args.n, 600))
        acked = await pusher(target, alerts, args.batch, args.window)
        subbed = await sub
        written = await filed
        print(f"PushAlerts intake (persisted + acked): {args.n / (acked - t0):10.0f} alerts/s")
        print(f"Subscribe client received all:        {args.n / (subbed - t0):10.0f} alerts/s")
        if not args.no_file:
            print(f"file output wrote all:                {args.n / (written - t0):10.0f} alerts/s")
        await asyncio.sleep(0.5)  # let the trimmer and last acks finish before reading the CPU clock
        cpu = cpu_seconds(disp.pid) - c0
        print(f"dispatcher CPU per alert (all paths): {cpu / args.n * 1e6:10.1f} us")
        print(f"machine load average (1 min):         {os.getloadavg()[0]:10.2f} on {os.cpu_count()} CPUs")
    finally:
        disp.send_signal(signal.SIGTERM)
        disp.wait(20)
        redis.terminate()
        redis.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=50000, help="alerts to push")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--window", type=int, default=16, help="batches in flight (unacked)")
    p.add_argument("--keep-alive", action="store_true", help="keep the output file open")
    p.add_argument("--aof", action="store_true", help="run redis with appendonly yes (fsync every second)")
    p.add_argument("--no-file", action="store_true", help="measure intake and the subscriber only")
    p.add_argument("--intake-only", action="store_true", help="no subscriber, no file output: intake alone")
    p.add_argument("--profile", default="", help="write a cProfile of the dispatcher to this file")
    p.add_argument("--child-subscriber", default="", help=argparse.SUPPRESS)
    p.add_argument(
        "--engine",
        default="",
        help="alerts/s, comma-separated: CPU per alert of the rule engine and the "
        "dispatcher at these rates (bench/alert_cost.py)",
    )
    p.add_argument(
        "--code",
        action="append",
        type=Path,
        help="with --engine: run the services from this checkout (repeat for a before/after pair; default: this one)",
    )
    p.add_argument("--seconds", type=float, default=4.0, help="with --engine: seconds per rate")
    p.add_argument("--event-batch", type=int, default=16, help="with --engine: events per batch to the rule engine")
    args = p.parse_args()
    if args.child_subscriber:
        subscriber_child(args.child_subscriber, args.n)
        return
    if args.engine:
        from alert_cost import run as engine_run

        rates = [float(r) for r in args.engine.split(",")]
        codes = [c.resolve() for c in args.code or [Path(__file__).resolve().parents[1]]]
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(engine_run(codes, rates, args.seconds, args.event_batch, Path(d)))
        return
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(args, Path(d)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
