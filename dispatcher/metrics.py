# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's own Prometheus metrics (the shared ones live in ``lanner.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ALERTS_ACCEPTED = Counter(
    "lanner_dispatcher_alerts_accepted_total", "Alerts persisted to the durable queue (new ones only)"
)
ALERTS_DUPLICATE = Counter(
    "lanner_dispatcher_alerts_duplicate_total", "Alerts dropped because their alert_id was seen within the window"
)
ALERTS_REJECTED = Counter(
    "lanner_dispatcher_alerts_rejected_total", "Alerts refused at intake because a field was invalid", ["reason"]
)
ALERTS_TRUNCATED = Counter(
    "lanner_dispatcher_alerts_truncated_total",
    "Alerts cut to the size limits at intake, by the part that was cut (output, message, tags, output_fields...)",
    ["part"],
)
BAD_MESSAGES = Counter("lanner_dispatcher_bad_messages_total", "PushAlerts messages that were not a valid AlertBatch")
OUTPUT_SENT = Counter("lanner_dispatcher_output_sent_total", "Alerts an output's destination accepted", ["output"])
OUTPUT_FAILED = Counter(
    "lanner_dispatcher_output_failed_total", "Delivery attempts that failed (each attempt counts)", ["output"]
)
OUTPUT_RETRIED = Counter(
    "lanner_dispatcher_output_retried_total", "Delivery attempts scheduled again after a failure", ["output"]
)
OUTPUT_DEAD = Counter(
    "lanner_dispatcher_output_dead_lettered_total",
    "Alerts an output gave up on (permanent error or retries exhausted), kept in the dead-letter stream",
    ["output"],
)
OUTPUT_FILTERED = Counter(
    "lanner_dispatcher_output_filtered_total", "Alerts an output's routing (priority, rules, tags) skipped", ["output"]
)
OUTPUT_GROUPED = Counter(
    "lanner_dispatcher_output_grouped_total",
    "Repeats an output counted into a grouping window instead of sending (they go out in the digest)",
    ["output"],
)
OUTPUT_RESOLVED = Counter(
    "lanner_dispatcher_output_resolved_total",
    "Incidents an output resolved or closed after a quiet period (PagerDuty resolve, Opsgenie close)",
    ["output"],
)
SUBSCRIBERS = Gauge("lanner_dispatcher_subscribers", "Connected Subscribe clients")
SUBSCRIBER_SENT = Counter("lanner_dispatcher_subscriber_sent_total", "Alerts queued to subscribers", ["subscriber"])
ALERTS_DROPPED = Counter(
    "lanner_alerts_dropped_total", "Alerts a live subscriber missed because its queue was full", ["subscriber"]
)
STREAM_LENGTH = Gauge("lanner_dispatcher_stream_entries", "Entries in the durable alert stream")
OUTPUT_BACKLOG = Gauge(
    "lanner_dispatcher_output_backlog",
    "Alerts an output has not delivered yet (pending in its group plus not yet read)",
    ["output"],
)
REDIS_UP = Gauge("lanner_dispatcher_redis_up", "1 while the dispatcher reaches Redis")
