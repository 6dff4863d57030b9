# SPDX-License-Identifier: Apache-2.0
"""The service loop end to end over a real gRPC stream: a recording is replayed into a PushEvents server."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from collector.decode import Decoder, Identity
from collector.proctable import ProcessTable
from collector.replay import ReplayError, ReplaySource, parse_line
from collector.service import (
    BUSY_POLL,
    GATHER_FILL,
    GATHER_MAX_S,
    GATHER_MID_MAX_S,
    IDLE_POLL_MAX_S,
    CollectorService,
    event_json,
    gather_delay,
    make_batch,
    next_poll_delay,
    open_enricher_stream,
    wait_readable,
)
from lanner.convert import inline_events
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2, services_pb2_grpc
from lanner.wire import SharedEvent
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc


class Receiver(services_pb2_grpc.EnricherServiceServicer):
    """The receiving end of PushEvents: keeps every event, acks every batch."""

    def __init__(self) -> None:
        self.events: list[event_pb2.Event] = []
        self.got = asyncio.Event()

    async def PushEvents(
        self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: object
    ) -> AsyncIterator[event_pb2.BatchAck]:
        async for batch in request_iterator:
            self.events.extend(inline_events(batch))
            self.got.set()
            yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def recording(tmp_path: Path, decoder: Decoder, table: ProcessTable) -> Path:
    add_proc(table, 1, 0, "init")
    add_proc(table, 50, 1, "bash", uid=1000)
    lines = []
    for r in (
        rec.fork_record(50, 51),
        rec.exec_record(51, "/usr/bin/cat", ["cat", "/etc/shadow"]),
        rec.open_record(51, "/etc/shadow"),
    ):
        ev = decoder.decode(r)
        assert ev is not None
        lines.append(event_json(ev))
    lines.insert(1, "{not json")
    lines.insert(2, "")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_replay_through_grpc(recording: Path) -> None:
    port = free_port()
    server = grpc.aio.server()
    receiver = Receiver()
    services_pb2_grpc.add_EnricherServiceServicer_to_server(receiver, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    source = ReplaySource(str(recording), Identity("node-r", "boot-r", "replay-1"))
    source.start()
    sender: BatchSender[SharedEvent] = BatchSender(
        "collector-test", f"127.0.0.1:{port}", open_enricher_stream, make_batch, batch_size=2, linger_s=0.001
    )
    service = CollectorService([source], sender)
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(service.run())]
    try:
        async with asyncio.timeout(10):
            while len(receiver.events) < 3:
                await receiver.got.wait()
                receiver.got.clear()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        source.close()
        await server.stop(0)
    evs = receiver.events
    assert [e.type for e in evs] == ["clone", "execve", "openat"]
    assert [e.id.seq for e in evs] == [1, 2, 3] and {e.id.producer_id for e in evs} == {"replay-1"}
    assert evs[2].fd.path == b"/etc/shadow" and evs[2].proc.comm == b"cat"
    assert [a.comm for a in evs[2].ancestors] == [b"bash", b"init"]
    assert evs[1].proc.user_name == "root" and list(evs[1].proc.args) == [b"/etc/shadow"]
    assert evs[0].timing.collected_ns > 0
    assert source.dropped() == 1 and service.events == 3


def test_bad_lines_name_file_and_line() -> None:
    with pytest.raises(ReplayError, match=r"^f.jsonl:7:2: invalid JSON"):
        parse_line("{x", "f.jsonl", 7)
    with pytest.raises(ReplayError, match=r"^f.jsonl:3:1: expected a JSON object"):
        parse_line("[1]", "f.jsonl", 3)
    with pytest.raises(ReplayError, match=r"^f.jsonl:4: not a lanner.v1.Event"):
        parse_line('{"type": 5, "bogus": 1}', "f.jsonl", 4)


def test_recorded_line_round_trips(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 1, 0, "init")
    add_proc(table, 60, 1, "bash", cwd="/root/")
    for r in (
        rec.open_record(60, "x", flags=0o2101, mode=0o600, comm="bash"),
        rec.exec_record(60, "/bin/ls", ["ls", "-l"], env=["A=1"]),
        rec.exec_record(60, "/nope", ["nope"], res=-2, comm="ls"),
    ):
        ev = decoder.decode(r)
        assert ev is not None
        assert parse_line(event_json(ev), "rec.jsonl", 1) == ev


def test_own_queue_drops_raise_the_drop_event(recording: Path) -> None:
    # No enricher at all and a queue of 2: the collector's own drops must reach the internal drop event.
    source = ReplaySource(str(recording), Identity("node-q", "boot-q", "replay-q"))
    source.start()
    sender: BatchSender[SharedEvent] = BatchSender(
        "collector-queue-test", f"127.0.0.1:{free_port()}", open_enricher_stream, make_batch, max_queue=2
    )
    service = CollectorService([source], sender, drop_alert_interval_s=0.001)
    try:
        deadline = time.monotonic() + 5
        while service.events < 3 and time.monotonic() < deadline:
            service.pump()
            time.sleep(0.01)
        time.sleep(0.2)
        service.check_drops(time.monotonic() + 1)
    finally:
        source.close()
    assert sender.dropped >= 1
    queued = [event_pb2.Event.FromString(body) for body, _ in [*sender._queue.urgent, *sender._queue]]
    drops = [e for e in queued if e.type == "syscall_event_drop"]
    assert drops and drops[-1].source == "internal"
    assert {a.name: a.uint_value for a in drops[-1].args}["n_drops"] >= 1


def test_poll_pacing_follows_the_event_rate() -> None:
    """A burst is polled again at once; a flow of 1000 events/s and more every poll interval; a trickle of
    background events in small batches (fewer wake-ups and batches downstream); a quiet host ever less often, up
    to the ceiling."""
    interval = 0.004
    assert next_poll_delay(BUSY_POLL, 0.001, interval, interval) == 0.0
    assert next_poll_delay(40, 0.004, interval, interval) == interval  # 10k/s
    assert next_poll_delay(4, 0.004, interval, interval) == pytest.approx(interval)  # 1k/s
    assert next_poll_delay(2, 0.008, interval, interval) == pytest.approx(0.016)  # 250/s: a poll per 4 events
    assert next_poll_delay(1, 0.05, 0.05, interval) == IDLE_POLL_MAX_S  # 20/s
    waits = [interval]
    for _ in range(10):
        waits.append(next_poll_delay(0, waits[-1], waits[-1], interval))
    assert waits == sorted(waits) and waits[-1] == IDLE_POLL_MAX_S


def test_gather_grows_with_the_rate_only_where_batches_would_be_small() -> None:
    interval = 0.002
    assert gather_delay(0.0, interval) == interval  # after a quiet spell: the first event waits only the interval
    assert gather_delay(400.0, interval) == interval  # a trickle: single-event batches anyway, latency first
    assert gather_delay(1000.0, interval) == pytest.approx(0.004)  # 1k/s: ~5-event batches, not 3
    assert gather_delay(2000.0, interval) == pytest.approx(0.008)
    assert gather_delay(10_000.0, interval, 1024) == GATHER_MID_MAX_S  # 10k/s: ~150-event batches, not ~20
    assert gather_delay(25_000.0, interval, 1024) == GATHER_MAX_S  # ~500-event batches
    assert gather_delay(1e6, interval, 1024) == interval  # a flood: the interval, and the loop goes round at once
    assert gather_delay(100.0, 0.01) == 0.01  # a configured interval above the policy is kept


@pytest.mark.parametrize("batch_size", [64, 256, 1024, 4096])
def test_a_gather_never_overfills_a_batch_nor_adds_more_than_its_cap(batch_size: int) -> None:
    """Beyond the scale rate the gather fills at most GATHER_FILL of a batch (a fuller poll would leave a remainder
    for a small batch of its own), and never adds more than GATHER_MAX_S (or the configured interval)."""
    interval = 0.002
    for rate in [100.0 * 1.25**k for k in range(60)]:
        delay = gather_delay(rate, interval, batch_size)
        assert interval <= delay <= max(GATHER_MAX_S, interval)
        if delay > interval:
            assert rate * delay <= GATHER_FILL * batch_size * 1.0001


def test_a_full_poll_is_a_whole_sender_batch() -> None:
    """The loop goes round at once only after a poll that moved a whole batch (the wire path's slice), so a big
    gathered poll short of it is sent as one batch and followed by a gather, not by a small remainder."""
    for size, busy in ((16, BUSY_POLL), (256, 256), (1024, 1024)):
        sender: BatchSender[SharedEvent] = BatchSender(
            "t", "127.0.0.1:1", open_enricher_stream, make_batch, batch_size=size
        )
        assert CollectorService([], sender).busy_poll == busy


async def test_wait_readable_returns_when_a_descriptor_is_readable_or_on_timeout() -> None:
    r, w = os.pipe()
    try:
        waiter = asyncio.ensure_future(wait_readable([r], 600.0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        os.write(w, b"x")
        await asyncio.wait_for(waiter, 60)  # woken by the descriptor, long before its timeout
        await asyncio.wait_for(wait_readable([r], 600.0), 60)  # already readable: at once
        os.read(r, 1)
        await asyncio.wait_for(wait_readable([r], 0.01), 60)  # nothing to read: the timeout ends it
    finally:
        os.close(r)
        os.close(w)
