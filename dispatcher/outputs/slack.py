# SPDX-License-Identifier: Apache-2.0
"""``slack``: post each alert to a Slack incoming webhook as a Block Kit message.

The message has a header (the rule), the alert text in a code block, fields for priority, host, source and the
most telling output fields, and a context line with the time and tags. ``text`` carries a plain fallback for
notifications. Slack allows about one message per second per webhook, so the output asks the driver for
``rate_limit: 1`` unless configured otherwise; 429 responses with Retry-After are honoured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.falco_format import rfc3339_ns, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.tls import TlsSettings

# Block Kit limits (section text 3000 chars, at most 10 fields of 2000 chars, header 150 chars).
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_HEADER = 150
# Output fields worth a field of their own, in this order, when the alert has them.
DEFAULT_FIELDS = (
    "container.name", "container.image.repository", "k8s.ns.name", "k8s.pod.name", "proc.name", "proc.cmdline",
    "user.name", "fd.name",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SlackConfig(HttpSettings):
    """Settings of the slack output, plus the shared HTTP transport keys (``headers``, ``ca_cert``...)."""

    # The incoming webhook URL (a secret: set it with LANNER_DISPATCHER__OUTPUTS__SLACK__WEBHOOK_URL).
    webhook_url: str = ""
    # Output fields shown as message fields, when present.
    fields: tuple[str, ...] = DEFAULT_FIELDS

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.webhook_url.startswith("https://") and not self.webhook_url.startswith("http://"):
            raise ValueError("webhook_url: expected the https:// URL of a Slack incoming webhook")


def _escape(text: str) -> str:
    # Slack mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_slack_payload(alert: Alert, cfg: SlackConfig, ctx: OutputContext) -> dict[str, Any]:
    """The webhook body for an alert."""
    host = alert.hostname or ctx.hostname
    summary = f"{alert.priority.falco_name}: {alert.rule} on {host}"
    code = "```" + _cut(_escape(text_line(alert)), MAX_SECTION - 6) + "```"
    facts = [("Priority", alert.priority.falco_name), ("Host", host), ("Source", alert.source)]
    for name in cfg.fields:
        value = alert.output_fields.get(name)
        if value is not None and value != "" and len(facts) < MAX_FIELDS:
            facts.append((name, str(value)))
    fields = [{"type": "mrkdwn", "text": _cut(f"*{_escape(k)}*\n{_escape(v)}", MAX_FIELD)} for k, v in facts]
    context = f"{rfc3339_ns(alert.time_ns)}"
    if alert.tags:
        context += " · " + ", ".join(sorted(set(alert.tags)))
    return {
        "text": _cut(summary, 4000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(alert.rule, MAX_HEADER)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": code}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_escape(context), MAX_FIELD)}]},
        ],
    }


@register_output("slack")
class SlackOutput:
    """Posts alerts to a Slack incoming webhook."""

    Config: ClassVar[type[SlackConfig]] = SlackConfig
    DRIVER_DEFAULTS: ClassVar[dict[str, Any]] = {"rate_limit": 1.0, "burst": 5.0}

    def __init__(self, config: SlackConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Post the message; Slack answers 200 "ok" on success."""
        body = json.dumps(build_slack_payload(alert, self.config, self.ctx), ensure_ascii=False).encode()
        await self._client.post(self.config.webhook_url, body, "application/json")

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
