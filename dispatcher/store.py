# SPDX-License-Identifier: Apache-2.0
"""The durable alert queue: one Redis Stream, a dedup window, and one consumer group per output.

Persisting is one Lua script per chunk, so "mark the alert id as seen" and "append it to the stream" happen
together or not at all: a dispatcher that dies between the two can never leave an id marked but not stored.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from dispatcher.backoff import Backoff
from dispatcher.metrics import REDIS_UP
from dispatcher.resp import Command, RespConnection, lean_url

log = logging.getLogger(__name__)
T = TypeVar("T")

# KEYS[1] = stream; ARGV[1] = dedup key prefix, ARGV[2] = dedup window in ms, then (alert_id, payload) pairs.
# An empty alert_id skips dedup. Returns the id of the stream's newest entry before this call ("" when it has none),
# then, for each new alert, its pair's index (from 0) and its new entry id: the subscriber hub fans the new alerts
# out from memory when it had read up to that newest entry (dispatcher.hub), since nothing can lie between.
_PERSIST_LUA = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local out = {newest[1] and newest[1][1] or ''}
for i = 3, #ARGV, 2 do
  local fresh = true
  if ARGV[i] ~= '' then
    fresh = redis.call('SET', ARGV[1] .. ARGV[i], '1', 'NX', 'PX', ARGV[2])
  end
  if fresh then
    out[#out + 1] = (i - 3) / 2
    out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'a', ARGV[i + 1])
  end
end
return out
"""

# Called with the newest entry id before a persist run and the (item index, entry id) of what it added.
OnAdded = Callable[[bytes, list[tuple[int, bytes]]], None]

# Alerts per script call: keeps each call short so Redis stays responsive to the delivery workers.
_CHUNK = 512
PAYLOAD_FIELD = b"a"


