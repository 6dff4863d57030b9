# SPDX-License-Identifier: Apache-2.0
"""PushAlerts -> Redis -> outputs and Subscribe, on a real redis-server and a real gRPC socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, lines, make_alert, push, running, subscribe_call, wait_for

from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


async def test_push_then_subscribe_and_file(redis_url: str, bind: str, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(out)}})
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        call = subscribe_call(ch, subscriber_name="t1")
        await asyncio.sleep(0.2)  # let the subscription register before pushing (live tail)
        alerts = [make_alert(i) for i in range(20)]
        acks = await push(
            d.target,
            [
                alert_pb2.AlertBatch(batch_seq=1, alerts=alerts[:10]),
                alert_pb2.AlertBatch(batch_seq=2, alerts=alerts[10:]),
            ],
        )
        assert [(a.batch_seq, a.accepted) for a in acks] == [(1, 10), (2, 10)]
        got = [await asyncio.wait_for(call.read(), 5) for _ in range(20)]
        assert [a.alert_id for a in got] == [f"alert-{i}" for i in range(20)]
        # Each alert carries its stream position (the cursor to resume from); the rest is what was pushed.
        assert all(g.cursor for g in got) and got[3].cursor < got[4].cursor
        got[3].ClearField("cursor")
        assert got[3] == alerts[3]
        call.cancel()
        await wait_for(lambda: len(lines(out)) == 20)
        first = json.loads(lines(out)[0])
        assert first["rule"] == "Terminal shell in container"
        assert first["priority"] == "Notice"
        assert first["time"] == "2024-06-10T06:13:31.726060287Z"


async def test_two_replicas_share_output_work(redis_url: str, tmp_path: Path) -> None:
    from dispatcher_testlib import free_port

    out = tmp_path / "alerts.jsonl"
    outputs = {"file": {"path": str(out)}}
    a = base_config(redis_url, f"127.0.0.1:{free_port()}", consumer="replica-a", outputs=outputs)
    b = base_config(redis_url, f"127.0.0.1:{free_port()}", consumer="replica-b", outputs=outputs)
    async with running(a) as da, running(b) as db:
        async with grpc.aio.insecure_channel(db.target) as ch:
            # A subscriber on replica b sees alerts pushed to replica a: both tail the same stream.
            call = subscribe_call(ch, subscriber_name="on-b")
            await asyncio.sleep(0.2)
            alerts = [make_alert(i) for i in range(200)]
            for k in range(0, 200, 50):
                await push(da.target, [alert_pb2.AlertBatch(batch_seq=k, alerts=alerts[k : k + 50])])
            got = [await asyncio.wait_for(call.read(), 5) for _ in range(200)]
            assert len({g.alert_id for g in got}) == 200
            call.cancel()
        await wait_for(lambda: len(lines(out)) >= 200)
        await asyncio.sleep(0.3)
    pids = [json.loads(x)["output_fields"]["proc.pid"] for x in lines(out)]
    assert sorted(pids) == list(range(4242, 4442))  # each alert written once, by one replica or the other
