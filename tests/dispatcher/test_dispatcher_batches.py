# SPDX-License-Identifier: Apache-2.0
"""Alerts in batches: SubscribeBatches (the same alerts as Subscribe, several per message), and outputs that
deliver a whole batch in one operation (the file output's one write), with the one-by-one path for the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, lines, make_alert, push, running, subscribe_call, wait_for
from prometheus_client import REGISTRY

from dispatcher.client import Subscription, subscribe_request
from dispatcher.hub import with_cursor
from dispatcher.outputs.file import FileConfig, FileOutput, _whole_lines
from dispatcher.registry import OutputContext
from lanner.alert import alert_from_pb
from lanner.alert_wire import alert_batch_wire
from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration


def subscribers() -> float:
    return REGISTRY.get_sample_value("lanner_dispatcher_subscribers") or 0.0


def test_batch_wire_is_an_alert_batch_of_the_same_bytes() -> None:
    payloads = [make_alert(i).SerializeToString() for i in range(3)]
    wired = [with_cursor(p, f"171800001172{i}-{i}".encode()) for i, p in enumerate(payloads)]
    batch = alert_pb2.AlertBatch.FromString(alert_batch_wire(7, wired))
    assert batch.batch_seq == 7
    assert [a.alert_id for a in batch.alerts] == ["alert-0", "alert-1", "alert-2"]
    assert [a.cursor for a in batch.alerts] == ["171800001172" + f"{i}-{i}" for i in range(3)]
    assert batch.alerts[1] == alert_pb2.Alert.FromString(wired[1])
    # A cursor appended to an alert that already had one replaces it (the last occurrence of a field wins).
    again = alert_pb2.Alert.FromString(with_cursor(wired[0], b"9-9"))
    assert again.cursor == "9-9" and again.alert_id == "alert-0"


async def test_subscribe_batches_sees_what_subscribe_sees_and_resumes(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        stub = services_pb2_grpc.SubscriberServiceStub(ch)
        batches = stub.SubscribeBatches(services_pb2.SubscribeRequest(subscriber_name="b", rules=["A"]))
        single = subscribe_call(ch, subscriber_name="s", rules=["A"])
        await wait_for(lambda: subscribers() == 2)
        alerts = [make_alert(i, rule="A" if i % 3 else "B") for i in range(300)]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=k, alerts=alerts[k * 50 : k * 50 + 50]) for k in range(6)])
        want = [a.alert_id for a in alerts if a.rule == "A"]
        got: list[alert_pb2.Alert] = []
        seqs = []
        while len(got) < len(want):
            batch = await asyncio.wait_for(batches.read(), 10)
            seqs.append(batch.batch_seq)
            got.extend(batch.alerts)
        assert [a.alert_id for a in got] == want
        assert seqs == list(range(1, len(seqs) + 1))
        one_by_one = [await asyncio.wait_for(single.read(), 10) for _ in want]
        assert [a.SerializeToString() for a in one_by_one] == [a.SerializeToString() for a in got]
        batches.cancel()
        single.cancel()
        # Resume after the 100th alert: the rest come again, in batches, with no gap and no duplicate.
        resumed = stub.SubscribeBatches(services_pb2.SubscribeRequest(rules=["A"], from_cursor=got[99].cursor))
        rest: list[str] = []
        while len(rest) < len(want) - 100:
            rest.extend(a.alert_id for a in (await asyncio.wait_for(resumed.read(), 10)).alerts)
        assert rest == want[100:]
        resumed.cancel()


async def test_lanner_subscribe_prints_batches_in_order(redis_url: str, bind: str, tmp_path: Path) -> None:
    cfg = base_config(redis_url, bind)
    out = (tmp_path / "out.jsonl").open("w+")
    err = (tmp_path / "err.txt").open("w+")
    async with running(cfg) as d:
        sub = Subscription(d.target, subscribe_request(name="cli"), True, out, err)
        runner = asyncio.create_task(asyncio.to_thread(sub.run))
        await wait_for(lambda: subscribers() == 1)
        alerts = [make_alert(i) for i in range(120)]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=k, alerts=alerts[k * 40 : k * 40 + 40]) for k in range(3)])
        await wait_for(lambda: len(lines(tmp_path / "out.jsonl")) == 120)
        sub.stop()
        assert await runner == 0
    printed = lines(tmp_path / "out.jsonl")
    assert [f'"n={i})"' in line or f"(n={i})" in line for i, line in enumerate(printed)] == [True] * 120
    assert sub.cursor


def test_whole_lines() -> None:
    chunks = [b"ab\n", b"cde\n", b"f\n"]
    assert [_whole_lines(chunks, n) for n in (0, 2, 3, 6, 7, 8, 9, 100)] == [0, 0, 1, 1, 2, 2, 3, 3]


async def test_file_batch_one_write_and_a_failing_device(tmp_path: Path) -> None:
    alerts = [alert_from_pb(make_alert(i)) for i in range(5)]
    ctx = OutputContext(hostname="h")
    for keep in (False, True):
        path = tmp_path / f"alerts-{keep}.jsonl"
        out = FileOutput(FileConfig(path=str(path), keep_alive=keep), ctx)
        assert await out.send_batch(alerts) == 5
        for alert in alerts[:2]:
            await out.send(alert)
        await out.close()
        got = lines(path)
        assert len(got) == 7 and got[:2] == got[5:]
        # /dev/full refuses every write (ENOSPC): nothing counts as delivered, and the file is closed again.
        full = FileOutput(FileConfig(path="/dev/full", keep_alive=keep), ctx)
        assert await full.send_batch(alerts) == 0
        assert full._fd is None
        with pytest.raises(OSError):
            await full.send(alerts[0])
        await full.close()


async def test_file_output_delivers_batches_and_retries_alone(redis_url: str, bind: str, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "alerts.jsonl"
    cfg = base_config(
        redis_url,
        bind,
        outputs={"file": {"path": str(target), "keep_alive": True, "backoff_initial_s": 0.05, "backoff_max_s": 0.1}},
    )
    async with running(cfg) as d:
        # The directory is missing: the batch fails, every alert is retried alone until it exists.
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(i) for i in range(20)])])
        target.parent.mkdir()
        await wait_for(lambda: target.exists() and len(lines(target)) == 20)
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=2, alerts=[make_alert(i) for i in range(20, 300)])])
        await wait_for(lambda: len(lines(target)) == 300)
    ids = [line.split("(n=")[1].split(")")[0] for line in lines(target)]
    assert sorted(int(i) for i in ids) == list(range(300))
