# SPDX-License-Identifier: Apache-2.0
"""A stable identity for "the same problem again": what incident tools deduplicate and group on.

It hashes the rule with the alert's stable scope (host, container or pod, executable), never with pids,
timestamps or command lines, so repeats of one problem share a key and different problems never do. The
64-character hex digest fits PagerDuty's dedup_key (255), Opsgenie's alias (512) and any label value.
"""

from __future__ import annotations

import hashlib

from dispatcher.model import Alert

# Output fields that identify where the problem is, in order; absent ones are skipped.
SCOPE_FIELDS = ("container.id", "k8s.ns.name", "k8s.pod.name", "proc.exepath", "proc.exe")


def incident_key(alert: Alert) -> str:
    """SHA-256 hex of the rule, the host and the stable scope fields the alert carries."""
    parts = [alert.rule, alert.hostname]
    for name in SCOPE_FIELDS:
        value = alert.output_fields.get(name)
        if value is not None and value != "":
            parts.append(f"{name}={value}")
    # NUL cannot occur in names or values, so different part lists never join into the same text.
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()
