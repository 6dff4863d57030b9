# SPDX-License-Identifier: Apache-2.0
"""The one HTTP(S) client outputs share: TLS (custom CA, mTLS, insecure), compression, status -> error mapping.

Webhook-style outputs only build a body and call ``HttpClient.post``. Status handling follows one policy for
every destination: 2xx is delivered; 408, 429 and 5xx are retried (honouring ``Retry-After``); any other 4xx is
a permanent refusal, which the driver sends to the dead-letter stream instead of retrying forever.
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

import aiohttp

from dispatcher.registry import PermanentError, RetryLater
from dispatcher.tls import TlsSettings, ssl_context

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class HttpSettings(TlsSettings):
    """Transport settings shared by HTTP outputs (Falco's http_output keys where they exist), TLS included."""

    user_agent: str = "lanner"
    # gzip the body (Content-Encoding: gzip).
    compress_uploads: bool = False
    # Reuse connections between alerts.
    keep_alive: bool = True
    # Log the response body of each delivery at debug level.
    echo: bool = False
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def redact(url: str) -> str:
    """Scheme and host only: webhook URLs often carry their secret in the path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") or parts.query else url


def retry_after(value: str | None, default: float = 1.0, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return default
    return max(0.0, when - (time.time() if now is None else now))


class HttpClient:
    """A lazily created aiohttp session with the configured TLS and headers."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        # Built now so a bad CA or key file fails at start-up with a clear message, not at the first alert.
        self._ssl = ssl_context(settings)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, force_close=not self.settings.keep_alive)
            headers = {"User-Agent": self.settings.user_agent, **self.settings.headers}
            # Timeouts are the driver's job (timeout_s per attempt); no second clock here.
            self._session = aiohttp.ClientSession(
                connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._session

    async def post(
        self, url: str, body: bytes, content_type: str, extra_headers: Mapping[str, str] | None = None
    ) -> str:
        """POST ``body``; return the response text on 2xx, raise PermanentError / RetryLater / RuntimeError."""
        headers = {"Content-Type": content_type, **(extra_headers or {})}
        if self.settings.compress_uploads:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        async with self._get_session().post(url, data=body, headers=headers) as resp:
            text = await resp.text(errors="replace")
            if 200 <= resp.status < 300:
                if self.settings.echo:
                    log.debug("http response", extra={"url": redact(url), "status": resp.status, "body": text[:2048]})
                return text
            detail = f"{redact(url)} answered {resp.status} {resp.reason}: {text[:200]}"
            if resp.status in (429, 503) and "Retry-After" in resp.headers:
                raise RetryLater(detail, retry_after(resp.headers.get("Retry-After")))
            if resp.status in RETRYABLE or resp.status >= 500:
                raise RuntimeError(detail)
            raise PermanentError(detail)

    async def close(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
