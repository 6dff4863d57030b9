# SPDX-License-Identifier: Apache-2.0
"""Fan-out to Subscribe clients: each gets a bounded queue; a full queue drops and counts, never blocks.

The hub tails the durable stream (plain XREAD, no consumer group), so a subscriber sees only alerts that were
persisted, and every dispatcher replica serves all alerts to its own subscribers. Every alert carries its stream id
as ``cursor``; a client that reconnects with it is first replayed what it missed (``replay``), within the stream's
retention, and then continues live with no gap and no duplicate: live alerts at or before the replay's last id are
skipped.

The alerts this dispatcher's own intake persists reach the hub in memory as well (``feed``): the persist script
returns the id of the stream's newest entry before it ran, and when that is the hub's cursor nothing can lie
between, so the hub fans the new alerts out at once, with no read and no decode. Anything else (another replica's
alerts, a gap, a quiet spell) is read from the stream as before.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from dispatcher.convert import AlertError, alert_from_pb, alert_head_from_pb
from dispatcher.matchers import Matcher, match_all
from dispatcher.metrics import ALERTS_DROPPED, SUBSCRIBER_SENT, SUBSCRIBERS
from dispatcher.model import Alert
from dispatcher.routing import Route
from dispatcher.store import AlertStore, Entry, parse_id, retry_redis
from lanner.codec import field_key, varint
from lanner.v1 import alert_pb2

log = logging.getLogger(__name__)
StreamId = tuple[int, int]
# After a read that found alerts, the next one waits this long (seconds), so that under load each read, and each
# message to a subscriber, carries many: every read and message costs far more than an alert in it.
READ_GATHER_S = 0.004
# After the last alert fed from this dispatcher's intake, how long the tail waits for the next before it goes back
# to a blocking read of the stream (where another writer's alerts wake it at once).
FED_IDLE_S = 0.1
# Fed batches the tail has not taken yet, at most (more means it is behind: it reads them from the stream).
MAX_FED = 1024
# Alerts per SubscribeBatches message at most.
MAX_SEND = 512
_CURSOR = field_key(alert_pb2.Alert.DESCRIPTOR, "cursor")


def with_cursor(payload: bytes, entry_id: bytes) -> bytes:
    """The serialized alert with its ``cursor`` set: appending a field to protobuf bytes merges it, no re-encode
    (a later occurrence of a string field wins)."""
    return b"".join((payload, _CURSOR, varint(len(entry_id)), entry_id))


HIDDEN = "(output hidden by the subscriber's token scope)"


def without_fields(payload: bytes) -> bytes:
    """The alert without anything rendered from event data: no output fields, no output text."""
    pb = alert_pb2.Alert.FromString(payload)
    pb.ClearField("output_fields")
    pb.ClearField("output_fields_json")
    pb.output = pb.message = HIDDEN
    return pb.SerializeToString()


def masked(payload: bytes, fields: frozenset[str]) -> bytes:
    """The alert with only the listed output_fields (the subscriber's field mask)."""
    pb = alert_pb2.Alert.FromString(payload)
    for key in list(pb.output_fields.fields):
        if key not in fields:
            del pb.output_fields.fields[key]
    if pb.output_fields_json:
        decoded = json.loads(pb.output_fields_json)
        kept = {k: v for k, v in decoded.items() if k in fields}
        pb.output_fields_json = json.dumps(kept, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return pb.SerializeToString()


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connected client: its filters, its field mask and its bounded queue of (stream id, serialized alert)."""

    name: str
    route: Route
    queue: asyncio.Queue[tuple[StreamId, bytes]]
    matchers: tuple[Matcher, ...] = ()
    fields: frozenset[str] = frozenset()
    # From a token's scope: only pods of these namespaces, and whether output fields may be seen at all.
    namespaces: frozenset[str] = frozenset()
    hide_fields: bool = False
    dropped: int = 0
    _drop_logged: bool = field(default=False, repr=False)
    # Metric children, set when the hub registers the subscriber (a name's series live only while it is connected).
    _sent: Any = field(default=None, repr=False)
    _drops: Any = field(default=None, repr=False)

    def wants(self, alert: Alert) -> bool:
        """True when the alert passes the subscriber's route, field filters and token scope."""
        if self.namespaces and alert.output_fields.get("k8s.ns.name") not in self.namespaces:
            return False
        return self.route.matches(alert) and match_all(self.matchers, alert)

    def render(self, entry_id: bytes, payload: bytes) -> bytes:
        """What the client receives for an alert it wants: masked if asked, always with its cursor."""
        if self.hide_fields:
            return with_cursor(without_fields(payload), entry_id)
        return with_cursor(masked(payload, self.fields) if self.fields else payload, entry_id)

    def offer(self, alert: Alert, entry_id: bytes, payload: bytes, sid: StreamId | None = None) -> None:
        """Queue the alert if it matches; drop and count it when the queue is full."""
        if not self.wants(alert):
            return
        try:
            self.queue.put_nowait((sid or parse_id(entry_id), self.render(entry_id, payload)))
        except asyncio.QueueFull:
            self.dropped += 1
            self._drops.inc()
            if not self._drop_logged:
                self._drop_logged = True
                log.warning("subscriber too slow; dropping alerts", extra={"subscriber": self.name})
            return
        self._sent.inc()


def decode_for(subs: Sequence[Subscriber], payload: bytes, pb: alert_pb2.Alert | None = None) -> Alert | None:
    """The alert as routing needs it: full only when some subscriber filters on output fields (``pb``: the
    payload already parsed)."""
    try:
        if pb is None:
            pb = alert_pb2.Alert.FromString(payload)
        full = any(s.matchers or s.namespaces for s in subs)
        return alert_from_pb(pb) if full else alert_head_from_pb(pb)
    except (DecodeError, AlertError, ValueError, RecursionError) as exc:
        log.error("undecodable alert in stream; not sent to subscribers", extra={"error": str(exc)})
        return None


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# One fed alert: its entry id, its payload as stored, that payload parsed, and decoded if it was (dispatcher.recent).
Fed = tuple[bytes, bytes, alert_pb2.Alert, Alert | None]


class SubscriberHub:
    """Tails the alert stream while anyone is subscribed and offers each alert to every subscriber."""

    def __init__(self, store: AlertStore, queue_size: int = 1024, read_batch: int = 512) -> None:
        self._store = store
        self._queue_size = queue_size
        self._batch = read_batch
        self._subs: set[Subscriber] = set()
        self._names: collections.Counter[str] = collections.Counter()
        self._wake = asyncio.Event()
        # Set while the tail loop runs with a fixed position: everything after it reaches every registered subscriber.
        self._tailing = asyncio.Event()
        # The id of the last entry the tail has offered (or its starting point), and the fed batches it has not
        # taken yet, keyed by the newest entry before each (see ``feed``).
        self._cursor = b""
        self._fed: dict[bytes, list[Fed]] = {}
        self._fed_wake: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._subs)

    def new(
        self,
        name: str,
        route: Route,
        matchers: tuple[Matcher, ...] = (),
        fields: frozenset[str] = frozenset(),
        namespaces: frozenset[str] = frozenset(),
        hide_fields: bool = False,
    ) -> Subscriber:
        """A subscriber, not yet registered: ``stream`` registers it once its replay has caught up."""
        queue: asyncio.Queue[tuple[StreamId, bytes]] = asyncio.Queue(maxsize=self._queue_size)
        return Subscriber(name, route, queue, matchers, fields, namespaces, hide_fields)

    def add(self, sub: Subscriber) -> None:
        """Register a subscriber; it is offered alerts the hub reads from now on."""
        self._subs.add(sub)
        self._names[sub.name] += 1
        sub._sent = SUBSCRIBER_SENT.labels(subscriber=sub.name)
        sub._drops = ALERTS_DROPPED.labels(subscriber=sub.name)
        SUBSCRIBERS.set(len(self._subs))
        self._wake.set()
        log.info("subscriber connected", extra={"subscriber": sub.name, "subscribers": len(self._subs)})

    def remove(self, sub: Subscriber) -> None:
        """Unregister a subscriber and discard whatever it had not read (a no-op if it never registered)."""
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        self._names[sub.name] -= 1
        if self._names[sub.name] <= 0:
            # Names are chosen by clients: a name's series go with its last subscriber, so at most
            # max_subscribers names have series at any time.
            del self._names[sub.name]
            for metric in (SUBSCRIBER_SENT, ALERTS_DROPPED):
                with contextlib.suppress(KeyError):
                    metric.remove(sub.name)
        SUBSCRIBERS.set(len(self._subs))
        log.info(
            "subscriber disconnected",
            extra={"subscriber": sub.name, "dropped": sub.dropped, "subscribers": len(self._subs)},
        )

    async def _replay(
        self, sub: Subscriber, pos: list[str], inclusive: bool
    ) -> AsyncIterator[list[tuple[StreamId, bytes]]]:
        """What the stream holds after (or from) ``pos[0]``, in chunks until its current end; ``pos[0]`` follows."""
        url = self._store.url
        while True:
            read = functools.partial(self._store.read_range, pos[0], self._batch, inclusive)
            entries: list[Entry] = await retry_redis(read, "subscriber replay", url)
            if entries:
                pos[0], inclusive = entries[-1].id.decode(), False
            chunk = []
            for entry in entries:
                if entry.payload is None or entry.target is not None:
                    continue
                alert = decode_for([sub], entry.payload)
                if alert is not None and sub.wants(alert):
                    chunk.append((parse_id(entry.id), sub.render(entry.id, entry.payload)))
            if chunk:
                yield chunk
            if len(entries) < self._batch:
                return

    async def stream(self, sub: Subscriber, start: str | None, inclusive: bool = False) -> AsyncIterator[bytes]:
        """Everything the subscriber should see, one alert at a time (see ``batches``)."""
        async for batch in self.batches(sub, start, inclusive):
            for payload in batch:
                yield payload

    async def batches(self, sub: Subscriber, start: str | None, inclusive: bool = False) -> AsyncIterator[list[bytes]]:
        """Everything the subscriber should see: the replay from ``start`` (if given), then live alerts, each
        batch holding what was ready (at most ``MAX_SEND``).

        The caller removes the subscriber when the client goes.
        """
        last: StreamId = (-1, -1)
        pos = [start or "0-0"]
        if start is not None:
            # Catch up before registering, so a long replay cannot overflow the live queue.
            async for chunk in self._replay(sub, pos, inclusive):
                last = chunk[-1][0]
                yield [payload for _, payload in chunk]
        self.add(sub)
        if start is not None:
            # Alerts persisted between the catch-up and the registration: the hub may already be past them.
            # Once the tail has its position, this replay reaches at least as far, so nothing falls between.
            await self._tailing.wait()
            async for chunk in self._replay(sub, pos, inclusive and pos[0] == start):
                last = chunk[-1][0]
                yield [payload for _, payload in chunk]
        queue = sub.queue
        while True:
            item = await queue.get()
            out: list[bytes] = []
            while True:
                entry_id, payload = item
                if entry_id > last:  # else already replayed
                    last = entry_id
                    out.append(payload)
                if len(out) >= MAX_SEND or queue.empty():
                    break
                item = queue.get_nowait()
            if out:
                yield out

    @property
    def tailing(self) -> bool:
        """True while the tail runs (someone is subscribed): only then is ``feed`` worth calling."""
        return self._tailing.is_set()

    def feed(self, newest: bytes, added: list[Fed]) -> None:
        """Alerts this dispatcher just persisted, in stream order; ``newest`` is the id of the stream's newest entry
        before them (from the persist script). Offered at once if the tail has read up to ``newest``."""
        if not added or not self._tailing.is_set():
            return
        if len(self._fed) >= MAX_FED:
            self._fed.clear()  # the tail is behind: a gap makes it read the stream, which holds them all
        self._fed[newest] = added
        wake = self._fed_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _take_fed(self) -> bool:
        """Offer the fed batches that follow the cursor, and forget those it is already past; True if any."""
        fed = self._fed
        if not fed:
            return False
        took = False
        while (batch := fed.pop(self._cursor, None)) is not None:
            subs = list(self._subs)
            for entry_id, payload, pb, decoded in batch:
                self._fan_out(entry_id, payload, subs, pb, decoded)
            self._cursor = batch[-1][0]
            took = True
        if fed:
            at = parse_id(self._cursor)
            for key in [k for k, batch in fed.items() if parse_id(batch[-1][0]) <= at]:
                del fed[key]
                took = True
        return took

    async def _wait_fed(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        wake = self._fed_wake = loop.create_future()
        timer = loop.call_later(timeout, _settle, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._fed_wake = None

    async def run(self) -> None:
        """Tail the stream forever; idle (no Redis reads) while nobody is subscribed."""
        url = self._store.url
        while True:
            if not self._subs:
                self._wake.clear()
                await self._wake.wait()
            # Start from the newest entry at the moment someone is listening: replays cover what came before.
            self._cursor = (await retry_redis(self._store.last_id, "subscriber tail", url)).encode()
            self._fed.clear()
            self._tailing.set()
            fed_at = -math.inf
            while self._subs:
                if self._take_fed():
                    fed_at = time.monotonic()
                    continue
                idle = time.monotonic() - fed_at
                block: int | None = 500
                if self._fed:
                    block = None  # a fed batch that does not follow the cursor: read what lies between
                elif idle < FED_IDLE_S:
                    # This dispatcher's intake is flowing: its next batch comes in memory.
                    await self._wait_fed(FED_IDLE_S - idle)
                    continue
                read = functools.partial(self._store.read_after, self._cursor.decode(), self._batch, block)
                started = time.monotonic()
                entries = await retry_redis(read, "subscriber tail", url)
                subs = list(self._subs)
                for entry in entries:
                    self._cursor = entry.id
                    if entry.payload is not None and entry.target is None:
                        self._fan_out(entry.id, entry.payload, subs)
                if block and 0 < len(entries) < self._batch and time.monotonic() - started < READ_GATHER_S:
                    # Alerts from elsewhere are flowing densely (the read found them waiting): let a few gather, so
                    # one read and one message per subscriber carry them. A read that waited for its alerts
                    # gathers nothing by sleeping, and the first alert after a quiet spell goes at once.
                    await asyncio.sleep(READ_GATHER_S)
            # No await between the loop's last check and this: a subscriber added later sees the tail as stopped.
            self._tailing.clear()
            self._fed.clear()

    def _fan_out(
        self,
        entry_id: bytes,
        payload: bytes,
        subs: list[Subscriber],
        pb: alert_pb2.Alert | None = None,
        decoded: Alert | None = None,
    ) -> None:
        alert = decoded if decoded is not None else decode_for(subs, payload, pb)
        if alert is None:
            return
        sid = parse_id(entry_id)
        for sub in subs:
            sub.offer(alert, entry_id, payload, sid)
