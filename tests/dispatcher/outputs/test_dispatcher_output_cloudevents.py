# SPDX-License-Identifier: Apache-2.0
"""cloudevents output: CloudEvents 1.0 HTTP binding, structured and binary content modes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from dispatcher_testlib import base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request
from outputs_testlib import SAMPLE

from dispatcher.identity import incident_key
from dispatcher.outputs.cloudevents import CloudEventsConfig, build_cloudevent, encode_request, event_id
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")
REQUIRED = ("specversion", "id", "source", "type")


def test_event_attributes() -> None:
    ev = build_cloudevent(SAMPLE, CloudEventsConfig(url="http://x"), CTX)
    assert {k: ev[k] for k in REQUIRED} == {"specversion": "1.0", "id": "a1b2c3", "source": "/lanner/dispatcher",
                                            "type": "dev.lanner.alert.v1"}  # fmt: skip
    assert ev["time"] == "2024-06-10T06:13:31.726060287Z" and ev["subject"] == "Write below etc"
    assert ev["priority"] == "error" and ev["dedupkey"] == incident_key(SAMPLE)
    assert ev["data"]["output_fields"]["fd.name"] == "/etc/passwd"
    # An id that is not a header-safe token travels as its hash.
    assert event_id(replace(SAMPLE, alert_id="a b\r\nc")).startswith("sha256-")


def test_binary_mode_headers_carry_no_alert_text() -> None:
    body, ctype, headers = encode_request(SAMPLE, CloudEventsConfig(url="http://x", mode="binary"), CTX)
    assert ctype == "application/json" and json.loads(body)["rule"] == "Write below etc"
    assert headers["ce-specversion"] == "1.0" and headers["ce-id"] == "a1b2c3"
    assert "ce-subject" not in headers and not any("Write" in v for v in headers.values())
    with pytest.raises(ValueError, match="mode"):
        CloudEventsConfig(url="http://x", mode="batch")


def _check(req: Request) -> tuple[list[str], int, object]:
    """HTTP protocol binding 1.0: structured (application/cloudevents+json) or binary (ce-* headers)."""
    problems: list[str] = []
    ctype = req.headers.get("Content-Type", "")
    if ctype.startswith("application/cloudevents+json"):
        ev = req.json()
        attrs = {k: ev.get(k) for k in REQUIRED}
        if "data" not in ev:
            problems.append("data missing")
    else:
        attrs = {k: req.headers.get(f"ce-{k}") for k in REQUIRED}
        req.json()
    problems += [f"{k}: missing" for k, v in attrs.items() if not v]
    if attrs.get("specversion") not in (None, "1.0"):
        problems.append("specversion")
    return problems, 202, None


@pytest.mark.integration
async def test_both_modes_through_dispatcher(fake_api: FakeApi, redis_url: str, bind: str) -> None:
    fake_api.route("POST", "/events", _check)
    outputs = {"cloudevents": {"url": f"{fake_api.base}/events"},
               "cloudevents:bin": {"url": f"{fake_api.base}/events", "mode": "binary"}}  # fmt: skip
    cfg = base_config(redis_url, bind, outputs=outputs)
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0)])])
        await wait_for(lambda: len(fake_api.accepted) == 2)
    assert not fake_api.refused
    ids = {r.json()["id"] if "cloudevents" in r.headers["Content-Type"] else r.headers["ce-id"]
           for r in fake_api.accepted}  # fmt: skip
    assert ids == {"alert-0"}
