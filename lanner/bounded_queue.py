# SPDX-License-Identifier: Apache-2.0
"""The bookkeeping of a sender's bounded queue: weights, byte bounds, urgent items and drop-oldest.

The queue is bounded in events (``max_queue``) and, with ``max_bytes``, in bytes. With ``weigh``, an item stands
for that many events (a whole batch forwarded as one item), so the bound and every count are in events, not items.
Putting items never blocks: the oldest queued items are dropped until the new ones fit, an item larger than
``max_bytes`` alone is refused (``too_large``), and a submission larger than the whole queue keeps its newest
items (at least one). Urgent items (a stage's own drop report) are never dropped: they go out first.

This class only counts; what a drop means (metrics, the crash ledger, the next batch's drop count) is the
sender's (``lanner.streaming.BatchSender``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Put:
    """What one put did, in events: ``taken`` offered, ``too_large`` refused, ``lost`` dropped to make room
    (queued items, or the oldest of the submission itself)."""

    taken: int
    too_large: int = 0
    lost: int = 0


_ONE = Put(1)  # the common results of a plain put, built once
_ONE_FOR_ONE = Put(1, 0, 1)


class BoundedQueue(Generic[T]):
    """Items waiting to be sent. ``len()`` is the number of items; ``weight`` the events they stand for."""

    def __init__(
        self,
        max_queue: int,
        *,
        weigh: Callable[[T], int] | None = None,
        max_bytes: int = 0,
        sizeof: Callable[[T], int] | None = None,
    ) -> None:
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self._weigh = weigh
        self._sizeof: Callable[[T], int] = sizeof or len  # type: ignore[assignment]
        self._items: collections.deque[T] = collections.deque()
        self.urgent: list[T] = []
        # Weighed or byte-bounded queues keep running totals (the general path); plain ones count items.
        self.keeps_totals = weigh is not None or max_bytes > 0
        self._queued = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __getitem__(self, index: int) -> T:
        return self._items[index]

    @property
    def weight(self) -> int:
        """Events queued (urgent items not included until they are promoted)."""
        return self._queued if self.keeps_totals else len(self._items)

    def weight_of(self, items: Sequence[T]) -> int:
        """Events these items stand for."""
        return sum(map(self._weigh, items)) if self._weigh is not None else len(items)

    def _size(self, items: Sequence[T]) -> int:  # bytes of items (0 without max_bytes)
        return sum(map(self._sizeof, items)) if self.max_bytes else 0

    def over(self, weight: int, size: int) -> bool:
        """Would ``weight`` events of ``size`` bytes exceed the bounds?"""
        return weight > self.max_queue or (self.max_bytes > 0 and size > self.max_bytes)

    def has_room(self, weight: int, size: int = 0) -> bool:
        """Do ``weight`` more events (``size`` more bytes) fit without a drop? Always, when the queue is empty."""
        return not self._items or not self.over(self.weight + weight, self.bytes + size)

    def put(self, item: T) -> Put:
        """Queue one item, dropping the oldest when the queue is full."""
        if self.keeps_totals:
            return self._put_general((item,))
        if len(self._items) >= self.max_queue:
            self._items.popleft()
            self._items.append(item)
            return _ONE_FOR_ONE
        self._items.append(item)
        return _ONE

    def put_many(self, items: Sequence[T]) -> Put:
        """Queue several items at once (same drop policy as ``put``)."""
        if self.keeps_totals:
            return self._put_general(items)
        taken = len(items)
        overflow = len(self._items) + taken - self.max_queue
        if overflow > 0:
            for _ in range(min(overflow, len(self._items))):
                self._items.popleft()
            if taken > self.max_queue:
                items = items[taken - self.max_queue :]
        self._items.extend(items)
        return Put(taken, 0, max(0, overflow))

    def _put_general(self, items: Sequence[T]) -> Put:
        weights = [self._weigh(i) for i in items] if self._weigh is not None else [1] * len(items)
        sizes = [self._sizeof(i) for i in items] if self.max_bytes else [0] * len(items)
        taken = sum(weights)
        too_large = 0
        if self.max_bytes and max(sizes, default=0) > self.max_bytes:
            too_large = sum(w for w, n in zip(weights, sizes, strict=True) if n > self.max_bytes)
            fits = [k for k, n in enumerate(sizes) if n <= self.max_bytes]
            items, weights, sizes = [items[k] for k in fits], [weights[k] for k in fits], [sizes[k] for k in fits]
        weight, size = sum(weights), sum(sizes)
        lost = start = 0
        # A submission larger than the whole queue keeps its newest items (at least one).
        while start < len(items) - 1 and self.over(weight, size):
            weight, size, lost, start = weight - weights[start], size - sizes[start], lost + weights[start], start + 1
        while self._items and self.over(self._queued + weight, self.bytes + size):
            oldest = self._items.popleft()
            old_weight = self._weigh(oldest) if self._weigh is not None else 1
            self._queued -= old_weight
            self.bytes -= self._sizeof(oldest) if self.max_bytes else 0
            lost += old_weight
        self._items.extend(items[start:])
        self._queued += weight
        self.bytes += size
        return Put(taken, too_large, lost)

    def put_urgent(self, item: T) -> int:
        """Hold an item no drop may take; returns its weight. It joins the front of the queue at ``promote``."""
        self.urgent.append(item)
        return self.weight_of([item])

    def promote(self) -> None:
        """Move the urgent items to the front of the queue (the next batch takes them first)."""
        if self.urgent:
            urgent, self.urgent = self.urgent, []
            self.requeue(urgent)

    def requeue(self, items: Sequence[T]) -> None:
        """Put items back at the front, in their order (unacknowledged items to resend), dropping none."""
        self._items.extendleft(reversed(items))
        if self.keeps_totals:
            self._queued += self.weight_of(items)
            self.bytes += self._size(items)

    def take(self, n: int) -> list[T]:
        """Remove and return up to ``n`` items from the front."""
        items = [self._items.popleft() for _ in range(min(n, len(self._items)))]
        if self.keeps_totals:
            self._queued -= self.weight_of(items)
            self.bytes -= self._size(items)
        return items

    def drain(self) -> list[T]:
        """Remove and return everything: the urgent items, then the queue."""
        out = [*self.urgent, *self._items]
        self.urgent = []
        self._items.clear()
        self._queued = 0
        self.bytes = 0
        return out
