# SPDX-License-Identifier: Apache-2.0
"""Keepalive agrees on both ends: a client pinging an idle stream as often as Lanner's clients do is never sent
GOAWAY "too_many_pings" by a Lanner server. Intervals are shortened so the test sees dozens of pings."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lanner import keepalive
from lanner.server import client_options, run_service

pytestmark = pytest.mark.integration
PING_MS = 100
IDLE_S = 4.0  # 40 pings, far beyond the two strikes a mismatched server allows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def idle_watch(target: str, idle_s: float) -> grpc.aio.AioRpcError | None:
    """Open a health Watch stream, read its first message, then keep it idle; return the error that ended it,
    or None if it was still open after ``idle_s``."""
    async with grpc.aio.insecure_channel(target, options=client_options()) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        await call.read()
        try:
            await asyncio.wait_for(call.read(), timeout=idle_s)
        except TimeoutError:
            return None
        except grpc.aio.AioRpcError as exc:
            return exc
        raise AssertionError("health status changed while the stream was idle")


async def test_lanner_server_accepts_lanner_client_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANNER_GRPC_KEEPALIVE_MS", str(PING_MS))
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(run_service("test", f"127.0.0.1:{port}", lambda s: [], stop_event=stop))
    try:
        error = await idle_watch(f"127.0.0.1:{port}", IDLE_S)
        assert error is None, f"stream ended: {error.code().name} {error.details()}"
    finally:
        stop.set()
        await server


async def test_mismatched_server_policy_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the same pings against a server with gRPC's default policy are refused, so the test above
    would see a GOAWAY if the two ends disagreed."""
    monkeypatch.setenv("LANNER_GRPC_KEEPALIVE_MS", str(PING_MS))
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        error = await idle_watch(f"127.0.0.1:{port}", IDLE_S * 5)
        assert error is not None and "ping" in (error.details() or "").lower(), error
    finally:
        await server.stop(0)


def test_server_floor_is_below_client_interval() -> None:
    server = dict(keepalive.server_options(PING_MS))
    client = dict(keepalive.client_options(PING_MS))
    assert server["grpc.http2.min_ping_interval_without_data_ms"] < client["grpc.keepalive_time_ms"]
    assert client["grpc.keepalive_permit_without_calls"] == server["grpc.keepalive_permit_without_calls"] == 1
