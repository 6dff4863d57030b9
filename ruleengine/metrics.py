# SPDX-License-Identifier: Apache-2.0
"""Rule engine metrics, beside the shared per-stage ones in ``lanner.metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_RAISED = Counter("lanner_rules_matches_total", "Alerts raised, by rule and priority", ["rule", "priority"])
EVAL_SECONDS = Histogram(
    "lanner_ruleengine_batch_eval_seconds",
    "Time to evaluate one event batch",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
)
UPSTREAM_DROPPED = Counter(
    "lanner_ruleengine_upstream_dropped_total", "Events the enricher reported dropped before they reached us"
)
RULES_LOADED = Gauge("lanner_rules_loaded", "Rules enabled in the running rule set")
