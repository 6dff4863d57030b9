# SPDX-License-Identifier: Apache-2.0
"""``nats``: publish each alert to NATS JetStream and wait for the stream's acknowledgement.

Core NATS publishing is fire-and-forget, so this output publishes through JetStream: an alert counts as
delivered only when a stream stored it and answered with a PubAck. ``Nats-Msg-Id`` is the alert id, so the
stream's duplicate window drops a copy sent again after a retry or a dispatcher crash. The subject may contain
``{priority}`` and ``{source}`` (``lanner.alerts.{priority}`` -> ``lanner.alerts.warning``), so consumers can
subscribe by severity. The body is Falco's JSON alert. The stream itself is created by the operator (or
``create_stream``), as JetStream retention and replication are deployment decisions.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from typing import Any, ClassVar

import nats
from nats.js.api import StreamConfig

from dispatcher.falco_format import falco_json
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import header_token
from dispatcher.tls import TlsSettings, ssl_context

_TOKEN = re.compile(r"[^a-z0-9_-]")


@dataclass(frozen=True, slots=True)
class NatsConfig(TlsSettings):
    """Settings of the nats output, plus the shared TLS keys (used for tls:// servers)."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    subject: str = "lanner.alerts.{priority}"
    # Create this stream (over the subject's wildcard form) if it does not exist; "" leaves streams to the operator.
    create_stream: str = ""
    user: str = ""
    password: str = ""
    token: str = ""
    # A .creds file (NATS decentralised auth).
    credentials: str = ""

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.servers or not all(s.startswith(("nats://", "tls://")) for s in self.servers):
            raise ValueError("servers: expected nats://host:port or tls://host:port URLs")
        probe = self.subject.replace("{priority}", "p").replace("{source}", "s")
        if not probe or any(c in probe for c in " *>\t") or "{" in probe or ".." in probe:
            raise ValueError(f"subject: {self.subject!r} is not a publishable subject (placeholders: priority, source)")


def subject_for(alert: Alert, cfg: NatsConfig) -> str:
    """The subject with ``{priority}`` and ``{source}`` filled in (lowercase subject tokens)."""
    return cfg.subject.replace("{priority}", alert.priority.falco_name.lower()).replace(
        "{source}", _TOKEN.sub("_", alert.source.lower()) or "unknown"
    )


def message_id(alert: Alert, body: bytes) -> str:
    """``Nats-Msg-Id``: the alert id if it is a plain token, else a hash of it (or of the body, without one).

    Headers carry no alert text: a CR or LF in an id would otherwise end the NATS header block.
    """
    if token := header_token(alert.alert_id):
        return token
    seed = alert.alert_id.encode("utf-8", "surrogatepass") if alert.alert_id else body
    return "sha256-" + hashlib.sha256(seed).hexdigest()[:32]


@register_output("nats")
class NatsOutput:
    """Publishes alerts to JetStream; one connection, re-established by the client when it drops."""

    Config: ClassVar[type[NatsConfig]] = NatsConfig

    def __init__(self, config: NatsConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        tls = any(s.startswith("tls://") for s in config.servers)
        self._ssl: ssl.SSLContext | None = ssl_context(config) if tls else None
        self._nc: Any = None
        self._js: Any = None

    async def _connect(self) -> Any:
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        await self.close()
        cfg = self.config
        opts: dict[str, Any] = {"servers": list(cfg.servers), "connect_timeout": 5, "max_reconnect_attempts": -1,
                                "allow_reconnect": True}  # fmt: skip
        if self._ssl is not None:
            opts["tls"] = self._ssl
        if cfg.user:
            opts.update(user=cfg.user, password=cfg.password)
        if cfg.token:
            opts["token"] = cfg.token
        if cfg.credentials:
            opts["user_credentials"] = cfg.credentials
        self._nc = await nats.connect(**opts)
        self._js = self._nc.jetstream()
        if cfg.create_stream:
            wildcard = cfg.subject.replace("{priority}", "*").replace("{source}", "*")
            await self._js.add_stream(StreamConfig(name=cfg.create_stream, subjects=[wildcard]))
        return self._js

    async def send(self, alert: Alert) -> None:
        """Publish and wait for the PubAck (a missing stream or a timeout raises, and the driver retries)."""
        body = falco_json(alert, self.ctx.json, self.ctx.hostname).encode()
        js = await self._connect()
        await js.publish(subject_for(alert, self.config), body, headers={"Nats-Msg-Id": message_id(alert, body)})

    async def close(self) -> None:
        """Drain and close the connection."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()
