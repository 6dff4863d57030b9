# SPDX-License-Identifier: Apache-2.0
"""Kubernetes audit webhook source: the API server POSTs ``audit.k8s.io/v1`` EventLists; each item becomes an
Event with source ``k8s_audit`` and the item's JSON in ``audit_json`` (the rule engine's ``ka.*`` fields read it).

Bad requests get a 400 naming what is wrong (``items[2]: expected an object``); the server keeps running. A
request is limited in bytes (413), in items (413) and in JSON nesting depth (400), so no single request can
flood the pipeline or exhaust the parser. The queue between the webhook and the service loop is bounded in
items and in bytes; overflow drops the oldest audit events and is counted. The collector sends audit events on
their own stream with their own queue, so an audit flood never displaces syscall events.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from collector.audit_auth import AuditAuth
from collector.decode import Identity
from collector.metrics import AUDIT_REJECTED
from lanner.metrics import parse_bind
from lanner.model import SOURCE_K8S_AUDIT, Event, EventIdentity, EventTiming
from lanner.netaddr import is_loopback
from lanner.text import escape_surrogates

log = logging.getLogger(__name__)

AUDIT_API_VERSIONS = ("audit.k8s.io/v1",)
# The API server's webhook backend sends at most --audit-webhook-batch-max-size (400) events per request.
MAX_ITEMS_PER_REQUEST = 10_000
# Audit events embed Kubernetes objects (RequestResponse level); real ones nest a few dozen levels at most.
MAX_DEPTH = 100


class AuditError(ValueError):
    """The request body is not an audit Event or EventList; the message names the field."""

    status = 400


class AuditTooLarge(AuditError):
    """The request carries more than the webhook takes."""

    status = 413


def _check_depth(doc: object, max_depth: int) -> None:
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise AuditError(f"body: JSON nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))


def parse_timestamp_ns(value: object) -> int:
    """RFC 3339 (with micro- or nanoseconds, ``Z`` or offset) to epoch ns; 0 when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return 0
    text = value
    frac_ns = 0
    # datetime keeps microseconds only; carry extra digits by hand.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        text = head + rest
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int(dt.timestamp()) * 1_000_000_000 + frac_ns


