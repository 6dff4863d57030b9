# SPDX-License-Identifier: Apache-2.0
"""``http``: POST each alert to a URL, as Falco's http_output does (JSON body with json_output, else text).

This is the output for Falcosidekick and any webhook that takes Falco's JSON alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dispatcher.falco_format import falco_json, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.tls import TlsSettings


@dataclass(frozen=True, slots=True)
class HttpConfig(HttpSettings):
    """Settings of the http output: the URL and body format, plus the shared transport keys (flat)."""

    url: str = ""
    json_output: bool = True

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {self.url!r}")


def build_http_body(alert: Alert, cfg: HttpConfig, ctx: OutputContext) -> tuple[bytes, str]:
    """The request body and its content type."""
    if cfg.json_output:
        return falco_json(alert, ctx.json, ctx.hostname).encode(), "application/json"
    return text_line(alert).encode(), "text/plain"


@register_output("http")
class HttpOutput:
    """POSTs alerts; the shared client maps statuses to retry / give up."""

    Config: ClassVar[type[HttpConfig]] = HttpConfig

    def __init__(self, config: HttpConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """POST the alert; returns when the server answered 2xx."""
        body, content_type = build_http_body(alert, self.config, self.ctx)
        await self._client.post(self.config.url, body, content_type)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
