# SPDX-License-Identifier: Apache-2.0
"""loki output: the push API's JSON body (streams, ns timestamps as strings), bounded labels, tenant header."""

from __future__ import annotations

import json

import pytest
from dispatcher_testlib import base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request, require
from outputs_testlib import SAMPLE

from dispatcher.outputs.loki import LokiConfig, build_loki_push
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")


def test_push_body() -> None:
    body = build_loki_push(SAMPLE, LokiConfig(url="http://loki:3100", extra_labels={"cluster": "eu"},
                                              structured_metadata=True), CTX)  # fmt: skip
    [stream] = body["streams"]
    assert stream["stream"] == {"job": "lanner", "host": "node-1", "priority": "Error", "source": "syscall",
                                "rule": "Write below etc", "cluster": "eu"}  # fmt: skip
    [[ts, line, meta]] = stream["values"]
    assert ts == "1718000011726060287" and json.loads(line)["output_fields"]["proc.pid"] == 4242
    assert meta["alert_id"] == "a1b2c3" and len(meta["dedup_key"]) == 64
    with pytest.raises(ValueError, match="extra_labels"):
        LokiConfig(url="http://l", extra_labels={"a.b": "x"})


def _check(req: Request) -> tuple[list[str], int, object]:
    """POST /loki/api/v1/push, JSON (grafana.com/docs/loki/latest/reference/loki-http-api)."""
    problems: list[str] = []
    if not req.headers.get("Content-Type", "").startswith("application/json"):
        problems.append("Content-Type")
    if req.headers.get("X-Scope-OrgID") != "team-a":
        problems.append("X-Scope-OrgID")
    for s in require(req.json(), "streams", list, problems) or []:
        labels = require(s, "stream", dict, problems) or {}
        if not all(isinstance(v, str) for v in labels.values()):
            problems.append("stream labels must be strings")
        for v in require(s, "values", list, problems) or []:
            if not (isinstance(v, list) and 2 <= len(v) <= 3 and isinstance(v[0], str) and v[0].isdigit()
                    and isinstance(v[1], str)):  # fmt: skip
                problems.append(f'value: expected ["<unix ns>", "<line>"], got {v!r}'[:200])
    return problems, 204, None


@pytest.mark.integration
async def test_pushed_through_dispatcher(fake_api: FakeApi, redis_url: str, bind: str) -> None:
    fake_api.route("POST", "/loki/api/v1/push", _check)
    cfg = base_config(redis_url, bind, outputs={"loki": {"url": fake_api.base, "tenant_id": "team-a"}})
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), make_alert(1)])])
        await wait_for(lambda: len(fake_api.accepted) == 2)
    assert not fake_api.refused
