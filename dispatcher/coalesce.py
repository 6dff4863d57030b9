# SPDX-License-Identifier: Apache-2.0
"""Coalescing: many concurrent one-alert deliveries become one request, without changing the driver.

The driver delivers each alert on its own, up to ``concurrency`` at once, and acks an alert only once its
``send`` returned. An output that can carry many alerts per request (an NDJSON webhook, a bulk API) hands each
item to a ``Coalescer``: items wait until ``max_items`` are queued or ``linger_s`` passed, one request carries them
all, and every waiting ``send`` returns (or raises the request's error, which the driver then retries per alert).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

Flush = Callable[[Sequence[bytes]], Awaitable[None]]


class Coalescer:
    """Batches ``submit`` calls into ``flush`` calls of at most ``max_items`` items."""

    def __init__(self, flush: Flush, max_items: int, linger_s: float) -> None:
        if max_items < 1 or linger_s < 0:
            raise ValueError("max_items must be at least 1 and linger_s not negative")
        self._flush = flush
        self._max = max_items
        self._linger = linger_s
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: bytes) -> None:
        """Queue one item; return once the request carrying it succeeded, raise its error otherwise."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if len(self._queue) >= self._max:
            self._send_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._send_now)
        await fut

    def _send_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # A sender that gave up (timed out, cancelled) no longer waits; its item stays out of the request.
        batch = [(item, fut) for item, fut in self._queue if not fut.done()]
        self._queue = []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        try:
            await self._flush([item for item, _ in batch])
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def close(self) -> None:
        """Wait for requests in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
