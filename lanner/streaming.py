# SPDX-License-Identifier: Apache-2.0
"""Upstream side of a hop: a bounded queue, batching, and a reconnecting bidirectional gRPC stream.

A slow or absent downstream never blocks the producer: ``submit`` returns at once, and when the queue is full
the oldest item is dropped and counted. A stream with nothing in flight sends what is queued at once, so latency
stays low at low rates; otherwise a batch closes on size or after ``linger_s``, whichever comes first, so a busy
stream sends big batches. At most ``max_inflight`` batches wait for an ack; beyond that the sender waits, the
queue fills, and drops happen here, where they are counted, rather than in an unbounded buffer somewhere.

The queue is bounded in events (``max_queue``, ``weigh``) and with ``max_bytes`` in bytes (``sizeof``); an item
larger than ``max_bytes`` alone is dropped (``too_large``). A receiver calls ``wait_for_room`` before queueing, so
a flood waits (and drops) in its own sender's queue instead of pushing other streams' events out of this one.

With ``reliable=True`` (alerts), items are kept until acked and are sent again, in order, after a reconnect, so
nothing is lost while the downstream restarts; the receiver dedups. Only a full queue can then drop, and the
ruleengine sizes that queue for alerts, which are rare.

At a stop, what is still queued or unacknowledged goes to the ``journal`` (see lanner.journal) and is sent first
at the next start; without a journal it is counted as dropped (reason ``undelivered_at_stop``), never lost
silently.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import grpc

from lanner.journal import Journal, Ledger
from lanner.metrics import DOWNSTREAM_CONNECTED, EVENTS_DROPPED, EVENTS_OUT, QUEUE_DEPTH
from lanner.pki import PipelineTls, secure_channel_options
from lanner.server import client_options

log = logging.getLogger(__name__)

T = TypeVar("T")
OpenStream = Callable[[grpc.aio.Channel], Any]
MakeBatch = Callable[[int, Sequence[T], int], Any]


def pipeline_channel(target: str, tls: PipelineTls | None) -> grpc.aio.Channel:
    """A channel to another Lanner service: mutual TLS with the pipeline certificate when ``tls`` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=client_options())
    options = (*client_options(), *secure_channel_options())
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=options)


