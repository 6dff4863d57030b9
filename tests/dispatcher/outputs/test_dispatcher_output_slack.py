# SPDX-License-Identifier: Apache-2.0
"""slack output: the pure Block Kit builder, and delivery to a local webhook receiver through the dispatcher."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest
from aiohttp import web
from dispatcher_testlib import base_config, make_alert, push, running, wait_for

from dispatcher.config import DispatcherConfig, output_specs
from dispatcher.model import Alert, Priority
from dispatcher.outputs.slack import SlackConfig, build_slack_payload
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="h")
ALERT = Alert(
    rule="Terminal shell in container",
    priority=Priority.NOTICE,
    output="10:00:00.000000000: Notice shell <bash> & more",
    time_ns=1718000011726060287,
    hostname="node-1",
    tags=("shell", "container"),
    output_fields=MappingProxyType({"container.name": "web", "proc.name": "bash", "fd.name": None}),
)


def test_payload() -> None:
    p = build_slack_payload(ALERT, SlackConfig(webhook_url="https://hooks.example/T/B/x"), CTX)
    assert p["text"] == "Notice: Terminal shell in container on node-1"
    header, code, facts, context = p["blocks"]
    assert header["text"]["text"] == "Terminal shell in container"
    assert code["text"]["text"] == "```10:00:00.000000000: Notice shell &lt;bash&gt; &amp; more```"
    assert [f["text"] for f in facts["fields"]] == [
        "*Priority*\nNotice", "*Host*\nnode-1", "*Source*\nsyscall", "*container.name*\nweb", "*proc.name*\nbash",
    ]  # fmt: skip
    assert context["elements"][0]["text"] == "2024-06-10T06:13:31.726060287Z · container, shell"


def test_long_output_is_cut_to_block_limits() -> None:
    long = Alert(rule="r" * 500, priority=Priority.ERROR, output="x" * 10000)
    header, code, _, _ = build_slack_payload(long, SlackConfig(webhook_url="https://h/x"), CTX)["blocks"]
    assert len(header["text"]["text"]) == 150 and len(code["text"]["text"]) <= 3000


def test_rate_limit_default_and_override() -> None:
    cfg = DispatcherConfig(
        outputs={"slack": {"webhook_url": "https://h/x"}, "slack:b": {"webhook_url": "https://h/y", "rate_limit": 5}}
    )
    specs = {s.name: s for s in output_specs(cfg)}
    assert specs["slack"].driver.rate_limit == 1.0 and specs["slack:b"].driver.rate_limit == 5.0


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    got: list[dict[str, object]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/T0/B0/secret", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/services/T0/B0/secret", got
    await runner.cleanup()


@pytest.mark.integration
async def test_delivered_through_dispatcher(
    webhook: tuple[str, list[dict[str, object]]], redis_url: str, bind: str
) -> None:
    url, got = webhook
    cfg = base_config(
        redis_url, bind, outputs={"slack": {"webhook_url": url, "rate_limit": 0, "min_priority": "warning"}}
    )
    async with running(cfg) as d:
        alerts = [make_alert(0, priority=alert_pb2.PRIORITY_CRITICAL), make_alert(1)]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(got) == 1)
    assert got[0]["text"] == "Critical: Terminal shell in container on host1"
    assert json.dumps(got[0]).count("proc.name") == 1
