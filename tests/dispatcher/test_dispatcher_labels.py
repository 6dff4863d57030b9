# SPDX-License-Identifier: Apache-2.0
"""Issue 10: metric labels chosen by clients (subscriber names) do not accumulate; their series go with them."""

from __future__ import annotations

import grpc
import pytest
from dispatcher_testlib import base_config, running, subscribe_call, wait_for
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


def series(prefix: str) -> int:
    n = 0
    for metric in REGISTRY.collect():
        if metric.name in ("lanner_dispatcher_subscriber_sent", "lanner_alerts_dropped"):
            n += sum(
                1
                for s in metric.samples
                if s.name.endswith("_total") and str(s.labels.get("subscriber", "")).startswith(prefix)
            )
    return n


def subscribers() -> float:
    return REGISTRY.get_sample_value("lanner_dispatcher_subscribers") or 0.0


async def test_subscriber_series_go_when_the_client_goes(redis_url: str, bind: str) -> None:
    cfg = base_config(redis_url, bind, max_subscribers=50)
    async with running(cfg) as d, grpc.aio.insecure_channel(d.target) as ch:
        for round_ in range(6):
            calls = [subscribe_call(ch, subscriber_name=f"churn-{round_}-{i}") for i in range(50)]
            await wait_for(lambda: subscribers() == 50)
            assert series(f"churn-{round_}-") == 2 * 50
            for call in calls:
                call.cancel()
            await wait_for(lambda: subscribers() == 0)
        # 300 names came and went; none of them left a series behind.
        assert series("churn-") == 0
        # Two subscribers sharing a name: the series stays until the last of them leaves.
        a = subscribe_call(ch, subscriber_name="churn-shared")
        b = subscribe_call(ch, subscriber_name="churn-shared")
        await wait_for(lambda: subscribers() == 2)
        a.cancel()
        await wait_for(lambda: subscribers() == 1)
        assert series("churn-shared") == 2
        b.cancel()
        await wait_for(lambda: subscribers() == 0)
        assert series("churn-shared") == 0
