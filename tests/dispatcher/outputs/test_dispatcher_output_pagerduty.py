# SPDX-License-Identifier: Apache-2.0
"""pagerduty output: the pure event builder, the incident key, and a local Events API receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from types import MappingProxyType

import pytest
from aiohttp import web
from dispatcher_testlib import base_config, make_alert, push, running, wait_for

from dispatcher.identity import incident_key
from dispatcher.model import Alert, Priority
from dispatcher.outputs.pagerduty import PagerDutyConfig, build_pagerduty_event, encode_event
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

KEY = "R" * 32
CTX = OutputContext(hostname="fallback")
ALERT = Alert(
    rule="Write below etc",
    priority=Priority.ERROR,
    source="syscall",
    tags=("filesystem",),
    time_ns=1718000011726060287,
    output="13:53:31.726060287: Error File below /etc opened for writing (file=/etc/passwd)",
    message="File below /etc opened for writing (file=/etc/passwd)",
    hostname="node-1",
    output_fields=MappingProxyType(
        {"container.id": "3ad7b26ded6d", "container.image.repository": "nginx", "k8s.ns.name": "prod",
         "proc.pid": 4242, "proc.exepath": "/usr/bin/vi"}
    ),
)  # fmt: skip


def test_event() -> None:
    event = build_pagerduty_event(ALERT, PagerDutyConfig(routing_key=KEY), CTX)
    assert event["routing_key"] == KEY and event["event_action"] == "trigger" and event["client"] == "Lanner"
    p = event["payload"]
    assert p["summary"] == "Write below etc: File below /etc opened for writing (file=/etc/passwd)"
    assert (p["source"], p["severity"], p["class"]) == ("node-1", "error", "Write below etc")
    assert (p["component"], p["group"]) == ("nginx", "prod")
    assert p["timestamp"] == "2024-06-10T06:13:31.726Z"
    assert p["custom_details"]["output_fields"]["proc.pid"] == 4242
    assert event["dedup_key"] == incident_key(ALERT) and len(event["dedup_key"]) == 64


def test_incident_key_ignores_pids_and_times_but_not_scope() -> None:
    again = replace(ALERT, time_ns=1, output_fields=MappingProxyType({**ALERT.output_fields, "proc.pid": 1}))
    assert incident_key(again) == incident_key(ALERT)
    elsewhere = replace(ALERT, output_fields=MappingProxyType({**ALERT.output_fields, "container.id": "other"}))
    assert incident_key(elsewhere) != incident_key(ALERT)
    assert incident_key(replace(ALERT, hostname="node-2")) != incident_key(ALERT)


def test_limits_and_config() -> None:
    huge = replace(ALERT, message="m" * 5000, output_fields=MappingProxyType({"big": "x" * 600_000}))
    event = build_pagerduty_event(huge, PagerDutyConfig(routing_key=KEY), CTX)
    assert len(event["payload"]["summary"]) == 1024
    body = encode_event(event)
    assert len(body) < 512 * 1024 and b"omitted" in body
    with pytest.raises(ValueError, match="routing_key"):
        PagerDutyConfig(routing_key="short")
    severities = {p: build_pagerduty_event(replace(ALERT, priority=p), PagerDutyConfig(routing_key=KEY), CTX)
                  ["payload"]["severity"] for p in Priority}  # fmt: skip
    assert severities[Priority.ALERT] == "critical" and severities[Priority.NOTICE] == "info"


@pytest.fixture
async def events_api() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    got: list[dict[str, object]] = []

    async def enqueue(request: web.Request) -> web.Response:
        body = await request.json()
        got.append(body)
        if body.get("routing_key") != KEY:
            return web.json_response({"status": "invalid event", "message": "Event object is invalid"}, status=400)
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": body["dedup_key"]}, status=202)  # fmt: skip

    app = web.Application()
    app.router.add_post("/v2/enqueue", enqueue)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v2/enqueue", got
    await runner.cleanup()


@pytest.mark.integration
async def test_triggers_through_dispatcher(
    events_api: tuple[str, list[dict[str, object]]], redis_url: str, bind: str
) -> None:
    url, got = events_api
    cfg = base_config(redis_url, bind, outputs={"pagerduty": {"routing_key": KEY, "url": url, "rate_limit": 0,
                                                              "min_priority": "error"}})  # fmt: skip
    async with running(cfg) as d:
        alerts = [make_alert(i, priority=alert_pb2.PRIORITY_CRITICAL) for i in range(3)] + [make_alert(9)]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(got) == 3)
    # Same rule, same host, no container: one incident, updated three times.
    assert len({e["dedup_key"] for e in got}) == 1
    assert {json.dumps(e["payload"]["severity"]) for e in got} == {'"critical"'}  # type: ignore[index]