def parse_audit_body(
    body: bytes, max_items: int = MAX_ITEMS_PER_REQUEST, max_depth: int = MAX_DEPTH
) -> list[dict[str, Any]]:
    """The audit events in a webhook body (an EventList or a single Event)."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditError(f"body: invalid JSON: {exc}") from None
    except RecursionError:
        raise AuditError(f"body: JSON nested deeper than {max_depth} levels") from None
    if not isinstance(doc, dict):
        raise AuditError("body: expected a JSON object (audit.k8s.io/v1 EventList)")
    api = doc.get("apiVersion")
    if api is not None and api not in AUDIT_API_VERSIONS:
        raise AuditError(f"apiVersion: {api!r} is not supported (expected {', '.join(AUDIT_API_VERSIONS)})")
    kind = doc.get("kind")
    if kind == "Event":
        items: object = [doc]
    elif kind == "EventList" or "items" in doc:
        items = doc.get("items")
        if not isinstance(items, list):
            raise AuditError("items: expected a list")
        if len(items) > max_items:
            raise AuditTooLarge(f"items: {len(items)} events in one request, more than the limit of {max_items}")
    else:
        raise AuditError(f"kind: expected EventList or Event, got {kind!r}")
    out: list[dict[str, Any]] = []
    assert isinstance(items, list)
    _check_depth(doc, max_depth)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise AuditError(f"items[{i}]: expected an object")
        for key in ("auditID", "verb", "stage"):
            if key in item and not isinstance(item[key], str):
                raise AuditError(f"items[{i}].{key}: expected a string")
        out.append(item)
    return out


class AuditWebhook:
    """An HTTP endpoint for the API server's audit webhook backend, polled like any other source."""

    name = SOURCE_K8S_AUDIT

    def __init__(
        self,
        bind: str,
        identity: Identity,
        *,
        path: str = "/k8s-audit",
        max_queue: int = 65536,
        max_queue_bytes: int = 64 * 1024 * 1024,
        max_body_bytes: int = 16 * 1024 * 1024,
        max_items_per_request: int = MAX_ITEMS_PER_REQUEST,
        max_depth: int = MAX_DEPTH,
        tls_cert: str = "",
        tls_key: str = "",
        auth: AuditAuth | None = None,
    ) -> None:
        self.bind = bind
        self.path = path
        self.identity = identity
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.max_body_bytes = max_body_bytes
        self.max_items_per_request = max_items_per_request
        self.max_depth = max_depth
        self._queued_bytes = 0
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.auth = auth or AuditAuth()
        if self.auth.client_ca and not tls_cert:
            raise ValueError("k8s_audit_client_ca: client certificates need TLS (k8s_audit_tls_cert and _key)")
        self.rejected = 0
        self.overflow = 0
        self.port = 0
        self._queue: collections.deque[Event] = collections.deque()
        self._seq = 0
        self._runner: web.AppRunner | None = None

    def to_event(self, item: dict[str, Any], received_ns: int) -> Event:
        """One audit item as an Event."""
        self._seq += 1
        ident = self.identity
        when = parse_timestamp_ns(item.get("stageTimestamp")) or parse_timestamp_ns(
            item.get("requestReceivedTimestamp")
        )
        return Event(
            type="k8s_audit",
            source=SOURCE_K8S_AUDIT,
            identity=EventIdentity(ident.node, ident.boot_id, self._seq, ident.producer_id),
            timing=EventTiming(event_ns=when or received_ns, collected_ns=received_ns),
            # JSON escapes such as "\\ud800" decode to lone surrogates, which no protobuf string can carry: keep
            # them as escapes.
            audit_json=escape_surrogates(json.dumps(item, separators=(",", ":"), ensure_ascii=False)),
        )

    async def _handle(self, request: web.Request) -> web.Response:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        refusal = self.auth.refusal(request.headers.get("Authorization", ""), peercert)
        if refusal is not None:
            # Before the body is read: a stranger costs a header parse, not a JSON parse.
            self.rejected += 1
            AUDIT_REJECTED.labels("unauthenticated").inc()
            log.warning("audit webhook request refused", extra={"error": refusal, "peer": request.remote})
            return web.json_response({"error": refusal}, status=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            body = await request.read()
            items = parse_audit_body(body, self.max_items_per_request, self.max_depth)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, AuditTooLarge(f"body: larger than {self.max_body_bytes} bytes"))
        except AuditError as exc:
            return self._reject(request, exc)
        now = time.time_ns()
        for item in items:
            ev = self.to_event(item, now)
            self._queue.append(ev)
            self._queued_bytes += len(ev.audit_json)
            while len(self._queue) > self.max_queue or self._queued_bytes > self.max_queue_bytes:
                self._queued_bytes -= len(self._queue.popleft().audit_json)
                self.overflow += 1
        return web.json_response({"accepted": len(items)})

    def _reject(self, request: web.Request, exc: AuditError) -> web.Response:
        self.rejected += 1
        AUDIT_REJECTED.labels("too_large" if exc.status == 413 else "bad_request").inc()
        log.warning("bad audit webhook request", extra={"error": str(exc), "peer": request.remote})
        return web.json_response({"error": str(exc)}, status=exc.status)

    async def serve(self) -> None:
        """Listen until cancelled."""
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = parse_bind(self.bind)
        ssl_context = None
        if self.tls_cert:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.tls_cert, self.tls_key or None)
            self.auth.configure(ssl_context)
        if not self.auth.enabled and not is_loopback(self.bind):
            log.warning(
                "k8s audit webhook is open to anyone who reaches it: set k8s_audit_client_ca or k8s_audit_token_file",
                extra={"bind": self.bind},
            )
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("k8s audit webhook listening", extra={"bind": self.bind, "port": self.port, "path": self.path})
        try:
            await asyncio.Event().wait()
        finally:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> None:
        """Nothing to do before ``serve`` runs."""

    def poll(self) -> list[Event]:
        """Audit events received since the last poll."""
        if not self._queue:
            return []
        out = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        return out

    def dropped(self) -> int:
        """Audit events lost to a full queue."""
        return self.overflow

    def close(self) -> None:
        """The server stops when ``serve`` is cancelled."""
