# SPDX-License-Identifier: Apache-2.0
"""``opsgenie``: create Opsgenie alerts through the Alert API v2, deduplicated by alias, closed when quiet.

Each alert is ``POST /v2/alerts`` with ``Authorization: GenieKey <api_key>``. The ``alias`` is the alert's
incident key (rule plus host, container or pod, executable), so repeats of one problem raise the count of the open
Opsgenie alert instead of opening new ones. Priorities: emergency/alert -> P1, critical -> P2, error/warning ->
P3, notice -> P4, informational/debug -> P5. With ``close_after_s`` set, an alert quiet for that long is closed
with ``POST /v2/alerts/<alias>/close?identifierType=alias``. Opsgenie answers 202 for both (it processes them
asynchronously).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from dispatcher.falco_format import json_default, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.identity import incident_key
from dispatcher.lifecycle import QuietResolver
from dispatcher.model import Alert, Priority
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import clip
from dispatcher.tls import TlsSettings

PRIORITY = {
    Priority.EMERGENCY: "P1", Priority.ALERT: "P1", Priority.CRITICAL: "P2", Priority.ERROR: "P3",
    Priority.WARNING: "P3", Priority.NOTICE: "P4", Priority.INFORMATIONAL: "P5", Priority.DEBUG: "P5",
}  # fmt: skip
# Documented field limits (docs.opsgenie.com, alert-api field table).
MAX_MESSAGE, MAX_DESCRIPTION, MAX_DETAILS, MAX_ENTITY, MAX_SOURCE = 130, 15000, 8000, 512, 100
MAX_TAGS, MAX_TAG = 20, 50


@dataclass(frozen=True, slots=True)
class OpsgenieConfig(HttpSettings):
    """Settings of the opsgenie output, plus the shared HTTP transport keys."""

    # The API integration's key (a secret: set it from the environment); it decides the team.
    api_key: str = ""
    # EU accounts: https://api.eu.opsgenie.com
    url: str = "https://api.opsgenie.com"
    # Close an alert after this many seconds without a repeat; 0 never closes.
    close_after_s: float = 0.0
    # Extra responders, e.g. [{type: team, name: SRE}] (the integration's team gets it anyway).
    responders: tuple[Mapping[str, str], ...] = ()
    source: str = "lanner"

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.api_key:
            raise ValueError("api_key: the API integration key is required")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url: expected an https:// URL, got {self.url!r}")
        if self.close_after_s < 0:
            raise ValueError("close_after_s: must not be negative (0 turns auto-close off)")
        for r in self.responders:
            if r.get("type") not in ("team", "user", "escalation", "schedule"):
                raise ValueError("responders: each needs type team, user, escalation or schedule")


def _details(alert: Alert) -> dict[str, str]:
    """Output fields as strings, within the 8000-character budget for keys and values together."""
    out = {"priority": alert.priority.falco_name, "source": alert.source}
    used = sum(len(k) + len(v) for k, v in out.items())
    for name in sorted(alert.output_fields):
        value = alert.output_fields[name]
        text = value if isinstance(value, str) else json.dumps(value, default=json_default, ensure_ascii=False)
        room = MAX_DETAILS - used - len(name)
        if room <= 1:
            break
        out[name] = clip(text, room)
        used += len(name) + len(out[name])
    return out


def build_opsgenie_alert(alert: Alert, cfg: OpsgenieConfig, ctx: OutputContext) -> dict[str, Any]:
    """The create-alert request body."""
    host = alert.hostname or ctx.hostname
    container = alert.output_fields.get("container.name") or alert.output_fields.get("container.id")
    body: dict[str, Any] = {
        "message": clip(f"{alert.rule} on {host}", MAX_MESSAGE),
        "alias": incident_key(alert),
        "description": clip(text_line(alert), MAX_DESCRIPTION),
        "tags": [clip(t, MAX_TAG) for t in sorted(set(alert.tags))][:MAX_TAGS],
        "details": _details(alert),
        "entity": clip(f"{host}/{container}" if container else host, MAX_ENTITY),
        "source": clip(cfg.source, MAX_SOURCE),
        "priority": PRIORITY[alert.priority],
    }
    if cfg.responders:
        body["responders"] = [dict(r) for r in cfg.responders]
    return body


def build_opsgenie_close(cfg: OpsgenieConfig) -> dict[str, str]:
    """The close request body."""
    return {"source": clip(cfg.source, MAX_SOURCE), "note": "No repeat within the quiet period; closed by Lanner."}


@register_output("opsgenie")
class OpsgenieOutput:
    """Creates (and optionally closes) Opsgenie alerts."""

    Config: ClassVar[type[OpsgenieConfig]] = OpsgenieConfig

    def __init__(self, config: OpsgenieConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._base = config.url.rstrip("/") + "/v2/alerts"
        self._auth = {"Authorization": f"GenieKey {config.api_key}"}
        self._client = HttpClient(config)
        self.resolver: QuietResolver | None = None
        if config.close_after_s > 0:
            key = f"{ctx.state_prefix}opsgenie:{hashlib.sha256(config.api_key.encode()).hexdigest()[:16]}"
            self.resolver = QuietResolver(ctx.redis_url, key, config.close_after_s, self._close, output="opsgenie")

    async def send(self, alert: Alert) -> None:
        """Create the alert; 202 means Opsgenie queued it."""
        body = build_opsgenie_alert(alert, self.config, self.ctx)
        await self._client.post(self._base, json.dumps(body, ensure_ascii=False).encode(), "application/json",
                                self._auth)  # fmt: skip
        if self.resolver is not None:
            await self.resolver.touch(body["alias"])

    async def _close(self, alias: str) -> None:
        url = f"{self._base}/{quote(alias, safe='')}/close?identifierType=alias"
        await self._client.post(url, json.dumps(build_opsgenie_close(self.config)).encode(), "application/json",
                                self._auth)  # fmt: skip

    async def run(self) -> None:
        """Close quiet alerts (only with ``close_after_s``)."""
        if self.resolver is not None:
            await self.resolver.run()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
        if self.resolver is not None:
            await self.resolver.close()
