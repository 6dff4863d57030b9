# SPDX-License-Identifier: Apache-2.0
"""Issue 10, the ReDoS attack against a running rule engine on real sockets: with ``fd.name regex '.*(a+)+$'``
loaded, an open of a path of thousands of ``a`` (28 froze a backtracking engine for 17 s, each extra one doubling
it) sits in the same batch as a ``/etc/shadow`` read, and the shadow alert still comes out; RE2 is linear."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from lanner.convert import event_to_pb
from lanner.v1 import event_pb2, services_pb2_grpc
from ruleengine.config import RuleEngineConfig
from ruleengine.events_json import event_from_fields
from ruleengine.server import serve
from tests.ruleengine.test_service import RULES, Dispatcher, free_port, shadow_event, wait_for

pytestmark = pytest.mark.integration

BACKTRACKING = """
- rule: Backtracking regex
  desc: the issue's pattern
  condition: evt.type in (open, openat) and fd.name regex '.*(a+)+$'
  output: matched %fd.name
  priority: NOTICE
"""


async def test_backtracking_regex_does_not_freeze_the_engine(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES + BACKTRACKING)
    disp = Dispatcher()
    dserver = grpc.aio.server()
    services_pb2_grpc.add_DispatcherServiceServicer_to_server(disp, dserver)
    dport = free_port()
    dserver.add_insecure_port(f"127.0.0.1:{dport}")
    await dserver.start()
    port = free_port()
    cfg = RuleEngineConfig(
        bind=f"127.0.0.1:{port}",
        metrics_bind="",
        dispatcher_target=f"127.0.0.1:{dport}",
        rules_files=(str(rules),),
        hostname="h",
        watch_rules=False,
        collector_target="",
    )
    task = asyncio.create_task(serve(cfg))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            await asyncio.wait_for(ch.channel_ready(), 15)
            call = services_pb2_grpc.RuleEngineServiceStub(ch).PushEvents()
            batch = event_pb2.EventBatch(batch_seq=1)
            for i, n in enumerate((28, 40, 4000)):
                attack = event_to_pb(event_from_fields({"evt.type": "openat", "proc.name": "x",
                                                        "fd.name": "/tmp/" + "a" * n + "!"}))  # fmt: skip
                attack.id.node, attack.id.seq, attack.id.producer_id = "n1", 100 + i, "p1"
                batch.events.append(attack)
            batch.events.append(shadow_event(7))
            await call.write(batch)
            ack = await asyncio.wait_for(call.read(), 30)
            assert ack.accepted == 4
            # Generous deadline: a backtracking engine would need about 2**4000 steps for the last path alone.
            await wait_for(lambda: any(a.rule == "Shadow read" for a in disp.alerts), timeout=30)
            assert not any(a.rule == "Backtracking regex" for a in disp.alerts)  # '!' ends each path: no match
            await call.done_writing()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dserver.stop(0)
