# SPDX-License-Identifier: Apache-2.0
"""The delivery driver: everything outputs have in common, written once.

One driver per configured output. It reads the durable stream through the output's own consumer group,
applies the output's route (minimum priority, rules, tags, sources), sends with a timeout, a concurrency cap and
a rate limit, retries failures with backoff, counts sent/failed/retried per output, and acknowledges an entry
only after the destination accepted it. Pending entries left by a crash are delivered again on restart
(this consumer's own pending list first, then XAUTOCLAIM for entries of consumers that never came back), so
delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from dispatcher.backoff import Backoff, RateLimiter
from dispatcher.convert import AlertError, alert_from_pb
from dispatcher.failures import describe, is_permanent
from dispatcher.grouping import Grouper, digest_alert, is_digest
from dispatcher.hub import READ_GATHER_S
from dispatcher.metrics import (
    OUTPUT_DEAD,
    OUTPUT_FAILED,
    OUTPUT_FILTERED,
    OUTPUT_GROUPED,
    OUTPUT_RETRIED,
    OUTPUT_SENT,
)
from dispatcher.model import Alert, Priority
from dispatcher.recent import RecentAlerts
from dispatcher.registry import Background, BatchOutput, Output, Reopenable, RetryLater
from dispatcher.routetree import RouteNode, outputs_for
from dispatcher.routing import Route
from dispatcher.store import AlertStore, Entry, retry_redis
from lanner.v1 import alert_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DriverOptions:
    """Per-output settings the driver applies; they sit beside the output's own keys in the config."""

    enabled: bool = True
    # Only alerts at least this severe (Falco names: emergency .. debug, or info).
    min_priority: str = "debug"
    # Allow-lists; empty means everything. ``tags`` matches alerts carrying at least one of them.
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    # Deliveries in flight at once for this output (1 keeps order).
    concurrency: int = 1
    # Alerts per second (token bucket), 0 for no limit; ``burst`` tokens may be spent at once.
    rate_limit: float = 0.0
    burst: float = 10.0
    # Seconds one delivery attempt may take.
    timeout_s: float = 10.0
    # Attempts after the first before the alert goes to the dead-letter stream (0: none). Never infinite, so one
    # alert can hold up the ones behind it only for a bounded time (about 12 minutes with the default backoff).
    max_retries: int = 30
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    # Grouping (dispatcher/grouping.py): repeats within this many seconds of a group's first alert are counted
    # and sent as one digest when the window ends; 0 sends every alert. ``group_by`` lists the alert fields of
    # the grouping key (default: rule, hostname, container.id, proc.exepath).
    group_window_s: float = 0.0
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        Priority.parse(self.min_priority)
        if self.concurrency < 1:
            raise ValueError("concurrency: must be at least 1")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s: must be positive")
        if self.rate_limit < 0 or self.max_retries < 0 or self.group_window_s < 0:
            raise ValueError("rate_limit, max_retries and group_window_s: must not be negative")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("backoff_initial_s: must be positive and at most backoff_max_s")

    @property
    def route(self) -> Route:
        """The routing filter these options describe."""
        return Route.build(self.min_priority, self.rules, self.tags, self.sources)


GROUP_PREFIX = "lanner-out:"


def group_name(output: str) -> str:
    """The Redis consumer group of an output."""
    return f"{GROUP_PREFIX}{output}"


