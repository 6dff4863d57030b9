# SPDX-License-Identifier: Apache-2.0
"""http_batch: NDJSON batches to a real local HTTP server, alone and through the whole dispatcher."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from dispatcher_testlib import base_config, make_alert, push, running, wait_for

from dispatcher.coalesce import Coalescer
from dispatcher.model import Alert, Priority
from dispatcher.outputs.http_batch import HttpBatchConfig, HttpBatchOutput
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2


@dataclass
class Sink:
    url: str = ""
    fail_next: int = 0
    bodies: list[bytes] = field(default_factory=list)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(x) for b in self.bodies for x in b.decode().splitlines()]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        assert request.content_type == "application/x-ndjson"
        if s.fail_next:
            s.fail_next -= 1
            return web.Response(status=503, text="busy")
        s.bodies.append(body)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/ingest", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/ingest"  # type: ignore[union-attr]
    yield s
    await runner.cleanup()


async def test_concurrent_sends_share_requests_and_fail_together(sink: Sink) -> None:
    out = HttpBatchOutput(HttpBatchConfig(url=sink.url, batch_max=10, linger_ms=50), OutputContext(hostname="h"))
    alerts = [Alert(rule=f"R{i}", priority=Priority.WARNING, output=f"o{i}") for i in range(25)]
    await asyncio.gather(*(out.send(a) for a in alerts))
    assert [len(b.splitlines()) for b in sink.bodies] == [10, 10, 5]
    assert [x["rule"] for x in sink.lines()] == [f"R{i}" for i in range(25)]
    sink.fail_next = 1
    results = await asyncio.gather(*(out.send(a) for a in alerts[:3]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "503" in str(r) for r in results)
    await out.close()


async def test_a_sender_that_gave_up_is_left_out() -> None:
    flushed: list[list[bytes]] = []

    async def flush(items: object) -> None:
        flushed.append(list(items))  # type: ignore[call-overload]

    c = Coalescer(flush, 100, 0.05)
    gone = asyncio.create_task(c.submit(b"a"))
    await asyncio.sleep(0)
    gone.cancel()
    await c.submit(b"b")
    assert flushed == [[b"b"]]


@pytest.mark.integration
async def test_http_batch_through_the_dispatcher(redis_url: str, bind: str, sink: Sink) -> None:
    outputs = {"http_batch": {"url": sink.url, "backoff_initial_s": 0.05, "backoff_max_s": 0.1}}
    cfg = base_config(redis_url, bind, outputs=outputs)
    sink.fail_next = 1  # the first request fails; its alerts are retried
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i) for i in range(300)])])
        await wait_for(lambda: len(sink.lines()) >= 300)
    pids = sorted(int(x["output_fields"]["proc.pid"]) for x in sink.lines())  # type: ignore[index, call-overload]
    assert pids == [4242 + i for i in range(300)]
    assert len(sink.bodies) < 300
