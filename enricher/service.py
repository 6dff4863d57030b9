# SPDX-License-Identifier: Apache-2.0
"""``EnricherService.PushEvents``: take batches from the collector, enrich them, forward them to the rule engine."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from enricher.enrich import Enricher
from lanner.metrics import EVENTS_IN, STAGE_LATENCY
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2, services_pb2_grpc

log = logging.getLogger(__name__)

STAGE = "enricher"


def make_batch(seq: int, events: Sequence[event_pb2.Event], dropped: int) -> event_pb2.EventBatch:
    """The batch the rule engine receives."""
    return event_pb2.EventBatch(batch_seq=seq, events=events, dropped_since_last=dropped)


def open_ruleengine_stream(channel: grpc.aio.Channel) -> object:
    """The rule engine's PushEvents stream factory, for ``BatchSender``."""
    return services_pb2_grpc.RuleEngineServiceStub(channel).PushEvents


class EnricherServicer(services_pb2_grpc.EnricherServiceServicer):
    """Serves PushEvents: every batch is enriched in order and handed to the sender; the ack says how many."""

    def __init__(self, enricher: Enricher, sender: BatchSender[event_pb2.Event]) -> None:
        self.enricher = enricher
        self.sender = sender
        self._in = EVENTS_IN.labels(STAGE)
        self._latency = STAGE_LATENCY.labels(STAGE)

    async def PushEvents(
        self,
        request_iterator: AsyncIterator[event_pb2.EventBatch],
        context: grpc.aio.ServicerContext[event_pb2.EventBatch, event_pb2.BatchAck],
    ) -> AsyncIterator[event_pb2.BatchAck]:
        """Bidirectional stream: one BatchAck per EventBatch, after the batch is in the outbound queue."""
        peer = context.peer()
        log.info("collector stream opened", extra={"peer": peer})
        try:
            async for batch in request_iterator:
                events = batch.events
                self._in.inc(len(events))
                await self.enricher.enrich(events)
                now = time.time_ns()
                for ev in events:
                    ev.timing.enriched_ns = now
                    if ev.timing.event_ns:
                        self._latency.observe(max(0, now - ev.timing.event_ns) / 1e9)
                self.sender.submit_many(list(events))
                free = max(0, self.sender.max_queue - len(self.sender))
                yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(events), credit=free)
        finally:
            log.info("collector stream closed", extra={"peer": peer})
