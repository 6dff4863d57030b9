# SPDX-License-Identifier: Apache-2.0
"""A drop-in for Falcosidekick's intake: an existing Falco fleet delivers through Lanner by changing one URL.

Falco's ``http_output`` (libcurl) POSTs each alert as its JSON text to ``url`` with ``Content-Type:
application/json`` (``text/plain`` when ``json_output`` is false, which Falcosidekick cannot use either) and
``User-Agent: falcosecurity/falco``. Its ``compress_uploads: true`` sets libcurl's CURLOPT_TRANSFER_ENCODING, which
only *asks* for a compressed response (``TE: gzip``, ``Connection: TE``); the body stays plain. A body sent with
``Content-Encoding: gzip`` or ``deflate`` (a proxy, or another sender) is inflated, within ``max_body_bytes``. With
``mtls: true`` Falco presents a client certificate, which ``client_ca`` makes this intake require.

``POST /`` answers 200 only once the alert is persisted in the durable queue (the same dedup, routing, grouping and
delivery as alerts from the rule engine), 400 with the offending key for a bad alert, and 503 when Redis does not
answer within ``ack_timeout_s``. ``GET /healthz`` is ``{"status": "ok"}`` while Redis answers, ``GET /ping`` says
``pong``, and ``POST /test`` (or GET) queues a test alert, as Falcosidekick's endpoints do.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from dispatcher.convert import AlertError
from dispatcher.falco_in import alert_from_falco_text
from lanner.v1 import alert_pb2

log = logging.getLogger(__name__)

Accept = Callable[[list[alert_pb2.Alert], str], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class SidekickConfig:
    """The Falcosidekick-compatible HTTP intake (``dispatcher.sidekick``); off while ``bind`` is empty."""

    # HOST:PORT to listen on; Falcosidekick's port is 2801 (point Falco's http_output.url here).
    bind: str = ""
    # Serve HTTPS with this certificate and key.
    tls_cert: str = ""
    tls_key: str = ""
    # Require client certificates signed by this CA (Falco's http_output.mtls).
    client_ca: str = ""
    max_body_bytes: int = 1_048_576
    # How long POST / may wait for Redis before answering 503.
    ack_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.bind and ":" not in self.bind:
            raise ValueError("bind: expected HOST:PORT")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key: give both or neither")
        if self.client_ca and not self.tls_cert:
            raise ValueError("client_ca: needs tls_cert and tls_key (mutual TLS runs over HTTPS)")
        if self.max_body_bytes < 1024 or self.ack_timeout_s <= 0:
            raise ValueError("max_body_bytes (>= 1024) and ack_timeout_s (> 0): out of range")


def server_ssl(cfg: SidekickConfig) -> ssl.SSLContext | None:
    """The TLS context for the configured certificate, requiring client certificates when ``client_ca`` is set."""
    if not cfg.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    if cfg.client_ca:
        ctx.load_verify_locations(cfg.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def sample_alert(hostname: str) -> alert_pb2.Alert:
    """What ``/test`` queues: a Debug alert that exercises every configured output."""
    now = time.time_ns()
    clock = time.strftime("%H:%M:%S", time.localtime(now // 1_000_000_000)) + f".{now % 1_000_000_000:09d}"
    message = "Test alert from Lanner's Falcosidekick-compatible intake"
    pb = alert_pb2.Alert(
        rule="Test rule",
        priority=alert_pb2.PRIORITY_DEBUG,
        source="debug",
        tags=["example", "test"],
        output=f"{clock}: Debug {message}",
        message=message,
        hostname=hostname,
        output_fields_json='{"proc.name":"lanner","user.name":"lanner"}',
    )
    pb.time.FromNanoseconds(now)
    return pb


class SidekickIntake:
    """The HTTP server; ``run`` serves until cancelled."""

    def __init__(self, cfg: SidekickConfig, accept: Accept, ready: Callable[[], bool], hostname: str) -> None:
        self.cfg = cfg
        self._accept = accept
        self._ready = ready
        self._hostname = hostname
        self._ssl = server_ssl(cfg)

    def app(self) -> web.Application:
        """The aiohttp application (bodies are inflated and size-limited by aiohttp itself)."""
        app = web.Application(client_max_size=self.cfg.max_body_bytes)
        app.router.add_post("/", self._post_alert)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/ping", self._ping)
        app.router.add_route("*", "/test", self._test)
        return app

    async def run(self) -> None:
        """Listen until cancelled."""
        host, _, port = self.cfg.bind.rpartition(":")
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host or "0.0.0.0", int(port), ssl_context=self._ssl).start()
            log.info(
                "falcosidekick-compatible intake listening",
                extra={"bind": self.cfg.bind, "tls": self._ssl is not None, "mtls": bool(self.cfg.client_ca)},
            )
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _persist(self, pb: alert_pb2.Alert, peer: str) -> web.Response:
        try:
            async with asyncio.timeout(self.cfg.ack_timeout_s):
                accepted = await self._accept([pb], peer)
        except TimeoutError:
            return web.Response(status=503, text="the alert queue (Redis) is not answering; retry later\n")
        if not accepted:
            return web.Response(status=400, text="alert refused; see the dispatcher log\n")
        return web.Response(status=200, text="ok\n")

    async def _post_alert(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        if request.content_type == "text/plain":
            return web.Response(status=400, text="expected Falco's JSON alert: set json_output: true in falco.yaml\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text=f"body larger than max_body_bytes={self.cfg.max_body_bytes}\n")
        try:
            pb = alert_from_falco_text(body, time.time_ns())
        except (AlertError, UnicodeDecodeError) as exc:
            log.warning("falco alert refused", extra={"peer": peer, "error": str(exc)})
            return web.Response(status=400, text=f"{exc}\n")
        return await self._persist(pb, peer)

    async def _healthz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "redis unavailable"}, status=503)

    async def _ping(self, _request: web.Request) -> web.Response:
        return web.Response(text="pong\n")

    async def _test(self, request: web.Request) -> web.Response:
        return await self._persist(sample_alert(self._hostname), request.remote or "?")
