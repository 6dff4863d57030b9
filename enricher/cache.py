# SPDX-License-Identifier: Apache-2.0
"""A Redis cache in front of any ``MetadataProvider``, itself a ``MetadataProvider``.

Hits are served from Redis; misses go to the wrapped provider and the answer is stored with a TTL. A definite
"unknown container" is cached too, with a shorter TTL, so events from a container no runtime knows (or from a
cgroup that only looks like one) do not hit the runtime on every lookup. A transient failure (``LookupFailed``)
is never cached.

Redis is an optimisation, not a dependency: while it is unreachable (at start-up or later), lookups go straight
to the wrapped provider and a background task reconnects with backoff, logging once when Redis goes away and once
when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import random

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from enricher.meta import ContainerMeta, MetadataProvider

log = logging.getLogger(__name__)

CACHE_REQUESTS = Counter(
    "lanner_enricher_cache_requests_total", "Container metadata cache lookups, by result", ["result"]
)
_NEGATIVE = b"-"
KEY_PREFIX = "lanner:container:"


class RedisCachedProvider:
    """``MetadataProvider`` that caches another provider's answers in Redis with a TTL (and negative caching)."""

    def __init__(
        self,
        inner: MetadataProvider,
        redis_url: str,
        *,
        ttl_s: float = 300.0,
        negative_ttl_s: float = 10.0,
        op_timeout_s: float = 0.25,
        retry_max_s: float = 10.0,
    ) -> None:
        self.inner = inner
        self.name = f"redis({inner.name})"
        self.redis_url = redis_url
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.negative_ttl_ms = max(1, int(negative_ttl_s * 1000))
        self.retry_max_s = retry_max_s
        self._redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=op_timeout_s, socket_connect_timeout=op_timeout_s, retry_on_timeout=False
        )
        self.healthy = False
        self._wake = asyncio.Event()
        self._stats = {r: CACHE_REQUESTS.labels(r) for r in ("hit", "negative_hit", "miss", "bypass", "error")}

    async def connect_loop(self) -> None:
        """Background task: (re)connect to Redis with backoff whenever it is marked unhealthy. Runs forever."""
        delay = 0.2
        announced_down = False
        while True:
            if self.healthy:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._redis.ping()
            except (RedisError, OSError) as exc:
                if not announced_down:
                    log.warning(
                        "redis unavailable; serving container metadata from the runtimes without cache, retrying",
                        extra={"redis_url": self.redis_url, "error": str(exc)},
                    )
                    announced_down = True
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.retry_max_s)
                continue
            self.healthy = True
            delay = 0.2
            announced_down = False
            log.info("redis connected; container metadata cache enabled", extra={"redis_url": self.redis_url})

    async def wait_healthy(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first successful connection; True when Redis is usable."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.healthy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return self.healthy

    def _mark_down(self, exc: Exception) -> None:
        if self.healthy:
            log.warning("redis error; cache bypassed until it is back", extra={"error": str(exc)})
        self.healthy = False
        self._stats["error"].inc()
        self._wake.set()

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        """Cached answer if any, else ask the wrapped provider and remember what it said."""
        key = KEY_PREFIX + container_id
        if self.healthy:
            try:
                cached = await self._redis.get(key)
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
                cached = None
            else:
                if cached == _NEGATIVE:
                    self._stats["negative_hit"].inc()
                    return None
                if cached is not None:
                    try:
                        meta = ContainerMeta.from_json(cached)
                    except ValueError as exc:
                        log.warning("ignoring bad cache entry", extra={"key": key, "error": str(exc)})
                    else:
                        self._stats["hit"].inc()
                        return meta
            self._stats["miss"].inc()
        else:
            self._stats["bypass"].inc()
        found = await self.inner.lookup(container_id)  # LookupFailed propagates and is not cached
        if self.healthy:
            value = found.to_json().encode() if found is not None else _NEGATIVE
            ttl = self.ttl_ms if found is not None else self.negative_ttl_ms
            try:
                await self._redis.set(key, value, px=ttl)
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
        return found

    async def invalidate(self, container_id: str) -> None:
        """Forget a container (e.g. after it was destroyed)."""
        if self.healthy:
            try:
                await self._redis.delete(KEY_PREFIX + container_id)
            except (RedisError, OSError) as exc:
                self._mark_down(exc)

    async def close(self) -> None:
        """Close Redis and the wrapped provider."""
        try:
            # redis-py >= 5 names it aclose(); older type stubs only know close().
            closer = getattr(self._redis, "aclose", None) or self._redis.close
            await closer()
        finally:
            await self.inner.close()
