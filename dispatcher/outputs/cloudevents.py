# SPDX-License-Identifier: Apache-2.0
"""``cloudevents``: POST each alert as a CloudEvent 1.0 over HTTP (structured or binary content mode).

Structured mode (default) sends ``Content-Type: application/cloudevents+json`` with the whole event as the body;
binary mode sends the Falco JSON alert as the body and the context attributes as ``ce-*`` headers. Attributes:
``id`` (the alert id, stable across retries, so receivers deduplicate), ``source`` (config, a URI-reference),
``type`` (config), ``time`` (the event time), ``subject`` (the rule, structured mode only: headers carry no
alert text), ``datacontenttype: application/json``, and the extensions ``priority`` (Falco's name, lowercase)
and ``dedupkey`` (the incident key).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.falco_format import falco_dict, json_default, rfc3339_ns
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.identity import incident_key
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import header_token
from dispatcher.tls import TlsSettings


@dataclass(frozen=True, slots=True)
class CloudEventsConfig(HttpSettings):
    """Settings of the cloudevents output, plus the shared HTTP transport keys."""

    url: str = ""
    # "structured" or "binary" (HTTP protocol binding, section 3).
    mode: str = "structured"
    source: str = "/lanner/dispatcher"
    type: str = "dev.lanner.alert.v1"

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url: expected an http(s):// URL, got {self.url!r}")
        if self.mode not in ("structured", "binary"):
            raise ValueError(f"mode: expected structured or binary, got {self.mode!r}")
        if not self.source or not self.type or header_token(self.type) is None:
            raise ValueError("source and type: must be non-empty (type: letters, digits and ._~:+=-)")


def event_id(alert: Alert) -> str:
    """The CloudEvent id: the alert id if it is a plain token, else its hash (it travels in a header)."""
    if token := header_token(alert.alert_id):
        return token
    seed = alert.alert_id or f"{alert.rule}\0{alert.hostname}\0{alert.time_ns}"
    return "sha256-" + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def build_cloudevent(alert: Alert, cfg: CloudEventsConfig, ctx: OutputContext) -> dict[str, Any]:
    """The event in the JSON event format (structured mode's body)."""
    return {
        "specversion": "1.0",
        "id": event_id(alert),
        "source": cfg.source,
        "type": cfg.type,
        "time": rfc3339_ns(alert.time_ns),
        "subject": alert.rule,
        "datacontenttype": "application/json",
        "priority": alert.priority.falco_name.lower(),
        "dedupkey": incident_key(alert),
        "data": falco_dict(alert, ctx.json, ctx.hostname),
    }


def encode_request(alert: Alert, cfg: CloudEventsConfig, ctx: OutputContext) -> tuple[bytes, str, dict[str, str]]:
    """Body, content type and headers for the configured content mode."""
    event = build_cloudevent(alert, cfg, ctx)
    if cfg.mode == "structured":
        body = json.dumps(event, ensure_ascii=False, default=json_default).encode()
        return body, "application/cloudevents+json; charset=utf-8", {}
    data = event.pop("data")
    event.pop("subject")
    event.pop("datacontenttype")
    headers = {f"ce-{k}": str(v) for k, v in event.items()}
    return json.dumps(data, ensure_ascii=False, default=json_default).encode(), "application/json", headers


@register_output("cloudevents")
class CloudEventsOutput:
    """POSTs alerts as CloudEvents."""

    Config: ClassVar[type[CloudEventsConfig]] = CloudEventsConfig

    def __init__(self, config: CloudEventsConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """POST the event; any 2xx is delivered."""
        body, content_type, headers = encode_request(alert, self.config, self.ctx)
        await self._client.post(self.config.url, body, content_type, headers)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
