# SPDX-License-Identifier: Apache-2.0
"""The subscriber hub fed in memory from the intake (dispatcher.hub ``feed``): a fed batch is offered only when
it follows what the hub has offered, never twice, and in stream order with whatever other writers add."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, free_port, lines, make_alert, push, running, subscribe_call, wait_for

from dispatcher.hub import SubscriberHub
from dispatcher.routing import Route
from dispatcher.store import AlertStore, parse_id
from lanner.priority import Priority
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


def _sub(hub: SubscriberHub) -> object:
    sub = hub.new("t", Route(Priority.DEBUG, frozenset(), frozenset(), frozenset()))
    hub.add(sub)
    return sub


def _drain(sub: object) -> list[str]:
    queue = sub.queue  # type: ignore[attr-defined]
    out = []
    while not queue.empty():
        _, payload = queue.get_nowait()
        out.append(alert_pb2.Alert.FromString(payload).alert_id)
    return out


async def _persist(store: AlertStore, hub: SubscriberHub, ids: range) -> int:
    pbs = [make_alert(i) for i in ids]
    items = [(pb.alert_id, pb.SerializeToString()) for pb in pbs]

    def fed(newest: bytes, added: list[tuple[int, bytes]]) -> None:
        hub.feed(newest, [(entry_id, items[i][1], pbs[i], None) for i, entry_id in added])

    return await store.persist(items, fed)


async def test_a_fed_batch_is_offered_only_when_it_follows_the_cursor(redis_url: str) -> None:
    store = AlertStore(redis_url, "fed-unit", "fed-unit:dedup:", 60_000)
    hub = SubscriberHub(store)
    try:
        sub = _sub(hub)
        # As the tail loop does when it starts: its cursor is the stream's newest entry.
        await store.persist([("before", make_alert(99).SerializeToString())])
        hub._cursor = (await store.last_id()).encode()
        hub._tailing.set()

        assert await _persist(store, hub, range(0, 3)) == 3
        assert hub._take_fed()
        assert _drain(sub) == ["alert-0", "alert-1", "alert-2"]

        # Redelivered alerts are not new: nothing is fed, nothing offered twice.
        assert await _persist(store, hub, range(1, 3)) == 0
        assert not hub._take_fed()

        # Another writer adds an entry: the next fed batch does not follow the cursor and waits for a read.
        await store.persist([("elsewhere", make_alert(50).SerializeToString())])
        assert await _persist(store, hub, range(3, 5)) == 2
        assert not hub._take_fed()
        assert _drain(sub) == []
        # The read offers both the other writer's entry and the fed ones, in stream order...
        for entry in await store.read_after(hub._cursor.decode(), 100, None):
            hub._cursor = entry.id
            assert entry.payload is not None
            hub._fan_out(entry.id, entry.payload, [sub])  # type: ignore[list-item]
        assert _drain(sub) == ["alert-50", "alert-3", "alert-4"]
        # ...and the fed batch it covered is forgotten, not offered again.
        assert hub._take_fed()
        assert hub._fed == {}
        assert _drain(sub) == []

        # Batches fed out of order are taken in stream order once the first arrives.
        pbs = [make_alert(i) for i in range(5, 9)]
        batches: list[tuple[bytes, list[tuple[int, bytes]]]] = []
        items = [(pb.alert_id, pb.SerializeToString()) for pb in pbs]
        await store.persist(items[:2], lambda newest, added: batches.append((newest, added)))
        await store.persist(items[2:], lambda newest, added: batches.append((newest, [(i + 2, e) for i, e in added])))
        for newest, added in reversed(batches):
            hub.feed(newest, [(entry_id, items[i][1], pbs[i], None) for i, entry_id in added])
        assert hub._take_fed()
        assert _drain(sub) == ["alert-5", "alert-6", "alert-7", "alert-8"]
    finally:
        await store.close()


async def test_two_replicas_each_subscriber_gets_every_alert_once_in_stream_order(redis_url: str) -> None:
    # Two dispatchers on one stream: each one's subscriber sees its own intake fed in memory and the other's read
    # from the stream, with redeliveries among them.
    cfg_a = base_config(redis_url, f"127.0.0.1:{free_port()}", consumer="a")
    cfg_b = base_config(redis_url, f"127.0.0.1:{free_port()}", consumer="b")
    n_batches, per_batch = 40, 25
    want = {f"alert-{i}" for i in range(n_batches * per_batch)}
    async with (
        running(cfg_a) as a,
        running(cfg_b) as b,
        grpc.aio.insecure_channel(a.target) as ch_a,
        grpc.aio.insecure_channel(b.target) as ch_b,
    ):
        calls = [subscribe_call(ch_a, subscriber_name="on-a"), subscribe_call(ch_b, subscriber_name="on-b")]
        got: list[list[tuple[tuple[int, int], str]]] = [[], []]

        async def read(k: int) -> None:
            async for alert in calls[k]:
                got[k].append((parse_id(alert.cursor), alert.alert_id))

        readers = [asyncio.create_task(read(k)) for k in (0, 1)]
        # Each subscriber is registered once an alert pushed now reaches it (probes, left out of the checks).
        probe = 100_000
        while not all(got):
            probe += 1
            await push(a.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(probe)])])
            with contextlib.suppress(AssertionError):
                await wait_for(lambda: all(got), timeout=0.5)

        def batch(k: int) -> alert_pb2.AlertBatch:
            alerts = [make_alert(k * per_batch + i) for i in range(per_batch)]
            return alert_pb2.AlertBatch(batch_seq=k, alerts=alerts)

        async def pusher(target: str, ks: list[int]) -> None:
            for k in ks:
                await push(target, [batch(k)])

        evens, odds = list(range(0, n_batches, 2)), list(range(1, n_batches, 2))
        await asyncio.gather(
            pusher(a.target, evens),
            pusher(b.target, odds),
            pusher(a.target, odds[::3]),  # redeliveries of B's batches to A: dedup keeps one of each
            pusher(b.target, evens[::3]),
        )
        await wait_for(lambda: all(want <= {i for _, i in g} for g in got), timeout=30)
        await asyncio.sleep(0.3)  # a repeat would show up now
        for call in calls:
            call.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
    got = [[(c, i) for c, i in g if i in want] for g in got]
    for g in got:
        ids = [i for _, i in g]
        assert set(ids) == want
        assert len(ids) == len(want), "an alert reached a subscriber twice"
        cursors = [c for c, _ in g]
        assert cursors == sorted(cursors), "a subscriber saw the stream out of order"
    # Both subscribers saw the one stream in the same order.
    assert got[0] == got[1]


def test_recent_alerts_are_decoded_as_the_stream_bytes_would_be_and_kept_boundedly() -> None:
    from dispatcher.recent import RecentAlerts
    from lanner.alert import alert_from_pb

    recent = RecentAlerts(size=3)
    for i in range(5):
        pb = make_alert(i, fields={"proc.name": "bash", "n": i, "list": ["a", 1]})
        pb.output_fields_json = f'{{"list":["a",1],"n":{i},"proc.name":"bash"}}'
        got = recent.add(f"1-{i}".encode(), pb)
        assert got == alert_from_pb(alert_pb2.Alert.FromString(pb.SerializeToString()))
    # The oldest go first; a driver that lags further decodes the stream's bytes itself.
    assert [recent.get(f"1-{i}".encode()) is not None for i in range(5)] == [False, False, True, True, True]
    bad = make_alert(9)
    bad.output_fields_json = "{not json"
    assert recent.add(b"2-0", bad) is None
    assert recent.get(b"2-0") is None  # the driver dead-letters it from the stream, naming why


async def test_the_file_output_writes_the_same_lines_with_and_without_the_intakes_decoding(
    redis_url: str, bind: str, tmp_path: Path
) -> None:
    # One dispatcher writes alerts its own intake added (decoded once, at intake); a second one, on another
    # stream, only ever sees them from Redis (its intake is not the one that added them). Same lines.
    fast, slow = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    cfg = base_config(redis_url, bind, outputs={"file": {"path": str(fast)}})
    alerts = [make_alert(i, fields={"proc.name": "bash", "proc.pid": i, "fd.name": None}) for i in range(50)]
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(lines(fast)) == 50)
    cfg2 = base_config(redis_url, f"127.0.0.1:{free_port()}", stream="other", outputs={"file": {"path": str(slow)}})
    async with running(cfg2):
        store = AlertStore(redis_url, "other", "other:dedup:", 60_000)
        try:
            # Stored as the first dispatcher stored them: its stream's payloads, copied over as they are.
            first = AlertStore(redis_url, cfg.stream, "x:", 60_000)
            entries = await first.read_range("0-0", 100, inclusive=True)
            await first.close()
            await store.persist([("", e.payload) for e in entries if e.payload is not None])
        finally:
            await store.close()
        await wait_for(lambda: len(lines(slow)) == 50)
    assert lines(fast) == lines(slow)
