# SPDX-License-Identifier: Apache-2.0
"""``discord``: post each alert to a Discord channel webhook as an embed.

``POST <webhook_url>`` with ``content`` (the title) and one embed: the rule, the alert text in a code block, a
colour by priority, inline fields, and the event time. ``allowed_mentions: {"parse": []}`` is always sent, so
``@everyone`` or a role mention inside an alert never pings anyone. Discord's limits are applied: content 2000,
title 256, description 4096, 25 fields of 256/1024, 6000 characters per embed. Webhooks allow about 5 requests
per 2 s, so the output asks the driver for ``rate_limit: 2``; 429 answers carry Retry-After, which is honoured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.falco_format import rfc3339_ns
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.outputs._chat import COLOR, DEFAULT_FIELDS, body_text, facts, title
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import clip
from dispatcher.tls import TlsSettings


@dataclass(frozen=True, slots=True)
class DiscordConfig(HttpSettings):
    """Settings of the discord output, plus the shared HTTP transport keys."""

    # https://discord.com/api/webhooks/<id>/<token> (a secret).
    webhook_url: str = ""
    username: str = "Lanner"
    avatar_url: str = ""
    fields: tuple[str, ...] = DEFAULT_FIELDS

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url: expected the https:// URL of a Discord webhook")


def build_discord_payload(alert: Alert, cfg: DiscordConfig, ctx: OutputContext) -> dict[str, Any]:
    """The webhook body; every embed stays within Discord's 6000-character total."""
    text = body_text(alert).replace("```", "`\u200b``")
    embed: dict[str, Any] = {
        "title": clip(alert.rule, 256),
        "description": "```\n" + clip(text, 3000) + "\n```",
        "color": COLOR[alert.priority],
        "fields": [{"name": clip(k, 64), "value": clip(v, 200), "inline": True}
                   for k, v in facts(alert, ctx, cfg.fields)],
        "timestamp": rfc3339_ns(alert.time_ns)[:23] + "Z",
        "footer": {"text": "Lanner"},
    }  # fmt: skip
    payload: dict[str, Any] = {
        "content": clip(title(alert, ctx), 2000),
        "username": cfg.username,
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }
    if cfg.avatar_url:
        payload["avatar_url"] = cfg.avatar_url
    return payload


@register_output("discord")
class DiscordOutput:
    """Posts alert embeds to a Discord webhook (204 No Content)."""

    Config: ClassVar[type[DiscordConfig]] = DiscordConfig
    DRIVER_DEFAULTS: ClassVar[dict[str, Any]] = {"rate_limit": 2.0, "burst": 5.0}

    def __init__(self, config: DiscordConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Post the embed."""
        body = json.dumps(build_discord_payload(alert, self.config, self.ctx), ensure_ascii=False).encode()
        await self._client.post(self.config.webhook_url, body, "application/json")

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