# An entry addressed to one output only (a digest, a replayed dead letter); every other output skips it.
TARGET_FIELD = b"o"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its id and the serialized ``lanner.v1.Alert`` (None if it was trimmed away).

    ``target`` names the one output the entry is for (None: every output); ``extra`` holds its other fields
    (a digest's counts).
    """

    id: bytes
    payload: bytes | None
    target: str | None = None
    extra: Mapping[bytes, bytes] | None = None


def _flat_entries(raw: Sequence[Any] | None) -> list[Entry]:
    """Entries as RESP2 gives them: ``[id, [field, value, ...]]`` (``[id, nil]`` for one trimmed while pending)."""
    out: list[Entry] = []
    for entry_id, fields in raw or ():
        if not fields:
            out.append(Entry(entry_id, None))
        elif len(fields) == 2 and fields[0] == PAYLOAD_FIELD:
            out.append(Entry(entry_id, fields[1]))
        else:
            out += _entries([(entry_id, dict(zip(fields[::2], fields[1::2], strict=False)))])
    return out


def _entries(raw: Sequence[Any]) -> list[Entry]:
    out: list[Entry] = []
    for item in raw:
        entry_id, fields = item[0], item[1]
        if not fields:
            out.append(Entry(entry_id, None))
        elif TARGET_FIELD in fields:
            out.append(Entry(entry_id, fields.get(PAYLOAD_FIELD), fields[TARGET_FIELD].decode(), fields))
        else:
            out.append(Entry(entry_id, fields.get(PAYLOAD_FIELD)))
    return out


class AlertStore:
    """Redis Streams adapter for the dispatcher: persist with dedup, group reads, acks, claims, trimming."""

    def __init__(
        self, url: str, stream: str, dedup_prefix: str, dedup_window_ms: int, *, cluster: bool = False
    ) -> None:
        self.url = url
        self.stream = stream
        self.dead_stream = f"{stream}:dead"
        self._prefix = dedup_prefix
        self._window = str(max(1, dedup_window_ms))
        # Typed as Any: the installed redis stubs lag behind redis-py 8 (aclose, xautoclaim...).
        # socket_timeout bounds a hung (not refused) connection; it must exceed the 1 s blocking reads.
        opts: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 15.0}
        if not url.startswith("unix://"):
            opts["socket_keepalive"] = True  # a Unix socket has no keepalive (redis-py refuses the option)
        if cluster:
            # Every key the dispatcher touches carries the stream's hash tag, so each script runs on one node.
            self._r: Any = RedisCluster.from_url(url, **opts)
        else:
            self._r = aioredis.Redis.from_url(url, health_check_interval=10, **opts)
        self._persist = self._r.register_script(_PERSIST_LUA)
        # The hot path (persist, stream reads, acks) on lean connections (dispatcher.resp): one shared by the
        # non-blocking commands, and one per blocking reader, which holds its connection while it waits.
        self._lean = not cluster and lean_url(url)
        self._cmd = RespConnection(url) if self._lean else None
        self._readers: dict[str, RespConnection] = {}
        self._persist_sha = hashlib.sha1(_PERSIST_LUA.encode()).hexdigest()

    def _reader(self, name: str) -> RespConnection:
        conn = self._readers.get(name)
        if conn is None:
            conn = self._readers[name] = RespConnection(self.url)
        return conn

    @property
    def redis(self) -> Any:
        """The underlying client (blocking reads each take a pooled connection)."""
        return self._r

    async def ping(self) -> None:
        """Raise if Redis is not reachable."""
        await self._r.ping()

    async def close(self) -> None:
        """Close the connection pool and the lean connections."""
        for conn in [self._cmd, *self._readers.values()]:
            if conn is not None:
                await conn.close()
        await self._r.aclose()

    async def persist(self, items: Sequence[tuple[str, bytes]], on_added: OnAdded | None = None) -> int:
        """Append ``(alert_id, payload)`` pairs not seen within the dedup window; return how many were new.

        ``on_added(newest, added)`` is called once per script run that added any: ``newest`` is the id of the
        stream's newest entry before the run (b"" for none), ``added`` the ``(index into items, entry id)`` of
        each new entry, in stream order.
        """
        added = 0
        for start in range(0, len(items), _CHUNK):
            args: list[str | bytes] = [self._prefix, self._window]
            for alert_id, payload in items[start : start + _CHUNK]:
                args.append(alert_id)
                args.append(payload)
            if self._cmd is None:
                reply = await self._persist(keys=[self.stream], args=args)
            else:
                try:
                    reply = await self._cmd.call("EVALSHA", self._persist_sha, 1, self.stream, *args)
                except ResponseError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                    # A restarted (or flushed) Redis: EVAL runs the script and caches it for the next EVALSHA.
                    reply = await self._cmd.call("EVAL", _PERSIST_LUA, 1, self.stream, *args)
            new = (len(reply) - 1) // 2
            added += new
            if new and on_added is not None:
                on_added(reply[0], [(start + int(reply[i]), reply[i + 1]) for i in range(1, len(reply), 2)])
        return added

    async def ensure_group(self, group: str, start: str = "$") -> None:
        """Create the consumer group, by default at the stream's end (new outputs start with new alerts)."""
        try:
            await self._r.xgroup_create(self.stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _regroup(self, group: str) -> None:
        # The group vanished while we ran: Redis restarted without persistence, or someone deleted the key.
        # Whatever the stream holds now was never delivered to this group, so start from its beginning.
        log.warning(
            "consumer group missing (did Redis lose its data? run it with appendonly yes); recreating it",
            extra={"group": group, "stream": self.stream, "redis_url": self.url},
        )
        await self.ensure_group(group, "0")

    async def read_group(
        self, group: str, consumer: str, start: str, count: int, block_ms: int, ack: Sequence[bytes] = ()
    ) -> list[Entry]:
        """XREADGROUP: ``start`` ">" for new entries, "0" for this consumer's own pending ones; with ``ack``,
        those ids are acknowledged first, in the same round trip."""
        try:
            if self._lean:
                return await self._lean_read_group(group, consumer, start, count, block_ms, ack)
            await self.ack(group, ack)
            resp = await self._r.xreadgroup(
                group, consumer, {self.stream: start}, count=count, block=block_ms if start == ">" else None
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._regroup(group)
            return []
        if not resp:
            return []
        return _entries(cast(list[Any], resp)[0][1])

    async def _lean_read_group(
        self, group: str, consumer: str, start: str, count: int, block_ms: int, ack: Sequence[bytes]
    ) -> list[Entry]:
        read: list[str | bytes | int] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if start == ">":
            read += ("BLOCK", block_ms)
        read += ("STREAMS", self.stream, start)
        commands: list[Command] = [["XACK", self.stream, group, *ack], read] if ack else [read]
        replies = await self._reader(f"group:{group}").pipeline(commands, block_ms / 1000)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return _flat_entries(replies[-1][0][1] if replies[-1] else None)

    async def ack(self, group: str, ids: Sequence[bytes]) -> None:
        """XACK the given ids for the group."""
        if not ids:
            return
        if self._cmd is not None:
            await self._cmd.call("XACK", self.stream, group, *ids)
        else:
            await self._r.xack(self.stream, group, *ids)

    async def autoclaim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries other (dead) consumers left pending for longer than ``min_idle_ms``."""
        try:
            resp = await self._r.xautoclaim(self.stream, group, consumer, min_idle_ms, "0-0", count=count)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._regroup(group)
            return []
        return _entries(resp[1])

    async def dead_letter(self, output: str, entry: Entry, error: str) -> None:
        """Keep an alert an output gave up on, with the reason, for an operator to inspect or replay."""
        fields: dict[str | bytes, str | bytes] = {"output": output, "entry": entry.id, "error": error}
        if entry.payload is not None:
            fields["a"] = entry.payload
        # A digest keeps its counts (n, f, l, w), so a replay sends the digest again, not just its first alert.
        for key, value in (entry.extra or {}).items():
            if key not in (PAYLOAD_FIELD, TARGET_FIELD):
                fields.setdefault(key, value)
        await self._r.xadd(self.dead_stream, fields)

    async def last_id(self) -> str:
        """The id of the newest entry ever added ("0-0" when the stream does not exist yet)."""
        try:
            info = await self._r.xinfo_stream(self.stream)
        except ResponseError:
            return "0-0"
        last = info.get("last-generated-id", b"0-0")
        return last.decode() if isinstance(last, bytes) else str(last)

    async def read_after(self, cursor: str, count: int, block_ms: int | None) -> list[Entry]:
        """Plain XREAD after ``cursor`` (live tail, no group); ``block_ms`` None does not block."""
        if self._lean:
            block: list[str | int] = ["BLOCK", block_ms] if block_ms is not None else []
            reply = await self._reader("tail").call(
                "XREAD",
                "COUNT",
                count,
                *block,
                "STREAMS",
                self.stream,
                cursor,
                extra_timeout=(block_ms or 0) / 1000,
            )
            return _flat_entries(reply[0][1] if reply else None)
        resp = await self._r.xread({self.stream: cursor}, count=count, block=block_ms)
        if not resp:
            return []
        return _entries(cast(list[Any], resp)[0][1])

    async def read_range(self, start: str, count: int, inclusive: bool = False) -> list[Entry]:
        """XRANGE from ``start`` (excluded unless ``inclusive``) to the end: a subscriber's replay."""
        if self._cmd is not None:
            begin = start if inclusive else f"({start}"
            return _flat_entries(await self._cmd.call("XRANGE", self.stream, begin, "+", "COUNT", count))
        resp = await self._r.xrange(self.stream, start if inclusive else f"({start}", "+", count=count)
        return _entries(cast(list[Any], resp))

    async def trim(self, idle_keep: int, retention_s: float = 0.0) -> TrimReport:
        """Drop entries every consumer group has acknowledged and that are older than ``retention_s``, and report
        each group's backlog.

        Entries still pending or not yet read by any group are kept, so trimming never loses an accepted alert.
        With no groups at all only the newest ``idle_keep`` entries (within the retention) are kept.
        """
        try:
            groups = await self._r.xinfo_groups(self.stream)
        except ResponseError:
            return TrimReport(0, 0, {})
        keep_from = (int(time.time() * 1000 - retention_s * 1000), 0)
        if not groups:
            removed = int(await self._r.xtrim(self.stream, maxlen=idle_keep, approximate=True))
            if retention_s > 0:
                removed += int(await self._r.xtrim(self.stream, minid=f"{keep_from[0]}-0", approximate=True))
            return TrimReport(removed, int(await self._r.xlen(self.stream)), {})
        floor: tuple[int, int] | None = keep_from if retention_s > 0 else None
        backlog: dict[str, int] = {}
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
            pending = await self._r.xpending(self.stream, name)
            raw_id = pending["min"] if pending["pending"] else g["last-delivered-id"]
            # "lag" (Redis 7) is how many entries the group has not read yet; None when Redis cannot tell.
            backlog[name] = int(pending["pending"]) + int(g.get("lag") or 0)
            gid = parse_id(raw_id)
            if floor is None or gid < floor:
                floor = gid
        removed = 0
        if floor is not None and floor != (0, 0):
            removed = int(await self._r.xtrim(self.stream, minid=f"{floor[0]}-{floor[1]}", approximate=False))
        return TrimReport(removed, int(await self._r.xlen(self.stream)), backlog)


@dataclass(frozen=True, slots=True)
class TrimReport:
    """What a trimming round did and saw: entries removed, entries left, undelivered entries per group."""

    removed: int
    length: int
    backlog: dict[str, int]


def parse_id(raw: bytes | str) -> tuple[int, int]:
    """A stream id ("<ms>-<seq>") as a tuple that sorts like the stream."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


class RedisState:
    """Whether the last Redis operation succeeded; the dispatcher's health follows it."""

    up = True


async def retry_redis(op: Callable[[], Awaitable[T]], what: str, url: str, backoff: Backoff | None = None) -> T:
    """Run ``op`` until Redis answers, logging the outage once (then every 30 s) and the recovery.

    Used wherever giving up would lose an alert: intake holds its ack, delivery holds its ack, until Redis is back.
    """
    backoff = backoff or Backoff(0.1, 5.0)
    failures = 0
    last_log = 0.0
    while True:
        try:
            result = await op()
        except REDIS_ERRORS as exc:
            failures += 1
            REDIS_UP.set(0)
            RedisState.up = False
            now = time.monotonic()
            if failures == 1 or now - last_log >= 30.0:
                last_log = now
                log.warning(
                    "redis unavailable; holding %s and retrying",
                    what,
                    extra={"redis_url": url, "error": f"{type(exc).__name__}: {exc}", "failures": failures},
                )
            await backoff.sleep()
            continue
        if failures:
            log.info("redis reachable again; resuming %s", what, extra={"redis_url": url, "failures": failures})
        REDIS_UP.set(1)
        RedisState.up = True
        return result
