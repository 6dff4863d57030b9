# SPDX-License-Identifier: Apache-2.0
"""gRPC reflection is off unless a service's config turns it on (it maps every method for a prober)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ruleengine.config import RuleEngineConfig
from ruleengine.server import serve
from tests.lanner.test_pki import free_port
from tests.ruleengine.test_service import RULES

pytestmark = pytest.mark.integration


async def list_services(target: str) -> list[str]:
    async with grpc.aio.insecure_channel(target) as ch:
        await asyncio.wait_for(ch.channel_ready(), 15)
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        resp = await asyncio.wait_for(call.read(), 5)
        await call.done_writing()
        return [s.name for s in resp.list_services_response.service]


async def test_reflection_only_when_configured(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    base = RuleEngineConfig(
        metrics_bind="",
        dispatcher_target="127.0.0.1:1",
        rules_files=(str(rules),),
        watch_rules=False,
        collector_target="",
    )
    for enabled in (False, True):
        port = free_port()
        task = asyncio.create_task(serve(dataclasses.replace(base, bind=f"127.0.0.1:{port}", grpc_reflection=enabled)))
        try:
            if enabled:
                assert "lanner.v1.RuleEngineService" in await list_services(f"127.0.0.1:{port}")
            else:
                with pytest.raises(grpc.aio.AioRpcError) as off:
                    await list_services(f"127.0.0.1:{port}")
                assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
