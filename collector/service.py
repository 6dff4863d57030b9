# SPDX-License-Identifier: Apache-2.0
"""The collector's loop: poll the event source (paced by the event rate, see next_poll_delay), convert to protobuf,
hand to the sender.

The kernel reader never waits on the network: the sender's bounded queue drops (and counts) the oldest events
when the enricher is slow or away. Kernel-side losses (ring buffer full) are counted too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import IO

from collector.contention import Contention, KernelFiltered
from collector.decode import Identity
from collector.encode import EventEncoder
from collector.source import EventSource, WireSource
from lanner.metrics import EVENTS_DROPPED, EVENTS_IN, STAGE_LATENCY
from lanner.model import SOURCE_INTERNAL, SOURCE_SYSCALL, Arg, Event, EventIdentity, EventTiming
from lanner.recording import event_line
from lanner.streaming import BatchSender
from lanner.v1 import services_pb2
from lanner.wire import SharedEvent, raw_push_events, shared_batch_wire

log = logging.getLogger(__name__)

STAGE = "collector"
# The audit webhook's own queue and stream to the enricher (metrics label).
AUDIT_STAGE = "collector_k8s_audit"


def event_size(event: SharedEvent) -> int:
    """Bytes an event holds in the queue. Its processes are shared with every other event of the same process
    (and bounded by the process table), so only the event's own body counts: counting a large argv once per event
    would let one process with a long command line evict everyone else's events."""
    return len(event[0]) + 16


# Events travel to the sender already serialized (see collector.encode), and batches go on the wire as the bytes
# they are assembled into: parsing them back into messages only for gRPC to serialize them again cost more than
# decoding the events in the first place. Each batch carries each of its processes once, in its process table.
make_batch = shared_batch_wire
PUSH_EVENTS = "/" + services_pb2.DESCRIPTOR.services_by_name["EnricherService"].full_name + "/PushEvents"
# Above this many events in one poll the loop goes round again at once instead of sleeping.
BUSY_POLL = 256
# The longest pause between polls on a quiet host, when some source cannot wake the loop (a recording, the audit
# webhook); and when all can (the kernel ring buffer), the longest sleep before the loop checks its counters.
IDLE_POLL_MAX_S = 0.05
WAKEABLE_IDLE_MAX_S = 0.5
# While events trickle in, poll when about this many are due (bounded by poll_interval_s and IDLE_POLL_MAX_S).
POLL_TARGET = 4.0
# While the ring buffer wakes the loop, the gather after a wake-up grows with the rate: GATHER_PER_RATE seconds per
# event/s (4 ms at 1k/s), up to GATHER_MID_MAX_S below GATHER_WIDE_RATE (where issue 6 sets latency targets) and
# GATHER_MAX_S above it, or until the poll would fill GATHER_FILL of a batch (see gather_delay).
GATHER_PER_RATE = 4e-6
GATHER_MID_MAX_S = 0.015
GATHER_WIDE_RATE = 20_000.0
GATHER_MAX_S = 0.02
GATHER_FILL = 0.9
# While the host's CPUs are contended by a busy workload (collector.contention), a gather that would make batches
# smaller than BUSY_BATCH grows toward the time that fills one, up to GATHER_BUSY_MAX_S: from nothing at
# PRESSURE_LOW to all of it at PRESSURE_HIGH. A storm whose few userspace events came in batches of 6 read
# 0.5-0.7, and 0.13-0.35 once they came in batches of 25-60: the gather lowers its own signal, so the marks sit
# low (a quiet host reads 0.01, and the pressure counts only during a storm anyway).
GATHER_BUSY_MAX_S = 0.03
BUSY_BATCH = 64
PRESSURE_LOW = 0.02
PRESSURE_HIGH = 0.15


# The enricher's PushEvents stream factory, for ``BatchSender``; requests are pre-serialized EventBatches.
open_enricher_stream = raw_push_events(PUSH_EVENTS)


