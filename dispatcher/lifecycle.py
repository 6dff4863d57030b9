# SPDX-License-Identifier: Apache-2.0
"""Resolve an incident once its alert has been quiet for a while (PagerDuty resolve, Opsgenie close).

A Falco alert is a point in time; an incident tool wants a lifecycle. Each delivered trigger records its dedup key
with the time in a Redis sorted set (score = last seen). A loop beside the output resolves every key not seen for
``quiet_s`` with the output's own resolve call, then removes it, but only if no trigger refreshed it meanwhile.
The set lives in Redis, so open incidents survive a dispatcher restart and replicas share them; two replicas may
both resolve one incident, which both destinations treat as a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dispatcher.failures import describe, is_permanent
from dispatcher.metrics import OUTPUT_RESOLVED

log = logging.getLogger(__name__)

# Remove the member only if its score is still the one the resolver saw (no trigger arrived since).
_REMOVE_IF_UNCHANGED = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""


class QuietResolver:
    """Tracks open incidents of one output and resolves the quiet ones."""

    def __init__(
        self,
        redis_url: str,
        key: str,
        quiet_s: float,
        resolve: Callable[[str], Awaitable[None]],
        *,
        output: str,
        timeout_s: float = 30.0,
    ) -> None:
        self.key = key
        self.quiet_s = quiet_s
        self._resolve = resolve
        self._output = output
        self._timeout_s = timeout_s
        self._interval = min(max(quiet_s / 10, 0.05), 30.0)
        self._r: Any = aioredis.Redis.from_url(redis_url)
        self._remove = self._r.register_script(_REMOVE_IF_UNCHANGED)

    async def touch(self, member: str) -> None:
        """Record that the incident ``member`` fired now (after the destination accepted the trigger)."""
        await self._r.zadd(self.key, {member: time.time()})

    async def open_count(self) -> int:
        """How many incidents are open (tests and debugging)."""
        return int(await self._r.zcard(self.key))

    async def run(self) -> None:
        """Resolve quiet incidents until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except RedisError as exc:
                log.warning("incident resolver cannot reach redis", extra={"output": self._output, "error": str(exc)})

    async def sweep(self) -> int:
        """Resolve every incident quiet for ``quiet_s``; return how many were resolved."""
        due = await self._r.zrangebyscore(self.key, "-inf", time.time() - self.quiet_s, start=0, num=100,
                                          withscores=True)  # fmt: skip
        done = 0
        for raw, score in due:
            member = raw.decode()
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._resolve(member)
            except Exception as exc:
                if not is_permanent(exc):
                    # Left in the set: the next sweep tries again.
                    log.warning("incident resolve failed; retrying",
                                extra={"output": self._output, "error": describe(exc)})  # fmt: skip
                    continue
                log.error("incident resolve refused; forgetting it",
                          extra={"output": self._output, "error": describe(exc)})  # fmt: skip
            else:
                done += 1
                OUTPUT_RESOLVED.labels(output=self._output).inc()
            await self._remove(keys=[self.key], args=[member, repr(score)])
        return done

    async def close(self) -> None:
        """Close the Redis connection."""
        await self._r.aclose()
