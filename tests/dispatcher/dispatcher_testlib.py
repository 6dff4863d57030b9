# SPDX-License-Identifier: Apache-2.0
"""Helpers for the dispatcher tests: a real redis-server, a real dispatcher on a real socket, alert builders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from dispatcher.config import DispatcherConfig, OutputSpec, output_specs
from dispatcher.registry import Output
from dispatcher.server import serve
from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc
from tests.support.redis_server import RedisProcess as RedisProcess
from tests.support.redis_server import free_port as free_port


def make_alert(
    i: int = 0,
    *,
    rule: str = "Terminal shell in container",
    priority: int = alert_pb2.PRIORITY_NOTICE,
    tags: Iterable[str] = ("container", "shell"),
    source: str = "syscall",
    alert_id: str | None = None,
    fields: Mapping[str, Any] | None = None,
    output: str | None = None,
) -> alert_pb2.Alert:
    """A realistic alert as the rule engine sends it."""
    ts = timestamp_pb2.Timestamp(seconds=1718000011 + i, nanos=726060287)
    of = struct_pb2.Struct()
    of.update(dict(fields) if fields is not None else {"proc.name": "bash", "proc.pid": 4242 + i, "fd.name": None})
    return alert_pb2.Alert(
        rule=rule,
        priority=priority,  # type: ignore[arg-type]
        source=source,
        tags=sorted(tags),
        time=ts,
        output=output if output is not None else f"13:53:{i % 60:02d}.726060287: Notice A shell was spawned (n={i})",
        message=f"A shell was spawned (n={i})",
        output_fields=of,
        hostname="host1",
        alert_id=alert_id if alert_id is not None else f"alert-{i}",
    )


def base_config(redis_url: str, bind: str, **kw: Any) -> DispatcherConfig:
    """A test config: no metrics port, quick trimming and claiming."""
    cfg = DispatcherConfig(
        bind=bind,
        metrics_bind="",
        redis_url=redis_url,
        consumer="test-consumer",
        outputs={},
        trim_interval_s=0.2,
        dedup_secret="test-secret-0123456789abcdef",
    )
    return replace(cfg, **kw)


class RunningDispatcher:
    """A dispatcher served in this event loop on a real socket."""

    def __init__(self, cfg: DispatcherConfig, outputs: Mapping[str, Output] | None = None) -> None:
        self.cfg = cfg
        self.specs: tuple[OutputSpec, ...] = output_specs(cfg)
        self.stop = asyncio.Event()
        self._outputs = outputs
        self.task: asyncio.Task[None] | None = None

    @property
    def target(self) -> str:
        return self.cfg.bind

    async def start(self) -> None:
        self.task = asyncio.create_task(
            serve(self.cfg, self.specs, stop_event=self.stop, grace=0.2, outputs=self._outputs)
        )
        await wait_listening(self.target)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def running(
    cfg: DispatcherConfig, outputs: Mapping[str, Output] | None = None
) -> AsyncIterator[RunningDispatcher]:
    """Serve a dispatcher for the duration of the block."""
    d = RunningDispatcher(cfg, outputs)
    await d.start()
    try:
        yield d
    finally:
        await d.close()


async def push(target: str, batches: Iterable[alert_pb2.AlertBatch], timeout: float = 10) -> list[alert_pb2.AlertAck]:
    """Send batches on one PushAlerts stream and collect one ack per batch."""
    batches = list(batches)
    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.stream_stream(
            "/lanner.v1.DispatcherService/PushAlerts",
            request_serializer=alert_pb2.AlertBatch.SerializeToString,
            response_deserializer=alert_pb2.AlertAck.FromString,
        )()
        for b in batches:
            await call.write(b)
        acks = []
        for _ in batches:
            ack = await asyncio.wait_for(call.read(), timeout)
            acks.append(ack)
        await call.done_writing()
        return acks


def subscribe_call(ch: grpc.aio.Channel, **kw: Any) -> Any:
    """Open a Subscribe stream with the given SubscribeRequest fields."""
    stub = services_pb2_grpc.SubscriberServiceStub(ch)
    return stub.Subscribe(services_pb2.SubscribeRequest(**kw))


async def wait_for(cond: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``cond()`` (sync or async) until true."""
    deadline = time.monotonic() + timeout
    while True:
        res = cond()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def wait_listening(target: str, timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections on ``host:port`` (gRPC's own reconnect backoff is 1 s)."""
    host, _, port = target.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1/localhost, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        import pytest

        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def lines(path: Path) -> list[str]:
    """Lines of a file, or [] if it does not exist."""
    return path.read_text().splitlines() if path.exists() else []


os.environ.setdefault("LANNER_LOG_TRACEBACKS", "")
