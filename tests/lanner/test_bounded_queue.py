# SPDX-License-Identifier: Apache-2.0
"""The sender's queue bookkeeping on its own: weights, byte bounds, urgent items, drop-oldest."""

from __future__ import annotations

from lanner.bounded_queue import BoundedQueue, Put


def test_plain_queue_drops_the_oldest_one_at_a_time() -> None:
    q: BoundedQueue[int] = BoundedQueue(3)
    puts = [q.put(i) for i in range(5)]
    assert puts == [Put(1), Put(1), Put(1), Put(1, 0, 1), Put(1, 0, 1)]
    assert list(q) == [2, 3, 4] and q.weight == 3 and len(q) == 3


def test_plain_put_many_counts_the_overflow_and_keeps_the_newest() -> None:
    q: BoundedQueue[int] = BoundedQueue(3)
    assert q.put_many([1, 2]) == Put(2)
    assert q.put_many([3, 4, 5, 6, 7]) == Put(5, 0, 4)  # two queued and two of the submission are lost
    assert list(q) == [5, 6, 7]


def test_weights_bound_the_queue_in_events() -> None:
    q: BoundedQueue[list[int]] = BoundedQueue(10, weigh=len)
    assert q.put([1] * 4) == Put(4)
    assert q.put([2] * 4) == Put(4)
    assert q.put([3] * 4) == Put(4, 0, 4)  # the oldest item, four events, made room
    assert q.weight == 8 and len(q) == 2
    assert q.weight_of([[0] * 3, [0]]) == 4


def test_bytes_bound_the_queue_and_a_too_large_item_is_refused_alone() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(100, max_bytes=10)
    assert q.put_many([b"aaaa", b"b" * 11, b"cccc"]) == Put(3, 1, 0)
    assert list(q) == [b"aaaa", b"cccc"] and q.bytes == 8
    assert q.put(b"ddd") == Put(1, 0, 1)
    assert list(q) == [b"cccc", b"ddd"] and q.bytes == 7


def test_a_submission_larger_than_the_queue_keeps_its_newest_item() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(100, max_bytes=10)
    q.put(b"old")
    assert q.put_many([b"x" * 8, b"y" * 9]) == Put(2, 0, 2)
    assert list(q) == [b"y" * 9] and q.bytes == 9


def test_urgent_items_are_never_dropped_and_go_first() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(2, max_bytes=100)
    assert q.put_urgent(b"report") == 1
    q.put_many([b"a", b"b", b"c"])
    assert q.urgent == [b"report"] and list(q) == [b"b", b"c"]
    q.promote()
    assert q.urgent == [] and list(q) == [b"report", b"b", b"c"]
    assert q.weight == 3 and q.bytes == 8  # counted once promoted, even past the bound


def test_take_requeue_and_drain_keep_the_totals() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(10, max_bytes=100)
    q.put_many([b"1", b"22", b"333"])
    taken = q.take(2)
    assert taken == [b"1", b"22"] and q.weight == 1 and q.bytes == 3
    q.requeue(taken)  # unacknowledged: back at the front, in order
    assert list(q) == [b"1", b"22", b"333"] and q.weight == 3 and q.bytes == 6
    q.put_urgent(b"u")
    assert q.drain() == [b"u", b"1", b"22", b"333"]
    assert len(q) == 0 and q.weight == 0 and q.bytes == 0 and q.urgent == []


def test_has_room_is_always_true_on_an_empty_queue() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(2, max_bytes=10)
    assert q.has_room(50, 500)
    q.put(b"12345")
    assert q.has_room(1, 5) and not q.has_room(1, 6) and not q.has_room(2)
