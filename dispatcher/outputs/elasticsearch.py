# SPDX-License-Identifier: Apache-2.0
"""``elasticsearch``: index each alert into Elasticsearch or OpenSearch with the bulk API, one index per day.

``POST <url>/_bulk`` (``application/x-ndjson``) with a ``create`` action into ``<index>-YYYY.MM.DD`` (the
event's UTC date) and the document: Falco's JSON alert plus ``@timestamp``. The ``_id`` is the alert id, so a
retried delivery cannot index the alert twice: the copy fails with 409, which counts as delivered. The bulk API
answers 200 even when its item failed, so the item's own status decides: 2xx/409 delivered, 429/5xx retried,
anything else (a mapping conflict, a closed index) dead-lettered with Elasticsearch's reason. Auth: ``api_key``
(``Authorization: ApiKey``), ``username``/``password`` (basic), or ``headers``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import ClassVar

from dispatcher.falco_format import falco_dict, json_default, rfc3339_ns
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, PermanentError, register_output
from dispatcher.tls import TlsSettings


@dataclass(frozen=True, slots=True)
class ElasticsearchConfig(HttpSettings):
    """Settings of the elasticsearch output (OpenSearch too), plus the shared HTTP transport keys."""

    # Base URL of the cluster, e.g. https://es:9200
    url: str = ""
    # Index name prefix; the date is appended: lanner-2026.12.07
    index: str = "lanner"
    # strftime pattern of the date suffix (UTC), or "" for a single index.
    index_date_format: str = "%Y.%m.%d"
    api_key: str = ""
    username: str = ""
    password: str = ""

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url: expected the http(s):// base URL of the cluster, got {self.url!r}")
        if not self.index or self.index != self.index.lower() or any(c in self.index for c in ' "*\\<|,>/?#:'):
            raise ValueError(f'index: {self.index!r} is not a valid index name (lowercase, no spaces or \\/*?"<>|,#:)')
        if self.api_key and self.username:
            raise ValueError("api_key and username: give one way to authenticate, not both")


def index_name(alert: Alert, cfg: ElasticsearchConfig) -> str:
    """``<index>-<UTC date of the event>``."""
    if not cfg.index_date_format:
        return cfg.index
    return f"{cfg.index}-{time.strftime(cfg.index_date_format, time.gmtime(alert.time_ns // 1_000_000_000))}"


def document_id(alert: Alert) -> str:
    """The alert id (stable across retries), hashed when long; Elasticsearch ids are at most 512 bytes."""
    if alert.alert_id and len(alert.alert_id.encode()) <= 200:
        return alert.alert_id
    seed = alert.alert_id or f"{alert.rule}\0{alert.hostname}\0{alert.time_ns}"
    return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()


def build_bulk_body(alert: Alert, cfg: ElasticsearchConfig, ctx: OutputContext) -> bytes:
    """The NDJSON bulk body: the create action line and the document line, each ending in a newline."""
    action = {"create": {"_index": index_name(alert, cfg), "_id": document_id(alert)}}
    doc = falco_dict(alert, ctx.json, ctx.hostname)
    doc["@timestamp"] = rfc3339_ns(alert.time_ns)
    lines = [json.dumps(action), json.dumps(doc, ensure_ascii=False, default=json_default)]
    return ("\n".join(lines) + "\n").encode()


def check_bulk_response(text: str) -> None:
    """Raise if the single item of a bulk response failed (PermanentError unless 429 or 5xx)."""
    try:
        resp = json.loads(text)
        item = next(iter(resp["items"][0].values()))
    except (ValueError, KeyError, IndexError, TypeError, StopIteration, AttributeError):
        raise RuntimeError(f"unexpected bulk response: {text[:200]}") from None
    status = int(item.get("status", 0))
    if 200 <= status < 300 or status == 409:
        return  # 409: this alert was indexed by an earlier attempt
    error = item.get("error")
    reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else str(error)
    detail = f"bulk item failed with {status}: {reason}"[:500]
    if status == 429 or status >= 500:
        raise RuntimeError(detail)
    raise PermanentError(detail)


@register_output("elasticsearch")
class ElasticsearchOutput:
    """Indexes alerts with the bulk API."""

    Config: ClassVar[type[ElasticsearchConfig]] = ElasticsearchConfig

    def __init__(self, config: ElasticsearchConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._endpoint = config.url.rstrip("/") + "/_bulk"
        self._headers: dict[str, str] = {}
        if config.api_key:
            self._headers["Authorization"] = f"ApiKey {config.api_key}"
        elif config.username:
            token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._client = HttpClient(config)

    async def send(self, alert: Alert) -> None:
        """Index the alert; the item status decides delivered / retry / dead letter."""
        body = build_bulk_body(alert, self.config, self.ctx)
        check_bulk_response(await self._client.post(self._endpoint, body, "application/x-ndjson", self._headers))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
