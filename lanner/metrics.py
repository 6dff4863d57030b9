# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics shared by every stage, and the ``/metrics`` HTTP endpoint."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

EVENTS_IN = Counter("lanner_events_in_total", "Events (or alerts) received by a stage", ["stage"])
EVENTS_OUT = Counter("lanner_events_out_total", "Events (or alerts) a stage handed downstream", ["stage"])
EVENTS_DROPPED = Counter("lanner_events_dropped_total", "Events a stage had to drop, by reason", ["stage", "reason"])
STAGE_LATENCY = Histogram(
    "lanner_stage_latency_seconds",
    "Time from the kernel event to the end of this stage",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUEUE_DEPTH = Gauge("lanner_queue_depth", "Items waiting in a stage's outbound queue", ["stage"])
DOWNSTREAM_CONNECTED = Gauge("lanner_downstream_connected", "1 while the stage's downstream stream is open", ["stage"])


def parse_bind(bind: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """Split ``host:port`` (or ``:port``) into its parts."""
    host, _, port = bind.rpartition(":")
    return (host.strip("[]") or default_host, int(port))


def start_metrics_server(bind: str) -> None:
    """Serve ``/metrics`` on ``bind`` (``host:port``); an empty bind or port 0 disables it. A port in use raises
    OSError: a second instance must not run beside the first with its metrics quietly missing."""
    if not bind:
        return
    host, port = parse_bind(bind)
    if port == 0:
        return
    from lanner.metrics_http import serve_metrics

    serve_metrics(host, port)
    log.info("metrics endpoint listening", extra={"bind": bind})
