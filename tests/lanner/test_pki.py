# SPDX-License-Identifier: Apache-2.0
"""Mutual TLS between services: only peers of the pipeline CA get through, on real sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from enricher.health import check_health
from lanner.pki import PipelineTls, PkiError, init_pki
from lanner.pki_client import issue_client
from lanner.streaming import pipeline_channel
from lanner.v1 import event_pb2, services_pb2_grpc
from ruleengine.config import RuleEngineConfig
from ruleengine.server import serve
from tests.ruleengine.test_service import RULES, Dispatcher, shadow_event

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_certs_init_writes_a_chain_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lanner.cli", "certs", "init", str(tmp_path / "pki"), "--host", "node-7"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pipeline.crt" in out.stdout
    subprocess.run(
        ["openssl", "verify", "-CAfile", tmp_path / "pki/ca.crt", tmp_path / "pki/pipeline.crt"],
        check=True,
        capture_output=True,
    )
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", tmp_path / "pki/pipeline.crt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:node-7" in text and "IP Address:127.0.0.1" in text
    assert (tmp_path / "pki/ca.key").stat().st_mode & 0o077 == 0
    with pytest.raises(PkiError, match=r"ca.crt: already exists"):
        init_pki(str(tmp_path / "pki"))
    with pytest.raises(PkiError, match=r"nowhere/ca.crt: .*lanner certs init"):
        PipelineTls.load(str(tmp_path / "nowhere"))


async def test_only_pipeline_peers_get_through(tmp_path: Path) -> None:
    init_pki(str(tmp_path / "pki"))
    init_pki(str(tmp_path / "stranger"))
    tls = PipelineTls.load(str(tmp_path / "pki"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    disp = Dispatcher()
    dserver = grpc.aio.server()
    services_pb2_grpc.add_DispatcherServiceServicer_to_server(disp, dserver)
    dport = dserver.add_secure_port("127.0.0.1:0", tls.server_credentials())
    await dserver.start()
    port = free_port()
    cfg = RuleEngineConfig(
        bind=f"127.0.0.1:{port}",
        metrics_bind="",
        dispatcher_target=f"127.0.0.1:{dport}",
        rules_files=(str(rules),),
        hostname="h",
        watch_rules=False,
        tls_dir=str(tmp_path / "pki"),
        collector_target="",
    )
    task = asyncio.create_task(serve(cfg))
    target = f"127.0.0.1:{port}"
    try:
        async with pipeline_channel(target, tls) as ch:
            await asyncio.wait_for(ch.channel_ready(), 15)
            call = services_pb2_grpc.RuleEngineServiceStub(ch).PushEvents()
            await call.write(event_pb2.EventBatch(batch_seq=1, events=[shadow_event(1)]))
            assert (await call.read()).accepted == 1
            await call.done_writing()
        for _ in range(300):  # the alert crossed the rule engine's own mTLS hop to the dispatcher
            if disp.alerts:
                break
            await asyncio.sleep(0.05)
        assert [a.rule for a in disp.alerts] == ["Shadow read"]

        # Plain TCP, and TLS with a certificate from another CA: the handshake fails, no request is served.
        async with grpc.aio.insecure_channel(target) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as plain:
                call = services_pb2_grpc.RuleEngineServiceStub(ch).PushEvents()
                await call.write(event_pb2.EventBatch(batch_seq=1, events=[shadow_event(2)]))
                await asyncio.wait_for(call.read(), 10)
            assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
        async with pipeline_channel(target, PipelineTls.load(str(tmp_path / "stranger"))) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as stranger:
                call = services_pb2_grpc.RuleEngineServiceStub(ch).PushEvents()
                await call.write(event_pb2.EventBatch(batch_seq=1, events=[shadow_event(3)]))
                await asyncio.wait_for(call.read(), 10)
            assert stranger.value.code() == grpc.StatusCode.UNAVAILABLE
        # A client certificate of the same CA (lanner certs client) completes the handshake but may not push.
        issue_client(str(tmp_path / "pki"), "alice", str(tmp_path / "alice"))
        crt, key = (tmp_path / "alice/alice.crt").read_bytes(), (tmp_path / "alice/alice.key").read_bytes()
        alice = PipelineTls(tls.ca, crt, key)
        async with pipeline_channel(target, alice) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as client_cert:
                call = services_pb2_grpc.RuleEngineServiceStub(ch).PushEvents()
                await call.write(event_pb2.EventBatch(batch_seq=1, events=[shadow_event(4)]))
                await asyncio.wait_for(call.read(), 10)
            assert client_cert.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "'alice' may not push" in (client_cert.value.details() or "")
        assert len(disp.alerts) == 1

        healthy, _ = await asyncio.to_thread(check_health, target, "", 5.0, str(tmp_path / "pki"))
        assert healthy
        healthy, status = await asyncio.to_thread(check_health, target, "", 5.0, "")
        assert not healthy and status.startswith("UNAVAILABLE")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dserver.stop(0)
