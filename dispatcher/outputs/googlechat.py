# SPDX-License-Identifier: Apache-2.0
"""``googlechat``: post each alert to a Google Chat space through an incoming webhook, as a card.

``POST <webhook_url>`` (``https://chat.googleapis.com/v1/spaces/<space>/messages?key=...&token=...``) with a
``text`` fallback and one ``cardsV2`` card: header (rule, host), the alert text, and one ``decoratedText`` per
fact. Card text understands a little HTML, so alert text is HTML-escaped. With ``thread_by_incident`` (default)
the incident key is the ``threadKey`` and repeats of one problem land in one thread
(``messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD``). A space takes about one message per second.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.identity import incident_key
from dispatcher.model import Alert
from dispatcher.outputs._chat import DEFAULT_FIELDS, body_text, facts, title
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import clip
from dispatcher.tls import TlsSettings

# A message is limited to 32,000 bytes; the text widget gets most of a safe budget.
MAX_TEXT = 8000


@dataclass(frozen=True, slots=True)
class GoogleChatConfig(HttpSettings):
    """Settings of the googlechat output, plus the shared HTTP transport keys."""

    # The space's incoming webhook URL, key and token included (a secret).
    webhook_url: str = ""
    thread_by_incident: bool = True
    fields: tuple[str, ...] = DEFAULT_FIELDS

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url: expected the https:// URL of a Google Chat incoming webhook")


def build_googlechat_message(alert: Alert, cfg: GoogleChatConfig, ctx: OutputContext) -> dict[str, Any]:
    """The message body."""
    widgets: list[dict[str, Any]] = [
        {"textParagraph": {"text": "<pre>" + html.escape(clip(body_text(alert), MAX_TEXT)) + "</pre>"}}
    ]
    for k, v in facts(alert, ctx, cfg.fields):
        widgets.append({"decoratedText": {"topLabel": html.escape(clip(k, 100)), "text": html.escape(clip(v, 500))}})
    card = {
        "header": {"title": clip(alert.rule, 200), "subtitle": clip(f"{alert.priority.falco_name} on "
                                                                    f"{alert.hostname or ctx.hostname}", 200)},
        "sections": [{"widgets": widgets}],
    }  # fmt: skip
    message: dict[str, Any] = {"text": clip(title(alert, ctx), 4000), "cardsV2": [{"cardId": "lanner-alert",
                                                                                    "card": card}]}  # fmt: skip
    if cfg.thread_by_incident:
        message["thread"] = {"threadKey": incident_key(alert)}
    return message


@register_output("googlechat")
class GoogleChatOutput:
    """Posts alert cards to a Google Chat incoming webhook."""

    Config: ClassVar[type[GoogleChatConfig]] = GoogleChatConfig
    DRIVER_DEFAULTS: ClassVar[dict[str, Any]] = {"rate_limit": 1.0, "burst": 5.0}

    def __init__(self, config: GoogleChatConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)
        self._url = config.webhook_url
        if config.thread_by_incident:
            sep = "&" if "?" in self._url else "?"
            self._url += sep + urlencode({"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"})

    async def send(self, alert: Alert) -> None:
        """Post the message (200 with the created message)."""
        body = json.dumps(build_googlechat_message(alert, self.config, self.ctx), ensure_ascii=False).encode()
        await self._client.post(self._url, body, "application/json; charset=UTF-8")

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