# One event as a line of Lanner's recording format (lanner.recording), the form record_path writes.
event_json = event_line

_DROP_REASONS = {"syscall": "ring_buffer_full", "replay": "bad_input", "k8s_audit": "queue_full"}


class _Tracked:
    """A source, the sender its events go to, and what the service last saw of its loss counter."""

    __slots__ = ("counter", "dropped", "sender", "source", "wire")

    def __init__(self, source: EventSource, sender: BatchSender[SharedEvent]) -> None:
        self.source = source
        # Sources that can write their events' wire bytes themselves skip the model objects.
        self.wire = source if isinstance(source, WireSource) else None
        if self.wire is not None:
            # The sender writes one batch per turn of the event loop. A source that hands over more per poll
            # outruns it: under an open storm, slices of 2048 let its queue drop most events while the CPU had
            # room; slices of one batch moved 2.3x as many (bench_collector.py --service --rate 0 --per-poll N).
            self.wire.max_per_poll = sender.batch_size
        self.sender = sender
        self.dropped = 0
        self.counter = EVENTS_DROPPED.labels(STAGE, _DROP_REASONS.get(source.name, "source_lost"))


class CollectorService:
    """Moves events from the sources to the sender (and optionally a recording file)."""

    def __init__(
        self,
        sources: Sequence[EventSource],
        sender: BatchSender[SharedEvent],
        *,
        poll_interval_s: float = 0.002,
        record: IO[str] | None = None,
        drop_alert_interval_s: float = 10.0,
        identity: Identity | None = None,
        own_senders: Mapping[str, BatchSender[SharedEvent]] | None = None,
    ) -> None:
        # A source named in own_senders (the audit webhook) gets its own queue and stream, so a flood from it
        # fills and drops only its own queue, never the syscall events'.
        senders = own_senders or {}
        self.sources = [_Tracked(s, senders.get(s.name, sender)) for s in sources]
        self.sender = sender
        # A poll that moved a whole batch (the wire path's slice) left events behind: the loop goes round at once.
        self.busy_poll = max(BUSY_POLL, sender.batch_size)
        self.poll_interval_s = poll_interval_s
        self.record = record
        self.events = 0
        self.encoder = EventEncoder()
        self._drops_checked = 0.0
        self._drops_logged = 0.0
        self._in = EVENTS_IN.labels(STAGE)
        self._latency = STAGE_LATENCY.labels(STAGE)
        self.drop_alert_interval_s = drop_alert_interval_s
        self._drop_alert_at = -drop_alert_interval_s
        self._unreported = 0
        self._queue_drops_seen = 0
        self._drop_seq = 0
        self.identity = identity or Identity("", "", "")
        self._halted = False

    def halt(self) -> None:
        """Take no more events from the sources (a stop has begun; they are about to close)."""
        self._halted = True

    def pump(self) -> int:
        """One poll of every source: move what they have now; returns the number of events moved."""
        if self._halted:
            return 0
        moved = 0
        encode = self.encoder.encode_shared
        for tracked in self.sources:
            if tracked.wire is not None and self.record is None:
                wire, newest = tracked.wire.poll_wire(self.encoder)
                if not wire:
                    continue
                moved += len(wire)
                tracked.sender.submit_many(wire)
                if newest:
                    self._latency.observe(max(0, time.time_ns() - newest) / 1e9)
                continue
            events = tracked.source.poll()
            if not events:
                continue
            moved += len(events)
            tracked.sender.submit_many([encode(ev) for ev in events])
            newest = events[-1].timing.event_ns
            if newest:  # one latency sample per poll: kernel event -> decoded and queued
                self._latency.observe(max(0, time.time_ns() - newest) / 1e9)
            if self.record is not None:
                self.record.write("".join(event_line(ev) + "\n" for ev in events))
        if moved:
            self._in.inc(moved)
            self.events += moved
        now = time.monotonic()
        if now - self._drops_checked >= 0.1:
            self._drops_checked = now
            self.check_drops(now)
        return moved

    def check_drops(self, now: float) -> None:
        """Count losses inside the sources (kernel ring buffer full, unreadable recorded lines, a full webhook
        queue); log them at most every 10 s."""
        for tracked in self.sources:
            dropped = tracked.source.dropped()
            if dropped <= tracked.dropped:
                continue
            tracked.counter.inc(dropped - tracked.dropped)
            if tracked.source.name == SOURCE_SYSCALL:
                self._unreported += dropped - tracked.dropped
            tracked.dropped = dropped
            if now - self._drops_logged >= 10.0:
                self._drops_logged = now
                log.warning("events lost in the source", extra={"source": tracked.source.name, "lost_total": dropped})

        # Events this collector's own queue had to drop (enricher slow or away) are losses too.
        queue_lost = self.sender.dropped - self._queue_drops_seen
        if queue_lost > 0:
            self._queue_drops_seen = self.sender.dropped
            self._unreported += queue_lost
        if (
            self._unreported
            and self.drop_alert_interval_s > 0
            and now - self._drop_alert_at >= self.drop_alert_interval_s
        ):
            self._drop_alert_at = now
            self.sender.submit_urgent(self.encoder.encode_shared(self.drop_event(self._unreported)))
            self._unreported = 0

    def drop_event(self, lost: int) -> Event:
        """The internal event reporting lost events (kernel ring buffer or our own full queue; Falco's "syscall
        event drop"), at most one per ``drop_alert_interval_s``."""
        self._drop_seq += 1
        now = time.time_ns()
        return Event(
            type="syscall_event_drop",
            source=SOURCE_INTERNAL,
            identity=EventIdentity(
                self.identity.node, self.identity.boot_id, self._drop_seq, self.identity.producer_id + "-internal"
            ),
            timing=EventTiming(event_ns=now, collected_ns=now),
            args=(Arg("n_drops", lost), Arg("n_evts", self.events)),
        )

    async def run(self) -> None:
        """Poll until cancelled. When every source can wake the loop (the kernel ring buffer can), a quiet
        collector sleeps until an event lands and then gathers for ``poll_interval_s`` before it polls, so an
        event after a quiet spell waits about that long and an idle host costs a wake-up every
        ``WAKEABLE_IDLE_MAX_S``; while events flow it polls every ``poll_interval_s``, and at once during a burst.
        Otherwise the polls are paced by ``next_poll_delay``."""
        fds = self.wake_fds()
        contention, filtered = Contention(), KernelFiltered()
        delay = self.poll_interval_s
        last = time.monotonic()
        rate = 0.0
        while True:
            n = self.pump()
            now = time.monotonic()
            if fds is None:
                delay = next_poll_delay(n, now - last, delay, self.poll_interval_s)
                last = now
                await asyncio.sleep(delay)
                continue
            rate = (rate + n / max(now - last, 1e-4)) / 2
            last = now
            if n >= self.busy_poll:
                await asyncio.sleep(0)
            else:
                await wait_readable(fds, WAKEABLE_IDLE_MAX_S)
                # CPU pressure counts only while the host is busy with events no rule needs (collector.contention).
                pressure = contention.sample() * filtered.sample()
                await asyncio.sleep(gather_delay(rate, self.poll_interval_s, self.sender.batch_size, pressure))

    def wake_fds(self) -> list[int] | None:
        """The descriptors that poll readable when a source has events, or None unless every source has one."""
        fds = []
        for tracked in self.sources:
            get = getattr(tracked.source, "wait_fd", None)
            fd = get() if get is not None else None
            if fd is None:
                return None
            fds.append(fd)
        return fds or None


