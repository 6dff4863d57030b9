# SPDX-License-Identifier: Apache-2.0
"""The collector's own metrics (the shared ones live in ``lanner.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PROCESSES = Gauge("lanner_collector_processes", "Processes in the collector's process table")
MALFORMED = Counter("lanner_collector_malformed_records_total", "Ring buffer records that could not be decoded")
INCOMPLETE = Counter(
    "lanner_collector_incomplete_events_total", "Events whose process was unknown to the table and gone from /proc"
)
AUDIT_REJECTED = Counter(
    "lanner_k8s_audit_rejected_total",
    "Audit webhook requests refused, by reason (bad_request, too_large, unauthenticated)",
    ["reason"],
)
RING_RETRIES = Counter(
    "lanner_collector_ring_retries_total",
    "Ring buffer reservations that failed at the first try and were tried again; only a full ring should fail, so "
    "a count without ring_buffer_full losses beside it is a bug (the consumer, or the ring's lock giving up)",
)
CONTROL_REFUSED = Counter(
    "lanner_collector_control_refused_total", "Kernel spec calls refused: no pipeline certificate or control token"
)
