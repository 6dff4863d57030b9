# SPDX-License-Identifier: Apache-2.0
"""teams output: a Workflows webhook message with one Adaptive Card, checked against the documented envelope."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from dispatcher_testlib import base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request, require
from outputs_testlib import SAMPLE

from dispatcher.outputs.teams import ADAPTIVE, MAX_CARD_BYTES, TeamsConfig, build_teams_message, encode_teams_message
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")
URL = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=secret"


def test_card() -> None:
    msg = build_teams_message(SAMPLE, TeamsConfig(webhook_url=URL, link_url="https://console/x"), CTX)
    [att] = msg["attachments"]
    assert msg["type"] == "message" and att["contentType"] == ADAPTIVE and att["contentUrl"] is None
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "Error: Write below etc on node-1" and card["body"][0]["color"] == "attention"
    assert card["body"][1]["text"] == SAMPLE.output
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Priority"] == "Error" and facts["k8s.ns.name"] == "prod" and facts["container.name"] == "web"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open", "url": "https://console/x"}]


def test_size_budget_and_retired_urls() -> None:
    huge = replace(SAMPLE, output="x" * 100_000)
    body = encode_teams_message(huge, TeamsConfig(webhook_url=URL), CTX)
    assert len(body) <= MAX_CARD_BYTES and json.loads(body)["type"] == "message"
    with pytest.raises(ValueError, match="retired"):
        TeamsConfig(webhook_url="https://contoso.webhook.office.com/webhookb2/x")


def _check(req: Request) -> tuple[list[str], int, object]:
    """The Workflows trigger: a message envelope whose attachments are Adaptive Cards (msteams-docs)."""
    problems: list[str] = []
    body = req.json()
    if body.get("type") != "message":
        problems.append("type: must be message")
    for att in require(body, "attachments", list, problems) or []:
        if att.get("contentType") != ADAPTIVE:
            problems.append("contentType")
        card = require(att, "content", dict, problems) or {}
        if card.get("type") != "AdaptiveCard" or not card.get("version"):
            problems.append("content: not an Adaptive Card")
        for el in card.get("body", []):
            if el.get("type") not in ("TextBlock", "FactSet"):
                problems.append(f"unexpected element {el.get('type')}")
    if len(req.body) > 28_000:
        problems.append("Request Entity too large")
    return problems, 202, None


@pytest.mark.integration
async def test_delivered_through_dispatcher(fake_api: FakeApi, redis_url: str, bind: str) -> None:
    fake_api.route("POST", "/workflows/abc/triggers/manual/paths/invoke", _check)
    url = f"{fake_api.base}/workflows/abc/triggers/manual/paths/invoke?sig=secret"
    cfg = base_config(redis_url, bind, outputs={"teams": {"webhook_url": url, "rate_limit": 0}})
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), make_alert(1)])])
        await wait_for(lambda: len(fake_api.accepted) == 2)
    assert not fake_api.refused and fake_api.accepted[0].query["sig"] == "secret"
