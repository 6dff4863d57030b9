# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's RPCs and its moving parts.

``PushAlerts`` persists every valid alert of a batch (with dedup) before it acks the batch; while Redis is away
it holds the ack, so the rule engine keeps the alerts and nothing accepted is lost. ``Subscribe`` is a live tail
for any client. Delivery to the configured outputs runs in one ``OutputDriver`` per output.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import grpc
from google.protobuf.message import DecodeError

from dispatcher.config import DispatcherConfig, OutputSpec, output_type
from dispatcher.convert import AlertError, alert_from_pb, priority_from_pb
from dispatcher.dedup import DedupKeyer, load_secret
from dispatcher.driver import GROUP_PREFIX, OutputDriver
from dispatcher.hub import SubscriberHub
from dispatcher.matchers import MatcherError, parse_matchers
from dispatcher.metrics import (
    ALERTS_ACCEPTED,
    ALERTS_DUPLICATE,
    ALERTS_REJECTED,
    ALERTS_TRUNCATED,
    BAD_MESSAGES,
    OUTPUT_BACKLOG,
    STREAM_LENGTH,
)
from dispatcher.model import Priority
from dispatcher.recent import RecentAlerts, on_added
from dispatcher.registry import Output, OutputContext, OutputType, registered_outputs
from dispatcher.routetree import parse_tree
from dispatcher.routing import Route
from dispatcher.sidekick import SidekickIntake
from dispatcher.store import AlertStore, RedisState, retry_redis
from dispatcher.subscribe_request import check_request_size, replay_start
from dispatcher.tokens import TokenBook, bearer_token
from lanner.alert_limits import bounded_payload
from lanner.alert_wire import alert_batch_wire
from lanner.config import ConfigError
from lanner.intake import item_count, salvage
from lanner.metrics import EVENTS_IN, EVENTS_OUT
from lanner.pki import foreign_certificate
from lanner.v1 import alert_pb2, services_pb2

log = logging.getLogger(__name__)

DISPATCHER_SERVICE = "lanner.v1.DispatcherService"
SUBSCRIBER_SERVICE = "lanner.v1.SubscriberService"
MAX_ALERT_ID = 512
MAX_NAME = 64
# The output field that names the cluster an alert comes from (``cluster_name``; falco#2482).
CLUSTER_FIELD = "lanner.cluster"
# The range of a protobuf Timestamp: anything outside cannot be rendered as a date by any output.
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799


