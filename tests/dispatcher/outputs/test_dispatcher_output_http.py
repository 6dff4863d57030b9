# SPDX-License-Identifier: Apache-2.0
"""http output against a real local HTTP(S) server, alone and through the whole dispatcher."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from dispatcher_testlib import RedisProcess, base_config, make_alert, push, running, self_signed, wait_for
from prometheus_client import REGISTRY

from dispatcher.httpclient import retry_after
from dispatcher.model import Alert, Priority
from dispatcher.outputs.http import HttpConfig, HttpOutput, build_http_body, sign_webhook, signing_key
from dispatcher.registry import OutputContext, PermanentError, RetryLater
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="h")
ALERT = Alert(rule="R", priority=Priority.CRITICAL, output="x: Critical boom", time_ns=1718000011726060287)


@dataclass
class Sink:
    """A webhook receiver that answers from a script of statuses, then 200."""

    url: str = ""
    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()

    async def handle(request: web.Request) -> web.Response:
        s.requests.append((dict(request.headers), await request.read()))
        status, headers = s.statuses.pop(0) if s.statuses else (200, {})
        return web.Response(status=status, text="ok" if status == 200 else "nope", headers=headers)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    s.url = f"http://127.0.0.1:{port}/hook"
    yield s
    await runner.cleanup()


def test_retry_after_forms() -> None:
    assert retry_after("12") == 12.0
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0
    assert retry_after("soon", default=3.0) == 3.0
    assert retry_after(None) == 1.0


def test_standard_webhooks_signature_vector() -> None:
    # The example published with the Standard Webhooks / Svix verification docs.
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sig = sign_webhook(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    with pytest.raises(ValueError, match="signing_secret"):
        HttpConfig(url="http://x", signing_secret="whsec_***")


async def test_signed_request_verifies_at_the_receiver(sink: Sink) -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    out = HttpOutput(HttpConfig(url=sink.url, signing_secret=secret), CTX)
    alert = Alert(rule="R", priority=Priority.CRITICAL, output="x", alert_id="a-1")
    try:
        await out.send(alert)
        await out.send(alert)
    finally:
        await out.close()
    for headers, body in sink.requests:
        assert headers["webhook-id"] == headers["Idempotency-Key"] == "a-1"
        expected = hmac.new(
            b"0123456789abcdef0123456789abcdef", f"a-1.{headers['webhook-timestamp']}.".encode() + body, hashlib.sha256
        ).digest()
        assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


def test_builder_and_config() -> None:
    body, ctype = build_http_body(ALERT, HttpConfig(url="http://x/"), CTX)
    assert ctype == "application/json" and json.loads(body)["priority"] == "Critical"
    assert build_http_body(ALERT, HttpConfig(url="http://x/", json_output=False), CTX) == (
        b"x: Critical boom",
        "text/plain",
    )
    with pytest.raises(ValueError, match="url: expected an http"):
        HttpConfig(url="ftp://x")
    with pytest.raises(ValueError, match="client_cert and client_key"):
        HttpConfig(url="http://x", client_cert="/c.pem")


async def test_posts_falco_json(sink: Sink) -> None:
    out = HttpOutput(HttpConfig(url=sink.url, headers={"X-Token": "t"}, compress_uploads=True), CTX)
    try:
        await out.send(ALERT)
    finally:
        await out.close()
    headers, body = sink.requests[0]
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "lanner"
    assert headers["X-Token"] == "t" and headers["Content-Encoding"] == "gzip"
    # aiohttp's server inflates gzip bodies itself, which shows the upload was valid gzip.
    assert json.loads(body)["rule"] == "R"


async def test_status_mapping(sink: Sink) -> None:
    sink.statuses = [(500, {}), (429, {"Retry-After": "7"}), (404, {})]
    out = HttpOutput(HttpConfig(url=sink.url), CTX)
    try:
        with pytest.raises(RuntimeError, match="answered 500"):
            await out.send(ALERT)
        with pytest.raises(RetryLater) as later:
            await out.send(ALERT)
        assert later.value.delay_s == 7.0
        with pytest.raises(PermanentError, match="answered 404"):
            await out.send(ALERT)
        await out.send(ALERT)
    finally:
        await out.close()


@pytest.mark.integration
async def test_through_dispatcher_retries_then_dead_letters(
    sink: Sink, redis_url: str, bind: str, redis_proc: RedisProcess
) -> None:
    # Alert 0 fails twice with 503 then lands; alert 1 is refused with 400 and goes to the dead-letter stream.
    sink.statuses = [(503, {}), (503, {}), (200, {}), (400, {})]
    cfg = base_config(
        redis_url, bind, outputs={"http": {"url": sink.url, "backoff_initial_s": 0.02, "backoff_max_s": 0.05}}
    )
    retried = REGISTRY.get_sample_value("lanner_dispatcher_output_retried_total", {"output": "http"}) or 0
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), make_alert(1)])])
        await wait_for(lambda: len(sink.requests) == 4)
        r = redis_proc.client()
        await wait_for(lambda: r.xlen(f"{cfg.stream}:dead") == 1)
        dead = r.xrange(f"{cfg.stream}:dead")[0][1]
        assert dead[b"output"] == b"http" and b"answered 400" in dead[b"error"]
        assert alert_pb2.Alert.FromString(dead[b"a"]).alert_id == "alert-1"
    assert [json.loads(b)["output_fields"]["proc.pid"] for _, b in sink.requests] == [4242, 4242, 4242, 4243]
    assert (REGISTRY.get_sample_value("lanner_dispatcher_output_retried_total", {"output": "http"}) or 0) == retried + 2


async def test_https_with_custom_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    got: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{port}/"
    try:
        untrusted = HttpOutput(HttpConfig(url=url), CTX)
        with pytest.raises(Exception, match="certificate"):
            await asyncio.wait_for(untrusted.send(ALERT), 5)
        await untrusted.close()
        trusted = HttpOutput(HttpConfig(url=url, ca_cert=str(cert)), CTX)
        await trusted.send(ALERT)
        await trusted.close()
        assert len(got) == 1
    finally:
        await runner.cleanup()
