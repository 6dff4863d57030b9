# SPDX-License-Identifier: Apache-2.0
"""``alertmanager``: post each alert to Prometheus Alertmanager (API v2, ``POST /api/v2/alerts``).

Labels identify an alert in Alertmanager and are its dedup key, so only bounded identity fields go there
(rule, severity, host, source, namespace, pod, container); free text and high-cardinality values (the output,
command lines, pids) go to annotations. A Falco alert is a point in time: ``endsAt`` is set to the event time
plus ``expires_after_s`` so the alert resolves by itself. For an Alertmanager HA cluster, configure one output
per member (``alertmanager:a``, ``alertmanager:b``); the cluster deduplicates the notifications.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from dispatcher.falco_format import json_default, rfc3339_ns, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert, Priority
from dispatcher.registry import OutputContext, register_output
from dispatcher.tls import TlsSettings

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
# Output fields that become labels (bounded identity); label name <- field.
LABEL_FIELDS = {"k8s_ns": "k8s.ns.name", "k8s_pod": "k8s.pod.name", "container_id": "container.id"}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig(HttpSettings):
    """Settings of the alertmanager output, plus the shared HTTP transport keys (``headers`` for auth)."""

    # Base URL of one Alertmanager, e.g. http://alertmanager:9093 (the output posts to <url>/api/v2/alerts).
    url: str = ""
    # The alert resolves this long after the event unless it fires again.
    expires_after_s: float = 300.0
    # Constant labels added to every alert (e.g. cluster: prod-eu).
    extra_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    generator_url: str = ""

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected the http(s):// base URL of an Alertmanager, got {self.url!r}")
        if self.expires_after_s <= 0:
            raise ValueError("expires_after_s: must be positive")
        for name in self.extra_labels:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"extra_labels: {name!r} is not a valid Prometheus label name")


def build_alertmanager_alerts(alert: Alert, cfg: AlertmanagerConfig, ctx: OutputContext) -> list[dict[str, Any]]:
    """The ``postableAlerts`` array (one alert) for an alert."""
    labels = {
        "alertname": alert.rule,
        "severity": SEVERITY[alert.priority],
        "priority": alert.priority.falco_name,
        "source": "lanner",
        "falco_source": alert.source,
        "hostname": alert.hostname or ctx.hostname,
    }
    for label, name in LABEL_FIELDS.items():
        value = alert.output_fields.get(name)
        if value is not None and value != "":
            labels[label] = str(value)
    labels.update(cfg.extra_labels)
    annotations = {
        "summary": alert.message or alert.rule,
        "description": text_line(alert),
        "tags": ",".join(sorted(set(alert.tags))),
        "output_fields": json.dumps(
            dict(alert.output_fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default
        ),
    }
    ends = alert.time_ns + int(cfg.expires_after_s * 1_000_000_000)
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339_ns(alert.time_ns),
        "endsAt": rfc3339_ns(ends),
    }
    if cfg.generator_url:
        out["generatorURL"] = cfg.generator_url
    return [out]


@register_output("alertmanager")
class AlertmanagerOutput:
    """Posts alerts to one Alertmanager; 200 means accepted."""

    Config: ClassVar[type[AlertmanagerConfig]] = AlertmanagerConfig

    def __init__(self, config: AlertmanagerConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._endpoint = config.url.rstrip("/") + "/api/v2/alerts"
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Post the alert."""
        body = json.dumps(build_alertmanager_alerts(alert, self.config, self.ctx), ensure_ascii=False)
        await self._client.post(self._endpoint, body.encode(), "application/json")

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
