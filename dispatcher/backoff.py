# SPDX-License-Identifier: Apache-2.0
"""Capped exponential backoff with full jitter, and a rate limiter; shared by intake and delivery."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Delays that double from ``initial`` up to ``maximum``; each is drawn uniformly from [d/2, d]."""

    initial: float = 0.1
    maximum: float = 10.0
    _current: float = 0.0

    def next_delay(self) -> float:
        """The delay before the next attempt."""
        self._current = self.initial if self._current == 0.0 else min(self._current * 2, self.maximum)
        # Half-jitter keeps a floor so a dead destination is not hammered, while spreading reconnect storms.
        return self._current * (0.5 + random.random() / 2)

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self._current = 0.0

    async def sleep(self) -> float:
        """Sleep for the next delay and return it."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay


class RateLimiter:
    """Token bucket: at most ``rate`` acquisitions per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a token is available (no wait when the rate is 0, meaning unlimited)."""
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
