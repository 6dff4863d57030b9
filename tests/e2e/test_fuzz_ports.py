# SPDX-License-Identifier: Apache-2.0
"""Issue 10, item 8: a fuzz suite on every port of `lanner up`. Each gRPC service (collector 7701, enricher 7702,
rule engine 7703, dispatcher 7704) and each metrics endpoint (9701-9704) gets garbage, truncated and oversized
messages, valid protobuf with absurd values, idle streams and half-open connections. While all of that is held
open, a real attack on the real kernel must still raise its alert; afterwards every service is up and SERVING,
counted what it rejected, and none restarted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import AlertCollector
from tests.support import fuzz

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

GRPC_PORTS = {"collector": 7701, "enricher": 7702, "ruleengine": 7703, "dispatcher": 7704}
METRICS_PORTS = {"collector": 9701, "enricher": 9702, "ruleengine": 9703, "dispatcher": 9704}
PUSH_EVENTS = {7702: "/lanner.v1.EnricherService/PushEvents", 7703: "/lanner.v1.RuleEngineService/PushEvents"}
PUSH_ALERTS = "/lanner.v1.DispatcherService/PushAlerts"
SUBSCRIBE = "/lanner.v1.SubscriberService/Subscribe"
HEALTH = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REASONS = ("malformed_batch", "batch_too_large")
OVERSIZED = b"\x12\xff\xff\xff\x07" + b"\x00" * (17 * 1024 * 1024)  # above the 16 MiB message limit


def metrics(port: int) -> str:
    """The metrics text, retried: a scraper turned away while idle connections hold every slot gets in later."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def serving(port: int) -> bool:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


@contextlib.asynccontextmanager
async def idle_streams() -> AsyncIterator[None]:
    """Streams that open and never send a message, on every streaming method."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in (7702, 7703, 7704)]
    calls = []
    for ch, method in zip(channels, [*PUSH_EVENTS.values(), PUSH_ALERTS], strict=True):
        for _ in range(20):
            calls.append(ch.stream_stream(method)())
    sub = channels[2].unary_stream(SUBSCRIBE)
    calls += [sub(b"") for _ in range(5)]
    try:
        yield
    finally:
        for call in calls:
            call.cancel()
        for ch in channels:
            await ch.close()


async def test_every_port_survives_fuzzing_and_keeps_serving(lanner_up: Path, subscriber: AlertCollector) -> None:
    rng = random.Random(10)
    before = {name: metrics(port) for name, port in METRICS_PORTS.items()}
    junk = fuzz.garbage(rng)

    async with idle_streams():
        with contextlib.ExitStack() as held:
            for port in GRPC_PORTS.values():
                held.enter_context(fuzz.half_open_sockets(port, http2=True))
            for port in METRICS_PORTS.values():
                held.enter_context(fuzz.half_open_sockets(port, http2=False))
            # More idle connections than the metrics server serves at once (64): it must time them out.
            idle = [
                held.enter_context(contextlib.closing(socket.create_connection(("127.0.0.1", 9703))))
                for _ in range(100)
            ]
            for sock in idle:
                sock.sendall(b"GET /metrics HTTP/1.1\r\n")

            outcomes: dict[str, list[str]] = {}
            for port, method in PUSH_EVENTS.items():
                messages = [*junk, *fuzz.absurd_batches(rng), OVERSIZED]
                outcomes[method] = await fuzz.push_raw(f"127.0.0.1:{port}", method, messages)
            outcomes[PUSH_ALERTS] = await fuzz.push_raw(
                "127.0.0.1:7704", PUSH_ALERTS, [*junk[:10], *fuzz.absurd_alert_batches(rng), OVERSIZED]
            )
            outcomes[SUBSCRIBE] = await fuzz.unary_raw(
                "127.0.0.1:7704", SUBSCRIBE, [*junk[:10], *fuzz.absurd_subscribe_requests()], stream_reply=True
            )
            for port in GRPC_PORTS.values():
                outcomes[f"{port}{HEALTH}"] = await fuzz.unary_raw(f"127.0.0.1:{port}", HEALTH, junk[:10])
                outcomes[f"{port}{REFLECTION}"] = await fuzz.push_raw(f"127.0.0.1:{port}", REFLECTION, junk[:5])
                outcomes[f"{port}/no.such.Service/Method"] = await fuzz.unary_raw(
                    f"127.0.0.1:{port}", "/no.such.Service/Method", junk[:3]
                )
            for port in METRICS_PORTS.values():
                for request in fuzz.HTTP_GARBAGE:
                    await asyncio.to_thread(fuzz.http_raw, port, request)

            # Oversized messages are refused by gRPC itself, naming the limit.
            for method in (*PUSH_EVENTS.values(), PUSH_ALERTS):
                assert outcomes[method][-1] == "RESOURCE_EXHAUSTED", (method, outcomes[method])
            # The intakes took every batch they could parse at all, and only the dispatcher refuses garbage.
            for method in PUSH_EVENTS.values():
                assert outcomes[method][:-1] == ["OK"] * (len(outcomes[method]) - 1), outcomes[method]
            assert "INVALID_ARGUMENT" in outcomes[PUSH_ALERTS] and "INVALID_ARGUMENT" in outcomes[SUBSCRIBE]

            # With all of that still open, a real attack on the real kernel raises its alert.
            p = subprocess.Popen(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL)
            p.wait(timeout=30)
            subscriber.wait_for(
                lambda a: (
                    a.rule == "Credential file read by untrusted program"
                    and json.loads(a.output_fields_json).get("proc.pid") == p.pid
                ),
                timeout=60,
            )

    for name, port in GRPC_PORTS.items():
        assert await serving(port), name
    after = {name: metrics(port) for name, port in METRICS_PORTS.items()}
    # The enricher forwards events unparsed, so malformed events are counted where they are parsed: the rule engine.
    counted = {"enricher": ("malformed_batch", "batch_too_large"), "ruleengine": ("malformed_event", *REASONS)}
    for stage, reasons in counted.items():
        for reason in reasons:
            grew = sample(after[stage], "lanner_events_dropped_total", stage=stage, reason=reason) - sample(
                before[stage], "lanner_events_dropped_total", stage=stage, reason=reason
            )
            assert grew > 0, (stage, reason)
    assert sample(after["dispatcher"], "lanner_dispatcher_bad_messages_total") > sample(
        before["dispatcher"], "lanner_dispatcher_bad_messages_total"
    )
    stderr = (lanner_up / "up.stderr").read_text(errors="replace")
    assert not re.search(r"exited with code .*restarting", stderr), stderr[-3000:]
