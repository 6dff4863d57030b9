# SPDX-License-Identifier: Apache-2.0
"""alertmanager output: bounded labels, annotations, expiry; delivered to a local /api/v2/alerts receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest
from aiohttp import web
from dispatcher_testlib import base_config, make_alert, push, running, wait_for

from dispatcher.model import Alert, Priority
from dispatcher.outputs.alertmanager import AlertmanagerConfig, build_alertmanager_alerts
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")
ALERT = Alert(
    rule="Terminal shell in container",
    priority=Priority.NOTICE,
    time_ns=1718000011726060287,
    output="13:53:31.726060287: Notice A shell was spawned",
    message="A shell was spawned",
    hostname="node-1",
    tags=("shell", "container"),
    output_fields=MappingProxyType(
        {"k8s.ns.name": "prod", "k8s.pod.name": "web-1", "proc.pid": 42, "proc.cmdline": "bash -i",
         "nested": MappingProxyType({"a": 1})}
    ),
)  # fmt: skip


def test_labels_are_bounded_and_the_rest_is_annotations() -> None:
    cfg = AlertmanagerConfig(url="http://am:9093", extra_labels={"cluster": "eu-1"}, expires_after_s=60)
    [am] = build_alertmanager_alerts(ALERT, cfg, CTX)
    assert am["labels"] == {
        "alertname": "Terminal shell in container", "severity": "info", "priority": "Notice", "source": "lanner",
        "falco_source": "syscall", "hostname": "node-1", "k8s_ns": "prod", "k8s_pod": "web-1", "cluster": "eu-1",
    }  # fmt: skip
    assert am["annotations"]["summary"] == "A shell was spawned"
    assert am["annotations"]["tags"] == "container,shell"
    assert json.loads(am["annotations"]["output_fields"])["nested"] == {"a": 1}
    assert (am["startsAt"], am["endsAt"]) == ("2024-06-10T06:13:31.726060287Z", "2024-06-10T06:14:31.726060287Z")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="extra_labels"):
        AlertmanagerConfig(url="http://am", extra_labels={"bad-name": "x"})
    with pytest.raises(ValueError, match="url"):
        AlertmanagerConfig(url="am:9093")


@pytest.fixture
async def alertmanager() -> AsyncIterator[tuple[str, list[object]]]:
    got: list[object] = []

    async def post_alerts(request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, list) or not all("labels" in a for a in body):
            return web.Response(status=400, text="bad request")
        got.extend(body)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/v2/alerts", post_alerts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/", got
    await runner.cleanup()


@pytest.mark.integration
async def test_delivered_through_dispatcher(alertmanager: tuple[str, list[object]], redis_url: str, bind: str) -> None:
    url, got = alertmanager
    cfg = base_config(redis_url, bind, outputs={"alertmanager": {"url": url, "headers": {"Authorization": "Bearer t"}}})
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), make_alert(1)])])
        await wait_for(lambda: len(got) == 2)
    assert {a["labels"]["alertname"] for a in got} == {"Terminal shell in container"}  # type: ignore[index]
