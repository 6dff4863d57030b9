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
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import grpc

from lanner.bounded_queue import BoundedQueue, Put
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
        linger_after_send: bool = False,
    ) -> None:
        self.name = name
        self.target = target
        self._open_stream = open_stream
        self._make_batch = make_batch
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.linger_after_send = linger_after_send
        self._sent_at = -1e9
        self.reliable = reliable
        self.max_inflight = max_inflight
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        # The queue's bookkeeping (weights, byte bounds, urgent items, drop-oldest): lanner.bounded_queue.
        self._queue: BoundedQueue[T] = BoundedQueue(max_queue, weigh=weigh, max_bytes=max_bytes, sizeof=sizeof)
        self._tls = tls
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
        return self._queue.weight

    @property
    def max_queue(self) -> int:
        """The queue's bound, in events."""
        return self._queue.max_queue

    @property
    def max_bytes(self) -> int:
        """The queue's bound in bytes (0: none)."""
        return self._queue.max_bytes

    def _weight(self, items: Sequence[T]) -> int:
        return self._queue.weight_of(items)

    def submit(self, item: T) -> None:
        """Queue one item; never blocks. Drops (and counts) the oldest item when the queue is full."""
        self._account(self._queue.put(item))
        n = len(self._queue)
        if n == 1 or n >= self.batch_size or self._queue.keeps_totals:
            self._wakeup.set()

    def submit_urgent(self, item: T) -> None:
        """Queue an item that a full queue must not drop, such as the report of what it dropped: under sustained
        overload the oldest item is dropped within a fraction of a second, and the report with it."""
        weight = self._queue.put_urgent(item)
        if self._ledger is not None:
            self._ledger.took(weight)
        self._wakeup.set()

    def _account(self, put: Put) -> None:
        """Count what a put took and dropped (the crash ledger, metrics, the next batch's drop count)."""
        if self._ledger is not None:
            self._ledger.took(put.taken)
        if put.too_large:
            EVENTS_DROPPED.labels(self.name, "too_large").inc(put.too_large)
            self._settle(put.too_large)
            self.dropped += put.too_large
            self._dropped_since_last += put.too_large
        if put.lost:
            self._count_drop(put.lost)

    async def wait_for_room(self, weight: int, size: int = 0) -> None:
        """Return once ``weight`` more events (``size`` more bytes) fit without dropping any, at once when the
        queue is empty (an item larger than the bounds then goes in alone), or at shutdown."""
        while not self._closing and not self._queue.has_room(weight, size):
            self._room.clear()
            await self._room.wait()

    def submit_many(self, items: Sequence[T]) -> None:
        """Queue several items at once (same drop policy as ``submit``)."""
        self._account(self._queue.put_many(items))
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
            self._queue.requeue(pending)
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
            reader.add_done_callback(self._reader_done)
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
            self._queue.promote()
            if not self._queue:
                if self._closing:
                    await self._wait_all_acked(reader)
                    return
                self._wakeup.clear()
                await self._wait_or_reader(self._wakeup, reader)
                continue
            if len(self._queue) < self.batch_size and self.linger_s > 0 and not self._closing and self._busy():
                # Linger only while a batch is in flight: an idle stream sends at once (latency), a busy one
                # gathers a bigger batch meanwhile (throughput).
                await asyncio.sleep(self.linger_s)
            while len(self._inflight) >= self.max_inflight:
                self._acked.clear()
                await self._wait_or_reader(self._acked, reader)
            items = self._queue.take(self.batch_size)
            self._room.set()
            self._depth.set(len(self))
            self._seq += 1
            batch = self._make_batch(self._seq, items, self._dropped_since_last)
            self._dropped_since_last = 0
            self._inflight[self._seq] = items
            self._sent_at = asyncio.get_running_loop().time()
            await call.write(batch)

    def _busy(self) -> bool:
        # With ``linger_after_send``, a batch sent less than ``linger_s`` ago counts as in flight too.
        if self._inflight:
            return True
        return self.linger_after_send and asyncio.get_running_loop().time() - self._sent_at < self.linger_s

    async def _wait_all_acked(self, reader: asyncio.Task[None]) -> None:
        while self._inflight:
            self._acked.clear()
            await self._wait_or_reader(self._acked, reader)

    def _reader_done(self, _reader: asyncio.Task[None]) -> None:
        # Whatever the writer waits on, a stream that ended wakes it (see _wait_or_reader).
        self._wakeup.set()
        self._acked.set()

    @staticmethod
    async def _wait_or_reader(event: asyncio.Event, reader: asyncio.Task[None]) -> None:
        """Wait for ``event``, or until the ack reader ends (it sets every event the writer waits on). A plain
        event wait, not ``asyncio.wait`` over a new task: the writer waits once or twice per batch, and at low
        rates a batch is a few events."""
        if not reader.done():
            await event.wait()
        if reader.done():
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
        pending.extend(self._queue.drain())
        left = self._weight(pending)
        self._inflight.clear()
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
