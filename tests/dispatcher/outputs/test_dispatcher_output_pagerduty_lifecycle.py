# SPDX-License-Identifier: Apache-2.0
"""pagerduty output lifecycle: a quiet incident is resolved with the trigger's dedup_key and routing_key."""

from __future__ import annotations

import pytest
from dispatcher_testlib import base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request, require
from prometheus_client import REGISTRY

from dispatcher.outputs.pagerduty import PagerDutyConfig, build_resolve_event
from lanner.v1 import alert_pb2

KEY = "R" * 32


def test_resolve_event() -> None:
    assert build_resolve_event("k" * 64, PagerDutyConfig(routing_key=KEY)) == {
        "routing_key": KEY, "event_action": "resolve", "dedup_key": "k" * 64}  # fmt: skip
    with pytest.raises(ValueError, match="resolve_after_s"):
        PagerDutyConfig(routing_key=KEY, resolve_after_s=-1)


def _check_event(req: Request) -> tuple[list[str], int, object]:
    """POST /v2/enqueue as documented (PagerDuty Events API v2)."""
    problems: list[str] = []
    body = req.json()
    require(body, "routing_key", str, problems, 32)
    key = require(body, "dedup_key", str, problems, 255)
    action = body.get("event_action")
    if action == "trigger":
        payload = require(body, "payload", dict, problems)
        require(payload, "summary", str, problems, 1024)
        require(payload, "source", str, problems)
        if payload and payload.get("severity") not in ("critical", "error", "warning", "info"):
            problems.append("payload.severity")
    elif action != "resolve":
        problems.append(f"event_action: {action!r}")
    return problems, 202, {"status": "success", "message": "Event processed", "dedup_key": key}


@pytest.mark.integration
async def test_auto_resolve_after_quiet_period(fake_api: FakeApi, redis_url: str, bind: str) -> None:
    fake_api.route("POST", "/v2/enqueue", _check_event)
    url = f"{fake_api.base}/v2/enqueue"
    cfg = base_config(redis_url, bind, outputs={"pagerduty": {"routing_key": KEY, "url": url, "rate_limit": 0,
                                                              "resolve_after_s": 1.0}})  # fmt: skip
    resolved = REGISTRY.get_sample_value("lanner_dispatcher_output_resolved_total", {"output": "pagerduty"}) or 0
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), make_alert(1)])])
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=2, alerts=[make_alert(2, rule="Other rule")])])
        await wait_for(lambda: len([r for r in fake_api.accepted if r.json()["event_action"] == "resolve"]) == 2,
                       timeout=30)  # fmt: skip
    assert not fake_api.refused
    events = [r.json() for r in fake_api.accepted]
    triggers = [e for e in events if e["event_action"] == "trigger"]
    resolves = [e for e in events if e["event_action"] == "resolve"]
    assert len(triggers) == 3
    # One resolve per incident, with the trigger's key, and only after that incident's last trigger.
    assert sorted(e["dedup_key"] for e in resolves) == sorted({t["dedup_key"] for t in triggers})
    for res in resolves:
        assert events.index(res) > max(
            i for i, e in enumerate(events) if e["event_action"] == "trigger" and e["dedup_key"] == res["dedup_key"]
        )
    assert {e["routing_key"] for e in events} == {KEY}
    assert REGISTRY.get_sample_value("lanner_dispatcher_output_resolved_total", {"output": "pagerduty"}) == resolved + 2
