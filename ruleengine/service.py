# SPDX-License-Identifier: Apache-2.0
"""The rule engine stage: evaluate each pushed event against the loaded rules and push alerts downstream.

Evaluation runs inline in the stream handler, and a batch is acked only after it has been evaluated, so a slow
engine slows the enricher's acks, and the enricher's bounded queue absorbs (and counts) the excess. Events whose
type no loaded rule cares about are skipped before they are even decoded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["RuleEngineService", "alert_bytes", "alert_id", "alert_to_pb", "syscall_drop_alert"]

import grpc
from google.protobuf.message import DecodeError

from lanner.alert import alert_id, alert_to_pb
from lanner.alert_wire import alert_bytes
from lanner.convert import BatchTables, event_from_view
from lanner.lazy_event import MalformedEvent
from lanner.metrics import EVENTS_DROPPED, EVENTS_IN, STAGE_LATENCY
from lanner.streaming import BatchSender
from lanner.v1 import event_pb2
from lanner.wire import push_events_handler
from ruleengine import dnsnames
from ruleengine.decision_memo import DecisionMemo
from ruleengine.fields import EventContext
from ruleengine.metrics import ALERTS_RAISED, EVAL_SECONDS, UPSTREAM_DROPPED
from ruleengine.output import AlertRecord, format_alert_time
from ruleengine.priority import Priority

log = logging.getLogger(__name__)
STAGE = "ruleengine"
SERVICE_NAME = "lanner.v1.RuleEngineService"


_parse_view = event_pb2.EventView.FromString
_UNSEEN: Any = object()
# A batch stops looking for repeats once it has seen this many more new keys than repeats (a repeat saves about
# what three new keys cost).
_REPEAT_BUDGET = 32
_ID_TAG, _TIMING_TAG = 0x0A, 0x12  # EventView fields 1 and 2, as every stage writes them: first, in this order


def _repeat_key(data: bytes) -> bytes | None:
    """An event's bytes after its identity and timing (None when it does not start with them, short ones).

    Every other field is in this key: two events of one batch with the same key read the same parts (fields
    placed by reference refer to the same batch tables). A rule that reads the identity or timing makes the memo
    answer NO_MEMO, which is never kept as a repeat."""
    if len(data) < 4 or data[0] != _ID_TAG or data[1] > 0x7F:
        return None
    at = data[1] + 2
    if len(data) < at + 2 or data[at] != _TIMING_TAG or data[at + 1] > 0x7F:
        return None
    return data[at + 2 + data[at + 1] :]


SYSCALL_DROP_RULE = "Falco internal: syscall event drop"
# Above this many alerts per second, the alert sender gathers for ALERT_LINGER_BUSY_S instead of its own linger:
# every PushAlerts message costs both services and Redis a fixed ~1 ms of CPU (gRPC messages, round trips,
# wake-ups), so at 1-2k alerts/s bigger batches halve the cost per alert. Below it (the usual case: a rule firing
# now and then, or 100 marker alerts/s in the latency benchmarks) nothing changes.
BUSY_ALERT_RATE = 400.0
ALERT_LINGER_BUSY_S = 0.025
# How often the alert rate is taken (seconds).
RATE_WINDOW_S = 0.2
DROP_ALERT_INTERVAL_S = 10.0


def syscall_drop_alert(pb: event_pb2.Event, hostname: str) -> AlertRecord:
    """Falco's internal alert for events the kernel side lost (the collector rate-limits these events)."""
    args = {a.name: (a.int_value or a.uint_value) for a in pb.args}
    n_drops, n_evts = int(args.get("n_drops", 0)), int(args.get("n_evts", 0))
    message = f"Falco internal: syscall event drop. {n_drops} system calls dropped in last second."
    time_ns = pb.timing.event_ns or time.time_ns()
    perc = (100.0 * n_drops / (n_drops + n_evts)) if n_drops + n_evts else 0.0
    return AlertRecord(
        rule=SYSCALL_DROP_RULE,
        priority=Priority.CRITICAL,
        source="internal",
        tags=(),
        time_ns=time_ns,
        output=f"{format_alert_time(time_ns, False)}: {Priority.CRITICAL.falco_name} {message}",
        message=message,
        output_fields={"n_drops": n_drops, "n_evts": n_evts, "n_drops_perc": round(perc, 6), "node": pb.id.node},
        hostname=hostname,
    )


