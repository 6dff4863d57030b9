# SPDX-License-Identifier: Apache-2.0
"""Resumable, filtered Subscribe: cursors, replay then live with no gap and no duplicate, field filters and masks,
and a ``lanner subscribe`` that survives a dispatcher restart and exits 0 on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, make_alert, push, running, subscribe_call, wait_for
from prometheus_client import REGISTRY

from dispatcher.client import parse_duration
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


def batches(start: int, stop: int, size: int = 10, **kw: object) -> list[alert_pb2.AlertBatch]:
    return [
        alert_pb2.AlertBatch(batch_seq=i, alerts=[make_alert(j, **kw) for j in range(i, min(i + size, stop))])  # type: ignore[arg-type]
        for i in range(start, stop, size)
    ]


async def test_client_killed_mid_stream_resumes_without_gap_or_duplicate(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind, subscriber_queue=4096)
    async with running(cfg) as d:
        async with grpc.aio.insecure_channel(d.target) as ch:
            call = subscribe_call(ch, subscriber_name="victim")
            await asyncio.sleep(0.3)
            await push(d.target, batches(0, 50))
            first = [await asyncio.wait_for(call.read(), 5) for _ in range(20)]
            call.cancel()  # the client dies with 30 alerts still on their way
        cursor = first[-1].cursor
        # Alerts keep coming while the client is away and while it replays.
        feeder = asyncio.create_task(push(d.target, batches(50, 400), timeout=30))
        await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(d.target) as ch:
            call = subscribe_call(ch, subscriber_name="victim", from_cursor=cursor)
            rest = [await asyncio.wait_for(call.read(), 10) for _ in range(380)]
            await feeder
            call.cancel()
    got = [a.message for a in first + rest]
    assert got == [f"A shell was spawned (n={i})" for i in range(400)]
    cursors = [a.cursor for a in first + rest]
    assert len(set(cursors)) == 400


async def test_since_filters_and_field_mask(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    fields = [{"k8s.ns.name": "shop" if i % 2 else "dev", "proc.name": "bash", "n": i} for i in range(10)]
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        await push(
            d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i, fields=fields[i]) for i in range(10)])]
        )
        since = int(time.time() * 1000) - 60_000
        call = subscribe_call(ch, since_unix_ms=since, filters=["k8s.ns.name=shop", "n!=9"], fields=["k8s.ns.name"])
        got = [await asyncio.wait_for(call.read(), 5) for _ in range(4)]
        assert [a.message for a in got] == [f"A shell was spawned (n={i})" for i in (1, 3, 5, 7)]
        assert all(dict(a.output_fields) == {"k8s.ns.name": "shop"} for a in got)
        # Live alerts go through the same filter.
        await push(
            d.target,
            [
                alert_pb2.AlertBatch(
                    batch_seq=2, alerts=[make_alert(11, fields=fields[1]), make_alert(12, fields=fields[0])]
                )
            ],
        )
        live = await asyncio.wait_for(call.read(), 5)
        assert live.message == "A shell was spawned (n=11)"
        call.cancel()
        too_many = {"filters": [f"f{i}=x" for i in range(65)]}
        too_long = {"fields": ["x" * 513]}
        for bad in ({"filters": ["k8s.ns.name shop"]}, {"from_cursor": "yesterday"}, too_many, too_long):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(subscribe_call(ch, **bad).read(), 5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_subscriber_names_leave_no_metric_series_behind(redis_url: str, bind: str) -> None:
    def series(name: str) -> float | None:
        return REGISTRY.get_sample_value("lanner_dispatcher_subscriber_sent_total", {"subscriber": name})

    async with running(base_config(redis_url, bind)) as d, grpc.aio.insecure_channel(d.target) as ch:
        calls = [subscribe_call(ch, subscriber_name=f"client-{i}") for i in range(30)]
        await wait_for(lambda: series("client-29") is not None)
        for call in calls:
            call.cancel()
        await wait_for(lambda: all(series(f"client-{i}") is None for i in range(30)))


def test_durations() -> None:
    assert parse_duration("10m") == 600 and parse_duration("2h") == 7200 and parse_duration("45") == 45
    with pytest.raises(ValueError, match="10m"):
        parse_duration("ten minutes")


async def _read_lines(path: Path, n: int) -> list[str]:
    await wait_for(lambda: len(path.read_text().splitlines()) >= n, timeout=30)
    return path.read_text().splitlines()


async def test_lanner_subscribe_survives_a_dispatcher_restart_and_exits_0_on_ctrl_c(
    redis_url: str, bind: str, tmp_path: Path
) -> None:
    cfg = base_config(redis_url, bind)
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lanner.cli", "subscribe", "--target", bind, "--json", "--filter", "rule~Terminal*"],
            stdout=o, stderr=e, env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        async with running(cfg) as d:
            # The client connects (it retries with backoff until the port answers); then alerts flow.
            await wait_for(lambda: REGISTRY.get_sample_value("lanner_dispatcher_subscribers") == 1, timeout=60)
            await push(d.target, batches(0, 5))
            await _read_lines(out, 5)
        # The dispatcher is down: alerts accepted by the next one before the client is back are replayed.
        async with running(cfg) as d:
            await push(d.target, batches(5, 10))
            await wait_for(lambda: "reconnected" in err.read_text(), timeout=30)
            await push(d.target, batches(10, 15))
            lines = await _read_lines(out, 15)
            proc.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [json.loads(x)["output_fields"]["proc.pid"] for x in lines] == [4242 + i for i in range(15)]
    assert len(out.read_text().splitlines()) == 15
    text = err.read_text()
    assert "unavailable" in text and "reconnecting in" in text and "resume with --from-cursor" in text
    assert "Traceback" not in text
