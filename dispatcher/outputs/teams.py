# SPDX-License-Identifier: Apache-2.0
"""``teams``: post each alert to a Microsoft Teams channel through a Workflows webhook, as an Adaptive Card.

Microsoft retired the Office 365 connectors (``*.webhook.office.com``); Workflows ("When a Teams webhook request
is received") accept Adaptive Cards only, wrapped in a ``message`` envelope. The card has the title, the alert
text, and a FactSet (priority, host, source, time, tags, the telling output fields). Teams refuses messages over
about 28 KB, so the card is kept under 20 KB by shortening the alert text first. The URL carries its secret in
``sig=``: set it from the environment, it is never logged whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert, Priority
from dispatcher.outputs._chat import DEFAULT_FIELDS, body_text, facts, title
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import clip
from dispatcher.tls import TlsSettings

MAX_CARD_BYTES = 20_000
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
# Adaptive Card text colours by priority.
COLOR = {Priority.EMERGENCY: "attention", Priority.ALERT: "attention", Priority.CRITICAL: "attention",
         Priority.ERROR: "attention", Priority.WARNING: "warning"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TeamsConfig(HttpSettings):
    """Settings of the teams output, plus the shared HTTP transport keys."""

    # The Workflows webhook URL (https://...logic.azure.com/... or ...powerplatform.com/...; a secret).
    webhook_url: str = ""
    fields: tuple[str, ...] = DEFAULT_FIELDS
    # Optional button linking to a console or runbook.
    link_url: str = ""
    link_title: str = "Open"

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url: expected the https:// URL of a Teams Workflows webhook")
        if "webhook.office.com" in self.webhook_url:
            raise ValueError(
                "webhook_url: Office 365 connector URLs (webhook.office.com) are retired; create a Workflows "
                "webhook ('When a Teams webhook request is received') and use its URL"
            )


def build_teams_message(alert: Alert, cfg: TeamsConfig, ctx: OutputContext, text_limit: int = 8000) -> dict[str, Any]:
    """The webhook body: a ``message`` with one Adaptive Card attachment."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": clip(title(alert, ctx), 300), "weight": "Bolder", "size": "Medium",
         "wrap": True, "color": COLOR.get(alert.priority, "default")},
        {"type": "TextBlock", "text": clip(body_text(alert), text_limit), "wrap": True, "fontType": "Monospace"},
        {"type": "FactSet",
         "facts": [{"title": clip(k, 100), "value": clip(v, 500)} for k, v in facts(alert, ctx, cfg.fields)]},
    ]  # fmt: skip
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if cfg.link_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": cfg.link_title, "url": cfg.link_url}]
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE, "contentUrl": None, "content": card}]}


def encode_teams_message(alert: Alert, cfg: TeamsConfig, ctx: OutputContext) -> bytes:
    """The serialized body, under ``MAX_CARD_BYTES`` (the alert text is shortened until it fits)."""
    limit = 8000
    while True:
        body = json.dumps(build_teams_message(alert, cfg, ctx, limit), ensure_ascii=False).encode()
        if len(body) <= MAX_CARD_BYTES or limit <= 200:
            return body
        limit //= 2


@register_output("teams")
class TeamsOutput:
    """Posts alert cards to a Teams Workflows webhook."""

    Config: ClassVar[type[TeamsConfig]] = TeamsConfig
    DRIVER_DEFAULTS: ClassVar[dict[str, Any]] = {"rate_limit": 1.0, "burst": 4.0}

    def __init__(self, config: TeamsConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Post the card; the Workflows trigger answers 202 (or 200)."""
        await self._client.post(self.config.webhook_url, encode_teams_message(alert, self.config, self.ctx),
                                "application/json")  # fmt: skip

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