class RuleEngineService:
    """Serves RuleEngineService.PushEvents."""

    def __init__(
        self,
        current_engine: Callable[[], Any],
        render: Callable[[Any, EventContext], AlertRecord],
        alerts: BatchSender[bytes],
        recorder: Callable[[Any], None] | None = None,
        hostname: str = "",
    ) -> None:
        self._hostname = hostname
        self._upstream_unreported = 0
        self._upstream_alert_at = -DROP_ALERT_INTERVAL_S
        self._drop_seq = 0
        self._engine = current_engine
        self._render = render
        self._alerts = alerts
        self._recorder = recorder
        self._in = EVENTS_IN.labels(STAGE)
        self._latency = STAGE_LATENCY.labels(STAGE)
        self._base_linger: float = getattr(alerts, "linger_s", 0.0)
        self._window_start = time.monotonic()
        self._window_alerts = 0
        # The alerts counter's child per (rule, priority): a labels() lookup costs more than the increment.
        self._raised: dict[tuple[str, Priority], Any] = {}

    def _follow_rate(self, alerts: int) -> None:
        """Set the alert sender's linger from the alert rate over the last window (see BUSY_ALERT_RATE)."""
        self._window_alerts += alerts
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed < RATE_WINDOW_S:
            return
        busy = self._window_alerts >= BUSY_ALERT_RATE * elapsed
        self._alerts.linger_s = max(self._base_linger, ALERT_LINGER_BUSY_S) if busy else self._base_linger
        self._window_start, self._window_alerts = now, 0

    def _count_raised(self, rule: str, priority: Priority) -> None:
        child = self._raised.get((rule, priority))
        if child is None:
            if len(self._raised) >= 4096:  # rules come and go with reloads
                self._raised.clear()
            child = self._raised[rule, priority] = ALERTS_RAISED.labels(rule, priority.falco_name)
        child.inc()

    def register(self, server: grpc.aio.Server) -> list[str]:
        """Add this service to a server; requests arrive as ``EventBatchFrame`` so that each event is parsed on
        its own and a malformed one costs only itself."""
        server.add_generic_rpc_handlers((push_events_handler(SERVICE_NAME, self.PushEvents, STAGE),))
        return [SERVICE_NAME]

    async def PushEvents(
        self,
        request_iterator: AsyncIterator[event_pb2.EventBatchFrame],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[event_pb2.BatchAck]:
        peer = context.peer()
        log.info("upstream connected", extra={"peer": peer})
        try:
            async for batch in request_iterator:
                n = len(batch.events)
                self._in.inc(n)
                if batch.dropped_since_last:
                    UPSTREAM_DROPPED.inc(batch.dropped_since_last)
                if batch.dropped_since_last or self._upstream_unreported:
                    # Drops held back by the rate limit go out with a later batch, even one without drops.
                    self._report_upstream_drops(batch.dropped_since_last, batch)
                self.evaluate_batch(batch)
                yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=n)
        finally:
            log.info("upstream disconnected", extra={"peer": peer})

    def _report_upstream_drops(self, dropped: int, batch: event_pb2.EventBatchFrame) -> None:
        """Events the enricher dropped become Falco's drop alert too, at most one per DROP_ALERT_INTERVAL_S."""
        self._upstream_unreported += dropped
        now = time.monotonic()
        if now - self._upstream_alert_at < DROP_ALERT_INTERVAL_S:
            return
        self._upstream_alert_at = now
        self._drop_seq += 1
        event = event_pb2.Event(type="syscall_event_drop", source="internal")
        event.id.node = self._hostname
        event.id.producer_id, event.id.seq = "ruleengine-upstream-drops", self._drop_seq
        event.timing.event_ns = time.time_ns()
        event.args.add(name="n_drops", uint_value=self._upstream_unreported)
        event.args.add(name="n_evts", uint_value=len(batch.events))
        self._upstream_unreported = 0
        self._alerts.submit_urgent(alert_bytes(syscall_drop_alert(event, self._hostname), event))

    def evaluate_batch(self, batch: event_pb2.EventBatchFrame) -> None:
        engine = self._engine()  # read once per batch: a hot reload swaps it atomically between batches
        started = time.perf_counter()
        now_ns = time.time_ns()
        tables = BatchTables(batch)
        process_view = engine.process_view
        recorder = self._recorder
        last: event_pb2.EventView | None = None
        # The batch's alerts are queued together once it is evaluated (one queue operation, one ledger write):
        # the sender only runs after this returns anyway.
        raised: list[bytes] = []
        # Repeats within the batch: the events that no rule matched, by their bytes after the identity and timing
        # (see ``_repeat_key``), and the memo that said so (None: no candidate rule). An event with the same
        # bytes there reads the same parts, so the memo would give it the same answer; it is not even looked up.
        seen: dict[bytes, DecisionMemo | None] = {}
        watched = dnsnames.WATCHED
        dns = watched.generation
        budget = _REPEAT_BUDGET
        for data in batch.events:
            try:
                pb = _parse_view(data)
            except DecodeError as exc:
                EVENTS_DROPPED.labels(STAGE, "malformed_event").inc()
                log.warning("event could not be parsed; skipped", extra={"bytes": len(data), "error": str(exc)})
                continue
            last = pb
            if recorder is not None:
                try:
                    recorder(event_from_view(pb, tables))
                except Exception as exc:
                    log.warning("event could not be recorded", extra={"seq": pb.id.seq, "error": repr(exc)})
            key = None
            if budget > 0:  # a batch whose events do not repeat soon stops paying for the keys
                key = _repeat_key(data)
                if key is not None:
                    memo = seen.get(key, _UNSEEN)
                    if memo is _UNSEEN:
                        budget -= 1
                    elif watched.generation != dns:
                        seen.clear()  # what the memo answered may have changed with the names it resolves
                        dns = watched.generation
                    elif memo is None:
                        budget += 1
                        continue
                    elif memo.enabled:
                        memo.hits += 1
                        budget += 1
                        continue
            source = pb.source or "syscall"
            if source == "internal":
                if pb.type == "syscall_event_drop":
                    full = event_pb2.Event.FromString(data)
                    self._alerts.submit_urgent(alert_bytes(syscall_drop_alert(full, self._hostname), full))
                continue
            try:
                # Only the parts of the event that the candidate rules read are decoded (lanner.lazy_event), and
                # none when an event with the same parts was seen before (ruleengine.decision_memo).
                matches, ctx = process_view(source, pb.type, pb, tables)
                if ctx is None:
                    if key is not None:
                        seen[key] = engine.memo_of(source, pb.type)
                    continue
                if matches:
                    # The alert carries the event's whole journey, so each hop's latency can be read off it.
                    pb.timing.enriched_ns = ctx.event.timing.enriched_ns
                    pb.timing.evaluated_ns = time.time_ns()
                for match in matches:
                    record = self._render(match, ctx)
                    raised.append(alert_bytes(record, pb))
                    self._count_raised(record.rule, record.priority)
            except MalformedEvent as exc:
                EVENTS_DROPPED.labels(STAGE, "malformed_event").inc()
                log.warning("event could not be decoded; skipped", extra={"seq": pb.id.seq, "error": str(exc)})
            except Exception as exc:
                # One malformed event must not take the stream down; name it and move on.
                EVENTS_DROPPED.labels(STAGE, "evaluation_error").inc()
                log.warning(
                    "event could not be evaluated",
                    extra={"evt_type": pb.type, "seq": pb.id.seq, "error": f"{type(exc).__name__}: {exc}"},
                )
        if raised:
            self._alerts.submit_many(raised)
        self._follow_rate(len(raised))
        # One latency sample per batch (its newest event): a histogram observation per event costs more than
        # evaluating many events does.
        newest = last.timing.event_ns if last is not None else 0
        if newest:
            self._latency.observe(max(0.0, (now_ns - newest) / 1e9))
        EVAL_SECONDS.observe(time.perf_counter() - started)