class OutputDriver:
    """Feeds one output from its consumer group until cancelled."""

    def __init__(
        self,
        name: str,
        output: Output,
        opts: DriverOptions,
        store: AlertStore,
        *,
        consumer: str,
        read_batch: int = 256,
        claim_idle_s: float = 60.0,
        tree: RouteNode | None = None,
        recent: RecentAlerts | None = None,
    ) -> None:
        self.name = name
        self.tree = tree
        self._recent = recent
        self.grouper = Grouper(store, name, opts.group_window_s, opts.group_by) if opts.group_window_s > 0 else None
        self.output = output
        self.opts = opts
        self.route = opts.route
        self.group = group_name(name)
        self._store = store
        self._consumer = consumer
        self._batch = read_batch
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._limiter = RateLimiter(opts.rate_limit, opts.burst)
        self._sem = asyncio.Semaphore(opts.concurrency)
        self._sent = OUTPUT_SENT.labels(output=name)
        self._failed = OUTPUT_FAILED.labels(output=name)
        self._retried = OUTPUT_RETRIED.labels(output=name)
        self._dead = OUTPUT_DEAD.labels(output=name)
        self._filtered = OUTPUT_FILTERED.labels(output=name)
        self._grouped = OUTPUT_GROUPED.labels(output=name)
        # Delivered (or filtered, or dead-lettered) entries not yet acked: the next read carries their XACK.
        self._unacked: list[bytes] = []
        # Whole batches in one operation, where the output can and no rate limit has to pace each alert.
        self._batches = isinstance(output, BatchOutput) and opts.rate_limit == 0

    async def prepare(self) -> None:
        """Create the consumer group (before intake starts, so no alert can precede it)."""
        await retry_redis(lambda: self._store.ensure_group(self.group), f"output {self.name} setup", self._store.url)

    async def run(self) -> None:
        """Deliver forever: own pending entries first, then new ones, claiming abandoned ones periodically."""
        await self.prepare()
        side = asyncio.create_task(self.output.run()) if isinstance(self.output, Background) else None
        try:
            await self._loop()
        finally:
            if self._unacked:
                # A stop between a delivery and the read that carries its ack: ack now, or the next start
                # delivers the batch again.
                ids, self._unacked = self._unacked, []
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(self._store.ack(self.group, ids), 2.0)
            if side is not None:
                side.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await side

    async def _loop(self) -> None:
        own_pending = True
        next_claim = time.monotonic() + self._claim_idle_ms / 1000
        while True:
            dense = True
            if own_pending:
                entries = await self._read("0", block_ms=0)
                if not entries:
                    own_pending = False
                    continue
            elif time.monotonic() >= next_claim:
                # Checked on a clock, not only when idle, so a busy stream cannot starve a dead replica's entries.
                # Between batches this consumer has nothing pending, so it only ever claims others' entries.
                await self._flush_acks()
                next_claim = time.monotonic() + self._claim_idle_ms / 1000
                entries = await retry_redis(
                    lambda: self._store.autoclaim(self.group, self._consumer, self._claim_idle_ms, self._batch),
                    f"output {self.name} claim",
                    self._store.url,
                )
                if entries:
                    log.info("claimed abandoned alerts", extra={"output": self.name, "count": len(entries)})
                    # More may be waiting: look again right after this batch.
                    next_claim = time.monotonic()
            else:
                started = time.monotonic()
                entries = await self._read(">", block_ms=1000)
                # A read that found its alerts waiting means they flow densely; one that waited for them does not.
                dense = time.monotonic() - started < READ_GATHER_S
            if entries:
                # Acked with the next read, in the same round trip (see _read), or before a gather.
                self._unacked = await self._process(entries)
                if dense and len(entries) < self._batch:
                    # Alerts are flowing densely: gather a few intakes for the next read and delivery
                    # (dispatcher.hub). The acks go first: held over the gather, a crash in it would deliver the
                    # batch again. Sparser batches (the rule engine sends one every 25 ms under load) gather
                    # nothing by sleeping, so their acks ride with the next read at once.
                    await self._flush_acks()
                    await asyncio.sleep(READ_GATHER_S)

    async def _flush_acks(self) -> None:
        if self._unacked:
            ids = self._unacked
            await retry_redis(lambda: self._store.ack(self.group, ids), f"output {self.name} acks", self._store.url)
            self._unacked = []

    async def _read(self, start: str, block_ms: int) -> list[Entry]:
        """The next entries; the last batch's acks go in the same round trip, ahead of the read (a blocking
        read does not hold them back: Redis runs the XACK at once)."""
        ack = self._unacked
        entries = await retry_redis(
            lambda: self._store.read_group(self.group, self._consumer, start, self._batch, block_ms, ack),
            f"output {self.name} reads",
            self._store.url,
        )
        self._unacked = []
        return entries

    async def process(self, entries: Sequence[Entry]) -> None:
        """Deliver a batch of entries and acknowledge the ones that are done (delivered, filtered or dead)."""
        ids = await self._process(entries)
        await retry_redis(lambda: self._store.ack(self.group, ids), f"output {self.name} acks", self._store.url)

    async def _process(self, entries: Sequence[Entry]) -> list[bytes]:
        """Deliver a batch of entries; return the ids that are done (all of them), for the caller to ack."""
        ready: list[tuple[Entry, Alert]] = []
        for entry in entries:
            item = self._decode(entry)
            if isinstance(item, str):
                # A poison entry must not stop the output (or, by crashing the loop, the service) for good.
                await self._dead_letter(entry, item)
                continue
            if item is not None:
                ready.append(item)
        if self.grouper is not None:
            ready = await self._group(ready)
        if len(ready) > 1 and self._batches:
            ready = await self._deliver_batch(ready)
        if self.opts.concurrency == 1:
            for entry, alert in ready:
                await self._deliver(entry, alert)
        else:
            await asyncio.gather(*(self._bounded(e, a) for e, a in ready))
        return [e.id for e in entries]

    async def _deliver_batch(self, ready: list[tuple[Entry, Alert]]) -> list[tuple[Entry, Alert]]:
        """One ``send_batch`` for the whole batch; return what it did not deliver, for ``_deliver`` one by one."""
        assert isinstance(self.output, BatchOutput)
        done = 0
        try:
            async with asyncio.timeout(self.opts.timeout_s):
                done = await self.output.send_batch([alert for _, alert in ready])
        except Exception as exc:
            log.warning(
                "output batch delivery failed; sending its alerts one by one",
                extra={"output": self.name, "alerts": len(ready), "error": describe(exc)},
            )
        self._sent.inc(done)
        return ready[done:]

    async def _bounded(self, entry: Entry, alert: Alert) -> None:
        async with self._sem:
            await self._deliver(entry, alert)

    def _decode(self, entry: Entry) -> tuple[Entry, Alert] | str | None:
        """The alert to deliver for an entry; None when it is skipped or filtered; the reason to dead-letter it
        when it cannot be decoded. (Not a coroutine: one per alert costs more than the rest of this.)"""
        if entry.target is not None and entry.target != self.name:
            return None  # a digest or replayed dead letter for another output
        if entry.payload is None:
            # The entry was trimmed while pending; nothing is left to deliver.
            log.error("pending alert vanished from the stream", extra={"output": self.name, "entry": entry.id})
            return None
        # An alert this dispatcher's intake has just added comes decoded already (a plain entry: no extra fields).
        recent = self._recent.get(entry.id) if self._recent is not None and entry.extra is None else None
        if recent is not None:
            if not self.wants(recent):
                self._filtered.inc()
                return None
            return entry, recent
        try:
            alert = alert_from_pb(alert_pb2.Alert.FromString(entry.payload))
            if is_digest(entry.extra):
                assert entry.extra is not None
                return entry, digest_alert(alert, entry.extra)
        except (DecodeError, AlertError, ValueError, KeyError, RecursionError) as exc:
            return f"undecodable alert: {type(exc).__name__}: {exc}"
        if entry.target is None and not self.wants(alert):
            self._filtered.inc()
            return None
        return entry, alert

    async def _group(self, ready: list[tuple[Entry, Alert]]) -> list[tuple[Entry, Alert]]:
        """Drop the repeats the grouping windows count; digests and replays are never grouped."""
        assert self.grouper is not None
        grouper = self.grouper
        plain = [(e.id, a, e.payload or b"") for e, a in ready if e.target is None]
        flags = iter(await retry_redis(lambda: grouper.admit(plain), f"output {self.name} grouping", self._store.url))
        kept: list[tuple[Entry, Alert]] = []
        for entry, alert in ready:
            if entry.target is not None or next(flags):
                kept.append((entry, alert))
            else:
                self._grouped.inc()
        return kept

    def wants(self, alert: Alert) -> bool:
        """True when the routing tree sends the alert here and this output's own filter lets it through."""
        if self.tree is not None and self.name not in outputs_for(self.tree, alert):
            return False
        return self.route.matches(alert)

    async def _deliver(self, entry: Entry, alert: Alert) -> None:
        backoff = Backoff(self.opts.backoff_initial_s, self.opts.backoff_max_s)
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.acquire()
            try:
                async with asyncio.timeout(self.opts.timeout_s):
                    await self.output.send(alert)
            except Exception as exc:
                self._failed.inc()
                if is_permanent(exc):
                    # The same alert would fail the same way forever: set it aside now, so the next one goes.
                    await self._dead_letter(entry, f"permanent failure: {describe(exc)}")
                    return
                error = (
                    f"TimeoutError: timed out after {self.opts.timeout_s}s"
                    if isinstance(exc, TimeoutError)
                    else describe(exc)
                )
                if attempt > self.opts.max_retries:
                    await self._dead_letter(entry, f"gave up after {attempt} attempts: {error}")
                    return
                self._retried.inc()
                delay = backoff.next_delay()
                if isinstance(exc, RetryLater):
                    delay = max(delay, min(exc.delay_s, self.opts.backoff_max_s))
                # Log the first failure and then at powers of two, so a dead destination does not flood logs.
                if attempt & (attempt - 1) == 0:
                    log.warning(
                        "output delivery failed; retrying",
                        extra={
                            "output": self.name,
                            "rule": alert.rule,
                            "attempt": attempt,
                            "retry_in_s": round(delay, 3),
                            "error": error,
                        },
                    )
                await asyncio.sleep(delay)
                continue
            self._sent.inc()
            if attempt > 1:
                log.info("output delivered after retries", extra={"output": self.name, "attempts": attempt})
            return

    async def _dead_letter(self, entry: Entry, error: str) -> None:
        self._dead.inc()
        log.error("alert dead-lettered", extra={"output": self.name, "entry": entry.id.decode(), "error": error})
        await retry_redis(
            functools.partial(self._store.dead_letter, self.name, entry, error),
            f"output {self.name} dead letters",
            self._store.url,
        )

    async def flush_loop(self) -> None:
        """Close ended grouping windows into digests, forever (every replica polls; each window closes once)."""
        if self.grouper is None:
            return
        grouper = self.grouper
        interval = min(1.0, grouper.window_ms / 4000)
        while True:
            await asyncio.sleep(interval)
            n = await retry_redis(grouper.flush, f"output {self.name} digests", self._store.url)
            if n:
                log.info("grouping windows closed; digests queued", extra={"output": self.name, "digests": n})

    async def reopen(self) -> None:
        """Reopen the output's file or process (SIGUSR1), if it has one."""
        if isinstance(self.output, Reopenable):
            await self.output.reopen()

    async def close(self) -> None:
        """Close the output."""
        await self.output.close()
