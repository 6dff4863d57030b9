# SPDX-License-Identifier: Apache-2.0
"""gRPC keepalive, set for both ends of every Lanner hop in one place.

A client that pings more often than its server allows gets ``GOAWAY ENHANCE_YOUR_CALM "too_many_pings"`` and
loses its connection (the server's default floor between pings on an idle connection is 5 minutes). So the
server's floor is derived from the client's interval here, with room for timer jitter, and the server may see
pings on a connection that carries no call. ``LANNER_GRPC_KEEPALIVE_MS`` shortens the interval (tests do), and
moves both ends together because both read it here.
"""

from __future__ import annotations

import os

DEFAULT_INTERVAL_MS = 20_000
# Pings a server tolerates below its floor before it sends GOAWAY (gRPC's default, stated to keep it visible).
MAX_PING_STRIKES = 2


def interval_ms() -> int:
    """The client ping interval: ``LANNER_GRPC_KEEPALIVE_MS`` or 20 s."""
    raw = os.environ.get("LANNER_GRPC_KEEPALIVE_MS", "")
    return int(raw) if raw.strip().isdigit() and int(raw) > 0 else DEFAULT_INTERVAL_MS


def client_options(every_ms: int | None = None) -> tuple[tuple[str, int], ...]:
    """Channel options: ping every ``every_ms``, also on idle connections, and give up after half of it."""
    every = every_ms or interval_ms()
    return (
        ("grpc.keepalive_time_ms", every),
        ("grpc.keepalive_timeout_ms", max(1000, every // 2)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    )


def server_options(every_ms: int | None = None) -> tuple[tuple[str, int], ...]:
    """Server options that accept the pings ``client_options(every_ms)`` sends, and ping idle clients too, so a
    peer that vanished without closing its connection is noticed."""
    every = every_ms or interval_ms()
    return (
        # Half the client's interval: a ping that arrives early because of timer jitter is not a strike.
        ("grpc.http2.min_ping_interval_without_data_ms", every // 2),
        ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.keepalive_time_ms", every),
        ("grpc.keepalive_timeout_ms", max(1000, every // 2)),
    )
