# SPDX-License-Identifier: Apache-2.0
"""mattermost, discord and googlechat outputs: documented webhook payloads, limits, and mention/markup safety."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dispatcher_testlib import base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request, require
from outputs_testlib import SAMPLE

from dispatcher.identity import incident_key
from dispatcher.outputs.discord import DiscordConfig, build_discord_payload
from dispatcher.outputs.googlechat import GoogleChatConfig, build_googlechat_message
from dispatcher.outputs.mattermost import MattermostConfig, build_mattermost_payload
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")
HOSTILE = replace(SAMPLE, output="@everyone @channel <b>x</b> ``` [click](http://evil) " + "z" * 10_000)


def test_mattermost_payload() -> None:
    p = build_mattermost_payload(SAMPLE, MattermostConfig(webhook_url="https://mm/hooks/x", channel="sec"), CTX)
    [att] = p["attachments"]
    assert p["channel"] == "sec" and p["username"] == "Lanner" and att["color"] == "#ff4500"
    assert att["title"] == "Write below etc" and att["text"] == f"```\n{SAMPLE.output}\n```"
    assert {"short": True, "title": "Host", "value": "```\nnode-1\n```"} in att["fields"]
    # Alert text stays inside its code block: a ``` in it cannot close the block.
    text = build_mattermost_payload(HOSTILE, MattermostConfig(webhook_url="https://mm/hooks/x"), CTX)
    body = text["attachments"][0]["text"]
    assert body.count("```") == 2 and body.startswith("```\n@everyone")


def test_discord_payload() -> None:
    p = build_discord_payload(HOSTILE, DiscordConfig(webhook_url="https://discord.com/api/webhooks/1/t"), CTX)
    assert p["allowed_mentions"] == {"parse": []}
    [embed] = p["embeds"]
    assert embed["title"] == "Write below etc" and embed["color"] == 0xFF4500
    assert embed["timestamp"] == "2024-06-10T06:13:31.726Z"
    assert len(embed["description"]) <= 4096 and embed["description"].count("```") == 2
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"]) + sum(
        len(f["name"]) + len(f["value"]) for f in embed["fields"])  # fmt: skip
    assert total <= 6000 and len(embed["fields"]) <= 25


def test_googlechat_message() -> None:
    m = build_googlechat_message(HOSTILE, GoogleChatConfig(webhook_url="https://chat.googleapis.com/v1/spaces/A/messages"),
                                 CTX)  # fmt: skip
    assert m["thread"] == {"threadKey": incident_key(HOSTILE)}
    card = m["cardsV2"][0]["card"]
    assert card["header"]["title"] == "Write below etc"
    text = card["sections"][0]["widgets"][0]["textParagraph"]["text"]
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text and text.startswith("<pre>")


def _mattermost(req: Request) -> tuple[list[str], int, object]:
    """Incoming webhook: text or attachments required (developers.mattermost.com, incoming webhooks)."""
    problems: list[str] = []
    body = req.json()
    for att in require(body, "attachments", list, problems) or []:
        require(att, "fallback", str, problems)
        for f in att.get("fields", []):
            require(f, "title", str, problems)
            require(f, "value", str, problems)
            require(f, "short", bool, problems)
    return problems, 200, "ok"


def _discord(req: Request) -> tuple[list[str], int, object]:
    """Execute Webhook (discord.com/developers/docs/resources/webhook): content or embeds, embed limits."""
    problems: list[str] = []
    body = req.json()
    require(body, "content", str, problems, 2000)
    for embed in require(body, "embeds", list, problems) or []:
        require(embed, "title", str, problems, 256)
        require(embed, "description", str, problems, 4096)
        for f in (require(embed, "fields", list, problems) or [])[:26]:
            require(f, "name", str, problems, 256)
            require(f, "value", str, problems, 1024)
    if body.get("allowed_mentions") != {"parse": []}:
        problems.append("allowed_mentions: must not parse mentions from alert text")
    return problems, 204, None


def _googlechat(req: Request) -> tuple[list[str], int, object]:
    """spaces.messages.create through an incoming webhook (developers.google.com/workspace/chat)."""
    problems: list[str] = []
    if "key" not in req.query or "token" not in req.query:
        problems.append("webhook key/token query parameters lost")
    if req.query.get("messageReplyOption") != "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD":
        problems.append("messageReplyOption")
    body = req.json()
    require(body, "text", str, problems, 4096)
    for c in require(body, "cardsV2", list, problems) or []:
        require(c, "cardId", str, problems)
        card = require(c, "card", dict, problems) or {}
        require(card, "header", dict, problems)
        require(card, "sections", list, problems)
    require(require(body, "thread", dict, problems), "threadKey", str, problems)
    return problems, 200, {"name": "spaces/A/messages/1"}


@pytest.mark.integration
async def test_chat_outputs_through_dispatcher(fake_api: FakeApi, redis_url: str, bind: str) -> None:
    fake_api.route("POST", "/hooks/mm", _mattermost)
    fake_api.route("POST", "/api/webhooks/1/tok", _discord)
    fake_api.route("POST", "/v1/spaces/A/messages", _googlechat)
    outputs = {
        "mattermost": {"webhook_url": f"{fake_api.base}/hooks/mm"},
        "discord": {"webhook_url": f"{fake_api.base}/api/webhooks/1/tok", "rate_limit": 0},
        "googlechat": {"webhook_url": f"{fake_api.base}/v1/spaces/A/messages?key=k&token=t", "rate_limit": 0},
    }
    cfg = base_config(redis_url, bind, outputs=outputs)
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), make_alert(1)])])
        await wait_for(lambda: len(fake_api.accepted) == 6)
    assert not fake_api.refused
