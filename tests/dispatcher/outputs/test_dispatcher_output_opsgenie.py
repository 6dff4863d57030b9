# SPDX-License-Identifier: Apache-2.0
"""opsgenie output: the Alert API v2 create and close-by-alias requests, against a local fake of the documented API."""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType

import pytest
from dispatcher_testlib import RedisProcess, base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request, require
from outputs_testlib import SAMPLE

from dispatcher.identity import incident_key
from dispatcher.model import Priority
from dispatcher.outputs.opsgenie import OpsgenieConfig, build_opsgenie_alert
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")
KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"


def test_create_body() -> None:
    body = build_opsgenie_alert(SAMPLE, OpsgenieConfig(api_key=KEY, responders=({"type": "team", "name": "SRE"},)),
                                CTX)  # fmt: skip
    assert body["message"] == "Write below etc on node-1"
    assert body["alias"] == incident_key(SAMPLE) and body["priority"] == "P3"
    assert body["entity"] == "node-1/web" and body["source"] == "lanner"
    assert body["tags"] == ["filesystem", "mitre_persistence"]
    assert body["details"]["proc.pid"] == "4242" and body["details"]["fd.name"] == "/etc/passwd"
    assert body["responders"] == [{"type": "team", "name": "SRE"}]
    prios = {p: build_opsgenie_alert(replace(SAMPLE, priority=p), OpsgenieConfig(api_key=KEY), CTX)["priority"]
             for p in Priority}  # fmt: skip
    assert [prios[p] for p in sorted(Priority)] == ["P1", "P1", "P2", "P3", "P3", "P4", "P5", "P5"]


def test_documented_limits() -> None:
    huge = replace(SAMPLE, rule="R" * 500, tags=tuple(f"t{i}" + "x" * 80 for i in range(40)),
                   output_fields=MappingProxyType({f"f{i:03}": "v" * 300 for i in range(100)}))  # fmt: skip
    body = build_opsgenie_alert(huge, OpsgenieConfig(api_key=KEY), CTX)
    assert len(body["message"]) == 130 and len(body["tags"]) == 20 and all(len(t) <= 50 for t in body["tags"])
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
    with pytest.raises(ValueError, match="api_key"):
        OpsgenieConfig()
    with pytest.raises(ValueError, match="responders"):
        OpsgenieConfig(api_key=KEY, responders=({"type": "group"},))


def _check_create(req: Request) -> tuple[list[str], int, object]:
    """POST /v2/alerts as documented (docs.opsgenie.com/docs/alert-api)."""
    problems: list[str] = []
    if req.headers.get("Authorization") != f"GenieKey {KEY}":
        return ["Authorization: expected GenieKey <apiKey>"], 401, None
    body = req.json()
    require(body, "message", str, problems, 130)
    require(body, "alias", str, problems, 512)
    require(body, "description", str, problems, 15000)
    require(body, "entity", str, problems, 512)
    require(body, "source", str, problems, 100)
    if body.get("priority") not in ("P1", "P2", "P3", "P4", "P5"):
        problems.append("priority: expected P1..P5")
    tags = require(body, "tags", list, problems)
    if tags is not None and (len(tags) > 20 or any(len(t) > 50 for t in tags)):
        problems.append("tags: at most 20 of 50 chars")
    details = require(body, "details", dict, problems)
    if details is not None and not all(isinstance(v, str) for v in details.values()):
        problems.append("details: values must be strings")
    return problems, 202, {"result": "Request will be processed", "took": 0.01, "requestId": "43a29c5c-3dbf"}


@pytest.mark.integration
async def test_create_then_close_when_quiet(fake_api: FakeApi, redis_url: str, bind: str) -> None:
    fake_api.route("POST", "/v2/alerts", _check_create)
    closes: list[str] = []

    def check_close(req: Request) -> tuple[list[str], int, object]:
        problems = [] if req.query.get("identifierType") == "alias" else ["identifierType: expected alias"]
        if req.headers.get("Authorization") != f"GenieKey {KEY}":
            problems.append("Authorization")
        closes.append(req.path)
        return problems, 202, {"result": "Request will be processed", "took": 0.01, "requestId": "r2"}

    cfg = base_config(redis_url, bind, outputs={"opsgenie": {"api_key": KEY, "url": fake_api.base,
                                                             "close_after_s": 0.5}})  # fmt: skip
    alerts = [make_alert(i, priority=alert_pb2.PRIORITY_CRITICAL) for i in range(3)]
    async with running(cfg) as d:
        [alias] = {build_opsgenie_alert(_domain(a), OpsgenieConfig(api_key=KEY), CTX)["alias"] for a in alerts}
        fake_api.route("POST", f"/v2/alerts/{alias}/close", check_close)
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(fake_api.accepted_on("/v2/alerts")) == 3)
        await wait_for(lambda: len(fake_api.accepted_on(f"/v2/alerts/{alias}/close")) == 1, timeout=20)
    assert not fake_api.refused
    created = [r.json() for r in fake_api.accepted_on("/v2/alerts")]
    assert {c["alias"] for c in created} == {alias} and {c["priority"] for c in created} == {"P2"}
    assert re.fullmatch(r"[0-9a-f]{64}", alias)


def _domain(pb: alert_pb2.Alert) -> object:
    from dispatcher.convert import alert_from_pb

    return alert_from_pb(pb)


@pytest.mark.integration
async def test_bad_key_is_dead_lettered(fake_api: FakeApi, redis_url: str, bind: str,
                                        redis_proc: RedisProcess) -> None:  # fmt: skip
    fake_api.route("POST", "/v2/alerts", _check_create)
    cfg = base_config(redis_url, bind, outputs={"opsgenie": {"api_key": "wrong", "url": fake_api.base}})
    r = redis_proc.client()
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0)])])
        await wait_for(lambda: r.xlen(f"{cfg.stream}:dead") == 1)
    assert b"401" in r.xrange(f"{cfg.stream}:dead")[0][1][b"error"]
    r.close()
