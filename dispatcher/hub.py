# SPDX-License-Identifier: Apache-2.0
"""Live fan-out to Subscribe clients: each gets a bounded queue; a full queue drops and counts, never blocks.

The hub tails the durable stream (plain XREAD, no consumer group), so a subscriber sees only alerts that were
persisted, and every dispatcher replica serves all alerts to its own subscribers. It is live-tail: a subscriber
gets alerts accepted after it connected, with no replay of older ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from dispatcher.convert import AlertError, alert_head_from_pb
from dispatcher.metrics import ALERTS_DROPPED, SUBSCRIBER_SENT, SUBSCRIBERS
from dispatcher.model import Alert
from dispatcher.routing import Route
from dispatcher.store import AlertStore, retry_redis
from lanner.v1 import alert_pb2

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connected client: its filter and its bounded queue of serialized ``lanner.v1.Alert`` messages."""

    name: str
    route: Route
    queue: asyncio.Queue[bytes]
    dropped: int = 0
    _drop_logged: bool = field(default=False, repr=False)
    _sent: Any = field(default=None, repr=False)
    _drops: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._sent = SUBSCRIBER_SENT.labels(subscriber=self.name)
        self._drops = ALERTS_DROPPED.labels(subscriber=self.name)

    def offer(self, alert: Alert, payload: bytes) -> None:
        """Queue the alert if it matches; drop and count it when the queue is full."""
        if not self.route.matches(alert):
            return
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped += 1
            self._drops.inc()
            if not self._drop_logged:
                self._drop_logged = True
                log.warning("subscriber too slow; dropping alerts", extra={"subscriber": self.name})
            return
        self._sent.inc()


class SubscriberHub:
    """Tails the alert stream while anyone is subscribed and offers each alert to every subscriber."""

    def __init__(self, store: AlertStore, queue_size: int = 1024, read_batch: int = 512) -> None:
        self._store = store
        self._queue_size = queue_size
        self._batch = read_batch
        self._subs: set[Subscriber] = set()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._subs)

    def add(self, name: str, route: Route) -> Subscriber:
        """Register a subscriber; it receives alerts accepted from now on."""
        sub = Subscriber(name, route, asyncio.Queue(maxsize=self._queue_size))
        self._subs.add(sub)
        SUBSCRIBERS.set(len(self._subs))
        self._wake.set()
        log.info("subscriber connected", extra={"subscriber": name, "subscribers": len(self._subs)})
        return sub

    def remove(self, sub: Subscriber) -> None:
        """Unregister a subscriber and discard whatever it had not read."""
        if sub in self._subs:
            self._subs.discard(sub)
            while not sub.queue.empty():
                sub.queue.get_nowait()
            SUBSCRIBERS.set(len(self._subs))
            log.info(
                "subscriber disconnected",
                extra={"subscriber": sub.name, "dropped": sub.dropped, "subscribers": len(self._subs)},
            )

    async def run(self) -> None:
        """Tail the stream forever; idle (no Redis reads) while nobody is subscribed."""
        url = self._store.url
        while True:
            if not self._subs:
                self._wake.clear()
                await self._wake.wait()
            # Start from the newest entry at the moment someone is listening: live tail, no replay.
            cursor = await retry_redis(self._store.last_id, "subscriber tail", url)
            while self._subs:
                read = functools.partial(self._store.read_after, cursor, self._batch, 500)
                entries = await retry_redis(read, "subscriber tail", url)
                for entry in entries:
                    cursor = entry.id.decode()
                    if entry.payload is not None:
                        self._fan_out(entry.payload)

    def _fan_out(self, payload: bytes) -> None:
        try:
            alert = alert_head_from_pb(alert_pb2.Alert.FromString(payload))
        except (DecodeError, AlertError, ValueError) as exc:
            log.error("undecodable alert in stream; not sent to subscribers", extra={"error": str(exc)})
            return
        for sub in list(self._subs):
            sub.offer(alert, payload)
