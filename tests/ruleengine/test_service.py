# SPDX-License-Identifier: Apache-2.0
"""The rule engine service on real sockets: events in over PushEvents, alerts out to a real dispatcher endpoint."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from lanner.convert import event_to_pb
from lanner.v1 import alert_pb2, event_pb2, services_pb2_grpc
from lanner.wire import SharedEvent, raw_push_events, shared_batch_wire
from ruleengine.config import RuleEngineConfig
from ruleengine.events_json import event_from_fields
from ruleengine.server import serve

pytestmark = pytest.mark.integration

RULES = """
- rule: Shadow read
  desc: test
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: shadow read (proc=%proc.name user=%user.name)
  priority: WARNING
  tags: [test]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dispatcher(services_pb2_grpc.DispatcherServiceServicer):
    def __init__(self) -> None:
        self.alerts: list[alert_pb2.Alert] = []

    async def PushAlerts(
        self, request_iterator: AsyncIterator[alert_pb2.AlertBatch], context: object
    ) -> AsyncIterator[alert_pb2.AlertAck]:
        async for batch in request_iterator:
            self.alerts.extend(batch.alerts)
            yield alert_pb2.AlertAck(batch_seq=batch.batch_seq, accepted=len(batch.alerts))


def shadow_event(seq: int) -> event_pb2.Event:
    ev = event_from_fields(
        {
            "evt.type": "openat",
            "proc.name": "cat",
            "fd.name": "/etc/shadow",
            "user.name": "root",
            "evt.arg.flags": "O_RDONLY",
        }
    )
    pb = event_to_pb(ev)
    pb.id.node, pb.id.boot_id, pb.id.seq, pb.id.producer_id = "n1", "b1", seq, "p1"
    pb.timing.event_ns = 1_700_000_000_123_456_789
    return pb


async def wait_for(cond: object, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_events_in_alerts_out(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
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
        hostname="testhost",
        watch_interval_s=0.2,
        collector_target="",
    )  # never steer a collector some other test may be running
    task = asyncio.create_task(serve(cfg))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            await asyncio.wait_for(ch.channel_ready(), 15)
            call = services_pb2_grpc.RuleEngineServiceStub(ch).PushEvents()
            batch = event_pb2.EventBatch(batch_seq=1, dropped_since_last=5)  # the enricher lost 5 events
            batch.events.append(shadow_event(7))
            batch.events.add(type="read", source="syscall")  # no rule for this type: skipped
            drop = batch.events.add(type="syscall_event_drop", source="internal")
            drop.args.add(name="n_drops", uint_value=42)
            drop.args.add(name="n_evts", uint_value=1000)
            await call.write(batch)
            ack = await call.read()
            assert ack.batch_seq == 1 and ack.accepted == 3
            await wait_for(lambda: len(disp.alerts) == 3)
            drop_counts = sorted(
                json.loads(a.output_fields_json)["n_drops"]
                for a in disp.alerts
                if a.rule == "Falco internal: syscall event drop"
            )
            assert drop_counts == [5, 42]  # reported upstream losses, and the collector's drop event
            by_rule = {a.rule: a for a in disp.alerts}
            alert = by_rule["Shadow read"]
            assert alert.hostname == "testhost" and alert.source == "syscall"
            assert alert.priority == alert_pb2.PRIORITY_WARNING and list(alert.tags) == ["test"]
            assert alert.event_id.seq == 7 and alert.event_id.node == "n1" and len(alert.alert_id) == 32
            assert alert.timing.event_ns == 1_700_000_000_123_456_789
            fields = json.loads(alert.output_fields_json)
            assert fields["proc.name"] == "cat" and fields["evt.time"] == 1_700_000_000_123_456_789
            assert "shadow read (proc=cat user=root)" in alert.output
            dropped = by_rule["Falco internal: syscall event drop"]
            assert dropped.source == "internal" and dropped.priority == alert_pb2.PRIORITY_CRITICAL

            # Hot reload: a broken rules file keeps the old rules and raises an internal alert.
            rules.write_text(RULES + "\n- rule: broken\n  condition: proc.nmae = x\n")
            await wait_for(lambda: any(a.rule == "Lanner internal: rules reload failed" for a in disp.alerts))
            batch = event_pb2.EventBatch(batch_seq=2)
            batch.events.append(shadow_event(8))
            await call.write(batch)
            await call.read()
            await wait_for(lambda: sum(a.rule == "Shadow read" for a in disp.alerts) == 2)
            await call.done_writing()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dserver.stop(0)


async def test_shared_tables_and_one_malformed_event(tmp_path: Path) -> None:
    """Processes by reference decode as inline ones do, and garbage in one event costs only that event."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    disp = Dispatcher()
    dserver = grpc.aio.server()
    services_pb2_grpc.add_DispatcherServiceServicer_to_server(disp, dserver)
    dport = dserver.add_insecure_port("127.0.0.1:0")
    await dserver.start()
    port = free_port()
    cfg = RuleEngineConfig(
        bind=f"127.0.0.1:{port}",
        metrics_bind="",
        dispatcher_target=f"127.0.0.1:{dport}",
        rules_files=(str(rules),),
        hostname="testhost",
        watch_rules=False,
    )
    task = asyncio.create_task(serve(cfg))
    try:
        events: list[SharedEvent] = []
        for seq in (1, 2, 3):
            pb = shadow_event(seq)
            proc = pb.proc.SerializeToString()
            chain = tuple(a.SerializeToString() for a in pb.ancestors)
            pb.ClearField("proc")
            pb.ClearField("ancestors")
            events.append((pb.SerializeToString(), (proc, *chain)))
        events.insert(1, (b"\x0a\xff\xff\xff", ()))  # a length past the end: not an Event
        wire = shared_batch_wire(1, events, 0)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            await asyncio.wait_for(ch.channel_ready(), 15)
            call = raw_push_events("/lanner.v1.RuleEngineService/PushEvents")(ch)()
            await call.write(wire)
            ack = await call.read()
            assert ack.accepted == 4
            await wait_for(lambda: len(disp.alerts) == 3)
            await call.done_writing()
        assert sorted(a.event_id.seq for a in disp.alerts) == [1, 2, 3]
        assert all("shadow read (proc=cat user=root)" in a.output for a in disp.alerts)
        assert all(a.timing.evaluated_ns > a.timing.event_ns for a in disp.alerts)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dserver.stop(0)