async def wait_readable(fds: Sequence[int], timeout: float) -> None:
    """Return when one of ``fds`` polls readable (at once if one already does), or after ``timeout``."""
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    timer = loop.call_later(timeout, wake)
    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await woken
    finally:
        timer.cancel()
        for fd in fds:
            loop.remove_reader(fd)


def gather_delay(rate: float, interval: float, batch_size: int = 256, pressure: float = 0.0) -> float:
    """How long to gather after the ring buffer woke the loop, at ``rate`` events/s lately.

    Each poll sends one batch through every later stage, and a batch costs each stage 0.5-1 ms of CPU whatever its
    size: each gRPC message wakes three threads per process (gRPC's event engine, its completion-queue poller, the
    event loop), and on this VM a context switch is most of that. While events flow, batches/s is about one per
    gather, so that cost is paid per second whatever the rate: with 2 ms gathers 1k events/s went in batches of 3
    and the four services spent 0.84 of a core on it. So the gather grows in proportion to the rate,
    ``GATHER_PER_RATE`` (4 ms and batches of ~5 at 1k/s, where issue 6's p50 budget is 10 ms), up to
    ``GATHER_MID_MAX_S`` below ``GATHER_WIDE_RATE`` (150-event batches at 10k/s, where the p99 budget is 50 ms)
    and ``GATHER_MAX_S`` above, and never past the time that fills ``GATHER_FILL`` of a batch (``batch_size``): a
    fuller poll would leave a remainder to go in a small batch of its own. A trickle (under ~500 events/s, where
    batches are single events anyway and a gather would only add latency) keeps ``interval``. A full poll skips
    the gather altogether.

    Under CPU ``pressure`` (0-1, collector.contention) the CPU a batch costs is taken from the workload, at any
    rate: during an open/close storm only ~1.4k events/s reached userspace, in batches of 6, and the services'
    per-batch cost was 1.1 cores of 2. So from ``PRESSURE_LOW`` to ``PRESSURE_HIGH`` the gather grows toward
    the time that fills ``BUSY_BATCH`` events, up to ``GATHER_BUSY_MAX_S`` (latency still within the 50 ms
    budget). Where the rate already fills such batches (10k/s and up) it changes nothing: the services' own load
    raises the pressure too, and their batches are big enough."""
    if rate <= 0:
        return interval
    grow = min(GATHER_MAX_S if rate >= GATHER_WIDE_RATE else GATHER_MID_MAX_S, rate * GATHER_PER_RATE)
    if pressure > PRESSURE_LOW:
        share = min(1.0, (pressure - PRESSURE_LOW) / (PRESSURE_HIGH - PRESSURE_LOW))
        grow = max(grow, share * min(GATHER_BUSY_MAX_S, BUSY_BATCH / rate))
    return max(interval, min(grow, GATHER_FILL * batch_size / rate))


def next_poll_delay(moved: int, since_last: float, delay: float, interval: float) -> float:
    """How long to wait before the next poll, after one that moved ``moved`` events ``since_last`` seconds after the
    previous one (which had waited ``delay``).

    Every poll that finds events costs a wake-up here and one batch through every later stage, and a batch costs
    each stage a few hundred microseconds whatever its size: batches of two or three events (a poll every
    millisecond) made the services' CPU per event several times that of big batches, and a trickle of background
    events was most of an idle host's cost. So: a burst (``BUSY_POLL`` or more) is polled again at once; while
    events flow, the next poll comes after ``interval`` (4 ms by default: half of it is the mean wait it adds), or
    later for a trickle, when about ``POLL_TARGET`` more are due at the rate so far; a poll that finds nothing
    doubles the wait, up to ``IDLE_POLL_MAX_S``, which bounds the wait of the first event after a quiet spell.
    """
    ceiling = max(IDLE_POLL_MAX_S, interval)
    if moved >= BUSY_POLL:
        return 0.0
    if moved:
        return min(ceiling, max(interval, POLL_TARGET * max(since_last, 1e-4) / moved))
    return min(ceiling, max(delay * 2, interval))
