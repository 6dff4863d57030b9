# SPDX-License-Identifier: Apache-2.0
"""Issue 10, item 8, for the ports `lanner up` does not open by default: the collector as a real process with its
Kubernetes audit webhook on, fuzzed on the webhook, its gRPC port and its metrics port. It must stay up, count
what it refused, and still deliver a valid audit event sent afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanner.v1 import event_pb2, services_pb2_grpc
from tests.support import fuzz
from tests.support.fuzz import free_port_pair

pytestmark = pytest.mark.integration

ITEM = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "fuzz-ok", "verb": "get", "stage": "Complete"}


class Sink(services_pb2_grpc.EnricherServiceServicer):
    def __init__(self) -> None:
        self.events: list[event_pb2.Event] = []

    async def PushEvents(
        self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: object
    ) -> AsyncIterator[event_pb2.BatchAck]:
        async for batch in request_iterator:
            self.events.extend(batch.events)
            yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))


def audit_bodies(rng: random.Random) -> list[bytes]:
    deep = b'{"kind":"EventList","items":[' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"]}"
    return [
        *fuzz.garbage(rng, 10),
        b"[" * 10_000 + b"]" * 10_000,
        deep,
        b'{"kind":"EventList","items":[' + b",".join([b"{}"] * 200_000) + b"]}",
        b'{"kind":"EventList","items":[{"verb":"\xff\xfe"}]}',
        json.dumps({"kind": "EventList", "items": [{**ITEM, "verb": 1}]}).encode(),
        json.dumps({"kind": "EventList", "items": [{**ITEM, "user": {"username": "\ud800\x1b[2J\u2028"}}]}).encode(),
        json.dumps({"kind": "EventList", "items": [{**ITEM, "stageTimestamp": "9999-99-99T99:99:99Z"}]}).encode(),
        json.dumps({"kind": "EventList", "items": [{**ITEM, "requestObject": {"x": 1e308, "y": -(2**70)}}]}).encode(),
        b"x" * (17 * 1024 * 1024),
    ]


def metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def collector_process(tmp_path: Path, sink_port: int) -> object:
    grpc_port, metrics_port, hook_port = free_port_pair(3)
    recording = tmp_path / "empty.jsonl"
    recording.write_text("")
    env = dict(os.environ)
    env.pop("LANNER_CONFIG", None)
    env.update(
        LANNER_COLLECTOR__BIND=f"127.0.0.1:{grpc_port}",
        LANNER_COLLECTOR__METRICS_BIND=f"127.0.0.1:{metrics_port}",
        LANNER_COLLECTOR__ENRICHER_TARGET=f"127.0.0.1:{sink_port}",
        LANNER_COLLECTOR__REPLAY_PATH=str(recording),
        LANNER_COLLECTOR__K8S_AUDIT_BIND=f"127.0.0.1:{hook_port}",
    )
    log = tmp_path / "collector.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "collector"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while not all(fuzz.port_open(p) for p in (grpc_port, metrics_port, hook_port)):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield proc, grpc_port, metrics_port, hook_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_collector_webhook_grpc_and_metrics_ports_survive_fuzzing(tmp_path: Path) -> None:
    rng = random.Random(8)
    sink = Sink()
    server = grpc.aio.server()
    services_pb2_grpc.add_EnricherServiceServicer_to_server(sink, server)
    sink_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with collector_process(tmp_path, sink_port) as (proc, grpc_port, metrics_port, hook_port, log):  # type: ignore[misc]
            url = f"http://127.0.0.1:{hook_port}/k8s-audit"
            with contextlib.ExitStack() as held:
                for port, http2 in ((grpc_port, True), (metrics_port, False), (hook_port, False)):
                    held.enter_context(fuzz.half_open_sockets(port, http2=http2))
                statuses = []
                async with aiohttp.ClientSession() as http:
                    for body in audit_bodies(rng):
                        async with http.post(url, data=body) as resp:
                            statuses.append(resp.status)
                    for path in ("/", "/k8s-audit/../x", "/" + "a" * 5000):
                        async with http.get(f"http://127.0.0.1:{hook_port}{path}") as resp:
                            statuses.append(resp.status)
                for port in (hook_port, metrics_port):
                    for request in fuzz.HTTP_GARBAGE:
                        await asyncio.to_thread(fuzz.http_raw, port, request)
                await fuzz.unary_raw(f"127.0.0.1:{grpc_port}", "/grpc.health.v1.Health/Check", fuzz.garbage(rng, 5))
                await fuzz.push_raw(f"127.0.0.1:{grpc_port}", "/lanner.v1.EnricherService/PushEvents", [b"\xff"])
                assert 500 not in statuses, statuses
                assert statuses.count(413) == 2 and 400 in statuses and 200 in statuses, statuses

                # Still serving: a valid audit event goes all the way to the next stage.
                async with aiohttp.ClientSession() as http, http.post(url, json=ITEM) as resp:
                    assert resp.status == 200
                deadline = time.monotonic() + 30
                while not any(json.loads(e.audit_json or "{}").get("auditID") == "fuzz-ok" for e in sink.events):
                    assert time.monotonic() < deadline, "the valid audit event never arrived"
                    await asyncio.sleep(0.1)

            assert proc.poll() is None, log.read_text()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
                health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert health.status == health_pb2.HealthCheckResponse.SERVING
            assert metric(metrics_port, "lanner_k8s_audit_rejected_total", reason="bad_request") >= 5
            assert metric(metrics_port, "lanner_k8s_audit_rejected_total", reason="too_large") == 2
            assert "Traceback" not in log.read_text()
    finally:
        await server.stop(0)
