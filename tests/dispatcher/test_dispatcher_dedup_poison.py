# SPDX-License-Identifier: Apache-2.0
"""Issue 10 item 3: decoys with predicted alert ids cannot make real alerts count as duplicates."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import grpc
import pytest
from dispatcher_testlib import base_config, make_alert, push, running, subscribe_call
from redis.asyncio import Redis

from dispatcher.dedup import DedupKeyer, load_secret
from lanner.v1 import alert_pb2, event_pb2
from ruleengine.service import alert_id as producer_alert_id

pytestmark = pytest.mark.integration


def _real(i: int) -> alert_pb2.Alert:
    ident = event_pb2.EventIdentity(node="node-a", boot_id="boot-1", producer_id="p1", seq=1000 + i)
    pb = make_alert(
        i, rule="Read sensitive file untrusted", alert_id=producer_alert_id(ident, "Read sensitive file untrusted")
    )
    pb.event_id.CopyFrom(ident)
    pb.output_fields_json = f'{{"fd.name":"/etc/shadow","proc.pid":{5000 + i}}}'
    return pb


def _decoy(real: alert_pb2.Alert) -> alert_pb2.Alert:
    # What an attacker can predict: the identity (Subscribe shows node, boot and seq) and so the producer's id.
    # What it cannot know in advance: the event's exact time and rendered fields.
    pb = alert_pb2.Alert()
    pb.CopyFrom(real)
    pb.time.nanos = (real.time.nanos + 1) % 1_000_000_000
    pb.output = "decoy"
    pb.output_fields_json = '{"fd.name":"/tmp/nothing"}'
    return pb


async def test_6000_decoys_with_predicted_ids_do_not_silence_real_alerts(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    reals = [_real(i) for i in range(6000)]
    decoys = [_decoy(r) for r in reals]
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        batches = [
            alert_pb2.AlertBatch(batch_seq=n + 1, alerts=decoys[s : s + 500]) for n, s in enumerate(range(0, 6000, 500))
        ]
        await push(d.target, batches, timeout=60)
        call = subscribe_call(ch, subscriber_name="victim", rules=["Read sensitive file untrusted"])
        await asyncio.sleep(0.3)  # live tail: let the subscription register first
        real_batch = alert_pb2.AlertBatch(batch_seq=100, alerts=reals[:50])
        await push(d.target, [real_batch])
        got = [await asyncio.wait_for(call.read(), 10) for _ in range(50)]
        assert [g.output for g in got] == [r.output for r in reals[:50]]
        call.cancel()
        # The rule engine resending the very same alerts (a lost ack) is still recognised as a duplicate.
        client = Redis.from_url(redis_url)
        before = await client.xlen(cfg.stream)
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=101, alerts=reals[:50])])
        assert await client.xlen(cfg.stream) == before
        await client.aclose()


def test_secret_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dispatcher" / "dedup-secret"
    first = load_secret("", str(path))
    assert len(first) == 64 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret("", str(path)) == first
    assert load_secret("from-env-0123456789", str(path)) == b"from-env-0123456789"


def test_keys_depend_on_the_secret_and_the_content() -> None:
    a, b = DedupKeyer(b"k" * 32), DedupKeyer(b"j" * 32)
    real = _real(1)
    assert a.key(real) == a.key(alert_pb2.Alert.FromString(real.SerializeToString()))
    assert a.key(real) != b.key(real)
    assert a.key(real) != a.key(_decoy(real))
    assert a.key(make_alert(1, alert_id="")) == ""
