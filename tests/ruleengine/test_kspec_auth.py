# SPDX-License-Identifier: Apache-2.0
"""Only the rule engine may set the collector's kernel spec: a stranger who could would blind the sensor.

Over real gRPC against the collector's own servicer: without TLS a control token is needed; under mutual TLS only
the pipeline certificate (not a client certificate of the same CA) gets through.
"""

from __future__ import annotations

import stat
from pathlib import Path

import grpc
import pytest

from collector.server import ControlServicer
from collector.source import KernelSource
from lanner.control_auth import ControlGuard, ControlTokenError, ensure_token, read_token
from lanner.pki import PipelineTls, init_pki
from lanner.pki_client import issue_client
from lanner.v1 import kfilter_pb2_grpc
from ruleengine.engine import Engine
from ruleengine.kspec import SpecPusher
from tests.ruleengine.test_kspec_push import NoProbes, _port
from tests.ruleengine.test_kspec_push import _engine as shadow_engine


def _engine() -> Engine:
    return shadow_engine("/etc/shadow")


async def _collector(guard: ControlGuard, tls: PipelineTls | None) -> tuple[grpc.aio.Server, KernelSource, str]:
    source = KernelSource(NoProbes())
    server = grpc.aio.server()
    kfilter_pb2_grpc.add_CollectorControlServicer_to_server(ControlServicer(source, guard), server)
    port = _port()
    if tls is None:
        server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        server.add_secure_port(f"127.0.0.1:{port}", tls.server_credentials())
    await server.start()
    return server, source, f"127.0.0.1:{port}"


async def _push(pusher: SpecPusher) -> bool:
    async with pusher.channel() as channel:
        return await pusher.push_once(channel)


async def test_without_tls_only_the_token_holder_sets_the_spec(tmp_path: Path) -> None:
    token = ensure_token(tmp_path / "control-token")
    assert stat.S_IMODE((tmp_path / "control-token").stat().st_mode) == 0o600
    assert ensure_token(tmp_path / "control-token") == token  # made once, then reused
    server, _source, target = await _collector(ControlGuard(tls=False, token=token), None)
    try:
        engine = _engine()
        assert not await _push(SpecPusher(target, lambda: engine))
        assert not await _push(SpecPusher(target, lambda: engine, token="x" * len(token)))
        rightful = SpecPusher(target, lambda: engine, token=token)
        assert await _push(rightful)
        assert rightful.acked == rightful.spec().fingerprint
    finally:
        await server.stop(None)


async def test_under_mutual_tls_only_the_pipeline_certificate_sets_the_spec(tmp_path: Path) -> None:
    init_pki(str(tmp_path / "pki"))
    tls = PipelineTls.load(str(tmp_path / "pki"))
    server, _source, target = await _collector(ControlGuard(tls=True, token=""), tls)
    try:
        engine = _engine()
        assert await _push(SpecPusher(target, lambda: engine, tls=tls))
        # A reader's certificate from the same CA completes the handshake, and is still refused.
        crt, key = issue_client(str(tmp_path / "pki"), "alice", str(tmp_path / "alice"))
        alice = PipelineTls(tls.ca, crt.read_bytes(), key.read_bytes())
        async with SpecPusher(target, lambda: engine, tls=alice).channel() as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await kfilter_pb2_grpc.CollectorControlStub(channel).SetKernelSpec(
                    SpecPusher(target, lambda: engine).spec(), timeout=5.0
                )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "pipeline certificate" in (refused.value.details() or "")
        # Plain TCP against the TLS port gets nowhere.
        assert not await _push(SpecPusher(target, lambda: engine))
    finally:
        await server.stop(None)


def test_guard_reports_open_and_bad_token_files(tmp_path: Path) -> None:
    assert ControlGuard(tls=False, token="").open
    assert not ControlGuard(tls=True, token="").open
    assert read_token("") == ""
    with pytest.raises(ControlTokenError, match=r"control_token_file: .*missing"):
        read_token(str(tmp_path / "missing"))
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ControlTokenError, match="at least 16"):
        read_token(str(tmp_path / "short"))


def test_lanner_up_gives_collector_and_rule_engine_one_token(tmp_path: Path) -> None:
    import argparse

    from lanner.up import _environment

    (tmp_path / "spool").mkdir()
    env = _environment(argparse.Namespace(), tmp_path, "redis://127.0.0.1:1")
    path = env["LANNER_COLLECTOR__CONTROL_TOKEN_FILE"]
    assert env["LANNER_RULEENGINE__CONTROL_TOKEN_FILE"] == path
    assert read_token(path) and stat.S_IMODE(Path(path).stat().st_mode) == 0o600
