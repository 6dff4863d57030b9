# SPDX-License-Identifier: Apache-2.0
"""``EnricherService.PushEvents``: take batches from the collector, enrich them, forward them to the rule engine."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import grpc

from enricher.enrich import Enricher
from lanner.metrics import EVENTS_IN, STAGE_LATENCY
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2, services_pb2_grpc
from lanner.wire import event_batch_wire, raw_push_events

log = logging.getLogger(__name__)

STAGE = "enricher"


# Events travel to the rule engine as their serialized bytes: building a new EventBatch from the received event
# messages would copy each one, and that copy was the enricher's largest cost.
make_batch = event_batch_wire
open_ruleengine_stream = raw_push_events("/lanner.v1.RuleEngineService/PushEvents")


class EnricherServicer(services_pb2_grpc.EnricherServiceServicer):
    """Serves PushEvents: every batch is enriched in order and handed to the sender; the ack says how many."""

    def __init__(self, enricher: Enricher, sender: BatchSender[bytes]) -> None:
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
                # One latency sample per batch (its newest event): per-event observations cost ~1.4 us each.
                if events and events[-1].timing.event_ns:
                    self._latency.observe(max(0, now - events[-1].timing.event_ns) / 1e9)
                self.sender.submit_many([ev.SerializeToString() for ev in events])
                free = max(0, self.sender.max_queue - len(self.sender))
                yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(events), credit=free)
        finally:
            log.info("collector stream closed", extra={"peer": peer})
