# SPDX-License-Identifier: Apache-2.0
"""``pagerduty``: trigger PagerDuty incidents through the Events API v2.

Each alert is a ``trigger`` event. Its ``dedup_key`` is the alert's incident key (rule plus host, container or
pod, executable), so repeats of one problem update the open PagerDuty alert instead of paging again. Severity
follows the Falco priority: emergency/alert/critical -> critical, error -> error, warning -> warning, the rest
-> info.

With ``resolve_after_s`` set, an incident whose alert has not repeated for that long is resolved with a
``resolve`` event carrying the same ``dedup_key`` and ``routing_key`` (``dispatcher.lifecycle``; the open
incidents are kept in Redis, so a restart does not forget them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.falco_format import json_default, rfc3339_ns, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.identity import incident_key
from dispatcher.lifecycle import QuietResolver
from dispatcher.model import Alert, Priority
from dispatcher.registry import OutputContext, register_output
from dispatcher.tls import TlsSettings

US_ENDPOINT = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024
MAX_BODY = 512 * 1024
SEVERITY = {
    Priority.EMERGENCY: "critical",
    Priority.ALERT: "critical",
    Priority.CRITICAL: "critical",
    Priority.ERROR: "error",
    Priority.WARNING: "warning",
    Priority.NOTICE: "info",
    Priority.INFORMATIONAL: "info",
    Priority.DEBUG: "info",
}


@dataclass(frozen=True, slots=True)
class PagerDutyConfig(HttpSettings):
    """Settings of the pagerduty output, plus the shared HTTP transport keys."""

    # The 32-character Events API v2 integration key (a secret: set it from the environment).
    routing_key: str = ""
    # EU accounts must use https://events.eu.pagerduty.com/v2/enqueue.
    url: str = US_ENDPOINT
    client: str = "Lanner"
    client_url: str = ""
    # Resolve an incident after this many seconds without a repeat; 0 never resolves (PagerDuty users do).
    resolve_after_s: float = 0.0

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if self.resolve_after_s < 0:
            raise ValueError("resolve_after_s: must not be negative (0 turns auto-resolve off)")
        if len(self.routing_key) != 32:
            raise ValueError("routing_key: expected the 32-character Events API v2 integration key")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url: expected an https:// URL, got {self.url!r}")


def _first(alert: Alert, *names: str) -> str:
    for name in names:
        value = alert.output_fields.get(name)
        if value is not None and value != "":
            return str(value)
    return ""


def build_pagerduty_event(alert: Alert, cfg: PagerDutyConfig, ctx: OutputContext) -> dict[str, Any]:
    """The Events API v2 trigger event for an alert."""
    host = alert.hostname or ctx.hostname
    text = alert.message or text_line(alert)
    summary = f"{alert.rule}: {text}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    payload: dict[str, Any] = {
        "summary": summary,
        "source": host or "unknown",
        "severity": SEVERITY[alert.priority],
        # Milliseconds, as PagerDuty's own examples: the full nanoseconds stay in custom_details.
        "timestamp": rfc3339_ns(alert.time_ns)[:23] + "Z",
        "class": alert.rule,
        "custom_details": {
            "priority": alert.priority.falco_name,
            "source": alert.source,
            "tags": sorted(set(alert.tags)),
            "output": text_line(alert),
            "output_fields": dict(alert.output_fields),
            "time": rfc3339_ns(alert.time_ns),
        },
    }
    component = _first(alert, "container.image.repository", "proc.name")
    if component:
        payload["component"] = component
    group = _first(alert, "k8s.ns.name", "k8s.cluster.name")
    if group:
        payload["group"] = group
    event: dict[str, Any] = {
        "routing_key": cfg.routing_key,
        "event_action": "trigger",
        "dedup_key": incident_key(alert),
        "payload": payload,
        "client": cfg.client,
    }
    if cfg.client_url:
        event["client_url"] = cfg.client_url
    return event


def build_resolve_event(dedup_key: str, cfg: PagerDutyConfig) -> dict[str, Any]:
    """The Events API v2 resolve event for an open incident."""
    return {"routing_key": cfg.routing_key, "event_action": "resolve", "dedup_key": dedup_key}


def encode_event(event: dict[str, Any]) -> bytes:
    """Serialise the event; if it is over PagerDuty's 512 KB limit, drop the output fields from the details."""
    body = json.dumps(event, ensure_ascii=False, default=json_default).encode()
    if len(body) > MAX_BODY:
        event["payload"]["custom_details"]["output_fields"] = "(omitted: event over 512 KB)"
        body = json.dumps(event, ensure_ascii=False, default=json_default).encode()
    return body


@register_output("pagerduty")
class PagerDutyOutput:
    """Sends trigger events; PagerDuty answers 202 when it accepted one."""

    Config: ClassVar[type[PagerDutyConfig]] = PagerDutyConfig
    # About 120 events per minute per integration key.
    DRIVER_DEFAULTS: ClassVar[dict[str, Any]] = {"rate_limit": 2.0, "burst": 10.0}

    def __init__(self, config: PagerDutyConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)
        self.resolver: QuietResolver | None = None
        if config.resolve_after_s > 0:
            key = f"{ctx.state_prefix}pagerduty:{hashlib.sha256(config.routing_key.encode()).hexdigest()[:16]}"
            self.resolver = QuietResolver(ctx.redis_url, key, config.resolve_after_s, self._resolve, output="pagerduty")

    async def send(self, alert: Alert) -> None:
        """Post the trigger event (and remember the incident when auto-resolve is on)."""
        event = build_pagerduty_event(alert, self.config, self.ctx)
        await self._client.post(self.config.url, encode_event(event), "application/json")
        if self.resolver is not None:
            await self.resolver.touch(event["dedup_key"])

    async def _resolve(self, dedup_key: str) -> None:
        body = json.dumps(build_resolve_event(dedup_key, self.config)).encode()
        await self._client.post(self.config.url, body, "application/json")

    async def run(self) -> None:
        """Resolve quiet incidents (only with ``resolve_after_s``)."""
        if self.resolver is not None:
            await self.resolver.run()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
        if self.resolver is not None:
            await self.resolver.close()
