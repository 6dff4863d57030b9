# SPDX-License-Identifier: Apache-2.0
"""Driver behaviour shared by every output: concurrency cap, per-attempt timeout, retry limit, backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from dispatcher_testlib import RedisProcess, base_config, make_alert, push, running, wait_for
from prometheus_client import REGISTRY

from dispatcher.backoff import Backoff
from dispatcher.driver import DriverOptions
from lanner.v1 import alert_pb2


def test_backoff_doubles_with_jitter_and_caps() -> None:
    b = Backoff(0.1, 0.5)
    delays = [b.next_delay() for _ in range(6)]
    for d, nominal in zip(delays, [0.1, 0.2, 0.4, 0.5, 0.5, 0.5], strict=True):
        assert nominal / 2 <= d <= nominal
    b.reset()
    assert b.next_delay() <= 0.1


def test_driver_options_validation() -> None:
    with pytest.raises(ValueError, match="backoff_initial_s"):
        DriverOptions(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValueError, match="timeout_s"):
        DriverOptions(timeout_s=0)


@dataclass
class SlowSink:
    url: str = ""
    in_flight: int = 0
    peak: int = 0
    done: int = 0


@pytest.fixture
async def slow_sink() -> AsyncIterator[SlowSink]:
    s = SlowSink()

    async def handle(request: web.Request) -> web.Response:
        s.in_flight += 1
        s.peak = max(s.peak, s.in_flight)
        await asyncio.sleep(0.05)
        s.in_flight -= 1
        s.done += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    yield s
    await runner.cleanup()


@pytest.mark.integration
async def test_concurrency_is_capped(slow_sink: SlowSink, redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind, outputs={"http": {"url": slow_sink.url, "concurrency": 3}})
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i) for i in range(12)])])
        await wait_for(lambda: slow_sink.done == 12)
    assert 1 < slow_sink.peak <= 3


@pytest.mark.integration
async def test_attempt_timeout_then_dead_letter(redis_url: str, bind: str, redis_proc: RedisProcess) -> None:
    outputs = {
        "program": {
            "program": "cat > /dev/null; sleep 30",
            "timeout_s": 0.2,
            "max_retries": 1,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.02,
        }
    }
    cfg = base_config(redis_url, bind, outputs=outputs)
    failed = REGISTRY.get_sample_value("lanner_dispatcher_output_failed_total", {"output": "program"}) or 0
    r = redis_proc.client()
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0)])])
        await wait_for(lambda: r.xlen(f"{cfg.stream}:dead") == 1)
    dead = r.xrange(f"{cfg.stream}:dead")[0][1]
    assert dead[b"error"] == b"gave up after 2 attempts: TimeoutError: timed out after 0.2s"
    assert (
        REGISTRY.get_sample_value("lanner_dispatcher_output_failed_total", {"output": "program"}) or 0
    ) == failed + 2
    r.close()
