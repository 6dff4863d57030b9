# SPDX-License-Identifier: Apache-2.0
"""``loki``: push each alert to Grafana Loki (``POST /loki/api/v1/push``, JSON).

One stream per label set, one value per alert: ``[<event time in ns, as a string>, <line>]``. The line is Falco's
JSON alert (or the text line). Stream labels are few and bounded, as Loki wants: ``job``, ``host``, ``priority``,
``source`` and ``rule`` (plus ``extra_labels``); output fields stay in the line, and with
``structured_metadata`` the incident key and alert id ride along as structured metadata (Loki 3). Loki answers
204. ``tenant_id`` sets ``X-Scope-OrgID`` for multi-tenant Loki; auth goes in ``headers``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from dispatcher.falco_format import falco_json, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.identity import incident_key
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.tls import TlsSettings

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class LokiConfig(HttpSettings):
    """Settings of the loki output, plus the shared HTTP transport keys."""

    # Base URL, e.g. http://loki:3100 (the output posts to <url>/loki/api/v1/push).
    url: str = ""
    job: str = "lanner"
    tenant_id: str = ""
    json_output: bool = True
    structured_metadata: bool = False
    extra_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url: expected the http(s):// base URL of Loki, got {self.url!r}")
        for name in self.extra_labels:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"extra_labels: {name!r} is not a valid Loki label name")


def build_loki_push(alert: Alert, cfg: LokiConfig, ctx: OutputContext) -> dict[str, Any]:
    """The push request body for one alert."""
    labels = {
        "job": cfg.job,
        "host": alert.hostname or ctx.hostname,
        "priority": alert.priority.falco_name,
        "source": alert.source,
        "rule": alert.rule,
        **cfg.extra_labels,
    }
    line = falco_json(alert, ctx.json, ctx.hostname) if cfg.json_output else text_line(alert)
    value: list[Any] = [str(alert.time_ns), line]
    if cfg.structured_metadata:
        value.append({"dedup_key": incident_key(alert), "alert_id": alert.alert_id})
    return {"streams": [{"stream": labels, "values": [value]}]}


@register_output("loki")
class LokiOutput:
    """Pushes alerts to Loki."""

    Config: ClassVar[type[LokiConfig]] = LokiConfig

    def __init__(self, config: LokiConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._endpoint = config.url.rstrip("/") + "/loki/api/v1/push"
        self._headers = {"X-Scope-OrgID": config.tenant_id} if config.tenant_id else {}
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Push the alert; Loki answers 204."""
        body = json.dumps(build_loki_push(alert, self.config, self.ctx), ensure_ascii=False).encode()
        await self._client.post(self._endpoint, body, "application/json", self._headers)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
