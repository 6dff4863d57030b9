# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes audit webhook takes the API server's proof of identity, as its webhook kubeconfig can send it: a
client certificate (``client-certificate``/``client-key``) or a bearer token (``token``/``tokenFile``). Real HTTPS
requests on a real socket; certificates from ``lanner certs init`` and ``lanner certs client``."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from collector.audit_auth import AuditAuth
from collector.config import CollectorConfig
from collector.decode import Identity
from collector.k8s_audit import AuditWebhook
from lanner.pki import init_pki
from lanner.pki_client import issue_client

pytestmark = pytest.mark.integration

BODY = json.dumps(
    {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [{"kind": "Event", "auditID": "x", "verb": "create", "stage": "ResponseComplete"}],
    }
).encode()


def unauthenticated() -> float:
    return REGISTRY.get_sample_value("lanner_k8s_audit_rejected_total", {"reason": "unauthenticated"}) or 0.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit-pki")
    init_pki(str(root / "pki"))
    issue_client(str(root / "pki"), "kube-apiserver")
    issue_client(str(root / "pki"), "intruder")
    init_pki(str(root / "stranger"))
    return root


@asynccontextmanager
async def webhook(pki: Path | None, auth: AuditAuth) -> AsyncIterator[tuple[AuditWebhook, str]]:
    tls = {"tls_cert": str(pki / "pki/pipeline.crt"), "tls_key": str(pki / "pki/pipeline.key")} if pki else {}
    hook = AuditWebhook("127.0.0.1:0", Identity("n", "b", "p"), auth=auth, **tls)
    task = asyncio.create_task(hook.serve())
    async with asyncio.timeout(10):
        while not hook.port:
            await asyncio.sleep(0.01)
    try:
        yield hook, f"{'https' if pki else 'http'}://127.0.0.1:{hook.port}/k8s-audit"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def client_tls(pki: Path, cert: str = "", ca: str = "pki") -> ssl.SSLContext:
    """What the API server does: trust the webhook's CA, present ``cert`` (pki/NAME or stranger/pipeline)."""
    ctx = ssl.create_default_context(cafile=str(pki / "pki/ca.crt"))
    if cert:
        ctx.load_cert_chain(str(pki / ca / f"{cert}.crt"), str(pki / ca / f"{cert}.key"))
    return ctx


async def post(url: str, ssl_ctx: ssl.SSLContext | None = None, token: str = "", body: bytes = BODY) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers, ssl=ssl_ctx if ssl_ctx else False) as resp,
    ):
        return resp.status


async def handshake_refused(call: Callable[[], object]) -> bool:
    try:
        await call()  # type: ignore[misc]
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return True
    return False


async def test_client_certificate_of_the_ca_is_required(pki: Path) -> None:
    auth = AuditAuth(client_ca=str(pki / "pki/ca.crt"), client_names=("kube-apiserver",))
    async with webhook(pki, auth) as (hook, url):
        assert await post(url, client_tls(pki, "kube-apiserver")) == 200
        assert [e.type for e in hook.poll()] == ["k8s_audit"]
        # No certificate, or one from another CA: the TLS handshake itself refuses.
        assert await handshake_refused(lambda: post(url, client_tls(pki)))
        assert await handshake_refused(lambda: post(url, client_tls(pki, "pipeline", ca="stranger")))
        # The right CA but another name (client_names): 401, and nothing queued.
        before = unauthenticated()
        assert await post(url, client_tls(pki, "intruder")) == 401
        assert unauthenticated() == before + 1
        assert hook.poll() == []


async def test_bearer_token_is_required_and_the_token_file_reloads(pki: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "audit-tokens"
    tokens.write_text("# the API server's tokenFile\nfirst-token\n")
    async with webhook(pki, AuditAuth(token_file=str(tokens))) as (hook, url):
        ctx = client_tls(pki)
        before = unauthenticated()
        assert await post(url, ctx) == 401
        assert await post(url, ctx, token="guess") == 401
        # Refused before the body is read: garbage without a token is a 401, not a 400 from the parser.
        assert await post(url, ctx, body=b"{" * 5000) == 401
        assert unauthenticated() == before + 3
        assert await post(url, ctx, token="first-token") == 200
        assert len(hook.poll()) == 1
        tokens.write_text("second-token-which-is-longer\n")  # rotated while running: no restart
        assert await post(url, ctx, token="first-token") == 401
        assert await post(url, ctx, token="second-token-which-is-longer") == 200
        assert len(hook.poll()) == 1


async def test_either_proof_suffices_when_both_are_configured(pki: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "audit-tokens"
    tokens.write_text("api-token\n")
    auth = AuditAuth(client_ca=str(pki / "pki/ca.crt"), token_file=str(tokens))
    async with webhook(pki, auth) as (hook, url):
        assert await post(url, client_tls(pki, "kube-apiserver")) == 200
        assert await post(url, client_tls(pki), token="api-token") == 200
        assert await post(url, client_tls(pki)) == 401
        assert len(hook.poll()) == 2


async def test_plain_http_with_a_token(tmp_path: Path) -> None:
    tokens = tmp_path / "audit-tokens"
    tokens.write_text("t0ken\n")
    async with webhook(None, AuditAuth(token_file=str(tokens))) as (_, url):
        assert await post(url) == 401
        assert await post(url, token="t0ken") == 200


def test_settings_are_checked(pki: Path) -> None:
    with pytest.raises(ValueError, match="k8s_audit_client_ca: client certificates need TLS"):
        CollectorConfig(k8s_audit_bind="127.0.0.1:0", k8s_audit_client_ca=str(pki / "pki/ca.crt"))
    with pytest.raises(FileNotFoundError):
        AuditAuth(token_file=str(pki / "missing"))


async def test_authenticated_webhook_survives_garbage(tmp_path: Path) -> None:
    from tests.support import fuzz

    tokens = tmp_path / "audit-tokens"
    tokens.write_text("t0ken\n")
    async with webhook(None, AuditAuth(token_file=str(tokens))) as (hook, url):
        with fuzz.half_open_sockets(hook.port, http2=False):
            for request in fuzz.HTTP_GARBAGE:
                reply = await asyncio.to_thread(fuzz.http_raw, hook.port, request)
                assert b" 500 " not in reply[:20]
            assert await post(url, body=b"{" * 5000) == 401
            assert await post(url, token="t0ken") == 200
        assert len(hook.poll()) == 1