class BatchSender(Generic[T]):
    """Batches items onto a long-lived ``stream Batch -> stream Ack`` RPC, reconnecting with backoff."""

    def __init__(
        self,
        name: str,
        target: str,
        open_stream: OpenStream,
        make_batch: MakeBatch[T],
        *,
        max_queue: int = 65536,
        batch_size: int = 256,
        linger_s: float = 0.005,
        reliable: bool = False,
        max_inflight: int = 8,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        weigh: Callable[[T], int] | None = None,
        tls: PipelineTls | None = None,
        journal: Journal[T] | None = None,
        max_bytes: int = 0,
        sizeof: Callable[[T], int] | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self._open_stream = open_stream
        self._make_batch = make_batch
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.reliable = reliable
        self.max_inflight = max_inflight
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._queue: collections.deque[T] = collections.deque()
        # Items that must not be dropped (a stage's own drop report): they go out with the next batch.
        self._urgent: list[T] = []
        # With ``weigh``, an item stands for that many events (a whole batch forwarded as one item): the queue bound
        # and every counter are in events, not items.
        self._weigh = weigh
        self._tls = tls
        self._queued = 0
        self.max_bytes = max_bytes
        self._sizeof: Callable[[T], int] = sizeof or len  # type: ignore[assignment]
        self._bytes = 0
        # Weighed or byte-bounded queues keep running totals (the general path); plain ones count items.
        self._general = weigh is not None or max_bytes > 0
        self._room = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._acked = asyncio.Event()
        self._inflight: dict[int, list[T]] = {}
        self._seq = 0
        self._dropped_since_last = 0
        self.dropped = 0
        self.sent = 0
        self.connected = False
        self._closing = False
        self._cancelled = False
        self._journal = journal
        self._drop_counter = EVENTS_DROPPED.labels(name, "queue_full")
        self._out_counter = EVENTS_OUT.labels(name)
        self._depth = QUEUE_DEPTH.labels(name)
        self._connected_gauge = DOWNSTREAM_CONNECTED.labels(name)
        # Beside the journal, a ledger counts what a SIGKILL of this process would take (see lanner.journal).
        self._ledger = Ledger(f"{journal.path}.ledger") if journal is not None else None
        if self._ledger is not None and self._ledger.lost_before:
            lost = self._ledger.lost_before
            EVENTS_DROPPED.labels(name, "lost_at_crash").inc(lost)
            self.dropped += lost
            self._dropped_since_last += lost
            log.warning("the previous run died holding undelivered items; counted as dropped",
                        extra={"stage": name, "items": lost})  # fmt: skip
        if journal is not None:
            restored = journal.restore()
            if restored:
                self.submit_many(restored)

    def __len__(self) -> int:
        return self._queued if self._general else len(self._queue)

    def _weight(self, items: Sequence[T]) -> int:
        return sum(map(self._weigh, items)) if self._weigh is not None else len(items)

    def _size(self, items: Sequence[T]) -> int:  # bytes of items (0 without max_bytes)
        return sum(map(self._sizeof, items)) if self.max_bytes else 0

    def submit(self, item: T) -> None:
        """Queue one item; never blocks. Drops (and counts) the oldest item when the queue is full."""
        if self._general:
            self._submit_general((item,))
            return
        if self._ledger is not None:
            self._ledger.took(1)
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self._count_drop(1)
        self._queue.append(item)
        if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
            self._wakeup.set()

    def submit_urgent(self, item: T) -> None:
        """Queue an item that a full queue must not drop, such as the report of what it dropped: under sustained
        overload the oldest item is dropped within a fraction of a second, and the report with it."""
        if self._ledger is not None:
            self._ledger.took(self._weight([item]))
        self._urgent.append(item)
        self._wakeup.set()

    def _over(self, weight: int, size: int) -> bool:
        return weight > self.max_queue or (self.max_bytes > 0 and size > self.max_bytes)

    def _submit_general(self, items: Sequence[T]) -> None:
        """Queue items, dropping the oldest queued ones (and counting them, in events) until the new ones fit."""
        weights = [self._weigh(i) for i in items] if self._weigh is not None else [1] * len(items)
        sizes = [self._sizeof(i) for i in items] if self.max_bytes else [0] * len(items)
        if self._ledger is not None:
            self._ledger.took(sum(weights))
        if self.max_bytes and max(sizes, default=0) > self.max_bytes:
            too_large = sum(w for w, n in zip(weights, sizes, strict=True) if n > self.max_bytes)
            EVENTS_DROPPED.labels(self.name, "too_large").inc(too_large)
            self._settle(too_large)
            self.dropped += too_large
            self._dropped_since_last += too_large
            fits = [k for k, n in enumerate(sizes) if n <= self.max_bytes]
            items, weights, sizes = [items[k] for k in fits], [weights[k] for k in fits], [sizes[k] for k in fits]
        weight, size = sum(weights), sum(sizes)
        lost = start = 0
        # A submission larger than the whole queue keeps its newest items (at least one).
        while start < len(items) - 1 and self._over(weight, size):
            weight, size, lost, start = weight - weights[start], size - sizes[start], lost + weights[start], start + 1
        while self._queue and self._over(self._queued + weight, self._bytes + size):
            oldest = self._queue.popleft()
            old_weight = self._weigh(oldest) if self._weigh is not None else 1
            self._queued -= old_weight
            self._bytes -= self._sizeof(oldest) if self.max_bytes else 0
            lost += old_weight
        if lost:
            self._count_drop(lost)
        self._queue.extend(items[start:])
        self._queued += weight
        self._bytes += size
        self._wakeup.set()

    async def wait_for_room(self, weight: int, size: int = 0) -> None:
        """Return once ``weight`` more events (``size`` more bytes) fit without dropping any, at once when the
        queue is empty (an item larger than the bounds then goes in alone), or at shutdown."""
        while self._queue and not self._closing and self._over(len(self) + weight, self._bytes + size):
            self._room.clear()
            await self._room.wait()

    def submit_many(self, items: Sequence[T]) -> None:
        """Queue several items at once (same drop policy as ``submit``)."""
        if self._general:
            self._submit_general(items)
            return
        if self._ledger is not None:
            self._ledger.took(len(items))
        overflow = len(self._queue) + len(items) - self.max_queue
        if overflow > 0:
            for _ in range(min(overflow, len(self._queue))):
                self._queue.popleft()
            self._count_drop(overflow)
            if len(items) > self.max_queue:
                items = items[len(items) - self.max_queue :]
        self._queue.extend(items)
        self._wakeup.set()

    def _settle(self, n: int) -> None:
        if self._ledger is not None:
            self._ledger.settle(n)

    def _count_drop(self, n: int) -> None:
        self._settle(n)
        self.dropped += n
        self._dropped_since_last += n
        self._drop_counter.inc(n)

    async def run(self) -> None:
        """Keep a stream open to the target and drain the queue into it, until cancelled."""
        backoff = self._backoff_initial
        while True:
            try:
                await self._run_once()
                backoff = self._backoff_initial
            except asyncio.CancelledError:
                self._cancelled = True  # a stop: what is in flight is kept for close() to spill
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "downstream unavailable; retrying",
                    extra={
                        "stage": self.name,
                        "target": self.target,
                        "code": exc.code().name,
                        "detail": exc.details(),
                        "retry_in_s": round(backoff, 2),
                    },
                )
            except Exception as exc:
                log.warning(
                    "downstream stream failed; retrying",
                    extra={
                        "stage": self.name,
                        "target": self.target,
                        "error": repr(exc),
                        "retry_in_s": round(backoff, 2),
                    },
                )
            finally:
                self._on_disconnect()
            if self._closing and not self._queue:
                return
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._backoff_max)

    def _on_disconnect(self) -> None:
        if self.connected:
            log.info("downstream disconnected", extra={"stage": self.name, "target": self.target})
        self.connected = False
        self._connected_gauge.set(0)
        if not self._inflight:
            return
        if self.reliable or self._cancelled:
            # Resend unacked items first, in their original order (or, at a stop, spill them).
            pending = [item for seq in sorted(self._inflight) for item in self._inflight[seq]]
            self._queue.extendleft(reversed(pending))
            if self._general:
                self._queued += self._weight(pending)
                self._bytes += self._size(pending)
        else:
            lost = sum(self._weight(v) for v in self._inflight.values())
            EVENTS_DROPPED.labels(self.name, "unacked_at_disconnect").inc(lost)
            self._settle(lost)
            self.dropped += lost
            self._dropped_since_last += lost  # the next batch tells downstream, so the drop alert counts them
        self._inflight.clear()

    async def _run_once(self) -> None:
        async with pipeline_channel(self.target, self._tls) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=self._backoff_max)
            call = self._open_stream(channel)()
            self.connected = True
            self._connected_gauge.set(1)
            log.info("downstream connected", extra={"stage": self.name, "target": self.target})
            reader = asyncio.create_task(self._read_acks(call))
            try:
                await self._write_loop(call, reader)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
                call.cancel()

    async def _read_acks(self, call: Any) -> None:
        async for ack in call:
            items = self._inflight.pop(ack.batch_seq, None)
            if items is not None:
                n = self._weight(items)
                self._settle(n)
                self._out_counter.inc(n)
                self.sent += n
            self._acked.set()
        raise ConnectionError("downstream closed the stream")

    async def _write_loop(self, call: Any, reader: asyncio.Task[None]) -> None:
        while True:
            if reader.done():
                reader.result()  # re-raise the reader's error
                return
            if self._urgent:
                urgent, self._urgent = self._urgent, []
                self._queue.extendleft(reversed(urgent))
                if self._general:
                    self._queued += self._weight(urgent)
                    self._bytes += self._size(urgent)
            if not self._queue:
                if self._closing:
                    await self._wait_all_acked(reader)
                    return
                self._wakeup.clear()
                await self._wait_or_reader(self._wakeup.wait(), reader)
                continue
            if len(self._queue) < self.batch_size and self.linger_s > 0 and self._inflight and not self._closing:
                # Linger only while a batch is in flight: an idle stream sends at once (latency), a busy one
                # gathers a bigger batch meanwhile (throughput).
                await asyncio.sleep(self.linger_s)
            while len(self._inflight) >= self.max_inflight:
                self._acked.clear()
                await self._wait_or_reader(self._acked.wait(), reader)
            n = min(self.batch_size, len(self._queue))
            items = [self._queue.popleft() for _ in range(n)]
            if self._general:
                self._queued -= self._weight(items)
                self._bytes -= self._size(items)
            self._room.set()
            self._depth.set(len(self))
            self._seq += 1
            batch = self._make_batch(self._seq, items, self._dropped_since_last)
            self._dropped_since_last = 0
            self._inflight[self._seq] = items
            await call.write(batch)

    async def _wait_all_acked(self, reader: asyncio.Task[None]) -> None:
        while self._inflight:
            self._acked.clear()
            await self._wait_or_reader(self._acked.wait(), reader)

    @staticmethod
    async def _wait_or_reader(aw: Any, reader: asyncio.Task[None]) -> None:
        waiter = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:
            waiter.cancel()
            reader.result()
            raise ConnectionError("downstream closed the stream")

    async def close(self, drain_timeout: float = 2.0) -> None:
        """Stop accepting new work and give queued items ``drain_timeout`` seconds to go out."""
        self._closing = True
        self._wakeup.set()
        self._room.set()
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while (self._queue or self._inflight) and asyncio.get_running_loop().time() < deadline:
            if not self.connected:
                break
            await asyncio.sleep(0.01)
        pending = [item for seq in sorted(self._inflight) for item in self._inflight[seq]]
        pending.extend(self._urgent)
        pending.extend(self._queue)
        self._urgent = []
        left = self._weight(pending)
        self._inflight.clear()
        self._queue.clear()
        self._queued = 0
        self._bytes = 0
        self._depth.set(0)
        if not pending:
            return
        self._settle(left)
        if self._journal is not None:
            try:
                self._journal.spill(pending)
                return
            except OSError as exc:
                log.error("cannot spill undelivered items", extra={"stage": self.name, "error": str(exc)})
        EVENTS_DROPPED.labels(self.name, "undelivered_at_stop").inc(left)
        self.dropped += left
        log.warning("stopping with undelivered items", extra={"stage": self.name, "items": left})