class Dispatcher:
    """Owns the store, the output drivers and the subscriber hub, and serves the two gRPC services."""

    def __init__(
        self,
        cfg: DispatcherConfig,
        specs: Sequence[OutputSpec],
        outputs: Mapping[str, Output] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = AlertStore(
            cfg.redis_url, cfg.stream, cfg.dedup_prefix, int(cfg.dedup_window_s * 1000), cluster=cfg.redis_cluster
        )
        self.hub = SubscriberHub(self.store, cfg.subscriber_queue)
        self.tokens = TokenBook(cfg.tokens_file) if cfg.tokens_file else None
        self._token_streams: collections.Counter[str] = collections.Counter()
        try:
            self.keyer = DedupKeyer(load_secret(cfg.dedup_secret, cfg.secret_path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"dispatcher.dedup_secret_file: {cfg.secret_path}: {exc}") from None
        self.ctx = OutputContext(
            hostname=cfg.host_name, json=cfg.json, redis_url=cfg.redis_url, state_prefix=f"{cfg.stream}:state:"
        )
        kinds = registered_outputs()
        self.tree = parse_tree(cfg.routes, [s.name for s in specs])
        self.sidekick: SidekickIntake | None = None
        if cfg.sidekick.bind:
            try:
                self.sidekick = SidekickIntake(cfg.sidekick, self.accept, lambda: RedisState.up, self.ctx.hostname)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"dispatcher.sidekick: {exc}") from None
        self.drivers: list[OutputDriver] = []
        self.recent = RecentAlerts() if specs else None
        for spec in specs:
            output = (outputs or {}).get(spec.name) or self._build(kinds[output_type(spec.name)], spec)
            self.drivers.append(
                OutputDriver(
                    spec.name,
                    output,
                    spec.driver,
                    self.store,
                    consumer=cfg.consumer_name,
                    read_batch=cfg.read_batch,
                    claim_idle_s=cfg.claim_idle_s,
                    tree=self.tree,
                    recent=self.recent,
                )
            )

    def _build(self, kind: OutputType, spec: OutputSpec) -> Output:
        try:
            return kind.factory(spec.config, self.ctx)
        except (OSError, ValueError, ssl.SSLError) as exc:
            # A missing CA file or key is a configuration problem: say which output, not a traceback.
            raise ConfigError(f"dispatcher.outputs.{spec.name}: {exc}") from None

    async def prepare(self) -> None:
        """Wait for Redis and create the output groups, so intake never runs ahead of delivery setup."""
        log.info("connecting to redis", extra={"redis_url": self.cfg.redis_url, "stream": self.cfg.stream})
        await retry_redis(self.store.ping, "start-up (waiting for redis)", self.cfg.redis_url)
        for driver in self.drivers:
            await driver.prepare()
        log.info(
            "dispatcher ready",
            extra={"outputs": [d.name for d in self.drivers], "consumer": self.cfg.consumer_name},
        )

    def register(self, server: grpc.aio.Server) -> list[str]:
        """Add both services to the server; requests are parsed here so bad bytes get a clear error."""
        push: grpc.RpcMethodHandler[bytes, alert_pb2.AlertAck] = grpc.stream_stream_rpc_method_handler(
            self.push_alerts, response_serializer=alert_pb2.AlertAck.SerializeToString
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(DISPATCHER_SERVICE, {"PushAlerts": push}),
                grpc.method_handlers_generic_handler(SUBSCRIBER_SERVICE, self._subscriber_methods()),
            )
        )
        return [DISPATCHER_SERVICE, SUBSCRIBER_SERVICE]

    def _subscriber_methods(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        return {
            "Subscribe": grpc.unary_stream_rpc_method_handler(self.subscribe),
            "SubscribeBatches": grpc.unary_stream_rpc_method_handler(self.subscribe_batches),
        }

    def register_public(self, server: grpc.aio.Server) -> list[str]:
        """Add only the Subscribe service (the public listener, dispatcher/public.py: never the intake)."""
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SUBSCRIBER_SERVICE, self._subscriber_methods()),)
        )
        return [SUBSCRIBER_SERVICE]

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        """Coroutines to run beside the server: the hub, one loop per output, the trimmer, SIGUSR1."""
        flushers = [d.flush_loop for d in self.drivers if d.grouper is not None]
        loops: list[Callable[[], Awaitable[None]]] = [self.hub.run, *(d.run for d in self.drivers), *flushers]
        loops += [self._trim_loop, self._reopen_on_sigusr1]
        if self.sidekick is not None:
            loops.append(self.sidekick.run)
        return loops

    async def close(self) -> None:
        """Close every output, then Redis."""
        for driver in self.drivers:
            try:
                await driver.close()
            except Exception as exc:
                log.error("output close failed", extra={"output": driver.name, "error": str(exc)})
        await self.store.close()

    # -- intake -------------------------------------------------------------------------------------------

    def _intake(self, batch: alert_pb2.AlertBatch, peer: str) -> tuple[list[tuple[str, bytes]], list[alert_pb2.Alert]]:
        """The valid alerts of a batch as (dedup key, payload) pairs, and each one's parsed form."""
        items: list[tuple[str, bytes]] = []
        parsed: list[alert_pb2.Alert] = []
        for i, pb in enumerate(batch.alerts):
            try:
                if not pb.rule:
                    raise AlertError("rule: must not be empty")
                priority_from_pb(pb.priority)
                if len(pb.alert_id) > MAX_ALERT_ID:
                    raise AlertError(f"alert_id: longer than {MAX_ALERT_ID} characters")
                if not MIN_SECONDS <= pb.time.seconds <= MAX_SECONDS or not 0 <= pb.time.nanos < 1_000_000_000:
                    raise AlertError(f"time: {pb.time.seconds}s is outside 0001-01-01..9999-12-31 (protobuf Timestamp)")
            except AlertError as exc:
                ALERTS_REJECTED.labels(reason=str(exc).split(":", 1)[0]).inc()
                log.warning(
                    "alert rejected",
                    extra={"peer": peer, "batch_seq": batch.batch_seq, "index": i, "error": str(exc)},
                )
                continue
            # Keyed before defaults are filled in, so a redelivery computes the same key (dispatcher/dedup.py).
            key = self.keyer.key(pb)
            if not pb.hostname:
                pb.hostname = self.ctx.hostname
            if self.cfg.cluster_name:
                stamp_field(pb, CLUSTER_FIELD, self.cfg.cluster_name)
            payload, cut = bounded_payload(pb, self.cfg.limits)
            for part in cut:
                ALERTS_TRUNCATED.labels(part=part).inc()
            items.append((key, payload))
            parsed.append(pb)
        return items, parsed

    def _persist(self, items: list[tuple[str, bytes]], parsed: list[alert_pb2.Alert]) -> Awaitable[int]:
        """Persist the alerts; what is new also goes to the subscriber hub in memory (dispatcher.hub)."""
        return self.store.persist(items, on_added(self.hub, self.recent, items, parsed))

    async def accept(self, alerts: list[alert_pb2.Alert], peer: str) -> int:
        """Persist alerts from another intake (the Falcosidekick drop-in); return how many were valid."""
        batch = alert_pb2.AlertBatch(alerts=alerts)
        EVENTS_IN.labels(stage="dispatcher").inc(len(alerts))
        items, parsed = self._intake(batch, peer)
        added = await retry_redis(functools.partial(self._persist, items, parsed), "http intake", self.cfg.redis_url)
        ALERTS_ACCEPTED.inc(added)
        ALERTS_DUPLICATE.inc(len(items) - added)
        return len(items)

    async def push_alerts(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, alert_pb2.AlertAck]
    ) -> AsyncIterator[alert_pb2.AlertAck]:
        """Bidi stream: persist each batch, then ack it with how many alerts were accepted."""
        peer = context.peer()
        who = foreign_certificate(context.auth_context())
        if who is not None:
            # The CA also signs client certificates (lanner certs client) that may read but never claim alerts.
            ALERTS_REJECTED.labels(reason="peer").inc()
            log.warning("PushAlerts refused: not the pipeline's certificate", extra={"peer": peer, "certificate": who})
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"PushAlerts: certificate {who!r} may not push")
        n = 0
        async for raw in requests:
            n += 1
            try:
                batch = alert_pb2.AlertBatch.FromString(raw)
            except DecodeError as exc:
                # One malformed alert costs itself: keep every alert that parses on its own (lanner.intake).
                BAD_MESSAGES.inc()
                batch = salvage(raw, alert_pb2.AlertBatch, alert_pb2.Alert, "dispatcher")
                msg = f"PushAlerts message #{n} ({len(raw)} bytes): not a valid lanner.v1.AlertBatch: {exc}"
                if not batch.alerts:
                    log.warning("bad PushAlerts message", extra={"peer": peer, "error": msg})
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, msg)
                lost = item_count(raw) - len(batch.alerts)
                ALERTS_REJECTED.labels(reason="malformed").inc(lost)
                log.warning(
                    "malformed alerts dropped, the rest of the batch kept",
                    extra={"peer": peer, "error": msg, "dropped": lost, "kept": len(batch.alerts)},
                )
            EVENTS_IN.labels(stage="dispatcher").inc(len(batch.alerts))
            items, parsed = self._intake(batch, peer)
            persist = functools.partial(self._persist, items, parsed)
            added = await retry_redis(persist, f"ack of batch {batch.batch_seq}", self.cfg.redis_url)
            ALERTS_ACCEPTED.inc(added)
            ALERTS_DUPLICATE.inc(len(items) - added)
            yield alert_pb2.AlertAck(batch_seq=batch.batch_seq, accepted=len(items))

    # -- public subscription --------------------------------------------------------------------------------

    async def subscribe(self, raw: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        """Server stream of serialized alerts matching the request: a replay from a cursor or time, then live."""
        async for batch in self._subscription(raw, context):
            for payload in batch:
                yield payload

    async def subscribe_batches(
        self, raw: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        """The same alerts as ``subscribe``, as serialized AlertBatches of whatever was ready (one write each)."""
        seq = 0
        async for batch in self._subscription(raw, context):
            seq += 1
            yield alert_batch_wire(seq, batch)

    async def _subscription(
        self, raw: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[list[bytes]]:
        """Check a SubscribeRequest and its token, then yield what the subscriber should see, in batches."""
        try:
            req = services_pb2.SubscribeRequest.FromString(raw)
            min_prio = priority_from_pb(req.min_priority) if req.HasField("min_priority") else Priority.DEBUG
            check_request_size(req)
            matchers = parse_matchers(req.filters, "filters")
            start, inclusive = replay_start(req.from_cursor, req.since_unix_ms)
        except (DecodeError, AlertError, MatcherError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"SubscribeRequest: {exc}")
        if len(self.hub) >= self.cfg.max_subscribers:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"too many subscribers (max_subscribers={self.cfg.max_subscribers})"
            )
        name = (req.subscriber_name or "anonymous")[:MAX_NAME]
        sources = frozenset(req.sources)
        scope = None
        if self.tokens is not None:
            scope = self.tokens.lookup(bearer_token(context.invocation_metadata()))
            if scope is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Subscribe needs a valid bearer token")
            assert scope is not None
            if scope.sources:
                if sources and not sources <= scope.sources:
                    outside = sorted(sources - scope.sources)
                    await context.abort(
                        grpc.StatusCode.PERMISSION_DENIED, f"sources {outside} are outside token {scope.name!r}"
                    )
                sources = sources or scope.sources
            min_prio = min(min_prio, scope.min_priority)
            if self._token_streams[scope.name] >= scope.max_subscribers:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"token {scope.name!r} already has {scope.max_subscribers} subscribers (its max_subscribers)",
                )
            name = f"{scope.name}/{name}"
        route = Route(min_prio, frozenset(req.rules), frozenset(req.tags), sources)
        sub = self.hub.new(
            name,
            route,
            matchers,
            frozenset(req.fields),
            namespaces=scope.namespaces if scope else frozenset(),
            hide_fields=scope is not None and not scope.output_fields,
        )
        out = EVENTS_OUT.labels(stage="dispatcher")
        if scope is not None:
            self._token_streams[scope.name] += 1
        try:
            async for batch in self.hub.batches(sub, start, inclusive):
                out.inc(len(batch))
                yield batch
        finally:
            self.hub.remove(sub)
            if scope is not None:
                self._token_streams[scope.name] -= 1

    # -- housekeeping -----------------------------------------------------------------------------------------

    async def _trim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.trim_interval_s)
            trim = functools.partial(self.store.trim, self.cfg.idle_keep, self.cfg.replay_retention_s)
            report = await retry_redis(trim, "trimming", self.cfg.redis_url)
            STREAM_LENGTH.set(report.length)
            for group, count in report.backlog.items():
                OUTPUT_BACKLOG.labels(output=group.removeprefix(GROUP_PREFIX)).set(count)
            if report.removed:
                log.debug("trimmed delivered alerts", extra={"removed": report.removed})

    async def _reopen_on_sigusr1(self) -> None:
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGUSR1, wake.set)
        except (NotImplementedError, RuntimeError, ValueError):
            return
        try:
            while True:
                await wake.wait()
                wake.clear()
                log.info("SIGUSR1: reopening outputs")
                for driver in self.drivers:
                    try:
                        await driver.reopen()
                    except Exception as exc:
                        log.error("output reopen failed", extra={"output": driver.name, "error": str(exc)})
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGUSR1)


def stamp_field(pb: alert_pb2.Alert, name: str, value: str) -> None:
    """Add one string output field to both forms of the alert's fields (the JSON one is what outputs render)."""
    pb.output_fields.fields[name].string_value = value
    if pb.output_fields_json:
        try:
            fields = json.loads(pb.output_fields_json)
        except ValueError:
            return  # the driver dead-letters an alert whose fields do not parse; nothing to add to
        if isinstance(fields, dict):
            fields[name] = value
            pb.output_fields_json = json.dumps(fields, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def decode_alert(payload: bytes) -> alert_pb2.Alert:
    """Parse a serialized alert as sent by ``Subscribe``."""
    return alert_pb2.Alert.FromString(payload)


__all__ = ["DISPATCHER_SERVICE", "SUBSCRIBER_SERVICE", "Dispatcher", "alert_from_pb", "decode_alert"]
