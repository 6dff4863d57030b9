# SPDX-License-Identifier: Apache-2.0
"""The collector's loop: poll the event source every millisecond, convert to protobuf, hand to the sender.

The kernel reader never waits on the network: the sender's bounded queue drops (and counts) the oldest events
when the enricher is slow or away. Kernel-side losses (ring buffer full) are counted too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import IO

import grpc
from google.protobuf import json_format

from collector.encode import EventEncoder, make_batch_bytes
from collector.source import EventSource
from lanner.convert import event_to_pb
from lanner.metrics import EVENTS_DROPPED, EVENTS_IN
from lanner.model import Event
from lanner.streaming import BatchSender
from lanner.v1 import services_pb2_grpc

log = logging.getLogger(__name__)

STAGE = "collector"
# Events travel to the sender already serialized (see collector.encode); batches are assembled from the bytes.
make_batch = make_batch_bytes
# Above this many events in one poll the loop goes round again at once instead of sleeping.
BUSY_POLL = 512


def open_enricher_stream(channel: grpc.aio.Channel) -> object:
    """The enricher's PushEvents stream factory, for ``BatchSender``."""
    return services_pb2_grpc.EnricherServiceStub(channel).PushEvents


def event_json(ev: Event) -> str:
    """One event as a single JSON line (the protobuf JSON mapping)."""
    return json.dumps(json_format.MessageToDict(event_to_pb(ev)), separators=(",", ":"))


class CollectorService:
    """Moves events from a source to the sender (and optionally a recording file)."""

    def __init__(
        self,
        source: EventSource,
        sender: BatchSender[bytes],
        *,
        poll_interval_s: float = 0.001,
        record: IO[str] | None = None,
    ) -> None:
        self.source = source
        self.sender = sender
        self.poll_interval_s = poll_interval_s
        self.record = record
        self.events = 0
        self.encoder = EventEncoder()
        self._source_dropped = 0
        self._drops_checked = 0.0
        self._drops_logged = 0.0
        self._in = EVENTS_IN.labels(STAGE)
        reason = "ring_buffer_full" if source.name == "syscall" else "bad_input"
        self._kernel_drops = EVENTS_DROPPED.labels(STAGE, reason)

    def pump(self) -> int:
        """One poll: move what the source has now; returns the number of events moved."""
        events = self.source.poll()
        if events:
            self._in.inc(len(events))
            self.events += len(events)
            encode = self.encoder.encode
            self.sender.submit_many([encode(ev) for ev in events])
            if self.record is not None:
                self.record.write("".join(event_json(ev) + "\n" for ev in events))
        now = time.monotonic()
        if now - self._drops_checked >= 0.1:
            self._drops_checked = now
            self.check_drops(now)
        return len(events)

    def check_drops(self, now: float) -> None:
        """Count losses inside the source (kernel ring buffer full, unreadable recorded lines); log them at most
        every 10 s."""
        dropped = self.source.dropped()
        if dropped > self._source_dropped:
            delta = dropped - self._source_dropped
            self._source_dropped = dropped
            self._kernel_drops.inc(delta)
            if now - self._drops_logged >= 10.0:
                self._drops_logged = now
                log.warning("events lost in the source", extra={"source": self.source.name, "lost_total": dropped})

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            n = self.pump()
            await asyncio.sleep(0 if n >= BUSY_POLL else self.poll_interval_s)
