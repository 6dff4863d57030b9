# SPDX-License-Identifier: Apache-2.0
"""The public Subscribe stream: filters, live tail, bounded queues with counted drops, disconnects."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from dispatcher_testlib import base_config, make_alert, push, running, subscribe_call, wait_for
from prometheus_client import REGISTRY

from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration


def subscribers() -> float:
    return REGISTRY.get_sample_value("lanner_dispatcher_subscribers") or 0.0


def dropped(name: str) -> float:
    return REGISTRY.get_sample_value("lanner_alerts_dropped_total", {"subscriber": name}) or 0.0


async def test_filters_and_live_tail(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        # Accepted before anyone subscribed: live tail means these are never sent.
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(100, rule="Old")])])
        everything = subscribe_call(ch, subscriber_name="all")
        severe = subscribe_call(ch, subscriber_name="severe", min_priority=alert_pb2.PRIORITY_ERROR)
        by_rule = subscribe_call(ch, subscriber_name="rule", rules=["B"], sources=["syscall"])
        by_tag = subscribe_call(ch, subscriber_name="tag", tags=["net"])
        await wait_for(lambda: subscribers() == 4)
        alerts = [
            make_alert(0, rule="A", priority=alert_pb2.PRIORITY_CRITICAL, tags=["proc"]),
            make_alert(1, rule="B", priority=alert_pb2.PRIORITY_NOTICE, tags=["net"]),
            make_alert(2, rule="B", priority=alert_pb2.PRIORITY_ERROR, source="k8s_audit"),
            make_alert(3, rule="C", priority=alert_pb2.PRIORITY_DEBUG, tags=["net", "proc"]),
        ]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=2, alerts=alerts)])

        async def take(call: grpc.aio.UnaryStreamCall, n: int) -> list[str]:  # type: ignore[type-arg]
            return [(await asyncio.wait_for(call.read(), 5)).alert_id for _ in range(n)]

        assert await take(everything, 4) == ["alert-0", "alert-1", "alert-2", "alert-3"]
        assert await take(severe, 2) == ["alert-0", "alert-2"]
        assert await take(by_rule, 1) == ["alert-1"]
        assert await take(by_tag, 2) == ["alert-1", "alert-3"]
        for call in (everything, severe, by_rule, by_tag):
            call.cancel()
        await wait_for(lambda: subscribers() == 0)


async def test_slow_subscriber_drops_are_counted_others_keep_receiving(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind, subscriber_queue=64)
    big = {f"field.{k}": "x" * 100 for k in range(20)}  # about 2.5 KB per alert
    # No BDP probing, so the lazy client's flow-control window stays at 64 KB and fills quickly.
    lazy_opts = [("grpc.http2.bdp_probe", 0)]
    async with (
        running(cfg) as d,
        grpc.aio.insecure_channel(d.target) as ch,
        grpc.aio.insecure_channel(d.target, options=lazy_opts) as lazy_ch,
    ):
        reader = subscribe_call(ch, subscriber_name="reader")
        lazy = subscribe_call(lazy_ch, subscriber_name="lazy")
        await wait_for(lambda: subscribers() == 2)
        before_reader, before_lazy = dropped("reader"), dropped("lazy")
        received = 0
        n_batches, per_batch = 30, 32
        for b in range(n_batches):
            alerts = [make_alert(b * per_batch + i, fields=big) for i in range(per_batch)]
            await push(d.target, [alert_pb2.AlertBatch(batch_seq=b, alerts=alerts)])
            # Read this batch before pushing the next, so the reader never lags by a whole queue.
            for _ in range(per_batch):
                got = await asyncio.wait_for(reader.read(), 5)
                assert got.alert_id == f"alert-{received}"
                received += 1
        assert received == n_batches * per_batch
        assert dropped("reader") == before_reader
        await wait_for(lambda: dropped("lazy") > before_lazy)
        lost = dropped("lazy") - before_lazy
        assert 0 < lost < n_batches * per_batch
        reader.cancel()
        lazy.cancel()
        await wait_for(lambda: subscribers() == 0)


async def test_bad_subscribe_request_gets_clear_error(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind)
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        call = subscribe_call(ch, min_priority=42)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "priority: 42 is not a Falco priority" in (err.value.details() or "")
        garbage = ch.unary_stream("/lanner.v1.SubscriberService/Subscribe")(b"\xff\xff\xff")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await garbage.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "SubscribeRequest" in (err.value.details() or "")


async def test_subscriber_limit(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind, max_subscribers=1)
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        first = subscribe_call(ch, subscriber_name="first")
        await wait_for(lambda: subscribers() == 1)
        second = subscribe_call(ch, subscriber_name="second")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await second.read()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        await wait_for(lambda: subscribers() == 0)
