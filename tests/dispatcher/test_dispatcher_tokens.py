# SPDX-License-Identifier: Apache-2.0
"""Scoped bearer tokens on Subscribe, against a real dispatcher and Redis: no token or a wrong one is refused, a
token sees only its scope, the per-token subscriber limit holds, and the token file reloads without a restart."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, make_alert, push, running

from dispatcher.hub import HIDDEN
from dispatcher.tokens import TokenBook, TokenFileError
from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration

TOKENS = f"""
tokens:
  - name: shop-oncall
    sha256: {hashlib.sha256(b"shop-secret").hexdigest()}
    min_priority: warning
    namespaces: [shop]
    max_subscribers: 1
  - name: auditor
    token: audit-secret
    sources: [syscall]
    output_fields: false
"""


def subscribe(ch: grpc.aio.Channel, token: str | None, **kw: object) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    stub = services_pb2_grpc.SubscriberServiceStub(ch)
    since = int(time.time() * 1000) - 60_000
    return stub.Subscribe(services_pb2.SubscribeRequest(since_unix_ms=since, **kw), metadata=metadata)  # type: ignore[arg-type]


def alerts() -> list[alert_pb2.Alert]:
    out = []
    for i, (ns, prio) in enumerate(
        [
            ("shop", alert_pb2.PRIORITY_NOTICE),
            ("shop", alert_pb2.PRIORITY_CRITICAL),
            ("dev", alert_pb2.PRIORITY_CRITICAL),
        ]
    ):
        out.append(make_alert(i, priority=prio, fields={"k8s.ns.name": ns, "proc.name": "bash"}))
    return out


async def test_tokens_refuse_strangers_and_scope_what_is_seen(redis_url: str, bind: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(TOKENS)
    cfg = base_config(redis_url, bind, tokens_file=str(tokens))
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts())])
        for token in (None, "wrong"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await asyncio.wait_for(subscribe(ch, token).read(), 5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        shop = subscribe(ch, "shop-secret")
        got = await asyncio.wait_for(shop.read(), 5)
        # Only the critical alert from namespace shop: below warning and other namespaces are out of scope.
        assert got.message == "A shell was spawned (n=1)" and got.output_fields["k8s.ns.name"] == "shop"
        with pytest.raises(grpc.aio.AioRpcError) as limit:
            await asyncio.wait_for(subscribe(ch, "shop-secret").read(), 5)
        assert limit.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        audit = subscribe(ch, "audit-secret")
        seen = [await asyncio.wait_for(audit.read(), 5) for _ in range(3)]
        assert [a.rule for a in seen] == ["Terminal shell in container"] * 3
        assert all(a.output == HIDDEN and not a.output_fields_json and not a.output_fields for a in seen)
        with pytest.raises(grpc.aio.AioRpcError) as outside:
            await asyncio.wait_for(subscribe(ch, "audit-secret", sources=["k8s_audit"]).read(), 5)
        assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED
        shop.cancel()
        audit.cancel()

        # The file reloads without a restart: the auditor's token is revoked, a new one works.
        tokens.write_text(TOKENS.replace("audit-secret", "rotated-secret"))
        with pytest.raises(grpc.aio.AioRpcError) as revoked:
            await asyncio.wait_for(subscribe(ch, "audit-secret").read(), 5)
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
        fresh = subscribe(ch, "rotated-secret")
        assert (await asyncio.wait_for(fresh.read(), 5)).output == HIDDEN
        fresh.cancel()


def test_token_file_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("tokens:\n  - name: x\n    token: y\n    min_prio: warning\n")
    with pytest.raises(TokenFileError, match=r"t.yaml: tokens\[0\]: unknown key 'min_prio'"):
        TokenBook(str(bad))
    bad.write_text("tokens:\n  - name: x\n    sha256: abc\n")
    with pytest.raises(TokenFileError, match=r"tokens\[0\].sha256: not hexadecimal"):
        TokenBook(str(bad))
