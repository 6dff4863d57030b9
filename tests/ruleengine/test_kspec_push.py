# SPDX-License-Identifier: Apache-2.0
"""The rule engine keeps the collector's kernel spec current over real gRPC (the collector's own servicer)."""

from __future__ import annotations

import asyncio
import socket

import grpc

from collector.server import ControlServicer
from collector.source import KernelSource
from lanner.control_auth import ControlGuard
from lanner.v1 import kfilter_pb2_grpc
from ruleengine.engine import Engine, load_texts
from ruleengine.kspec import SpecPusher


class NoProbes:
    """A record reader without probes (the servicer then acknowledges without attaching anything)."""

    def start(self) -> None:
        pass

    def read(self) -> list[bytes]:
        return []

    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _engine(path: str) -> Engine:
    text = f"""
- rule: r
  desc: d
  condition: evt.type = openat and fd.name = {path}
  output: o
  priority: WARNING
"""
    res = load_texts([("r.yaml", text)])
    assert res.engine is not None
    return res.engine


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_spec_sent_on_change_and_refreshed() -> None:
    port = _port()
    server = grpc.aio.server()
    servicer = ControlServicer(KernelSource(NoProbes()), ControlGuard(tls=False, token=""))
    kfilter_pb2_grpc.add_CollectorControlServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    current = [_engine("/etc/shadow")]
    pusher = SpecPusher(f"127.0.0.1:{port}", lambda: current[0], refresh_s=0.1)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await pusher.push_once(channel)
            first = pusher.acked
            assert first == pusher.spec().fingerprint
            current[0] = _engine("/etc/gshadow")  # a reload
            assert await pusher.push_once(channel)
            assert pusher.acked != first and pusher.acked == pusher.spec().fingerprint
            await asyncio.sleep(0.15)
            assert await pusher.push_once(channel)  # refreshed for a collector that may have restarted
    finally:
        await server.stop(None)
    await asyncio.sleep(0.15)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert not await pusher.push_once(channel)  # collector away: reported, retried later
    assert pusher.acked == ""
