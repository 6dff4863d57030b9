# SPDX-License-Identifier: Apache-2.0
"""``lanner subscribe``: prints alerts as they arrive, as Falco text lines or Falco JSON lines.

It stays: when the dispatcher goes away (a restart, a network cut) it says so on stderr, reconnects with backoff
and resumes after the last alert it printed (its cursor), so nothing is missed or printed twice within the
dispatcher's replay retention. Ctrl-C (or SIGTERM) ends it with status 0 and prints the cursor to resume from.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, TextIO

import grpc

from dispatcher.backoff import Backoff
from dispatcher.convert import AlertError, alert_from_pb
from dispatcher.falco_format import safe_line
from dispatcher.model import Alert, Priority
from lanner.pki import sync_channel
from lanner.v1 import alert_pb2, services_pb2, services_pb2_grpc

# Errors that another attempt cannot fix: the request itself is wrong, or the server does not offer Subscribe.
FATAL = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``10m``, ``30s``, ``2h``, ``1d``, ``500ms`` (plain numbers are seconds); ValueError otherwise."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration like 10m, 30s, 2h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def subscribe_request(
    min_priority: Priority | None = None,
    rules: Sequence[str] = (),
    tags: Sequence[str] = (),
    sources: Sequence[str] = (),
    name: str = "",
    *,
    from_cursor: str = "",
    since_unix_ms: int = 0,
    filters: Sequence[str] = (),
    fields: Sequence[str] = (),
) -> services_pb2.SubscribeRequest:
    """Build the request for the given filters and starting point."""
    req = services_pb2.SubscribeRequest(
        rules=rules,
        tags=tags,
        sources=sources,
        subscriber_name=name,
        from_cursor=from_cursor,
        since_unix_ms=since_unix_ms,
        filters=filters,
        fields=fields,
    )
    if min_priority is not None:
        req.min_priority = int(min_priority)  # type: ignore[assignment]
    return req


def stream_alerts(target: str, request: services_pb2.SubscribeRequest) -> Iterator[Alert]:
    """Yield alerts from the dispatcher at ``target`` until the stream ends (no reconnection)."""
    with grpc.insecure_channel(target) as channel:
        stub = services_pb2_grpc.SubscriberServiceStub(channel)
        for batch in stub.SubscribeBatches(request):
            for pb in batch.alerts:
                try:
                    yield alert_from_pb(pb)
                except AlertError as exc:
                    print(f"lanner subscribe: skipping malformed alert: {exc}", file=sys.stderr)


class Subscription:
    """The reconnecting loop behind ``lanner subscribe``; ``stop()`` (from a signal handler) ends it cleanly."""

    def __init__(
        self,
        target: str,
        request: services_pb2.SubscribeRequest,
        as_json: bool,
        out: TextIO,
        err: TextIO,
        tls_dir: str = "",
        token: str = "",
    ) -> None:
        self.target = target
        self.tls_dir = tls_dir
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.request = request
        self.as_json = as_json
        self.out = out
        self.err = err
        self.cursor = request.from_cursor
        self._stopping = threading.Event()
        self._call: Any = None
        self._batches = True

    def stop(self) -> None:
        """End the subscription: cancels the call in flight and any backoff wait."""
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()

    def _next_request(self, since_ms: int) -> services_pb2.SubscribeRequest:
        req = services_pb2.SubscribeRequest()
        req.CopyFrom(self.request)
        if self.cursor:
            req.from_cursor = self.cursor
            req.since_unix_ms = 0
        elif since_ms:
            req.since_unix_ms = since_ms
        return req

    def _print(self, pb: alert_pb2.Alert) -> None:
        try:
            alert = alert_from_pb(pb)
        except AlertError as exc:
            print(f"lanner subscribe: skipping malformed alert: {exc}", file=self.err)
            return
        self.out.write(safe_line(alert, self.as_json) + "\n")

    def _open(self, stub: services_pb2_grpc.SubscriberServiceStub, since_ms: int) -> Iterator[list[alert_pb2.Alert]]:
        """The call's alerts, a batch at a time: SubscribeBatches, or Subscribe from a dispatcher without it."""
        req = self._next_request(since_ms)
        if self._batches:
            self._call = call = stub.SubscribeBatches(req, metadata=self.metadata)
            return (list(batch.alerts) for batch in call)
        self._call = single = stub.Subscribe(req, metadata=self.metadata)
        return ([pb] for pb in single)

    def run(self) -> int:
        """Print alerts until stopped; 0 on a clean stop, 1 on an error that retrying cannot fix."""
        backoff = Backoff(0.5, 10.0)
        # With no cursor yet, a reconnection replays from when we first connected: nothing is lost in between.
        since_ms = self.request.since_unix_ms or int(time.time() * 1000)
        failures = 0
        while not self._stopping.is_set():
            # The server may also end the stream itself (it is shutting down): that counts as a lost connection.
            reason = "the stream ended"
            try:
                with sync_channel(self.target, self.tls_dir) as channel:
                    stub = services_pb2_grpc.SubscriberServiceStub(channel)
                    batches = self._open(stub, since_ms)
                    if self._stopping.is_set():
                        self._call.cancel()
                    for batch in batches:
                        if failures:
                            print(f"lanner subscribe: reconnected to {self.target}", file=self.err, flush=True)
                            failures = 0
                        backoff.reset()
                        for pb in batch:
                            self._print(pb)
                            if pb.cursor:
                                self.cursor = pb.cursor
                        self.out.flush()
            except grpc.RpcError as exc:
                if self._stopping.is_set():
                    break
                code = exc.code() if isinstance(exc, grpc.Call) else None
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                if code == grpc.StatusCode.UNIMPLEMENTED and self._batches:
                    self._batches = False  # a dispatcher from before SubscribeBatches: one alert per message
                    continue
                if code is not None and code in FATAL:
                    print(f"lanner subscribe: {self.target}: {code.name}: {details}", file=self.err)
                    return 1
                reason = f"{code.name if code else 'error'}: {details}"
            finally:
                self._call = None
            if self._stopping.is_set():
                break
            failures += 1
            delay = backoff.next_delay()
            print(
                f"lanner subscribe: dispatcher at {self.target} unavailable ({reason}); reconnecting in {delay:.1f}s",
                file=self.err,
                flush=True,
            )
            self._stopping.wait(delay)
        if self.cursor:
            print(f"lanner subscribe: stopped; resume with --from-cursor {self.cursor}", file=self.err, flush=True)
        return 0


def run_subscribe(
    target: str,
    request: services_pb2.SubscribeRequest,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    tls_dir: str = "",
    token: str = "",
) -> int:
    """Run a subscription in the foreground; SIGINT and SIGTERM stop it with status 0."""
    sub = Subscription(target, request, as_json, out, err, tls_dir, token)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        sub.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return sub.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
