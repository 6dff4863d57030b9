# SPDX-License-Identifier: Apache-2.0
"""Grouping and digests: one message for a burst of repeats, instead of hundreds.

Per output, a grouping key (default: rule, host, container, process executable) and a window. The first alert of a
group goes out at once and opens the window; repeats inside the window are only counted. When the window ends, one
digest goes out ("42 more in 10 min", with the first and last time), and the next repeat opens a new window.

The windows live in Redis (a hash per open group, plus a sorted set of window ends per output), so replicas share
them and they survive a restart. Both scripts read Redis' own clock, so replicas with skewed clocks agree. Closing a
window is one script that removes the group and appends the digest to the alert stream, addressed to the one
output (``o``), so the digest gets the same durable delivery, retries and dead letters as any alert, and is
produced exactly once however many replicas poll.

A redelivered first alert (a crash before its ack) is recognised by its stream id and sent again, never taken for
a repeat; a redelivered repeat may be counted twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from dispatcher.matchers import field_values
from dispatcher.model import Alert, JsonValue
from dispatcher.store import PAYLOAD_FIELD, TARGET_FIELD, AlertStore

log = logging.getLogger(__name__)

DEFAULT_GROUP_BY = ("rule", "hostname", "container.id", "proc.exepath")
# Outputs that keep every alert: grouping is refused for them.
UNGROUPED_TYPES = frozenset({"file"})

# KEYS[1] = due set; ARGV[1] = group key prefix, ARGV[2] = window ms, then (group, entry id, time ns, payload) x n.
# Returns one flag per alert: 1 = send it (opens the window, or is the window's own first alert again), 0 = counted.
_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 3, #ARGV, 4 do
  local k = ARGV[1] .. ARGV[i]
  local first = redis.call('HGET', k, 'fid')
  if not first then
    redis.call('HSET', k, 'fid', ARGV[i + 1], 'n', 0, 'first', ARGV[i + 2], 'last', ARGV[i + 2], 's', ARGV[i + 3])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[i])
    -- A safety net for windows nobody closes (the output was removed from the config).
    redis.call('PEXPIRE', k, tonumber(ARGV[2]) * 2 + 3600000)
    out[#out + 1] = 1
  elseif first == ARGV[i + 1] then
    out[#out + 1] = 1
  else
    redis.call('HINCRBY', k, 'n', 1)
    redis.call('HSET', k, 'last', ARGV[i + 2])
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS[1] = due set, KEYS[2] = stream; ARGV[1] = group key prefix, ARGV[2] = output, ARGV[3] = window ms,
# ARGV[4] = limit. Closes due windows; a window with repeats becomes one digest entry. Returns digests added.
_FLUSH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local added = 0
for _, g in ipairs(due) do
  local k = ARGV[1] .. g
  local h = redis.call('HMGET', k, 'n', 'first', 'last', 's')
  redis.call('ZREM', KEYS[1], g)
  redis.call('DEL', k)
  if h[1] and tonumber(h[1]) > 0 then
    redis.call('XADD', KEYS[2], '*', 'o', ARGV[2], 'a', h[4], 'n', h[1], 'f', h[2], 'l', h[3], 'w', ARGV[3])
    added = added + 1
  end
end
return added
"""


def group_key(alert: Alert, by: Sequence[str]) -> str:
    """Hex digest of the alert's values for the grouping fields (absent fields count as empty)."""
    parts = ["\x1f".join(field_values(alert, name)) for name in by]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def human_duration(seconds: float) -> str:
    """``10 min``, ``45 s``, ``2 h``: how a digest names its window."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


class Grouper:
    """The grouping windows of one output."""

    def __init__(self, store: AlertStore, output: str, window_s: float, by: Sequence[str]) -> None:
        self._store = store
        self.output = output
        self.window_ms = max(1, int(window_s * 1000))
        self.by = tuple(by) or DEFAULT_GROUP_BY
        # Derived from the stream's name, so a hash tag in it ({...}) keeps every key in the stream's slot.
        self._prefix = f"{store.stream}:group:{output}:"
        self._due = f"{store.stream}:group-due:{output}"
        self._admit = store.redis.register_script(_ADMIT_LUA)
        self._flush = store.redis.register_script(_FLUSH_LUA)

    async def admit(self, items: Sequence[tuple[bytes, Alert, bytes]]) -> list[bool]:
        """For each (entry id, alert, payload): True to send it now, False when it was counted into its window."""
        if not items:
            return []
        args: list[str | bytes | int] = [self._prefix, self.window_ms]
        for entry_id, alert, payload in items:
            args += [group_key(alert, self.by), entry_id, alert.time_ns, payload]
        flags = await self._admit(keys=[self._due], args=args)
        return [bool(int(f)) for f in flags]

    async def flush(self, limit: int = 256) -> int:
        """Close the windows that ended; return how many digests were queued."""
        return int(
            await self._flush(
                keys=[self._due, self._store.stream], args=[self._prefix, self.output, self.window_ms, limit]
            )
        )

    async def open_windows(self) -> int:
        """How many windows are open (for tests and metrics)."""
        return int(await self._store.redis.zcard(self._due))


def digest_alert(sample: Alert, extra: Mapping[bytes, bytes]) -> Alert:
    """The digest of a closed window, built from its first alert and the counts the flush script stored."""
    count = int(extra[b"n"])
    first_ns, last_ns = int(extra[b"f"]), int(extra[b"l"])
    window = human_duration(int(extra.get(b"w", b"0")) / 1000)
    first, last = _stamp(first_ns), _stamp(last_ns)
    text = f"{count} more in {window} (first {first}, last {last}): {sample.message or sample.rule}"
    secs = last_ns // 1_000_000_000
    clock = time.strftime("%H:%M:%S", time.localtime(secs)) + f".{last_ns % 1_000_000_000:09d}"
    fields: dict[str, JsonValue] = dict(sample.output_fields)
    fields.update(
        {
            "lanner.digest.count": count,
            "lanner.digest.window": window,
            "lanner.digest.first": first,
            "lanner.digest.last": last,
        }
    )
    return Alert(
        rule=sample.rule,
        priority=sample.priority,
        source=sample.source,
        tags=sample.tags,
        time_ns=last_ns,
        output=f"{clock}: {sample.priority.falco_name} {text}",
        message=text,
        output_fields=MappingProxyType(fields),
        hostname=sample.hostname,
        alert_id=sample.alert_id,
    )


def _stamp(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + "Z"


def is_digest(extra: Mapping[bytes, Any] | None) -> bool:
    """True for a digest entry (as opposed to a replayed dead letter, which is also addressed to one output)."""
    return extra is not None and b"n" in extra


__all__ = ["DEFAULT_GROUP_BY", "PAYLOAD_FIELD", "TARGET_FIELD", "Grouper", "digest_alert", "group_key", "is_digest"]
