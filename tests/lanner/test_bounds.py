# SPDX-License-Identifier: Apache-2.0
"""Queues and caches are bounded in bytes as well as in items (issue 10, item 6)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lanner import convert
from lanner.convert import event_from_pb, event_to_pb
from lanner.model import Event, Process
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2
from lanner.wire import event_batch_wire, raw_push_events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def byte_sender(max_queue: int = 1000, max_bytes: int = 1000) -> BatchSender[bytes]:
    # Nothing listens on the target: items stay queued.
    return BatchSender(
        "t-bytes",
        f"127.0.0.1:{free_port()}",
        raw_push_events("/lanner.v1.EnricherService/PushEvents"),
        event_batch_wire,
        max_queue=max_queue,
        max_bytes=max_bytes,
    )


def test_queue_is_bounded_in_bytes_dropping_the_oldest() -> None:
    s = byte_sender()
    for i in range(30):
        s.submit(bytes([i]) * 100)
    assert len(s) == 10 and s._queue.bytes == 1000 and s.dropped == 20
    assert s._queue[0] == bytes([20]) * 100
    s.submit_many([b"x" * 300, b"y" * 300])
    assert s._queue.bytes <= 1000 and list(s._queue)[-2:] == [b"x" * 300, b"y" * 300]


def test_an_item_larger_than_the_whole_queue_is_dropped_alone() -> None:
    s = byte_sender()
    s.submit_many([b"a" * 10, b"huge" * 1000, b"b" * 10])
    assert list(s._queue) == [b"a" * 10, b"b" * 10] and s._queue.bytes == 20 and s.dropped == 1


def test_one_batch_bigger_than_the_queue_keeps_its_newest_items() -> None:
    s = byte_sender()
    s.submit(b"old" * 10)
    s.submit_many([bytes([i]) * 100 for i in range(50)])
    assert len(s) == 10 and s._queue.bytes == 1000 and list(s._queue)[-1] == bytes([49]) * 100
    assert s.dropped == 41


async def test_wait_for_room_returns_once_items_leave_the_queue() -> None:
    s = byte_sender(max_queue=4, max_bytes=0)
    s.submit_many([b"1", b"2", b"3", b"4"])
    waiter = asyncio.create_task(s.wait_for_room(2))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    # What the write loop does when it takes a batch out.
    s._queue.take(2)
    s._room.set()
    await asyncio.wait_for(waiter, 10)
    await s.close(0)
    await asyncio.wait_for(s.wait_for_room(100), 10)  # never blocks a stopping service


@pytest.fixture
def small_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "MEMO_BYTES", 200_000)
    for memo in convert.MEMOS:
        memo.items.clear()
        memo.bytes = 0


@pytest.mark.usefixtures("small_memo")
def test_decode_memo_is_bounded_in_bytes() -> None:
    # The attack: events with 10 MB arguments kept in the memo until it held 678 MB (2 MB here).
    big = "x" * 2_000_000
    for i in range(20):
        ev = Event(type="execve", proc=Process(pid=i, args=(big,)))
        assert event_from_pb(event_pb2.Event.FromString(event_to_pb(ev).SerializeToString())) == ev
    assert all(memo.bytes <= 200_000 for memo in convert.MEMOS)
    # Many distinct mid-sized processes: still bounded.
    for i in range(100):
        event_from_pb(event_to_pb(Event(type="execve", proc=Process(pid=i, args=("y" * 10_000,)))))
    assert all(memo.bytes <= 200_000 for memo in convert.MEMOS)
    assert sum(len(m.items) for m in convert.MEMOS) > 0
