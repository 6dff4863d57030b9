# SPDX-License-Identifier: Apache-2.0
"""An example Subscribe client: prints alerts as they arrive, as Falco text lines or Falco JSON lines."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

import grpc

from dispatcher.convert import AlertError, alert_from_pb
from dispatcher.falco_format import falco_json, text_line
from dispatcher.model import Alert, Priority
from lanner.v1 import services_pb2, services_pb2_grpc


def subscribe_request(
    min_priority: Priority | None = None,
    rules: Sequence[str] = (),
    tags: Sequence[str] = (),
    sources: Sequence[str] = (),
    name: str = "",
) -> services_pb2.SubscribeRequest:
    """Build the request for the given filters."""
    req = services_pb2.SubscribeRequest(rules=rules, tags=tags, sources=sources, subscriber_name=name)
    if min_priority is not None:
        req.min_priority = int(min_priority)  # type: ignore[assignment]
    return req


def stream_alerts(target: str, request: services_pb2.SubscribeRequest) -> Iterator[Alert]:
    """Yield alerts from the dispatcher at ``target`` until the stream ends."""
    with grpc.insecure_channel(target) as channel:
        stub = services_pb2_grpc.SubscriberServiceStub(channel)
        for pb in stub.Subscribe(request):
            try:
                yield alert_from_pb(pb)
            except AlertError as exc:
                print(f"lanner subscribe: skipping malformed alert: {exc}", file=sys.stderr)


def run_subscribe(target: str, request: services_pb2.SubscribeRequest, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Print alerts until interrupted; return the exit status."""
    try:
        for alert in stream_alerts(target, request):
            out.write((falco_json(alert) if as_json else text_line(alert)) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        print(f"lanner subscribe: {target}: {code.name if code else 'error'}: {details}", file=sys.stderr)
        return 1
    return 0
