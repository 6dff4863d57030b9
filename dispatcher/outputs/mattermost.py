# SPDX-License-Identifier: Apache-2.0
"""``mattermost``: post each alert to a Mattermost incoming webhook, as a message with one attachment.

The attachment (Mattermost's Slack-compatible format) has a colour by priority, the rule as title, the alert text
in a code block, and short fields. Alert text sits only in code blocks and fields, where Mattermost does not
expand ``@channel``/``@all`` mentions or links, so an alert cannot page a whole channel or forge a link.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.outputs._chat import COLOR, DEFAULT_FIELDS, body_text, facts, title
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import clip
from dispatcher.tls import TlsSettings

# Mattermost accepts 16383 characters per post; keep the code block well inside that.
MAX_TEXT = 12000


@dataclass(frozen=True, slots=True)
class MattermostConfig(HttpSettings):
    """Settings of the mattermost output, plus the shared HTTP transport keys."""

    # https://<server>/hooks/<id> (a secret).
    webhook_url: str = ""
    # Override the webhook's channel, user name and icon (when the server allows it).
    channel: str = ""
    username: str = "Lanner"
    icon_url: str = ""
    fields: tuple[str, ...] = DEFAULT_FIELDS

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url: expected the https:// URL of a Mattermost incoming webhook")


def code_block(text: str) -> str:
    """A fenced code block no alert text can close early."""
    return "```\n" + text.replace("```", "`\u200b``") + "\n```"


def build_mattermost_payload(alert: Alert, cfg: MattermostConfig, ctx: OutputContext) -> dict[str, Any]:
    """The webhook body."""
    head = title(alert, ctx)
    attachment = {
        "fallback": clip(head, 300),
        "color": f"#{COLOR[alert.priority]:06x}",
        "title": clip(alert.rule, 300),
        "text": code_block(clip(body_text(alert), MAX_TEXT)),
        "fields": [{"short": True, "title": clip(k, 100), "value": code_block(clip(v, 500))}
                   for k, v in facts(alert, ctx, cfg.fields)],
        "footer": "Lanner",
    }  # fmt: skip
    payload: dict[str, Any] = {"username": cfg.username, "attachments": [attachment]}
    if cfg.channel:
        payload["channel"] = cfg.channel
    if cfg.icon_url:
        payload["icon_url"] = cfg.icon_url
    return payload


@register_output("mattermost")
class MattermostOutput:
    """Posts alerts to a Mattermost incoming webhook (200 "ok")."""

    Config: ClassVar[type[MattermostConfig]] = MattermostConfig

    def __init__(self, config: MattermostConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Post the message."""
        body = json.dumps(build_mattermost_payload(alert, self.config, self.ctx), ensure_ascii=False).encode()
        await self._client.post(self.config.webhook_url, body, "application/json")

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
