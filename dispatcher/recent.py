# SPDX-License-Identifier: Apache-2.0
"""Alerts this dispatcher's intake has just persisted, decoded once, for the output drivers and the hub.

Each output driver still reads every alert from the stream through its consumer group: that is what makes delivery
survive a crash. But an alert the intake has just parsed need not be parsed and decoded again: a driver finds it
here by its entry id, and the subscriber hub routes on the same decoded alert. A driver that lags further behind
than this holds, or an alert that does not decode (the driver dead-letters it, naming why), takes the stream's
bytes as before.
"""

from __future__ import annotations

from dispatcher.hub import Fed, SubscriberHub
from dispatcher.store import OnAdded
from lanner.alert import Alert, AlertError, alert_from_pb
from lanner.v1 import alert_pb2

# Alerts kept, newest first out last: several batches of the rule engine's largest (512).
RECENT_ALERTS = 4096


class RecentAlerts:
    """The decoded alerts of the newest entries the intake added, by entry id."""

    def __init__(self, size: int = RECENT_ALERTS) -> None:
        self._alerts: dict[bytes, Alert] = {}
        self._size = size

    def add(self, entry_id: bytes, pb: alert_pb2.Alert) -> Alert | None:
        """Decode the alert just stored as ``entry_id`` and keep it; None (and nothing kept) if it does not
        decode."""
        try:
            alert = alert_from_pb(pb)
        except (AlertError, ValueError, RecursionError):
            return None
        alerts = self._alerts
        alerts[entry_id] = alert
        if len(alerts) > self._size:
            del alerts[next(iter(alerts))]  # the oldest: dicts keep insertion order
        return alert

    def get(self, entry_id: bytes) -> Alert | None:
        """The decoded alert of the entry, if the intake added it lately."""
        return self._alerts.get(entry_id)


def on_added(
    hub: SubscriberHub, recent: RecentAlerts | None, items: list[tuple[str, bytes]], parsed: list[alert_pb2.Alert]
) -> OnAdded:
    """What the intake's persist calls with the entries it added: decode each once (when some output will read
    it) and feed them to the hub (when someone is subscribed)."""

    def added(newest: bytes, new: list[tuple[int, bytes]]) -> None:
        tailing = hub.tailing
        if recent is None and not tailing:
            return
        fed: list[Fed] = []
        for i, entry_id in new:
            pb = parsed[i]
            fed.append((entry_id, items[i][1], pb, recent.add(entry_id, pb) if recent is not None else None))
        if tailing:
            hub.feed(newest, fed)

    return added
