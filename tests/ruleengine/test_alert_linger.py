# SPDX-License-Identifier: Apache-2.0
"""The alert sender gathers longer while alerts flow fast, and returns to its own linger when they slow down."""

from __future__ import annotations

import time

from ruleengine.service import ALERT_LINGER_BUSY_S, BUSY_ALERT_RATE, RuleEngineService


class Sender:
    def __init__(self) -> None:
        self.linger_s = 0.008
        self.sent: list[bytes] = []

    def submit_many(self, alerts: list[bytes]) -> None:
        self.sent += alerts


def test_the_linger_follows_the_alert_rate() -> None:
    sender = Sender()
    service = RuleEngineService(lambda: None, lambda m, ctx: None, sender)  # type: ignore[arg-type]
    # A window a second long (or longer, on a slow host) with far more alerts than the busy rate: busy.
    service._window_start = time.monotonic() - 1.0
    service._follow_rate(int(BUSY_ALERT_RATE * 100))
    assert sender.linger_s == ALERT_LINGER_BUSY_S
    # Then a window with one alert: back to the sender's own linger.
    service._window_start = time.monotonic() - 1.0
    service._follow_rate(1)
    assert sender.linger_s == 0.008
    # Within a window nothing changes yet.
    service._window_start = time.monotonic() + 3600
    service._follow_rate(10**9)
    assert sender.linger_s == 0.008
