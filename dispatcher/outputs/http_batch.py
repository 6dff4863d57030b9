# SPDX-License-Identifier: Apache-2.0
"""``http_batch``: POST alerts as NDJSON (one Falco JSON alert per line), many per request.

For receivers that take newline-delimited JSON (Vector's and Fluent Bit's HTTP sources, Logstash, a custom
collector), where one request per alert would cost more than the alert. Concurrent deliveries are coalesced
(dispatcher/coalesce.py): a request carries up to ``batch_max`` alerts, or whatever arrived within ``linger_ms``.
Each alert is acknowledged only after the request carrying it was answered 2xx; a failed request fails every
alert in it, and the driver retries them. The driver's ``concurrency`` bounds how many alerts wait at once, so
it defaults to 512, twice the default ``batch_max``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.coalesce import Coalescer
from dispatcher.falco_format import falco_json
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.tls import TlsSettings


@dataclass(frozen=True, slots=True)
class HttpBatchConfig(HttpSettings):
    """Settings of the http_batch output, plus the shared transport keys (flat)."""

    url: str = ""
    # Alerts per request at most, and how long the first alert of a request may wait for company.
    batch_max: int = 256
    linger_ms: float = 5.0

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if self.batch_max < 1 or self.linger_ms < 0:
            raise ValueError("batch_max (>= 1) and linger_ms (>= 0): out of range")


def build_ndjson(lines: Sequence[bytes]) -> bytes:
    """The request body: one JSON alert per line, each ending in a newline."""
    return b"".join(line + b"\n" for line in lines)


@register_output("http_batch")
class HttpBatchOutput:
    """POSTs NDJSON batches; the shared client maps statuses to retry / give up."""

    Config: ClassVar[type[HttpBatchConfig]] = HttpBatchConfig
    DRIVER_DEFAULTS: ClassVar[dict[str, Any]] = {"concurrency": 512}

    def __init__(self, config: HttpBatchConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)
        self._batcher = Coalescer(self._post, config.batch_max, config.linger_ms / 1000)

    async def _post(self, lines: Sequence[bytes]) -> None:
        await self._client.post(self.config.url, build_ndjson(lines), "application/x-ndjson")

    async def send(self, alert: Alert) -> None:
        """Queue the alert for the next request; returns once that request was answered 2xx."""
        await self._batcher.submit(falco_json(alert, self.ctx.json, self.ctx.hostname).encode())

    async def close(self) -> None:
        """Finish requests in flight and close the connection pool."""
        await self._batcher.close()
        await self._client.close()
