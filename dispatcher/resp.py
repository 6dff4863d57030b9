# SPDX-License-Identifier: Apache-2.0
"""A lean Redis connection for the dispatcher's hot path: the persist script, stream reads and acks.

redis-py spends 60-100 µs of CPU on every round trip (a pooled connection taken and given back, a timeout context,
the command packed in Python, the reply turned into dicts), which is most of the cost of a small batch of alerts.
Here a command is packed by hiredis, written on an asyncio protocol, and its reply parsed by hiredis as it arrives:
about a fifth of that. Several commands may be written in one go (``pipeline``), and non-blocking commands of
concurrent callers share one connection (replies come back in order, each to its own future).

It speaks RESP2 to a plain ``redis://`` or ``unix://`` URL (password, user and db from the URL). TLS and Redis
Cluster keep to redis-py (``AlertStore``). Failures raise redis-py's exceptions, so ``retry_redis`` and the
``NOGROUP`` checks treat both alike: ``ConnectionError`` when the connection fails or closes (the next call opens
a new one), ``TimeoutError`` when no reply came in time (the connection is dropped: its replies can no longer be
matched to their commands), and ``ResponseError`` for an error reply.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Command", "RespConnection", "lean_url"]

Command = Sequence[str | bytes | int]


def lean_url(url: str) -> bool:
    """True when ``url`` is one this module can serve (no TLS)."""
    return url.startswith(("redis://", "unix://"))


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        # uvloop's transports are not asyncio.Transport subclasses, hence Any.
        self.transport: Any = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.waiters
        while waiters:
            reply = reader.gets()
            if reply is False:
                return
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to redis lost: {exc or 'closed by the server'}")
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(self.lost)


class RespConnection:
    """One connection, opened on first use and again after a failure."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, timeout: float = 15.0) -> None:
        self.url = url
        self._opts = parse_url(url)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._proto: _Protocol | None = None
        self._opening: asyncio.Lock | None = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        opts = self._opts
        try:
            async with asyncio.timeout(self._connect_timeout):
                if "path" in opts:
                    _, proto = await loop.create_unix_connection(_Protocol, opts["path"])
                else:
                    _, proto = await loop.create_connection(
                        _Protocol, opts.get("host", "localhost"), opts.get("port", 6379)
                    )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to redis at {self.url}: {exc}") from None
        setup: list[Command] = []
        if opts.get("password"):
            setup.append(
                ("AUTH", opts["username"], opts["password"]) if opts.get("username") else ("AUTH", opts["password"])
            )
        if int(opts.get("db") or 0):
            setup.append(("SELECT", int(opts["db"])))
        if setup:
            try:
                for reply in await self._exchange(proto, setup, self._timeout):
                    if isinstance(reply, ResponseError):
                        raise reply
            except BaseException:
                assert proto.transport is not None
                proto.transport.close()
                raise
        return proto

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._proto is None or self._proto.lost is not None:
                self._proto = await self._open()
            return self._proto

    @staticmethod
    async def _exchange(proto: _Protocol, commands: Sequence[Command], timeout: float) -> list[Any]:
        if proto.lost is not None:
            raise proto.lost
        assert proto.transport is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiters.extend(futures)
        # (hiredis's stub types the tuple as one element long.)
        proto.transport.write(b"".join([hiredis.pack_command(tuple(c)) for c in commands]))  # type: ignore[arg-type]
        last = futures[-1]
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            last.cancel()

        timer = loop.call_later(timeout, expire) if timeout > 0 else None
        try:
            # Replies come in order: once the last one is in, every earlier one is too.
            await last
        except asyncio.CancelledError:
            if not expired:
                raise  # the caller was cancelled; the replies still due are read and dropped
            # The connection can no longer pair replies with commands: drop it.
            proto.transport.close()
            raise RedisTimeoutError(f"no reply from redis within {timeout:.1f} s") from None
        finally:
            if timer is not None:
                timer.cancel()
        return [f.result() for f in futures]

    async def pipeline(self, commands: Sequence[Command], extra_timeout: float = 0.0) -> list[Any]:
        """Send the commands in one write; return their replies in order (error replies as ResponseError
        objects, not raised). ``extra_timeout`` adds to the reply deadline (a blocking read's own block time)."""
        proto = await self._connection()
        try:
            return await self._exchange(proto, commands, self._timeout + extra_timeout)
        except RedisTimeoutError:
            self._proto = None
            raise

    async def call(self, *command: str | bytes | int, extra_timeout: float = 0.0) -> Any:
        """One command; its reply, or its error reply raised as ResponseError."""
        reply = (await self.pipeline((command,), extra_timeout))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
