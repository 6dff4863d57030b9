# SPDX-License-Identifier: Apache-2.0
"""``http``: POST each alert to a URL, as Falco's http_output does (JSON body with json_output, else text).

This is the output for Falcosidekick and any webhook that takes Falco's JSON alert. Every request carries the
alert's stable id (``webhook-id`` and ``Idempotency-Key``), identical on every retry, so receivers can drop
duplicates (an id that is not a plain token is sent as its hash: headers carry no alert text). With
``signing_secret`` set, requests are signed the Standard Webhooks way: ``webhook-timestamp``
and ``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import ClassVar

from dispatcher.falco_format import falco_json, text_line
from dispatcher.httpclient import HttpClient, HttpSettings
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import header_token
from dispatcher.tls import TlsSettings


@dataclass(frozen=True, slots=True)
class HttpConfig(HttpSettings):
    """Settings of the http output: the URL and body format, plus the shared transport keys (flat)."""

    url: str = ""
    json_output: bool = True
    # HMAC key for request signatures: "whsec_<base64>" (Standard Webhooks form) or any other text, used as is.
    signing_secret: str = ""

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if self.signing_secret:
            signing_key(self.signing_secret)


def build_http_body(alert: Alert, cfg: HttpConfig, ctx: OutputContext) -> tuple[bytes, str]:
    """The request body and its content type."""
    if cfg.json_output:
        return falco_json(alert, ctx.json, ctx.hostname).encode(), "application/json"
    return text_line(alert).encode(), "text/plain"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a signing secret."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except binascii.Error:
            raise ValueError("signing_secret: the part after 'whsec_' is not valid base64") from None
    return secret.encode()


def sign_webhook(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one request."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def delivery_headers(alert: Alert, body: bytes, key: bytes | None, now: int) -> dict[str, str]:
    """Id headers (same on every retry) and, with a key, the signature headers."""
    # Header values never carry alert text: an id that is not a plain token is replaced by its hash.
    msg_id = (
        header_token(alert.alert_id)
        or "sha256-"
        + hashlib.sha256(alert.alert_id.encode("utf-8", "surrogatepass") if alert.alert_id else body).hexdigest()[:32]
    )
    headers = {"webhook-id": msg_id, "Idempotency-Key": msg_id}
    if key is not None:
        headers["webhook-timestamp"] = str(now)
        headers["webhook-signature"] = sign_webhook(key, msg_id, now, body)
    return headers


@register_output("http")
class HttpOutput:
    """POSTs alerts; the shared client maps statuses to retry / give up."""

    Config: ClassVar[type[HttpConfig]] = HttpConfig

    def __init__(self, config: HttpConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._client = HttpClient(config)
        self._key = signing_key(config.signing_secret) if config.signing_secret else None

    async def send(self, alert: Alert) -> None:
        """POST the alert; returns when the server answered 2xx."""
        body, content_type = build_http_body(alert, self.config, self.ctx)
        # A fresh timestamp per attempt keeps retries inside the receiver's replay tolerance.
        headers = delivery_headers(alert, body, self._key, int(time.time()))
        await self._client.post(self.config.url, body, content_type, headers)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
